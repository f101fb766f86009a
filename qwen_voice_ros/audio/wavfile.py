"""WAV read/write with the standard library (no libsndfile needed on the robot)."""
from __future__ import annotations

import wave
from typing import Tuple

import numpy as np

from qwen_voice_ros.audio.pcm import AudioFormat, decode_pcm, encode_s16le


def read_wav(path) -> Tuple[np.ndarray, int]:
    """Return (float32 mono, sample_rate) of a PCM WAV file (8/16/32-bit)."""
    with wave.open(path if hasattr(path, 'read') else str(path), 'rb') as wav:
        width = wav.getsampwidth()
        fmt = {1: 'U8', 2: 'S16LE', 4: 'S32LE'}.get(width)
        if fmt is None:
            raise ValueError('%s: %d-byte samples not supported' % (path, width))
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = wav.readframes(wav.getnframes())
    return decode_pcm(data, AudioFormat(rate, channels, fmt)), rate


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
    """Write float32 mono as 16-bit PCM."""
    with wave.open(str(path), 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(encode_s16le(audio))
