"""
espeak-ng: formant TTS for Mandarin and Cantonese, always available, robotic.

Voices: ``cmn-latn-pinyin`` for Mandarin (the plain ``cmn`` voice reads Han characters as
English-spelled pinyin with tone digits), ``yue`` for Cantonese.  The dialect of the turn
picks the voice when ``voice_by_dialect`` is on.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from typing import Dict, Optional

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError, TTSNotConfigured

DEFAULT_VOICES: Dict[str, str] = {'mandarin': 'cmn-latn-pinyin', 'cantonese': 'yue'}


class EspeakTTS(TTSBackend):
    name = 'espeak'
    PARAMS = (
        Param('voice', 'cmn-latn-pinyin', 'espeak-ng voice for Mandarin (and for every turn '
              'when voice_by_dialect is off)'),
        Param('speed_wpm', 160, 'speaking rate in words per minute', min=80, max=450),
        Param('voice_by_dialect', True, 'Cantonese turns get the Cantonese voice (yue)'),
        Param('executable', 'espeak-ng', 'espeak-ng binary (name on PATH or absolute path)'),
        Param('timeout_s', 10.0, 'seconds one sentence may take', min=0.5, max=120.0),
    )

    def __init__(self, voice: str = 'cmn-latn-pinyin', speed_wpm: int = 160,
                 voice_by_dialect: bool = True, executable: str = 'espeak-ng',
                 timeout_s: float = 10.0):
        self.voice = voice
        self.speed_wpm = int(speed_wpm)
        self.voice_by_dialect = voice_by_dialect
        self.executable = executable
        self.timeout_s = timeout_s
        self._binary: Optional[str] = None

    def load(self) -> None:
        self._binary = shutil.which(self.executable)
        if self._binary is None:
            raise TTSNotConfigured('%s not found on PATH: install it (apt install espeak-ng) or '
                                   'choose another tts backend' % self.executable)

    def voice_for(self, dialect: Optional[str]) -> str:
        if self.voice_by_dialect and dialect == 'cantonese':
            return DEFAULT_VOICES['cantonese']
        return self.voice

    def synthesize(self, text: str, dialect: Optional[str] = None) -> Speech:
        if self._binary is None:
            raise TTSNotConfigured('espeak backend used before load()')
        text = text.strip()
        if not text:
            raise TTSError('empty text')
        cmd = [self._binary, '-v', self.voice_for(dialect), '-s', str(self.speed_wpm),
               '--stdout', '-b', '1', '--', text]  # -b 1: input is UTF-8
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise TTSError('espeak-ng timed out after %.1f s' % self.timeout_s) from None
        except OSError as exc:
            raise TTSError('espeak-ng failed to start: %s' % exc) from None
        if proc.returncode != 0 or len(proc.stdout) <= 44:
            raise TTSError('espeak-ng exit %d: %s'
                           % (proc.returncode, proc.stderr.decode(errors='replace').strip()))
        from qwen_voice_ros.audio.wavfile import read_wav
        audio, rate = read_wav(io.BytesIO(_fix_stream_header(proc.stdout)))
        return Speech(audio=audio, sample_rate=rate)


def _fix_stream_header(wav: bytes) -> bytes:
    """espeak-ng --stdout writes 0xFFFFFFFF sizes (streamed); patch them so `wave` reads all."""
    if wav[:4] != b'RIFF' or wav[36:40] != b'data':
        return wav
    total = len(wav)
    return (wav[:4] + (total - 8).to_bytes(4, 'little') + wav[8:40]
            + (total - 44).to_bytes(4, 'little') + wav[44:])
