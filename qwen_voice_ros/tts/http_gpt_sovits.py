"""
GPT-SoVITS zero-shot cloning over its ``api_v2.py`` server (``POST /tts``, JSON).

API followed (RVC-Boss/GPT-SoVITS ``api_v2.py``, the v2/v3/v4 branch whose ``streaming_mode``
takes 0-3 or a bool): the body is ``{text, text_lang, ref_audio_path, prompt_text,
prompt_lang, text_split_method, batch_size, speed_factor, seed, media_type,
streaming_mode, ...}``.  ``ref_audio_path`` is a path **on the server** (3-10 s of speech, the
server refuses other lengths); success is ``audio/wav`` (streamed: a WAV header with a zero
data size, then raw S16LE chunks), failure is HTTP 400 with ``{"message": ..., "Exception":
...}``.  Languages include ``zh``, ``en``, ``ja``, ``ko`` and ``yue`` (Cantonese, v2+), so a
Cantonese turn is sent with ``text_lang: yue`` and, if configured, a Cantonese reference.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Tuple

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.tts.base import TTSError, TTSNotConfigured
from qwen_voice_ros.tts.http_clone import (
    common_params, HTTPCloneTTS, PCMDecoder, ReferenceClip)

LANGS = ('zh', 'all_zh', 'yue', 'all_yue', 'en', 'ja', 'all_ja', 'ko', 'all_ko', 'auto',
         'auto_yue')


class GPTSoVITSTTS(HTTPCloneTTS):
    name = 'gpt_sovits'
    default_dialects = ('mandarin', 'cantonese')
    PARAMS = tuple(p._replace(default=3.0) if p.name == 'min_ref_s' else p
                   for p in common_params('http://127.0.0.1:9880', 30.0, max_ref_s=10.0)) + (
        Param('server_ref_audio_path', '', 'the reference clip as the server sees it (empty: '
              'ref_audio_path, i.e. the server runs on this machine)'),
        Param('text_lang', 'zh', 'language of the text to speak', choices=LANGS),
        Param('prompt_lang', 'zh', 'language of the reference transcript', choices=LANGS),
        Param('cantonese_text_lang', 'yue', 'text_lang for Cantonese turns', choices=LANGS),
        Param('cantonese_ref_audio_path', '', 'reference clip for Cantonese turns (empty: the '
              'main clip); sent as prompt_lang yue'),
        Param('cantonese_prompt_text', '', 'transcript of the Cantonese reference clip'),
        Param('text_split_method', 'cut5', 'server-side text splitting (cut0-cut5)',
              choices=('cut0', 'cut1', 'cut2', 'cut3', 'cut4', 'cut5')),
        Param('speed_factor', 1.0, 'speaking speed', min=0.5, max=2.0),
        Param('top_k', 15, 'sampling top k', min=1, max=100),
        Param('top_p', 1.0, 'sampling top p', min=0.01, max=1.0),
        Param('temperature', 1.0, 'sampling temperature', min=0.01, max=2.0),
        Param('seed', -1, 'random seed (-1: random)', min=-1, max=2 ** 31 - 1),
        Param('streaming_mode', 1, '0: whole WAV; 1: fragments (true in older servers); 2/3: '
              'token streaming (newer servers)', min=0, max=3),
    )

    def __init__(self, server_ref_audio_path: str = '', text_lang: str = 'zh',
                 prompt_lang: str = 'zh', cantonese_text_lang: str = 'yue',
                 cantonese_ref_audio_path: str = '', cantonese_prompt_text: str = '',
                 text_split_method: str = 'cut5', speed_factor: float = 1.0, top_k: int = 15,
                 top_p: float = 1.0, temperature: float = 1.0, seed: int = -1,
                 streaming_mode: int = 1, **common):
        super().__init__(**common)
        self.server_ref_audio_path = server_ref_audio_path
        self.text_lang = text_lang
        self.prompt_lang = prompt_lang
        self.cantonese_text_lang = cantonese_text_lang
        self.cantonese_ref_audio_path = cantonese_ref_audio_path
        self.cantonese_prompt_text = cantonese_prompt_text
        self.options = {'text_split_method': text_split_method,
                        'speed_factor': float(speed_factor), 'top_k': int(top_k),
                        'top_p': float(top_p), 'temperature': float(temperature),
                        'seed': int(seed), 'batch_size': 1}
        self.streaming_mode = int(streaming_mode)
        # Only a server path: the clip lives on the server and cannot be checked here.
        self.needs_local_clip = not (server_ref_audio_path and not common.get('ref_audio_path'))
        self.cantonese_clip: Optional[ReferenceClip] = None

    def load(self) -> None:
        super().load()
        if self.cantonese_ref_audio_path:
            try:
                self.cantonese_clip = self._load_clip(self.cantonese_ref_audio_path,
                                                      self.cantonese_prompt_text, 'cantonese')
            except TTSError as exc:
                raise TTSNotConfigured('%s: Cantonese reference: %s' % (self.name, exc)) from None

    def build_request(self, text: str, dialect: Optional[str], clip: Optional[ReferenceClip],
                      language: str) -> Tuple:
        cantonese = (dialect or '').lower() in ('cantonese', 'yue')
        text_lang, prompt_lang = self.text_lang, self.prompt_lang
        if language and language.lower() in ('cantonese', 'yue'):
            prompt_lang = 'yue'   # a Cantonese voice profile
        if cantonese:
            text_lang = self.cantonese_text_lang
            if self.cantonese_clip is not None:
                clip, prompt_lang = self.cantonese_clip, 'yue'
        if clip is not None:
            # The server reads the path from its own working directory: send it absolute.
            path = os.path.abspath(os.path.expanduser(clip.path))
            if clip.path == self.ref_audio_path and self.server_ref_audio_path:
                path = self.server_ref_audio_path
            prompt_text = clip.text
        else:
            path, prompt_text = self.server_ref_audio_path, self.prompt_text
        if not path:
            raise TTSError('%s: no reference clip (ref_audio_path)' % self.name)
        mode = self.streaming_mode
        req = dict(self.options, text=text, text_lang=text_lang, ref_audio_path=path,
                   prompt_text=prompt_text, prompt_lang=prompt_lang, media_type='wav',
                   streaming_mode=bool(mode) if mode in (0, 1) else mode)
        body = json.dumps(req, ensure_ascii=False).encode('utf-8')
        headers = {'Content-Type': 'application/json', 'Accept': 'audio/wav'}
        return 'POST', self.base_url + '/tts', body, headers, PCMDecoder(wav=True)
