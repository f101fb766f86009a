"""Playback node as its own process (sink wav): chunks are written, barge-in, bad input."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('audio_common_msgs')

from audio_ros_harness import (NodeProcess, diag_level, diag_statuses,  # noqa: E402
                               diag_values, wait_for)

from qwen_voice_ros.audio.pcm import AudioFormat, encode_s16le  # noqa: E402
from qwen_voice_ros.audio.wavfile import read_wav  # noqa: E402
from qwen_voice_ros.core import events  # noqa: E402


def tone(freq, seconds, rate=16000, amp=0.4):
    t = np.arange(int(seconds * rate)) / float(rate)
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(audio, rate):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return np.argmax(spectrum) * rate / float(len(audio))


class Harness:
    """Publishers into one namespace plus collectors of what the playback node says."""

    def __init__(self, probe, ns, tmp_path):
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import String

        from qwen_voice_ros.nodes import ros_io
        self.ros_io = ros_io
        self.probe = probe
        self.ns = ns
        self.msgs = ros_io.audio_msgs()
        node = probe.node
        self.audio_pub = node.create_publisher(self.msgs.AudioDataStamped, ns + '/tts/audio',
                                               ros_io.QOS_AUDIO)
        self.info_pub = node.create_publisher(self.msgs.AudioInfo, ns + '/tts/audio_info',
                                              ros_io.QOS_LATCHED)
        self.event_pub = node.create_publisher(String, ns + '/voice/events', ros_io.QOS_EVENTS)
        self.events_raw = probe.collect(String, ns + '/voice/events', ros_io.QOS_EVENTS)
        self.diag = probe.collect(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        self.wav_dir = str(tmp_path / 'out')
        self.proc = NodeProcess('playback_node', {'sink': 'wav', 'wav_dir': self.wav_dir},
                                probe.domain, str(tmp_path / 'playback.log'), namespace=ns)
        self.fqn = ns + '/playback'
        wait_for(lambda: self.audio_pub.get_subscription_count() > 0
                 and self.event_pub.get_subscription_count() > 0
                 and self.info_pub.get_subscription_count() > 0, 20.0,
                 'playback node subscriptions', [self.proc])
        wait_for(lambda: self.state() == 'active', 10.0, 'playback node active', [self.proc])

    def statuses(self):
        return diag_statuses(self.diag, self.fqn)

    def state(self):
        statuses = self.statuses()
        return diag_values(statuses[-1]).get('state') if statuses else None

    def events(self, stage=None):
        out = [events.decode(m.data) for m in list(self.events_raw)]
        return [e for e in out if stage is None or e['stage'] == stage]

    def send_info(self, rate=16000, coding='WAVE', sample_format='S16LE', channels=1):
        msg = self.ros_io.info_msg(AudioFormat(sample_rate=rate, channels=channels))
        msg.coding_format = coding
        msg.sample_format = sample_format
        self.info_pub.publish(msg)

    def send_audio(self, turn_id, payload):
        msg = self.msgs.AudioDataStamped()
        msg.header.stamp = self.probe.node.get_clock().now().to_msg()
        msg.header.frame_id = turn_id
        msg.audio.data = payload
        self.audio_pub.publish(msg)

    def send_event(self, turn_id, stage, turn_stamp):
        from std_msgs.msg import String
        event = events.make_event(turn_id, stage, '/test', time.time(), turn_stamp,
                                  duration_s=1.0)
        self.event_pub.publish(String(data=events.encode(event)))

    def wav(self, turn_id, seq):
        return os.path.join(self.wav_dir, '%s_%d.wav' % (turn_id, seq))

    def wait_played(self, turn_id, seq, timeout=10.0):
        return wait_for(lambda: [e for e in self.events('playback')
                                 if e['turn_id'] == turn_id and e['seq'] == seq],
                        timeout, 'playback event %s/%d' % (turn_id, seq), [self.proc])[0]

    def wait_diag_error(self, needle, timeout=5.0):
        def found():
            for status in self.statuses():
                values = diag_values(status)
                text = status.message + ' ' + values.get('last_error', '')
                if diag_level(status) >= 1 and needle in text:
                    return status
            return None
        return wait_for(found, timeout, 'diagnostics mentioning %r' % needle, [self.proc])

    def close(self):
        self.proc.stop()


def test_playback_writes_chunks_and_barge_in_cuts_stale_turn(probe, tmp_path):
    h = Harness(probe, '/pb_barge', tmp_path)
    try:
        h.send_info(16000)
        h.send_event('t-A', 'utterance', 100.0)
        h.send_audio('t-A', encode_s16le(tone(440, 0.3)))
        h.send_audio('t-A', encode_s16le(tone(660, 0.2)))
        first = h.wait_played('t-A', 0)
        second = h.wait_played('t-A', 1)
        assert first['duration_s'] == pytest.approx(0.3, abs=0.002)
        assert second['duration_s'] == pytest.approx(0.2, abs=0.002)
        audio0, rate0 = read_wav(h.wav('t-A', 0))
        audio1, _ = read_wav(h.wav('t-A', 1))
        assert rate0 == 16000 and len(audio0) == 4800 and len(audio1) == 3200
        assert dominant_hz(audio0, 16000) == pytest.approx(440, abs=5)
        assert dominant_hz(audio1, 16000) == pytest.approx(660, abs=5)
        assert first['turn_stamp'] == pytest.approx(100.0)

        # A long chunk and a queued one of turn A; a newer turn B interrupts while it plays.
        h.send_audio('t-A', encode_s16le(tone(440, 2.0)))
        h.send_audio('t-A', encode_s16le(tone(440, 0.5)))
        time.sleep(0.6)
        barge_at = time.monotonic()
        h.send_event('t-B', 'utterance', 200.0)
        cancelled = wait_for(lambda: h.events('cancelled'), 5.0, 'cancelled event', [h.proc])
        barge_latency = time.monotonic() - barge_at
        assert cancelled[0]['turn_id'] == 't-A'
        assert cancelled[0]['detail']['superseded_by'] == 't-B'
        # A late chunk of the old turn is dropped; the new turn's chunk plays.
        h.send_audio('t-A', encode_s16le(tone(440, 0.2)))
        h.send_audio('t-B', encode_s16le(tone(880, 0.2)))
        played_b = h.wait_played('t-B', 0)
        assert played_b['turn_stamp'] == pytest.approx(200.0)
        cut, _ = read_wav(wait_for(lambda: os.path.exists(h.wav('t-A', 2)) and h.wav('t-A', 2),
                                   5.0, 'cut chunk file'))
        assert 0.2 < len(cut) / 16000.0 < 1.5, 'chunk 2 must stop early, not play its 2 s'
        assert not os.path.exists(h.wav('t-A', 3)), 'queued chunk of the old turn was played'
        assert not os.path.exists(h.wav('t-A', 4)), 'late chunk of the old turn was played'
        assert not [e for e in h.events('playback') if e['turn_id'] == 't-A' and e['seq'] >= 2]
        assert dominant_hz(read_wav(h.wav('t-B', 0))[0], 16000) == pytest.approx(880, abs=5)
        print('barge-in: event -> cancelled event %.0f ms; chunk cut after %.2f s'
              % (1000 * barge_latency, len(cut) / 16000.0))
    finally:
        h.close()


def test_playback_bad_input_is_reported_and_next_chunk_plays(probe, tmp_path):
    h = Harness(probe, '/pb_bad', tmp_path)
    try:
        # 48 kHz stream: resampled to the 16 kHz output and played.
        h.send_info(48000)
        time.sleep(0.2)
        h.send_audio('t-48k', encode_s16le(tone(440, 0.25, rate=48000)))
        h.wait_played('t-48k', 0)
        audio, rate = read_wav(h.wav('t-48k', 0))
        assert rate == 16000 and abs(len(audio) - 4000) <= 2
        assert dominant_hz(audio, 16000) == pytest.approx(440, abs=5)
        assert np.sqrt(np.mean(audio ** 2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.05)

        # MP3 coding: rejected with a clear message, chunks too, until a usable info.
        h.send_info(16000, coding='MP3')
        status = h.wait_diag_error('compressed')
        assert 'format:=wave' in status.message + diag_values(status).get('last_error', '')
        h.send_audio('t-mp3', b'\xff\xfb' * 200)
        h.wait_diag_error('stream format rejected')
        h.send_info(16000)
        time.sleep(0.2)
        h.send_audio('t-ok1', encode_s16le(tone(440, 0.2)))
        h.wait_played('t-ok1', 0)
        assert not os.path.exists(h.wav('t-mp3', 0))

        # Empty chunk, then odd byte count: each reported, the next chunk plays.
        h.send_audio('t-empty', b'')
        h.wait_diag_error('empty audio chunk')
        h.send_audio('t-ok2', encode_s16le(tone(440, 0.2)))
        h.wait_played('t-ok2', 0)
        h.send_audio('t-odd', encode_s16le(tone(440, 0.2)) + b'\x01')
        h.wait_diag_error('not a whole number')
        h.send_audio('t-ok3', encode_s16le(tone(440, 0.2)))
        h.wait_played('t-ok3', 0)
        errors = {e['turn_id']: e['error'] for e in h.events('error')}
        assert set(errors) >= {'t-mp3', 't-empty', 't-odd'}
        for turn in ('t-mp3', 't-empty', 't-odd'):
            assert not os.path.exists(h.wav(turn, 0))
        # Health is back to OK after the good chunk, and the error count says what happened.
        last = h.statuses()[-1]
        assert diag_level(last) == 0
        assert int(diag_values(last)['bad_input']) == 4
        assert h.proc.proc.poll() is None
    finally:
        h.close()
