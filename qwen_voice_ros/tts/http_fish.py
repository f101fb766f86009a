"""
Fish-Speech / OpenAudio zero-shot cloning over its HTTP API (``POST /v1/tts``).

API followed (fishaudio/fish-speech ``tools/server/views.py`` and ``fish_speech/utils/schema.py``
``ServeTTSRequest``, the 1.5 / OpenAudio-S1 server started by ``tools/api_server.py``): a
``application/msgpack`` (or JSON) body ``{text, chunk_length, format, references: [{audio,
text}], reference_id, seed, use_memory_cache, normalize, streaming, max_new_tokens, top_p,
repetition_penalty, temperature}``; in JSON the reference audio bytes are base64.  The
answer is ``audio/wav`` (streamed: a WAV header with zero data size, then S16LE chunks;
streaming only with ``format: wav``).  ``--api-key`` servers want ``Authorization: Bearer``.

Licence: the released Fish-Speech / OpenAudio-S1-mini weights are CC-BY-NC-SA-4.0 and newer
releases put code and weights under the Fish Audio Research License: **non-commercial use
only**; a product needs a separate licence from Fish Audio.  This client has no such code.
"""
from __future__ import annotations

import base64
import json
import struct
from typing import Any, List, Optional, Tuple

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.tts.base import TTSError, TTSNotConfigured
from qwen_voice_ros.tts.http_clone import (
    common_params, HTTPCloneTTS, PCMDecoder, ReferenceClip)


def packb(obj: Any) -> bytes:
    """Minimal MessagePack encoder (dict, list, str, bytes, int, float, bool, None)."""
    out: List[bytes] = []
    _pack(obj, out)
    return b''.join(out)


def _pack(obj: Any, out: List[bytes]) -> None:
    if obj is None:
        out.append(b'\xc0')
    elif obj is True or obj is False:
        out.append(b'\xc3' if obj else b'\xc2')
    elif isinstance(obj, int):
        if 0 <= obj < 128:
            out.append(struct.pack('B', obj))
        elif -32 <= obj < 0:
            out.append(struct.pack('b', obj))
        elif -2 ** 63 <= obj < 2 ** 63:
            out.append(b'\xd3' + struct.pack('>q', obj))
        else:
            raise ValueError('integer %d too large for msgpack' % obj)
    elif isinstance(obj, float):
        out.append(b'\xcb' + struct.pack('>d', obj))
    elif isinstance(obj, str):
        data = obj.encode('utf-8')
        n = len(data)
        if n < 32:
            out.append(struct.pack('B', 0xa0 | n))
        elif n < 2 ** 8:
            out.append(b'\xd9' + struct.pack('B', n))
        elif n < 2 ** 16:
            out.append(b'\xda' + struct.pack('>H', n))
        else:
            out.append(b'\xdb' + struct.pack('>I', n))
        out.append(data)
    elif isinstance(obj, (bytes, bytearray)):
        n = len(obj)
        if n < 2 ** 8:
            out.append(b'\xc4' + struct.pack('B', n))
        elif n < 2 ** 16:
            out.append(b'\xc5' + struct.pack('>H', n))
        else:
            out.append(b'\xc6' + struct.pack('>I', n))
        out.append(bytes(obj))
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        out.append(struct.pack('B', 0x90 | n) if n < 16 else b'\xdc' + struct.pack('>H', n))
        for item in obj:
            _pack(item, out)
    elif isinstance(obj, dict):
        n = len(obj)
        out.append(struct.pack('B', 0x80 | n) if n < 16 else b'\xde' + struct.pack('>H', n))
        for key, value in obj.items():
            _pack(key, out)
            _pack(value, out)
    else:
        raise TypeError('cannot msgpack %s' % type(obj).__name__)


class FishSpeechTTS(HTTPCloneTTS):
    name = 'fish_speech'
    upload_rate = None   # the server resamples the reference itself
    PARAMS = common_params('http://127.0.0.1:8080', 60.0) + (
        Param('encoding', 'msgpack', 'request body: msgpack (as the reference client) or json',
              choices=('msgpack', 'json')),
        Param('streaming', True, 'stream the WAV (first audio early)'),
        Param('reference_id', '', 'a voice saved on the server (then no reference clip is '
              'uploaded)'),
        Param('chunk_length', 200, 'server-side text chunk length', min=100, max=1000),
        Param('max_new_tokens', 1024, 'longest generation (tokens)', min=1, max=100000),
        Param('top_p', 0.8, 'sampling top p', min=0.1, max=1.0),
        Param('temperature', 0.8, 'sampling temperature', min=0.1, max=1.0),
        Param('repetition_penalty', 1.1, 'repetition penalty', min=0.9, max=2.0),
        Param('seed', -1, 'random seed (-1: none)', min=-1, max=2 ** 31 - 1),
        Param('normalize', True, 'server-side text normalisation (numbers in zh/en)'),
        Param('use_memory_cache', False, 'let the server cache the encoded reference'),
        Param('api_key_env', '', 'environment variable holding the --api-key (empty: none)'),
        Param('api_key_file', '', 'file holding the --api-key (empty: none)'),
    )

    def __init__(self, encoding: str = 'msgpack', streaming: bool = True,
                 reference_id: str = '', chunk_length: int = 200, max_new_tokens: int = 1024,
                 top_p: float = 0.8, temperature: float = 0.8,
                 repetition_penalty: float = 1.1, seed: int = -1, normalize: bool = True,
                 use_memory_cache: bool = False, api_key_env: str = '',
                 api_key_file: str = '', **common):
        super().__init__(**common)
        self.encoding = encoding
        self.streaming = bool(streaming)
        self.reference_id = reference_id
        self.options = {'chunk_length': int(chunk_length), 'max_new_tokens': int(max_new_tokens),
                        'top_p': float(top_p), 'temperature': float(temperature),
                        'repetition_penalty': float(repetition_penalty),
                        'seed': None if int(seed) < 0 else int(seed),
                        'normalize': bool(normalize),
                        'use_memory_cache': 'on' if use_memory_cache else 'off'}
        self.needs_local_clip = not reference_id
        self._key_env, self._key_file = api_key_env, api_key_file
        self._api_key = ''

    def load(self) -> None:
        from qwen_voice_ros.core.http import HTTPError, load_secret
        try:
            self._api_key = load_secret(self._key_env, self._key_file, 'fish_speech api key')
        except HTTPError as exc:
            raise TTSNotConfigured(str(exc)) from None
        super().load()

    def build_request(self, text: str, dialect: Optional[str], clip: Optional[ReferenceClip],
                      language: str) -> Tuple:
        req = dict(self.options, text=text, format='wav', streaming=self.streaming,
                   references=[], reference_id=self.reference_id or None)
        if clip is not None:
            if not clip.text:
                raise TTSError('%s: the reference clip needs its transcript (prompt_text or '
                               'the profile)' % self.name)
            audio = clip.wav_bytes(self.upload_rate)
            if self.encoding == 'json':
                audio = base64.b64encode(audio).decode('ascii')
            req['references'] = [{'audio': audio, 'text': clip.text}]
            req['reference_id'] = None
        elif not self.reference_id:
            raise TTSError('%s: no reference clip and no reference_id' % self.name)
        if self.encoding == 'json':
            body = json.dumps(req, ensure_ascii=False).encode('utf-8')
            ctype = 'application/json'
        else:
            body, ctype = packb(req), 'application/msgpack'
        headers = {'Content-Type': ctype, 'Accept': 'audio/wav'}
        if self._api_key:
            headers['Authorization'] = 'Bearer ' + self._api_key
        return 'POST', self.base_url + '/v1/tts', body, headers, PCMDecoder(wav=True)
