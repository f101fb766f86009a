"""qwen-voice-asr-eval: manifest handling, and CER/RTF/dialect keys on the offline Whisper pack."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qwen_voice_ros.asr import offline_pack
from qwen_voice_ros.asr.eval_cli import load_audio, main, read_manifest
from qwen_voice_ros.audio.pcm import resample
from qwen_voice_ros.audio.wavfile import write_wav


def test_manifest_rows_paths_and_bad_lines(tmp_path, capsys):
    (tmp_path / 'sub').mkdir()
    manifest = tmp_path / 'm.jsonl'
    manifest.write_text('\n'.join([
        json.dumps({'audio': 'sub/a.wav', 'text': '你好', 'label': 'mandarin', 'x': 1}),
        'not json',
        json.dumps({'text': 'no audio'}),
        '',
    ]), encoding='utf-8')
    rows = read_manifest(str(manifest))
    assert len(rows) == 1 and rows[0]['audio'] == str(tmp_path / 'sub' / 'a.wav')
    err = capsys.readouterr().err
    assert 'not JSON' in err and 'lacks audio/text' in err
    assert main(['--data', str(tmp_path / 'missing.jsonl')]) == 2
    empty = tmp_path / 'e.jsonl'
    empty.write_text('', encoding='utf-8')
    assert main(['--data', str(empty)]) == 2
    assert main(['--data', str(manifest), '-p', 'novalue']) == 2
    assert main(['--data', str(manifest), '-p', 'beam_size=0']) == 2
    assert 'beam_size must be >= 1' in capsys.readouterr().err


def test_wav_at_any_rate_is_resampled_to_16k(tmp_path):
    t = np.arange(44100) / 44100.0
    write_wav(str(tmp_path / 'a.wav'), 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    audio = load_audio(str(tmp_path / 'a.wav'))
    assert len(audio) == 16000
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)


def test_eval_on_kokoro_speech_with_the_offline_pack(tmp_path, capsys):
    pytest.importorskip('faster_whisper')
    if not (offline_pack.is_ready() or offline_pack.parts_installed()):
        pytest.skip('offline Whisper pack not installed (requirements/offline-speech-pack.txt)')
    from test_audio_vad_speech import REQUESTS, speech
    rows = []
    for i, (text, voice, speed) in enumerate(REQUESTS[:2]):
        audio = speech(text, voice, speed)           # 16 kHz, cached
        rate = 24000 if i == 0 else 16000            # one file at another rate
        write_wav(str(tmp_path / ('%d.wav' % i)), resample(audio, 16000, rate), rate)
        rows.append({'audio': '%d.wav' % i, 'text': text, 'label': 'mandarin', 'voice': voice})
    manifest = tmp_path / 'manifest.jsonl'
    manifest.write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in rows),
                        encoding='utf-8')
    assert main(['--data', str(manifest), '--json']) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert {'cer', 'rtf', 'dialect_accuracy', 'dialect_per_class'} <= set(summary)
    assert 0.0 <= summary['cer'] <= 0.25 and summary['rtf'] > 0.0
    assert set(summary['dialect_per_class']['mandarin']) == {'precision', 'recall'}
    assert summary['n'] == 2 and summary['audio_s'] > 5.0
