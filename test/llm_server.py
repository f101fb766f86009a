"""A local OpenAI-compatible chat-completions server for tests (streamed SSE and whole).

It speaks the protocol the HTTP backend must handle (choices/delta/content, [DONE], HTTP
errors, reasoning_content) and answers deterministically from the last user message, so
tests can check what the client sent and what the stack did with the reply.  Knobs:
``delay_s`` per streamed chunk (a slow server), ``fail_next`` (HTTP 500 once), and
``fault`` for the hostile-server cases of issue 8 (see ``FAULTS``); ``headers`` records the
request headers (to check what credentials were sent where).
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


FAULTS = (
    'redirect',       # 302 to ``redirect_to`` (another server: must be refused)
    'redirect_same',  # 302 to this server's /v1/chat/completions2 (same origin: followed)
    'trickle',        # one SSE line, then one byte every ``trickle_s`` (deadline must hit)
    'trickle_headers',  # the status line, then a header byte every ``trickle_s``
    'html',           # 200 text/html body (not SSE, not a completion)
    'empty',          # 200 SSE with only the role delta and [DONE] (no text)
    'empty_json',     # 200 JSON completion with empty content
    'truncated',      # SSE that stops mid-reply (no finish_reason, no [DONE])
    'long_line',      # an SSE line larger than the client's line cap
    'garbage_chunk',  # SSE data that is JSON but not a chunk object
)


def reply_for(user_text):
    return '收到，你说的是：%s。我会马上去办，请稍等！' % user_text.strip('。！？ ')


class ChatServer:
    def __init__(self, delay_s=0.0):
        self.delay_s = delay_s
        self.requests = []
        self.fail_next = False
        self.fault = None
        self.redirect_to = ''
        self.trickle_s = 0.4
        self.headers = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.headers.append(dict(self.headers))
                body = json.dumps({'object': 'list', 'data': [{'id': 'test-model'}]}).encode()
                self._send(200, body, 'application/json')

            def do_POST(self):
                length = int(self.headers.get('Content-Length', 0))
                request = json.loads(self.rfile.read(length))
                server.requests.append(request)
                server.headers.append(dict(self.headers))
                if server.fault and self._fault(server.fault):
                    return
                if server.fail_next:
                    server.fail_next = False
                    self._send(500, b'{"error": "injected failure"}', 'application/json')
                    return
                user = [m for m in request['messages'] if m['role'] == 'user'][-1]['content']
                text = reply_for(user)
                thinking = request.get('chat_template_kwargs', {}).get('enable_thinking')
                reasoning = '用户在说话，我要简短回答。' if thinking else ''
                if request.get('stream'):
                    self._stream(text, reasoning)
                else:
                    message = {'role': 'assistant', 'content': text}
                    if reasoning:
                        message['reasoning_content'] = reasoning
                    body = json.dumps({'id': 'x', 'object': 'chat.completion', 'choices': [
                        {'index': 0, 'message': message, 'finish_reason': 'stop'}]},
                        ensure_ascii=False).encode()
                    self._send(200, body, 'application/json')

            def _fault(self, fault):
                """Act out a hostile server; return False to answer normally."""
                if fault == 'redirect':
                    self._redirect(server.redirect_to + '/chat/completions', 307)
                elif fault == 'redirect_same':
                    if self.path.endswith('/chat/completions2'):
                        return False
                    self._redirect('/v1/chat/completions2', 307)
                elif fault in ('trickle', 'trickle_headers'):
                    self.wfile.write(b'HTTP/1.1 200 OK\r\n')
                    if fault == 'trickle':
                        self.wfile.write(b'Content-Type: text/event-stream\r\n\r\n')
                        self.wfile.write(b'data: %s\n' % json.dumps(
                            {'choices': [{'delta': {'content': '好'}}]}).encode())
                    try:
                        while not server._stop.wait(server.trickle_s):
                            self.wfile.write(b'x' if fault == 'trickle' else b'X')
                            self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                elif fault == 'html':
                    self._send(200, b'<html><body>login required</body></html>', 'text/html')
                elif fault == 'empty_json':
                    body = {'choices': [{'index': 0, 'message': {'role': 'assistant',
                                                                 'content': ''}}]}
                    self._send(200, json.dumps(body).encode(), 'application/json')
                else:
                    lines = {
                        'empty': [{'choices': [{'delta': {'role': 'assistant'}}]}, '[DONE]'],
                        'truncated': [{'choices': [{'delta': {'content': '好的，'}}]}],
                        'long_line': [{'choices': [{'delta': {'content': '长' * 600000}}]}],
                        'garbage_chunk': [[1, 2, 3]],
                    }[fault]
                    body = b''.join(b'data: %s\n\n' % (
                        line if isinstance(line, str) else json.dumps(line)).encode()
                        for line in lines)
                    self._send(200, body, 'text/event-stream')
                return True

            def _redirect(self, location, code):
                self.send_response(code)
                self.send_header('Location', location)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def _send(self, code, body, ctype):
                self.send_response(code)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, text, reasoning):
                self.send_response(200)
                self.send_header('Content-Type', 'text/event-stream')
                self.send_header('Connection', 'close')
                self.end_headers()
                pieces = [{'reasoning_content': c} for c in _chunks(reasoning)]
                pieces += [{'content': c} for c in _chunks(text)]
                try:
                    for delta in [{'role': 'assistant'}] + pieces:
                        chunk = {'id': 'x', 'object': 'chat.completion.chunk',
                                 'choices': [{'index': 0, 'delta': delta}]}
                        self.wfile.write(('data: %s\n\n' % json.dumps(
                            chunk, ensure_ascii=False)).encode())
                        self.wfile.flush()
                        if server.delay_s and server._stop.wait(server.delay_s):
                            return
                    self.wfile.write(b'data: [DONE]\n\n')
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client cancelled
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = 'http://127.0.0.1:%d/v1' % self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _chunks(text, size=3):
    return [text[i:i + size] for i in range(0, len(text), size)]
