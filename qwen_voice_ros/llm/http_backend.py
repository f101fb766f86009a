"""
OpenAI-compatible chat-completions client (vLLM, SGLang, llama.cpp server, ...).

Standard library only (:mod:`qwen_voice_ros.core.http`), streamed with server-sent events or
whole.  Qwen3's thinking switch is passed as ``chat_template_kwargs.enable_thinking`` (vLLM,
SGLang and llama.cpp server read it).  Reasoning that a server returns separately
(``reasoning_content``) is re-wrapped in ``<think>`` tags, so callers treat every backend
alike.

Safety (issue 8): ``timeout_s`` is one deadline for the whole request, enforced on every
read (a server trickling a byte every few seconds hits it); a redirect to another host is
refused, so the ``Authorization`` header never leaves the configured server; a 200 whose
body is not an SSE stream (or not a chat completion), or a reply with no text, is an
error; the api key comes from an environment variable or a file, never a ROS parameter.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Iterator, List, Optional

from qwen_voice_ros.core import http
from qwen_voice_ros.core.params import Param
from qwen_voice_ros.llm.base import (ChatBackend, GenerationOptions, LLMError, LLMNotConfigured,
                                     Message)

MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class OpenAIHTTPBackend(ChatBackend):
    name = 'openai_http'

    PARAMS = (
        Param('base_url', 'http://127.0.0.1:8000/v1',
              'OpenAI-compatible server (vLLM, SGLang, llama.cpp server), ending in /v1'),
        Param('model', '', 'model name sent in the request ("" = server default)'),
        Param('api_key_env', '', 'environment variable holding the api key ("" = none)'),
        Param('api_key_file', '', 'file holding the api key, used if api_key_env is ""'),
        Param('stream', True, 'stream the reply with server-sent events'),
        Param('connect_timeout_s', 5.0, 'TCP connect timeout (seconds)', min=0.1, max=120.0),
        Param('check_on_load', False, 'GET /models at configure; fail configure if it fails'),
    )

    def __init__(self, base_url: str = 'http://127.0.0.1:8000/v1', model: str = '',
                 api_key_env: str = '', api_key_file: str = '', stream: bool = True,
                 connect_timeout_s: float = 5.0, check_on_load: bool = False,
                 api_key: str = ''):
        if not base_url:
            raise LLMNotConfigured('openai_http backend needs base_url '
                                   '(e.g. http://127.0.0.1:8000/v1)')
        try:
            http.origin(base_url)
        except http.HTTPError as exc:
            raise LLMNotConfigured('openai_http base_url: %s' % exc) from None
        self.base_url = base_url.rstrip('/')
        self.model = model
        self.api_key_env = api_key_env
        self.api_key_file = api_key_file
        self.stream = stream
        self.connect_timeout_s = connect_timeout_s
        self.check_on_load = check_on_load
        self._api_key: Optional[str] = api_key or None  # programmatic use (tests, tools)

    def _key(self) -> str:
        if self._api_key is None:
            try:
                self._api_key = http.load_secret(self.api_key_env, self.api_key_file)
            except http.HTTPError as exc:
                raise LLMNotConfigured(str(exc)) from None
        return self._api_key

    def load(self) -> None:
        self._key()
        if self.check_on_load:
            try:
                self._request('GET', '/models', None, self.connect_timeout_s, None).close()
            except LLMError as exc:
                raise LLMNotConfigured('LLM server check failed: %s' % exc) from None

    def _request(self, method: str, path: str, body: Optional[dict], timeout_s: float,
                 cancel: Optional[threading.Event]) -> http.Response:
        headers = {'Content-Type': 'application/json', 'Accept': 'text/event-stream'
                   if body is not None and body.get('stream') else 'application/json'}
        key = self._key()
        if key:
            headers['Authorization'] = 'Bearer ' + key
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        try:
            return http.request(method, self.base_url + path, body=data, headers=headers,
                                timeout_s=timeout_s, connect_timeout_s=self.connect_timeout_s,
                                cancel=cancel, max_bytes=MAX_RESPONSE_BYTES)
        except http.HTTPCancelled:
            raise
        except http.HTTPTimeout:
            raise LLMError('LLM server %s timed out after %.1f s (timeout_s)'
                           % (self.base_url, timeout_s)) from None
        except http.HTTPError as exc:
            raise LLMError('LLM server %s: %s' % (self.base_url, exc)) from None

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
        try:
            resp = self._request('POST', '/chat/completions', self._payload(messages, options),
                                 options.timeout_s, cancel)
        except http.HTTPCancelled:
            return
        spoken = [False]
        try:
            if resp.content_type == 'application/json' or not self.stream:
                deltas = self._read_whole(resp)
            elif resp.content_type == 'text/event-stream':
                deltas = self._read_sse(resp)
            else:
                raise LLMError('LLM server sent %r, not an SSE stream or a chat completion'
                               % (resp.content_type or 'no content type'))
            for delta in deltas:
                if cancel is not None and cancel.is_set():
                    return
                if delta and not delta.startswith('<think>') and delta != '</think>':
                    spoken[0] = True
                yield delta
            if not spoken[0]:
                raise LLMError('LLM server returned an empty reply')
        except http.HTTPCancelled:
            return
        except http.HTTPTimeout:
            raise LLMError('LLM reply exceeded its deadline (timeout_s %.1f s)'
                           % options.timeout_s) from None
        except http.HTTPError as exc:
            raise LLMError('LLM server %s: %s' % (self.base_url, exc)) from None
        finally:
            resp.close()

    def _read_whole(self, resp: http.Response) -> Iterator[str]:
        raw = resp.read()
        try:
            body = json.loads(raw.decode('utf-8'))
        except ValueError as exc:
            raise LLMError('LLM server sent invalid JSON: %s' % exc) from None
        if not isinstance(body, dict):
            raise LLMError('LLM server sent JSON that is not a chat completion')
        message = _first_choice(body).get('message', {})
        if not isinstance(message, dict):
            raise LLMError('LLM server sent a malformed message: %r' % (message,))
        for delta in _deltas_from_message(message):
            yield delta

    def _read_sse(self, resp: http.Response) -> Iterator[str]:
        in_reasoning = False
        done = finished = saw_data = False
        for raw in resp.iter_lines():
            line = raw.decode('utf-8', errors='replace').strip()
            if not line.startswith('data:'):
                continue
            saw_data = True
            data = line[5:].strip()
            if data == '[DONE]':
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise LLMError('LLM server sent a bad SSE chunk: %r' % data[:200]) from None
            if not isinstance(chunk, dict):
                raise LLMError('LLM server sent a bad SSE chunk: %r' % data[:200])
            if 'error' in chunk:
                raise LLMError('LLM server error: %s' % str(chunk['error'])[:500])
            choice = _first_choice(chunk)
            if choice.get('finish_reason'):
                finished = True
            delta = choice.get('delta', {})
            if not isinstance(delta, dict):
                raise LLMError('LLM server sent a bad SSE delta: %r' % data[:200])
            reasoning = _text(delta.get('reasoning_content') or delta.get('reasoning'))
            if reasoning:
                if not in_reasoning:
                    in_reasoning = True
                    yield '<think>'
                yield reasoning
            content = _text(delta.get('content'))
            if content:
                if in_reasoning:
                    in_reasoning = False
                    yield '</think>'
                yield content
        if in_reasoning:
            yield '</think>'
        if not saw_data:
            raise LLMError('LLM server sent an event stream with no data lines')
        if not (done or finished):
            raise LLMError('LLM server closed the stream before the reply ended')


def _text(value: Any) -> str:
    if value is None:
        return ''
    if not isinstance(value, str):
        raise LLMError('LLM server sent non-text content: %r' % (value,))
    return value


def _first_choice(body: dict) -> dict:
    choices = body.get('choices') or []
    if not isinstance(choices, list):
        raise LLMError('LLM server sent malformed choices: %r' % (choices,))
    if not choices:
        if 'error' in body:
            raise LLMError('LLM server error: %s' % str(body['error'])[:500])
        return {}
    if not isinstance(choices[0], dict):
        raise LLMError('LLM server sent a malformed choice: %r' % (choices[0],))
    return choices[0]


def _deltas_from_message(message: dict) -> Iterator[str]:
    reasoning = _text(message.get('reasoning_content') or message.get('reasoning'))
    if reasoning:
        yield '<think>' + reasoning + '</think>'
    content = _text(message.get('content'))
    if content:
        yield content
