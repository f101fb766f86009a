"""
Local servers that speak the documented HTTP APIs of three zero-shot cloning servers, for tests.

- :class:`CosyVoiceServer`: FunAudioLLM/CosyVoice ``runtime/python/fastapi/server.py``
  (``/inference_zero_shot``, ``/inference_cross_lingual``, ``/inference_instruct2``,
  ``/inference_sft``, ``/inference_instruct``; GET and POST; multipart form fields validated
  like FastAPI: a missing field is 422 ``{"detail": [{"type": "missing", "loc": ["body",
  name], ...}]}``; a prompt below 16 kHz is the server's failed assertion, a plain 500;
  answer: a stream of raw S16LE at 24 kHz, no content type).
- :class:`GPTSoVITSServer`: RVC-Boss/GPT-SoVITS ``api_v2.py`` (``GET``/``POST /tts``;
  ``check_params``'s 400 messages; a reference outside 3-10 s is ``{"message": "tts
  failed", "Exception": ...}``; WAV at 32 kHz, streamed as a zero-size WAV header + PCM).
- :class:`FishServer`: fishaudio/fish-speech ``/v1/tts`` (msgpack or JSON per
  ``ServeTTSRequest``: strict types and ranges, 422 on a bad field, 415 on another content
  type, 400 for streaming a non-WAV format, 401 without the api key; WAV at 44.1 kHz).

The "voice" is a tone at the pitch of the uploaded reference, so a test can check that the
reference arrived intact and that the client decoded the audio at the right rate.
``fault`` makes a server misbehave (see ``FAULTS``); ``chunk_delay_s`` spaces streamed
chunks (first audio must come before the end); ``requests`` records what was sent.
"""
import base64
import email.parser
import io
import json
import os
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

FAULTS = (
    'hang',        # read the request, never answer (the deadline must hit)
    'trickle',     # 200 + headers, then one byte every ``trickle_s``
    'status500',   # uvicorn's plain "Internal Server Error"
    'json_error',  # the server's own JSON error (status per API)
    'json_200',    # 200 application/json (an error dressed as success)
    'html',        # 200 text/html (a proxy's page)
    'not_audio',   # 200 with no/octet-stream content type and an HTML body
    'empty',       # 200 with an empty body
    'silence',     # 200 with audio that is all zeros
    'redirect',    # 307 to ``redirect_to`` (another origin: must be refused)
    'cut_header',  # 200 with half a WAV header, then the end
)


def tone(freq, seconds, rate, amp=0.3):
    t = np.arange(int(seconds * rate)) / float(rate)
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pitch_hz(audio, rate):
    """Frequency of a (near) pure tone from its zero crossings."""
    signs = np.signbit(audio)
    crossings = np.count_nonzero(signs[1:] != signs[:-1])
    return crossings * rate / (2.0 * max(1, len(audio)))


def read_wav_bytes(data):
    with wave.open(io.BytesIO(data), 'rb') as wav:
        rate, width, ch = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError('only 16-bit test clips')
    audio = np.frombuffer(frames, dtype='<i2').astype(np.float32) / 32768.0
    if ch > 1:
        audio = audio.reshape(-1, ch).mean(axis=1)
    return audio, rate


def wav_bytes(audio, rate, streamed=False):
    """Return a WAV file, or (``streamed``) the nframes-0 header api_v2/fish send first."""
    buf = io.BytesIO()
    with wave.open(buf, 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        if not streamed:
            wav.writeframes(pcm16(audio))
    return buf.getvalue()


def pcm16(audio):
    return (np.clip(audio, -1, 1) * 32767).astype('<i2').tobytes()


class HTTPFail(Exception):
    def __init__(self, status, body, ctype='application/json', headers=None):
        super().__init__(status)
        self.status, self.body, self.ctype = status, body, ctype
        self.headers = headers or {}


def json_fail(status, doc, headers=None):
    return HTTPFail(status, json.dumps(doc, ensure_ascii=False).encode('utf-8'),
                    headers=headers)


class CloneServer:
    """Base: a threaded HTTP/1.1 server with faults; subclasses implement ``answer``."""

    rate = 24000
    seconds_per_char = 0.12

    def __init__(self):
        self.requests = []
        self.fault = None
        self.redirect_to = ''
        self.trickle_s = 0.3
        self.chunk_delay_s = 0.0
        self.chunks = 4
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._handle('GET')

            def do_POST(self):
                self._handle('POST')

            def _handle(self, method):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                try:
                    result = server.dispatch(self, method, self.path, self.headers, body)
                except HTTPFail as fail:
                    self._send(fail.status, fail.body, fail.ctype, fail.headers)
                    return
                if result is None:
                    return
                ctype, header, blocks = result
                self._stream(ctype, header, blocks)

            def _send(self, status, body, ctype, headers=None):
                self.send_response(status)
                if ctype:
                    self.send_header('Content-Type', ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, ctype, header, blocks):
                self.send_response(200)
                if ctype:
                    self.send_header('Content-Type', ctype)
                self.send_header('Transfer-Encoding', 'chunked')
                self.end_headers()
                pieces = ([header] if header else []) + list(blocks)
                # api_v2 sends its WAV header together with the first audio chunk; fish-speech
                # sends the header before generating; CosyVoice has no header.
                first_wait = 2 if header and server.header_with_first_chunk else 1
                for i, piece in enumerate(pieces):
                    if i >= first_wait and server.chunk_delay_s:
                        time.sleep(server.chunk_delay_s)
                    if piece:
                        self.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece))
                        self.wfile.flush()
                self.wfile.write(b'0\r\n\r\n')

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- shared -------------------------------------------------------------------------
    def dispatch(self, handler, method, path, headers, body):
        fault = self.fault
        if fault == 'hang':
            self._stop.wait(30)
            return None
        if fault == 'redirect':
            raise HTTPFail(307, b'', '', {'Location': self.redirect_to + path})
        if fault == 'status500':
            raise HTTPFail(500, b'Internal Server Error', 'text/plain; charset=utf-8')
        if fault == 'json_200':
            raise HTTPFail(200, b'{"error": "model not loaded"}', 'application/json')
        if fault == 'html':
            raise HTTPFail(200, b'<html><body>502 Bad Gateway</body></html>', 'text/html')
        if fault == 'not_audio':
            raise HTTPFail(200, b'<html><body>502 Bad Gateway</body></html>',
                           'application/octet-stream' if self.wav_out else '')
        if fault == 'empty':
            raise HTTPFail(200, b'', self.audio_ctype)
        if fault == 'trickle':
            handler.send_response(200)
            handler.send_header('Content-Type', self.audio_ctype)
            handler.send_header('Connection', 'close')
            handler.end_headers()
            handler.wfile.write(wav_bytes(None, self.rate, streamed=True) if self.wav_out
                                else b'')
            while not self._stop.wait(self.trickle_s):
                try:
                    handler.wfile.write(b'\x01')
                    handler.wfile.flush()
                except OSError:
                    break
            return None
        result = self.answer(method, path, headers, body)  # validation first, like the API
        if fault == 'json_error':
            raise self.json_error()
        if fault == 'cut_header':
            raise HTTPFail(200, wav_bytes(None, self.rate, streamed=True)[:20], 'audio/wav')
        if fault == 'silence':
            ctype, header, blocks = result
            return ctype, header, [b'\x00' * len(b) for b in blocks]
        return result

    wav_out = False
    audio_ctype = ''
    header_with_first_chunk = False

    def voice(self, text, ref_audio, ref_rate):
        """Return the cloned "speech": a tone at the reference's pitch, length by the text."""
        freq = pitch_hz(ref_audio, ref_rate) if ref_audio is not None else 220.0
        return tone(freq, max(0.3, self.seconds_per_char * len(text)), self.rate)

    def blocks(self, audio):
        return [pcm16(part) for part in np.array_split(audio, self.chunks) if len(part)]


def _form(headers, body):
    """Parse multipart/form-data like python-multipart: {name: str or (filename, bytes)}."""
    ctype = headers.get('Content-Type', '')
    if not ctype.startswith('multipart/form-data'):
        return {}
    msg = email.parser.BytesParser().parsebytes(
        b'Content-Type: ' + ctype.encode('latin-1') + b'\r\n\r\n' + body)
    if not msg.is_multipart():
        return {}
    form = {}
    for part in msg.get_payload():
        name = part.get_param('name', header='content-disposition')
        data = part.get_payload(decode=True) or b''
        filename = part.get_filename()
        form[name] = (filename, data) if filename is not None else data.decode('utf-8')
    return form


class CosyVoiceServer(CloneServer):
    """CosyVoice's FastAPI server (CosyVoice2-0.5B: 24 kHz raw S16LE)."""

    rate = 24000
    ROUTES = {
        '/inference_sft': ('tts_text', 'spk_id'),
        '/inference_zero_shot': ('tts_text', 'prompt_text', 'prompt_wav'),
        '/inference_cross_lingual': ('tts_text', 'prompt_wav'),
        '/inference_instruct': ('tts_text', 'spk_id', 'instruct_text'),
        '/inference_instruct2': ('tts_text', 'instruct_text', 'prompt_wav'),
    }

    def __init__(self, methods=('GET', 'POST')):
        self.methods = methods
        super().__init__()

    def json_error(self):
        return json_fail(422, {'detail': [{'type': 'missing', 'loc': ['body', 'tts_text'],
                                           'msg': 'Field required', 'input': None}]})

    def answer(self, method, path, headers, body):
        fields = self.ROUTES.get(path)
        if fields is None:
            raise json_fail(404, {'detail': 'Not Found'})
        if method not in self.methods:
            raise json_fail(405, {'detail': 'Method Not Allowed'})
        form = _form(headers, body)
        missing = [{'type': 'missing', 'loc': ['body', f], 'msg': 'Field required',
                    'input': None} for f in fields if f not in form]
        if missing:
            raise json_fail(422, {'detail': missing})
        if 'prompt_wav' in fields and not isinstance(form['prompt_wav'], tuple):
            raise json_fail(422, {'detail': [{'type': 'value_error', 'loc': ['body',
                                                                             'prompt_wav'],
                                              'msg': 'Expected UploadFile, received: str'}]})
        ref, ref_rate = None, 0
        if 'prompt_wav' in fields:
            try:
                ref, ref_rate = read_wav_bytes(form['prompt_wav'][1])
            except Exception:  # noqa: B902 - torchaudio.load fails: uvicorn answers 500
                raise HTTPFail(500, b'Internal Server Error', 'text/plain; charset=utf-8')
            if ref_rate < 16000:  # load_wav: assert sample_rate >= target_sr
                raise HTTPFail(500, b'Internal Server Error', 'text/plain; charset=utf-8')
        self.requests.append({'path': path, 'method': method,
                              'form': {k: v for k, v in form.items() if k != 'prompt_wav'},
                              'ref_rate': ref_rate,
                              'ref_seconds': len(ref) / float(ref_rate) if ref_rate else 0})
        text = form['tts_text'].split('<|endofprompt|>')[-1]
        return '', b'', self.blocks(self.voice(text, ref, ref_rate))


GPT_SOVITS_LANGS = ('auto', 'auto_yue', 'en', 'zh', 'ja', 'yue', 'ko', 'all_zh', 'all_ja',
                    'all_yue', 'all_ko')
GPT_SOVITS_FIELDS = {
    'text': str, 'text_lang': str, 'ref_audio_path': str, 'aux_ref_audio_paths': list,
    'prompt_lang': str, 'prompt_text': str, 'top_k': int, 'top_p': float,
    'temperature': float, 'text_split_method': str, 'batch_size': int,
    'batch_threshold': float, 'split_bucket': bool, 'speed_factor': float,
    'fragment_interval': float, 'seed': int, 'media_type': str, 'streaming_mode': (bool, int),
    'parallel_infer': bool, 'repetition_penalty': float, 'sample_steps': int,
    'super_sampling': bool, 'overlap_length': int, 'min_chunk_length': int,
}


class GPTSoVITSServer(CloneServer):
    """GPT-SoVITS api_v2.py (v2 weights: 32 kHz)."""

    rate = 32000
    wav_out = True
    audio_ctype = 'audio/wav'
    header_with_first_chunk = True

    def json_error(self):
        return json_fail(400, {'message': 'tts failed', 'Exception': 'CUDA out of memory'})

    def answer(self, method, path, headers, body):
        if path.split('?')[0] != '/tts':
            raise json_fail(404, {'detail': 'Not Found'})
        if method != 'POST':
            raise json_fail(405, {'detail': 'Method Not Allowed'})
        try:
            req = json.loads(body)
        except ValueError:
            raise json_fail(422, {'detail': [{'type': 'json_invalid', 'loc': ['body', 0],
                                              'msg': 'JSON decode error'}]})
        if not isinstance(req, dict):
            raise json_fail(422, {'detail': [{'type': 'model_attributes_type',
                                              'loc': ['body'], 'msg': 'Input should be a '
                                              'valid dictionary'}]})
        for key, value in req.items():
            kind = GPT_SOVITS_FIELDS.get(key)
            if kind is None or value is None:
                continue
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
            if not ok or (kind is int and isinstance(value, bool)):
                raise json_fail(422, {'detail': [{'type': 'type_error', 'loc': ['body', key],
                                                  'msg': 'bad type'}]})
        # check_params, in its order and words
        if req.get('ref_audio_path') in (None, ''):
            raise json_fail(400, {'message': 'ref_audio_path is required'})
        if req.get('text') in (None, ''):
            raise json_fail(400, {'message': 'text is required'})
        if req.get('text_lang') in (None, ''):
            raise json_fail(400, {'message': 'text_lang is required'})
        if req['text_lang'].lower() not in GPT_SOVITS_LANGS:
            raise json_fail(400, {'message': 'text_lang: %s is not supported in version v2'
                                  % req['text_lang']})
        if req.get('prompt_lang') in (None, ''):
            raise json_fail(400, {'message': 'prompt_lang is required'})
        if req['prompt_lang'].lower() not in GPT_SOVITS_LANGS:
            raise json_fail(400, {'message': 'prompt_lang: %s is not supported in version v2'
                                  % req['prompt_lang']})
        media = req.get('media_type', 'wav')
        if media not in ('wav', 'raw', 'ogg', 'aac'):
            raise json_fail(400, {'message': 'media_type: %s is not supported' % media})
        if req.get('text_split_method', 'cut5') not in ('cut0', 'cut1', 'cut2', 'cut3',
                                                        'cut4', 'cut5'):
            raise json_fail(400, {'message': 'text_split_method:%s is not supported'
                                  % req['text_split_method']})
        mode = req.get('streaming_mode', False)
        if mode not in (0, 1, 2, 3):  # True == 1, False == 0
            raise json_fail(400, {'message': 'the value of streaming_mode must be 0, 1, 2, '
                                  '3(int) or true/false(bool)'})
        path_ = req['ref_audio_path']
        try:
            with open(path_, 'rb') as fh:
                ref, ref_rate = read_wav_bytes(fh.read())
        except (OSError, ValueError, EOFError) as exc:
            raise json_fail(400, {'message': 'tts failed', 'Exception': str(exc)})
        seconds = len(ref) / float(ref_rate)
        if not 3.0 <= seconds <= 10.0:
            raise json_fail(400, {'message': 'tts failed',
                                  'Exception': '参考音频在3~10秒范围外，请更换！'})
        self.requests.append(dict(req))
        audio = self.voice(req['text'], ref, ref_rate)
        if mode in (0, False):
            data = wav_bytes(audio, self.rate) if media == 'wav' else pcm16(audio)
            raise HTTPFail(200, data, 'audio/%s' % media)
        header = wav_bytes(None, self.rate, streamed=True) if media == 'wav' else b''
        return 'audio/%s' % media, header, self.blocks(audio)


class FishServer(CloneServer):
    """fish-speech tools/api_server.py /v1/tts (OpenAudio S1-mini codec: 44.1 kHz)."""

    rate = 44100
    wav_out = True
    audio_ctype = 'audio/wav'

    def __init__(self, api_key=None):
        self.api_key = api_key
        super().__init__()

    def json_error(self):
        return HTTPFail(500, json.dumps({'statusCode': 500, 'message':
                                         'No audio generated, please check the input text.'}
                                        ).encode(), 'application/json')

    def answer(self, method, path, headers, body):
        if path != '/v1/tts':
            raise json_fail(404, {'statusCode': 404, 'message': 'Not Found'})
        if method != 'POST':
            raise json_fail(405, {'statusCode': 405, 'message': 'Method Not Allowed'})
        if self.api_key and headers.get('Authorization') != 'Bearer ' + self.api_key:
            raise json_fail(401, {'statusCode': 401, 'message': 'Invalid token'})
        ctype = headers.get('Content-Type', '').split(';')[0].strip()
        if ctype == 'application/msgpack':
            import msgpack
            req = msgpack.unpackb(body, raw=False)
        elif ctype == 'application/json':
            req = json.loads(body)
        else:
            accept = 'application/msgpack, application/json, multipart/form-data'
            raise HTTPFail(415, b'', '', {'Accept': accept})
        errors = self._validate(req, ctype)
        if errors:
            raise json_fail(422, [{'loc': ['body', k], 'msg': m, 'type': 'value_error'}
                                  for k, m in errors])
        if req.get('streaming') and req.get('format', 'wav') != 'wav':
            raise json_fail(400, {'statusCode': 400,
                                  'message': 'Streaming only supports WAV format'})
        refs = req.get('references', [])
        ref, ref_rate = None, 0
        if refs:
            ref, ref_rate = read_wav_bytes(refs[0]['audio'])
        elif not req.get('reference_id'):
            ref = None
        self.requests.append({'ctype': ctype, 'req': {k: v for k, v in req.items()
                                                      if k != 'references'},
                              'ref_texts': [r['text'] for r in refs], 'ref_rate': ref_rate,
                              'auth': headers.get('Authorization')})
        audio = self.voice(req['text'], ref, ref_rate)
        if not req.get('streaming'):
            raise HTTPFail(200, wav_bytes(audio, self.rate), 'audio/wav')
        return 'audio/wav', wav_bytes(None, self.rate, streamed=True), self.blocks(audio)

    @staticmethod
    def _validate(req, ctype):
        """Check ServeTTSRequest's fields with strict types and ranges (as pydantic does)."""
        if not isinstance(req, dict):
            return [('', 'not an object')]
        errors = []

        def check(name, kinds, lo=None, hi=None, choices=None, required=False):
            if name not in req:
                if required:
                    errors.append((name, 'Field required'))
                return
            value = req[name]
            if not isinstance(value, kinds) or (isinstance(value, bool)
                                                and bool not in kinds):
                errors.append((name, 'bad type %s' % type(value).__name__))
            elif lo is not None and not lo <= value <= hi:
                errors.append((name, 'out of range'))
            elif choices is not None and value not in choices:
                errors.append((name, 'not one of %s' % (choices,)))

        check('text', (str,), required=True)
        check('chunk_length', (int,), 100, 1000)
        check('format', (str,), choices=('wav', 'pcm', 'mp3', 'opus'))
        check('latency', (str,), choices=('normal', 'balanced'))
        check('references', (list,))
        check('reference_id', (str, type(None)))
        check('seed', (int, type(None)))
        check('use_memory_cache', (str,), choices=('on', 'off'))
        check('normalize', (bool,))
        check('streaming', (bool,))
        check('max_new_tokens', (int,))
        check('top_p', (float,), 0.1, 1.0)
        check('repetition_penalty', (float,), 0.9, 2.0)
        check('temperature', (float,), 0.1, 1.0)
        for i, ref in enumerate(req.get('references') or []):
            if not isinstance(ref, dict) or set(ref) != {'audio', 'text'}:
                errors.append(('references.%d' % i, 'needs exactly audio and text'))
                continue
            audio = ref['audio']
            if isinstance(audio, str) and ctype == 'application/json' and len(audio) > 255:
                try:
                    audio = base64.b64decode(audio)
                except ValueError:
                    pass
            if not isinstance(audio, bytes) or audio[:4] != b'RIFF':
                errors.append(('references.%d.audio' % i, 'not audio bytes'))
            ref['audio'] = audio
            if not isinstance(ref['text'], str):
                errors.append(('references.%d.text' % i, 'not a string'))
        return errors


def write_tone_wav(path, freq=200.0, seconds=4.0, rate=16000, amp=0.3):
    """Write a reference clip for tests: a tone (or silence with amp=0) as a WAV file."""
    audio = tone(freq, seconds, rate, amp)
    with wave.open(str(path), 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16(audio))
    return os.fspath(path)
