"""ASR backend selection and the messages a missing model gives (no model is faked)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from qwen_voice_ros.asr import ASRBackend, ASRNotConfigured, create_asr
from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR, make_t2s


def test_unknown_backend():
    with pytest.raises(ASRNotConfigured, match='unknown ASR backend'):
        create_asr('whisperx')


def test_faster_whisper_without_model_dir_says_what_to_set():
    asr = create_asr('faster_whisper', model_dir='')
    assert isinstance(asr, ASRBackend) and asr.name == 'faster_whisper'
    with pytest.raises(ASRNotConfigured, match='ASR not configured: set model_dir'):
        asr.load()
    with pytest.raises(ASRNotConfigured, match='before load'):
        asr.transcribe(np.zeros(16000, np.float32))


def test_faster_whisper_bad_model_dirs(tmp_path):
    with pytest.raises(ASRNotConfigured, match='does not exist'):
        FasterWhisperASR(model_dir=str(tmp_path / 'missing')).load()
    with pytest.raises(ASRNotConfigured, match='no model.bin'):
        FasterWhisperASR(model_dir=str(tmp_path)).load()


@pytest.mark.skipif(importlib.util.find_spec('faster_whisper') is not None,
                    reason='faster-whisper is installed here')
def test_faster_whisper_missing_package_is_reported(tmp_path):
    (tmp_path / 'model.bin').write_bytes(b'')
    with pytest.raises(ASRNotConfigured, match='pip install faster-whisper'):
        FasterWhisperASR(model_dir=str(tmp_path)).load()


def test_output_is_normalised_to_simplified_chinese():
    pytest.importorskip('opencc')
    asr = FasterWhisperASR(model_dir='x')
    asr._t2s = make_t2s()
    assert asr.normalize(' 這是語音識別測試。 ') == '这是语音识别测试。'
