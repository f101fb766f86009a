"""
Whisper through faster-whisper (CTranslate2): runs on CPU int8 or CUDA, no torch needed.

The model is a converted CTranslate2 directory (``model.bin``, ``config.json``,
``tokenizer.json``...), e.g. made with ``ct2-transformers-converter --model
openai/whisper-small --output_dir whisper-small-ct2 --quantization int8`` on a machine with
the hub, then copied to the robot.  Whisper writes Chinese in traditional or simplified
characters as its training data happened to; the output is normalised to simplified with
OpenCC (t2s) when ``opencc`` is importable, so downstream text matching sees one script.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from qwen_voice_ros.asr.base import ASRBackend, ASRNotConfigured


def make_t2s():
    """Return an OpenCC traditional->simplified converter, or None without opencc."""
    try:
        import opencc
    except ImportError:
        return None
    for config in ('t2s', 't2s.json'):  # the config name differs between opencc packages
        try:
            return opencc.OpenCC(config)
        except Exception:
            continue
    return None


class FasterWhisperASR(ASRBackend):
    name = 'faster_whisper'

    def __init__(self, model_dir: str = '', language: str = 'zh', compute_type: str = 'int8',
                 device: str = 'cpu', beam_size: int = 1, cpu_threads: int = 0,
                 to_simplified: bool = True, initial_prompt: str = ''):
        self.model_dir = model_dir
        self.language = language or None
        self.compute_type = compute_type
        self.device = device
        self.beam_size = int(beam_size)
        self.cpu_threads = int(cpu_threads)
        self.to_simplified = to_simplified
        self.initial_prompt = initial_prompt or None
        self.model = None
        self._t2s = None

    def load(self) -> None:
        if not self.model_dir:
            raise ASRNotConfigured(
                'ASR not configured: set model_dir to a faster-whisper (CTranslate2) model '
                'directory (e.g. -p model_dir:=/opt/models/whisper-small-ct2), or set '
                'asr_backend:=none to publish utterances without transcripts')
        if not os.path.isdir(self.model_dir):
            raise ASRNotConfigured('ASR not configured: model_dir %r does not exist'
                                   % self.model_dir)
        if not os.path.isfile(os.path.join(self.model_dir, 'model.bin')):
            raise ASRNotConfigured('ASR not configured: %r has no model.bin; it must be a '
                                   'CTranslate2 conversion of a Whisper model' % self.model_dir)
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ASRNotConfigured('ASR not configured: the faster-whisper package is not '
                                   'installed (pip install faster-whisper)') from None
        self.model = WhisperModel(self.model_dir, device=self.device,
                                  compute_type=self.compute_type, cpu_threads=self.cpu_threads)
        self._t2s = make_t2s() if self.to_simplified else None

    def normalize(self, text: str) -> str:
        text = text.strip()
        if self._t2s is not None and text:
            text = self._t2s.convert(text)
        return text

    def transcribe(self, audio: np.ndarray, prompt: Optional[str] = None) -> str:
        if self.model is None:
            raise ASRNotConfigured('ASR backend used before load()')
        segments, _info = self.model.transcribe(
            np.asarray(audio, dtype=np.float32), language=self.language,
            beam_size=self.beam_size, vad_filter=False, condition_on_previous_text=False,
            initial_prompt=prompt or self.initial_prompt)
        return self.normalize(''.join(segment.text for segment in segments))

    def close(self) -> None:
        self.model = None
