"""Hearing node as its own process: ASR config, VAD utterances, bad input, capture->hearing."""
from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('audio_common_msgs')

from audio_ros_harness import (NodeProcess, diag_level, diag_statuses,  # noqa: E402
                               diag_values, wait_for)
from test_audio_vad import scene  # noqa: E402

from qwen_voice_ros.audio.pcm import AudioFormat, encode_s16le, resample  # noqa: E402
from qwen_voice_ros.audio.wavfile import read_wav, write_wav  # noqa: E402
from qwen_voice_ros.core import events  # noqa: E402


# Synthetic bursts (80 ms gaps): the energy VAD, a shorter hangover than the default.
VAD_ONLY = {'backend': 'none', 'vad_backend': 'energy', 'min_silence_ms': 500,
            'half_duplex': 'mute'}


class HearingHarness:
    def __init__(self, probe, ns, tmp_path, params):
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import String

        from qwen_voice_ros.nodes import ros_io
        self.ros_io = ros_io
        self.probe = probe
        self.msgs = ros_io.audio_msgs()
        node = probe.node
        self.audio_pub = node.create_publisher(self.msgs.AudioDataStamped, ns + '/audio_stamped',
                                               ros_io.QOS_AUDIO)
        self.info_pub = node.create_publisher(self.msgs.AudioInfo, ns + '/audio_info',
                                              ros_io.QOS_LATCHED)
        self.utterances = probe.collect(self.msgs.AudioDataStamped, ns + '/utterance',
                                        ros_io.QOS_AUDIO)
        self.utt_info = probe.collect(self.msgs.AudioInfo, ns + '/utterance_info',
                                      ros_io.QOS_LATCHED)
        self.events_raw = probe.collect(String, ns + '/voice/events', ros_io.QOS_EVENTS)
        self.events_pub = node.create_publisher(String, ns + '/voice/events', ros_io.QOS_EVENTS)
        self.ns = ns
        self.diag = probe.collect(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        self.fqn = ns + '/hearing'
        self.procs = [NodeProcess('hearing_node', params, probe.domain,
                                  str(tmp_path / 'hearing.log'),
                                  namespace=ns)]

    def statuses(self):
        return diag_statuses(self.diag, self.fqn)

    def state(self):
        statuses = self.statuses()
        return diag_values(statuses[-1]).get('state') if statuses else None

    def events(self, stage=None):
        out = [events.decode(m.data) for m in list(self.events_raw)]
        return [e for e in out if stage is None or e['stage'] == stage]

    def wait_active(self):
        wait_for(lambda: self.state() == 'active', 20.0, 'hearing node active', self.procs)
        wait_for(lambda: self.audio_pub.get_subscription_count() > 0, 10.0,
                 'hearing node subscribed', self.procs)

    def send_info(self, rate, coding='WAVE'):
        msg = self.ros_io.info_msg(AudioFormat(sample_rate=rate))
        msg.coding_format = coding
        self.info_pub.publish(msg)

    def send_event(self, stage, **fields):
        from std_msgs.msg import String
        event = events.make_event('t-play-0001', stage, self.ns + '/playback', time.time(),
                                  **fields)
        self.events_pub.publish(String(data=events.encode(event)))

    def send_info_fmt(self, rate, sample_format):
        msg = self.ros_io.info_msg(AudioFormat(sample_rate=rate, sample_format=sample_format))
        self.info_pub.publish(msg)

    def send_payload(self, payload, stamp_s):
        msg = self.msgs.AudioDataStamped()
        ns = int(stamp_s * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 10 ** 9, ns % 10 ** 9
        msg.audio.data = payload
        self.audio_pub.publish(msg)

    def stream(self, audio, rate, t0, chunk_s=0.032):
        n = int(rate * chunk_s)
        for i in range(0, len(audio), n):
            self.send_payload(encode_s16le(audio[i:i + n]), t0 + i / float(rate))
            time.sleep(0.002)

    def wait_diag_error(self, needle, timeout=5.0):
        def found():
            for status in self.statuses():
                text = status.message + ' ' + diag_values(status).get('last_error', '')
                if diag_level(status) >= 1 and needle in text:
                    return status
            return None
        return wait_for(found, timeout, 'diagnostics mentioning %r' % needle, self.procs)

    def close(self):
        for proc in self.procs:
            proc.stop()


def test_hearing_with_a_missing_model_dir_fails_configure_with_clear_message(probe, tmp_path):
    missing = str(tmp_path / 'no-such-model')
    h = HearingHarness(probe, '/hear_nomodel', tmp_path, {'faster_whisper.model_dir': missing})
    try:
        status = wait_for(lambda: [s for s in h.statuses() if diag_level(s) == 2], 20.0,
                          'ERROR diagnostics', h.procs)[0]
        assert 'configure failed: ASR not configured: model_dir' in status.message
        assert 'does not exist' in status.message
        values = diag_values(status)
        assert values['state'] == 'inactive'
        # Nothing runs: no utterance publisher, the node stays up to say why.
        time.sleep(0.3)
        assert h.audio_pub.get_subscription_count() == 0
        assert h.procs[0].proc.poll() is None
    finally:
        h.close()


def test_hearing_vad_utterances_and_bad_input(probe, tmp_path):
    h = HearingHarness(probe, '/hear_vad', tmp_path, VAD_ONLY)
    try:
        h.wait_active()
        rng = np.random.default_rng(11)
        speech, truth = scene([('silence', 0.6), ('speech', 1.0), ('silence', 0.9)], rng)
        (start, end), = truth

        t0 = 1000.0
        h.send_info(16000)
        h.stream(speech, 16000, t0)
        wait_for(lambda: len(h.utterances) >= 1, 5.0, 'first utterance', h.procs)
        utt = h.utterances[0]
        stamp = utt.header.stamp.sec + utt.header.stamp.nanosec * 1e-9
        assert t0 + start - 0.3 <= stamp <= t0 + start + 0.05  # stamp = utterance start
        n = len(bytes(utt.audio.data)) // 2
        assert end - start <= n / 16000.0 <= end - start + 0.6
        ev = wait_for(lambda: h.events('utterance'), 5.0, 'utterance event', h.procs)[0]
        assert ev['turn_id'] == utt.header.frame_id and ev['turn_id'].startswith('t-')
        assert ev['duration_s'] == pytest.approx(n / 16000.0, abs=0.002)
        # The turn starts when the end of speech reached the node, on the node's clock (not
        # the audio stamps' t0 = 1000 s): latency_s = end-of-speech detection.
        assert abs(ev['turn_stamp'] - time.time()) < 60.0
        assert 0.0 <= ev['latency_s'] <= 2.0
        assert h.utt_info and h.utt_info[-1].sample_rate == 16000

        # A 48 kHz stream: resampled, segmented the same way.
        h.send_info(48000)
        time.sleep(0.2)
        h.stream(resample(speech, 16000, 48000), 48000, t0 + 10.0)
        wait_for(lambda: len(h.utterances) >= 2, 5.0, 'utterance from 48 kHz input', h.procs)
        n48 = len(bytes(h.utterances[1].audio.data)) // 2
        assert abs(n48 - n) <= 1024

        # Bad input, each reported; then a good stream still gives an utterance.
        h.send_info(16000, coding='MP3')
        h.wait_diag_error('compressed')
        h.send_payload(b'\xff\xfb' * 100, t0 + 20.0)
        h.wait_diag_error('stream format rejected')
        h.send_info(16000)
        time.sleep(0.2)
        h.send_payload(b'\x00\x00\x01', t0 + 21.0)
        h.wait_diag_error('not a whole number')
        h.send_payload(b'', t0 + 21.1)
        h.wait_diag_error('empty audio message')
        square = np.sign(np.sin(2 * np.pi * 300 * np.arange(1600) / 16000.0)).astype(np.float32)
        h.send_payload(encode_s16le(square), t0 + 21.2)
        h.wait_diag_error('clipped input')
        h.stream(speech, 16000, t0 + 30.0)
        wait_for(lambda: len(h.utterances) >= 3, 5.0, 'utterance after bad input', h.procs)
        ids = [u.header.frame_id for u in h.utterances]
        assert len(set(ids)) == len(ids)
        # speech_start came first for each utterance, with the same turn id.
        starts = [e['turn_id'] for e in h.events('speech_start')]
        assert set(ids) <= set(starts)

        # F32LE with NaNs and a DC offset of 0.3: reported, repaired, still one utterance.
        h.send_info_fmt(16000, 'F32LE')
        time.sleep(0.2)
        dirty = (speech + 0.3).astype('<f4')
        dirty[::97] = np.nan
        chunk = int(16000 * 0.032)
        for i in range(0, len(dirty), chunk):
            h.send_payload(dirty[i:i + chunk].tobytes(), t0 + 40.0 + i / 16000.0)
            time.sleep(0.002)
        h.wait_diag_error('non-finite samples')
        h.wait_diag_error('DC offset')
        wait_for(lambda: len(h.utterances) >= 4, 5.0, 'utterance from NaN/DC input', h.procs)
        n4 = len(bytes(h.utterances[3].audio.data)) // 2
        assert abs(n4 - n) <= 2048

        # The stream stops mid-utterance (device gone): the utterance is closed and reported.
        h.send_info(16000)
        time.sleep(0.2)
        half = speech[:int(16000 * (start + 0.6))]
        h.stream(half, 16000, t0 + 50.0)
        h.wait_diag_error('stopped mid-utterance', timeout=8.0)
        wait_for(lambda: len(h.utterances) >= 5, 5.0, 'utterance closed by timeout', h.procs)
        # ... and the next stream works.
        h.stream(speech, 16000, t0 + 60.0)
        wait_for(lambda: len(h.utterances) >= 6, 5.0, 'utterance after the gap', h.procs)

        # Half-duplex (mode mute): while playback speaks, the robot's own voice is no turn.
        time.sleep(0.5)
        before = len(h.utterances)
        h.send_event('playback_start', seq=0, duration_s=20.0)
        time.sleep(0.3)
        h.stream(speech, 16000, t0 + 70.0)
        time.sleep(1.0)
        assert len(h.utterances) == before
        h.send_event('playback', seq=0, duration_s=20.0)
        time.sleep(0.6)   # half_duplex_tail_s 0.3
        h.stream(speech, 16000, t0 + 80.0)
        wait_for(lambda: len(h.utterances) > before, 5.0, 'utterance after playback', h.procs)
        assert not h.events('transcript')  # no ASR configured: no text is made up
        assert h.procs[0].proc.poll() is None
    finally:
        h.close()


@pytest.mark.skipif(shutil.which('espeak-ng') is None, reason='espeak-ng is not installed')
def test_capture_wav_source_to_hearing_gives_one_utterance_per_phrase(probe, tmp_path):
    """Capture node (source wav, real time) -> hearing node: two spoken phrases, two turns."""
    phrases = []
    for i, text in enumerate(['你好，请帮我拿一杯水', '谢谢']):
        path = str(tmp_path / ('p%d.wav' % i))
        subprocess.run(['espeak-ng', '-v', 'cmn', '-w', path, text], check=True)
        audio, rate = read_wav(path)
        audio = resample(audio, rate, 16000)
        voiced = np.flatnonzero(np.abs(audio) > 0.02)
        phrases.append(audio[voiced[0]:voiced[-1] + 1])
    gap = np.zeros(int(1.2 * 16000), np.float32)
    audio = np.concatenate([np.zeros(16000, np.float32), phrases[0], gap, phrases[1], gap])
    wav = str(tmp_path / 'scene.wav')
    write_wav(wav, audio, 16000)

    ns = '/hear_pipe'
    h = HearingHarness(probe, ns, tmp_path, VAD_ONLY)
    try:
        h.wait_active()
        capture = NodeProcess('capture_node', {'source': 'wav', 'wav_path': wav},
                              probe.domain, str(tmp_path / 'capture.log'), namespace=ns)
        h.procs.append(capture)
        wait_for(lambda: len(h.utterances) >= 2, 20.0, 'two utterances', h.procs)
        time.sleep(len(gap) / 16000.0 + 0.3)
        assert len(h.utterances) == 2
        stamps = [u.header.stamp.sec + u.header.stamp.nanosec * 1e-9 for u in h.utterances]
        durations = [len(bytes(u.audio.data)) / 2 / 16000.0 for u in h.utterances]
        for duration, phrase in zip(durations, phrases):
            assert len(phrase) / 16000.0 - 0.1 <= duration <= len(phrase) / 16000.0 + 0.6
        # Start stamps are capture times: their spacing is the spacing in the file.
        expected_gap = (len(phrases[0]) + len(gap)) / 16000.0
        assert stamps[1] - stamps[0] == pytest.approx(expected_gap, abs=0.15)
        # ... and the first starts about when the capture node played it (wall clock).
        assert abs(time.time() - stamps[0] - (len(audio) / 16000.0 - 1.0)) < 2.0
    finally:
        h.close()


def test_hearing_defaults_hear_a_spoken_request(probe, tmp_path):
    """Out of the box (silero VAD, offline Whisper pack): one request -> one transcript."""
    pytest.importorskip('faster_whisper')
    from qwen_voice_ros.asr import offline_pack
    from qwen_voice_ros.asr.textnorm import edit_distance, normalize_for_cer
    if not (offline_pack.is_ready() or offline_pack.parts_installed()):
        pytest.skip('offline Whisper pack not installed (requirements/offline-speech-pack.txt)')
    from test_audio_vad_speech import REQUESTS, speech
    text, voice, speed = REQUESTS[0]   # two comma pauses
    audio = np.concatenate([np.zeros(8000, np.float32), speech(text, voice, speed),
                            np.zeros(int(1.5 * 16000), np.float32)])
    h = HearingHarness(probe, '/hear_asr', tmp_path, {})
    try:
        h.wait_active()
        status = h.statuses()[-1]
        assert diag_values(status)['model_dir'].endswith('whisper-base-ct2')
        h.send_info(16000)
        h.stream(audio, 16000, 2000.0)
        ev = wait_for(lambda: h.events('transcript'), 60.0, 'transcript event', h.procs)[0]
        assert len(h.utterances) == 1
        turn = h.utterances[0].header.frame_id
        assert ev['turn_id'] == turn
        assert [e['turn_id'] for e in h.events('speech_start')] == [turn]
        ref, hyp = normalize_for_cer(text), normalize_for_cer(ev['text'])
        assert edit_distance(ref, hyp) / float(len(ref)) <= 0.3, ev['text']
        assert ev['detail']['backend'] == 'faster_whisper'
    finally:
        h.close()
