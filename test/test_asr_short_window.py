"""Whisper on a short encoder window (``encoder_pad_s``): same text, a fraction of the CPU.

Runs the offline Whisper-base pack on the VAD test's Kokoro-voiced requests (cached audio,
see test_audio_vad_speech.py), once on the full 30 s window and once on the utterance plus
the default padding, and checks the loop guard that sends a repeating decode back to the
full window.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR, _looks_looped
from qwen_voice_ros.asr.textnorm import edit_distance, normalize_for_cer


def test_loop_guard():
    assert not _looks_looped('请把客厅的灯关掉，然后打开空调。', 3.0)
    assert not _looks_looped('', 0.5)
    assert _looks_looped('然后打开空调,' * 12, 3.0)          # repeats itself
    assert _looks_looped('你好请介绍一下你自己,' * 4, 2.0)     # more than 2 s can hold


def _cpu():
    t = os.times()
    return t.user + t.system


def _clips():
    pytest.importorskip('faster_whisper')
    from qwen_voice_ros.asr import offline_pack
    if not offline_pack.is_ready():
        pytest.skip('offline Whisper pack not assembled')
    import test_audio_vad_speech as vad_test
    return [(text, np.pad(vad_test.speech(text, voice, speed), (3200, 3200)))
            for text, voice, speed in vad_test.REQUESTS]


def test_short_window_matches_the_full_window_at_a_fraction_of_the_cpu():
    clips = _clips()
    results = {}
    for pad in (0.0, FasterWhisperASR().encoder_pad_s):
        asr = FasterWhisperASR(beam_size=1, temperature_fallback=False, cpu_threads=2,
                               encoder_pad_s=pad)
        asr.load()
        asr.transcribe(np.zeros(8000, np.float32))
        errors = chars = 0
        cpu = _cpu()
        for ref, audio in clips:
            ref, hyp = normalize_for_cer(ref), normalize_for_cer(asr.transcribe(audio))
            errors += edit_distance(list(ref), list(hyp))
            chars += len(ref)
        results[pad] = (errors / float(chars), _cpu() - cpu, asr.full_window_retries)
    (full_cer, full_cpu, _), (short_cer, short_cpu, retries) = results[0.0], results[
        FasterWhisperASR().encoder_pad_s]
    print('full window: CER %.3f, %.2f CPU s; short: CER %.3f, %.2f CPU s, %d retries'
          % (full_cer, full_cpu, short_cer, short_cpu, retries))
    assert short_cer <= full_cer + 0.03
    assert retries == 0
    assert short_cpu < 0.5 * full_cpu
