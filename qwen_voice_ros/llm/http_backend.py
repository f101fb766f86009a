"""
OpenAI-compatible chat-completions client (vLLM, SGLang, llama.cpp server, ...).

Standard library only (urllib), streamed with server-sent events or whole.  Qwen3's
thinking switch is passed as ``chat_template_kwargs.enable_thinking`` (vLLM, SGLang and
llama.cpp server read it).  Reasoning that a server returns separately
(``reasoning_content``) is re-wrapped in ``<think>`` tags, so callers treat every backend
alike.  Cancellation is checked between network reads; the deadline covers the whole reply.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Iterator, List, Optional

from qwen_voice_ros.llm.base import (ChatBackend, GenerationOptions, LLMError, LLMNotConfigured,
                                     Message)


class OpenAIHTTPBackend(ChatBackend):
    name = 'openai_http'

    def __init__(self, base_url: str = 'http://127.0.0.1:8000/v1', model: str = '',
                 api_key: str = '', stream: bool = True, connect_timeout_s: float = 5.0,
                 check_on_load: bool = False):
        if not base_url:
            raise LLMNotConfigured('openai_http backend needs base_url '
                                   '(e.g. http://127.0.0.1:8000/v1)')
        self.base_url = base_url.rstrip('/')
        self.model = model
        self.api_key = api_key
        self.stream = stream
        self.connect_timeout_s = connect_timeout_s
        self.check_on_load = check_on_load

    def load(self) -> None:
        if self.check_on_load:
            try:
                self._request('GET', '/models', None, self.connect_timeout_s).close()
            except LLMError as exc:
                raise LLMNotConfigured('LLM server check failed: %s' % exc) from None

    def _request(self, method: str, path: str, body: Optional[dict], timeout: float):
        headers = {'Content-Type': 'application/json'}
        if self.api_key:
            headers['Authorization'] = 'Bearer ' + self.api_key
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                     method=method)
        try:
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors='replace')
            raise LLMError('HTTP %d from %s%s: %s' % (exc.code, self.base_url, path, detail)) \
                from None
        except (socket.timeout, TimeoutError):
            raise LLMError('LLM server %s timed out after %.1f s' % (self.base_url, timeout)) \
                from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, 'reason', exc)
            raise LLMError('LLM server %s unreachable: %s' % (self.base_url, reason)) from None

    def _payload(self, messages: List[Message], options: GenerationOptions) -> dict:
        body = {
            'messages': messages,
            'stream': self.stream,
            'max_tokens': options.max_new_tokens,
            'temperature': options.temperature,
            'top_p': options.top_p,
            'chat_template_kwargs': {'enable_thinking': options.enable_thinking},
        }
        if self.model:
            body['model'] = self.model
        if options.top_k > 0:
            body['top_k'] = options.top_k
        if options.min_p > 0:
            body['min_p'] = options.min_p
        if options.repetition_penalty != 1.0:
            body['repetition_penalty'] = options.repetition_penalty
        if options.seed is not None:
            body['seed'] = options.seed
        return body

    def stream_chat(self, messages: List[Message], options: GenerationOptions,
                    cancel: Optional[threading.Event] = None) -> Iterator[str]:
        deadline = time.monotonic() + options.timeout_s
        # Each socket read may block at most until the deadline.
        read_timeout = max(0.05, min(options.timeout_s, 10.0))
        resp = self._request('POST', '/chat/completions', self._payload(messages, options),
                             read_timeout)
        try:
            if self.stream:
                for delta in self._read_sse(resp, deadline, cancel):
                    yield delta
            else:
                try:
                    body = json.loads(resp.read().decode())
                except (socket.timeout, TimeoutError):
                    raise LLMError('LLM server timed out mid-reply') from None
                except ValueError as exc:
                    raise LLMError('LLM server sent invalid JSON: %s' % exc) from None
                for delta in _deltas_from_message(_first_choice(body).get('message', {})):
                    yield delta
        finally:
            resp.close()

    def _read_sse(self, resp, deadline: float, cancel: Optional[threading.Event]):
        in_reasoning = False
        while True:
            if cancel is not None and cancel.is_set():
                return
            if time.monotonic() > deadline:
                raise LLMError('LLM reply exceeded its deadline (timeout_s)')
            try:
                line = resp.readline()
            except (socket.timeout, TimeoutError):
                raise LLMError('LLM server stalled mid-stream (read timed out)') from None
            if not line:
                break  # connection closed
            line = line.decode('utf-8', errors='replace').strip()
            if not line.startswith('data:'):
                continue
            data = line[5:].strip()
            if data == '[DONE]':
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise LLMError('LLM server sent a bad SSE chunk: %r' % data[:200]) from None
            if 'error' in chunk:
                raise LLMError('LLM server error: %s' % chunk['error'])
            delta = _first_choice(chunk).get('delta', {})
            reasoning = delta.get('reasoning_content') or delta.get('reasoning')
            if reasoning:
                if not in_reasoning:
                    in_reasoning = True
                    yield '<think>'
                yield reasoning
            content = delta.get('content')
            if content:
                if in_reasoning:
                    in_reasoning = False
                    yield '</think>'
                yield content
        if in_reasoning:
            yield '</think>'


def _first_choice(body: dict) -> dict:
    choices = body.get('choices') or []
    if not choices:
        if 'error' in body:
            raise LLMError('LLM server error: %s' % body['error'])
        return {}
    return choices[0]


def _deltas_from_message(message: dict) -> Iterator[str]:
    reasoning = message.get('reasoning_content') or message.get('reasoning')
    if reasoning:
        yield '<think>' + reasoning + '</think>'
    if message.get('content'):
        yield message['content']
