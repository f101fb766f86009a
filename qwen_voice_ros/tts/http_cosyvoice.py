"""
CosyVoice 2/3 zero-shot cloning over its FastAPI server (``runtime/python/fastapi/server.py``).

API followed (FunAudioLLM/CosyVoice, the CosyVoice2-era ``runtime/python/fastapi/server.py``
with ``@app.get`` + ``@app.post`` routes; older versions only GET, hence ``http_method``):

- ``/inference_zero_shot``: form fields ``tts_text``, ``prompt_text`` and the file
  ``prompt_wav`` (the server reads it with ``load_wav(prompt_wav.file, 16000)``, which needs
  a clip of at least 16 kHz);
- ``/inference_cross_lingual``: ``tts_text`` + ``prompt_wav`` (no transcript);
- ``/inference_instruct2``: ``tts_text``, ``instruct_text`` (e.g. 用四川话说这句话) +
  ``prompt_wav``: the cloned voice in a dialect or style.

Each answers a stream of raw S16LE mono PCM at the model's rate (22050 Hz CosyVoice-300M,
24000 Hz CosyVoice2-0.5B and Fun-CosyVoice3-0.5B) with no header naming it, so the rate is
a parameter.  Missing form fields are FastAPI 422 errors.  CosyVoice3 expects its prompt
transcript (and cross-lingual text) after ``You are a helpful assistant.<|endofprompt|>``.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.tts.base import TTSError, TTSNotConfigured
from qwen_voice_ros.tts.http_clone import (
    common_params, HTTPCloneTTS, load_instruct_table, multipart, PCMDecoder, ReferenceClip)

MODEL_RATES = {'cosyvoice1': 22050, 'cosyvoice2': 24000, 'cosyvoice3': 24000}
CV3_PREFIX = 'You are a helpful assistant.<|endofprompt|>'
ALIASES = {'yue': 'cantonese', 'sc': 'sichuanese', 'sh': 'shanghainese', 'ne': 'northeastern',
           'dongbei': 'northeastern', 'sichuan': 'sichuanese'}


class CosyVoiceTTS(HTTPCloneTTS):
    name = 'cosyvoice'
    PARAMS = common_params('http://127.0.0.1:50000', 30.0) + (
        Param('model_version', 'cosyvoice2', 'model the server runs: sets the output rate and '
              'the prompt/instruct format', choices=tuple(MODEL_RATES)),
        Param('sample_rate', 0, 'rate of the raw PCM the server streams (0: the model '
              "version's rate)", min=0, max=192000),
        Param('mode', 'zero_shot', 'zero_shot (clip + transcript) or cross_lingual (clip only)',
              choices=('zero_shot', 'cross_lingual')),
        Param('reply_style', 'mandarin', 'dialect: turns in a dialect of the instruct table are '
              'spoken in that dialect (inference_instruct2)', choices=('mandarin', 'dialect')),
        Param('instruct_text', '', 'instruct text for every turn (a style such as 用开心的语气说'
              '这句话); empty: only dialect turns are instructed'),
        Param('instruct_table', '', 'JSON file: model version -> dialect -> instruct text '
              '(empty: the packaged data/cosyvoice_dialect_instruct.json)'),
        Param('http_method', 'POST', 'POST (current server) or GET (older servers)',
              choices=('POST', 'GET')),
    )

    def __init__(self, model_version: str = 'cosyvoice2', sample_rate: int = 0,
                 mode: str = 'zero_shot', reply_style: str = 'mandarin',
                 instruct_text: str = '', instruct_table: str = '', http_method: str = 'POST',
                 **common):
        super().__init__(**common)
        self.model_version = model_version
        self.sample_rate = int(sample_rate) or MODEL_RATES[model_version]
        self.mode = mode
        self.reply_style = reply_style
        self.instruct_text = instruct_text
        self.http_method = http_method
        self.table: Dict[str, str] = {}
        self._table_path = instruct_table
        if not common.get('dialects'):
            # Mandarin replies are Mandarin text whatever the user's dialect: any turn works.
            self.dialects = None

    def load(self) -> None:
        table = (load_instruct_table(self._table_path) if self._table_path
                 else load_instruct_table())
        self.table = table.get(self.model_version, {})
        if self.reply_style == 'dialect' and not self.table:
            raise TTSNotConfigured('%s: the instruct table has no dialects for %s'
                                   % (self.name, self.model_version))
        if self.reply_style == 'dialect' and self.dialects is None:
            self.dialects = ('mandarin',) + tuple(self.table)
        super().load()

    def instruct_for(self, dialect: Optional[str]) -> str:
        """Instruct text for a turn of ``dialect`` ('' = plain zero-shot)."""
        if self.instruct_text:
            return self.instruct_text
        if self.reply_style != 'dialect' or not dialect:
            return ''
        label = ALIASES.get(dialect.strip().lower(), dialect.strip().lower())
        return self.table.get(label, '')

    def build_request(self, text: str, dialect: Optional[str], clip: Optional[ReferenceClip],
                      language: str) -> Tuple:
        if clip is None:
            raise TTSError('%s: no reference clip (load() not called?)' % self.name)
        wav = ('prompt_wav', 'prompt_wav', clip.wav_bytes(self.upload_rate),
               'application/octet-stream')
        instruct = self.instruct_for(dialect)
        cv3 = self.model_version == 'cosyvoice3'
        if instruct:
            if cv3 and '<|endofprompt|>' not in instruct:
                instruct = 'You are a helpful assistant. %s<|endofprompt|>' % instruct
            route = 'inference_instruct2'
            fields = [('tts_text', text), ('instruct_text', instruct)]
        elif self.mode == 'cross_lingual':
            route, fields = 'inference_cross_lingual', [
                ('tts_text', (CV3_PREFIX + text) if cv3 else text)]
        else:
            if not clip.text:
                raise TTSError('%s: zero_shot needs the transcript of the reference clip '
                               '(prompt_text or the profile), or use mode cross_lingual'
                               % self.name)
            prompt = clip.text
            if cv3 and '<|endofprompt|>' not in prompt:
                prompt = CV3_PREFIX + prompt
            route, fields = 'inference_zero_shot', [('tts_text', text), ('prompt_text', prompt)]
        body, ctype = multipart(fields, [wav])
        headers = {'Content-Type': ctype, 'Accept': '*/*'}
        url = '%s/%s' % (self.base_url, route)
        return self.http_method, url, body, headers, PCMDecoder(wav=False,
                                                                sample_rate=self.sample_rate)
