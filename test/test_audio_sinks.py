"""Sinks: timing, interruption, WAV output, errors (sounddevice is covered with PulseAudio)."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from qwen_voice_ros.audio.sinks import AudioSinkError, NullSink, create_sink
from qwen_voice_ros.audio.wavfile import read_wav


class Recorder:
    def __init__(self):
        self.done = []
        self.event = threading.Event()

    def __call__(self, tag):
        def on_done(completed, played_s):
            self.done.append((tag, completed, played_s, time.monotonic()))
            self.event.set()
        return on_done

    def wait(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.done) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.done) >= n, self.done


def test_null_sink_keeps_timing_and_plays_in_order():
    sink = create_sink('null')
    rec = Recorder()
    start = time.monotonic()
    sink.play(np.zeros(3200, np.float32), 16000, rec('a'))
    sink.play(np.zeros(1600, np.float32), 16000, rec('b'))
    assert sink.busy
    rec.wait(2)
    (tag_a, ok_a, played_a, t_a), (tag_b, ok_b, played_b, t_b) = rec.done
    assert (tag_a, tag_b) == ('a', 'b') and ok_a and ok_b
    assert played_a == pytest.approx(0.2) and played_b == pytest.approx(0.1)
    assert t_a - start == pytest.approx(0.2, abs=0.08)
    assert t_b - start == pytest.approx(0.3, abs=0.1)
    assert not sink.busy
    sink.close()


def test_stop_interrupts_now_and_drops_queue():
    sink = NullSink()
    sink.open()
    rec = Recorder()
    sink.play(np.zeros(32000, np.float32), 16000, rec('long'))
    sink.play(np.zeros(1600, np.float32), 16000, rec('queued'))
    time.sleep(0.3)
    stopped_at = time.monotonic()
    sink.stop()
    rec.wait(2)
    by_tag = {tag: (ok, played, t) for tag, ok, played, t in rec.done}
    assert by_tag['queued'][:2] == (False, 0.0)
    ok, played, t = by_tag['long']
    assert not ok and 0.25 < played < 0.5
    assert t - stopped_at < 0.1
    # Still usable afterwards.
    sink.play(np.zeros(160, np.float32), 16000, rec('after'))
    rec.wait(3)
    assert rec.done[-1][:2] == ('after', True)
    sink.close()


def test_wav_sink_writes_each_chunk_and_the_played_part_of_a_cut_one(tmp_path):
    sink = create_sink('wav', wav_dir=str(tmp_path / 'w'))
    rec = Recorder()
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4800) / 16000.0)).astype(np.float32)
    sink.play(tone, 16000, rec('t1_0'), tag='t1_0')
    rec.wait(1)
    audio, rate = read_wav(str(tmp_path / 'w' / 't1_0.wav'))
    assert rate == 16000
    np.testing.assert_allclose(audio, tone, atol=1e-4)
    sink.play(np.zeros(48000, np.float32), 16000, rec('t2_0'), tag='t2/0')
    time.sleep(0.2)
    sink.stop()
    rec.wait(2)
    cut, _ = read_wav(str(tmp_path / 'w' / 't2_0.wav'))  # unsafe characters replaced
    assert 0.1 < len(cut) / 16000.0 < 0.6
    assert not [f for f in os.listdir(str(tmp_path / 'w')) if f.endswith('.part')]
    sink.close()


def test_fast_wav_sink_does_not_wait(tmp_path):
    sink = create_sink('wav', wav_dir=str(tmp_path), realtime=False)
    rec = Recorder()
    start = time.monotonic()
    sink.play(np.zeros(160000, np.float32), 16000, rec('x'), tag='x')
    rec.wait(1)
    assert time.monotonic() - start < 1.0 and rec.done[0][1]
    sink.close()


def test_sink_errors_are_clear(tmp_path):
    with pytest.raises(AudioSinkError, match='unknown playback sink'):
        create_sink('speaker')
    with pytest.raises(AudioSinkError, match='wav_dir'):
        create_sink('wav', wav_dir='')
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(AudioSinkError, match='cannot create wav_dir'):
        create_sink('wav', wav_dir=str(blocker / 'sub'))


def test_sounddevice_sink_bad_device_fails_with_message():
    pytest.importorskip('sounddevice')
    with pytest.raises(AudioSinkError, match='cannot open output device'):
        create_sink('sounddevice', device='no-such-device-xyz')
