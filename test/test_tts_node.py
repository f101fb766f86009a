"""The tts node in-process: fallback with a reason, bad parameters, bad text, voice profiles.

The node runs in this process on its own rclpy context (a private DDS domain); a Probe on
another context publishes sentences and records audio, events and /diagnostics.
"""
import threading
import time

import numpy as np
import pytest

from ros_harness import Probe, diagnostics_of, level_of, random_domain

pytest.importorskip('rclpy')


class NodeInProcess:
    def __init__(self, domain, params):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from qwen_voice_ros.nodes.tts_node import TTSNode
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = TTSNode(context=self.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in params.items()])
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._stop.is_set():
                    return
                raise

    def set(self, name, value):
        from rclpy.parameter import Parameter
        return self.node.set_parameters([Parameter(name, value=value)])[0]

    def close(self):
        self._stop.set()
        self.thread.join(timeout=3)
        self.node._teardown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def start():
    """Return a starter: params -> (node, probe), the tts node in-process and a Probe."""
    from audio_common_msgs.msg import AudioDataStamped
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String

    from qwen_voice_ros.nodes import ros_io
    started = []

    def start_graph(params):
        domain = random_domain()
        probe = Probe(domain)
        probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
        probe.subscribe(AudioDataStamped, 'tts/audio', ros_io.QOS_AUDIO)
        probe.pub = probe.publisher(String, 'reply_sentence', ros_io.QOS_TEXT)
        started.append(probe)
        node = NodeInProcess(domain, params)
        started.append(node)
        return node, probe
    yield start_graph
    for thing in reversed(started):
        thing.close()


def wait_serving(node, probe, level=0):
    probe.wait_for(lambda: node.node.active and probe.pub.get_subscription_count() > 0, 60,
                   'tts active')
    probe.wait_for(lambda: diagnostics_of(probe, 'tts') is not None
                   and level_of(diagnostics_of(probe, 'tts')) == level, 20, 'diagnostics')


def say(probe, text, count, what):
    from std_msgs.msg import String
    probe.pub.publish(String(data=text))
    probe.wait_for(lambda: len(probe.messages('tts/audio')) >= count, 60, what)


ESPEAK = {'backend': 'espeak', 'fallback': ''}


def test_kokoro_unavailable_falls_back_to_espeak_with_a_warning(start):
    node, probe = start({'backend': 'kokoro', 'kokoro.model_path': '/nonexistent/kokoro.onnx'})
    wait_serving(node, probe, level=1)
    status = diagnostics_of(probe, 'tts')
    assert 'kokoro unavailable' in status.message and 'espeak' in status.message
    assert 'not found' in status.message
    say(probe, '你好。', 1, 'fallback audio')
    event = [e for e in probe.events() if e['stage'] == 'tts_audio'][0]
    assert event['detail']['backend'] == 'espeak'


def test_sample_rate_zero_fails_configure_with_the_reason(start):
    node, probe = start(dict(ESPEAK, sample_rate=0))
    probe.wait_for(lambda: diagnostics_of(probe, 'tts') is not None
                   and level_of(diagnostics_of(probe, 'tts')) == 2, 30, 'ERROR diagnostics')
    assert 'sample_rate must be >= 8000, got 0' in diagnostics_of(probe, 'tts').message
    assert not node.node.active


def test_bad_text_and_bad_parameters_keep_the_node_serving(start, tmp_path):
    node, probe = start(ESPEAK)
    wait_serving(node, probe)
    result = node.set('sample_rate', 0)
    assert not result.successful and 'sample_rate out of range' in result.reason
    from std_msgs.msg import String
    for count, text in enumerate(('。。。！', '😀😀'), 1):
        probe.pub.publish(String(data=text))   # each a new turn (no producer events)
        probe.wait_for(lambda: len([e for e in probe.events() if e['stage'] == 'error'])
                       >= count, 20, 'error event %d' % count)
    errors = [e['error'] for e in probe.events() if e['stage'] == 'error']
    assert all('nothing to speak' in e for e in errors)
    assert level_of(diagnostics_of(probe, 'tts')) == 1
    say(probe, '这句话可以说。', 1, 'the next sentence')
    probe.wait_for(lambda: level_of(diagnostics_of(probe, 'tts')) == 0, 10, 'OK again')
    # very long text: several pieces, all published
    say(probe, '这是一个很长的句子，' * 30, 3, 'pieces of a long sentence')
    parts = [e['detail']['parts'] for e in probe.events() if e['stage'] == 'tts_audio']
    assert parts[-1] > 2


def _wav(path, seconds, rate=16000, amplitude=0.3):
    from qwen_voice_ros.audio.wavfile import write_wav
    t = np.arange(int(seconds * rate)) / rate
    audio = amplitude * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    write_wav(str(path), audio.astype(np.float32), rate)
    return str(path)


def test_voice_profile_is_checked_when_set(start, tmp_path):
    node, probe = start(ESPEAK)
    wait_serving(node, probe)
    short = node.set('voice_profile', _wav(tmp_path / 'short.wav', 0.4))
    assert not short.successful and 'too short' in short.reason
    silent = node.set('voice_profile', _wav(tmp_path / 'silent.wav', 3.0, amplitude=0.0))
    assert not silent.successful and 'silent' in silent.reason
    missing = node.set('voice_profile', str(tmp_path / 'nope.yaml'))
    assert not missing.successful and 'not found' in missing.reason
    other_rate = tmp_path / 'voice.yaml'
    other_rate.write_text('wav: r44k.wav\ntranscript: 你好\ndialect: mandarin\n')
    _wav(tmp_path / 'r44k.wav', 2.0, rate=44100)
    assert node.set('voice_profile', str(other_rate)).successful
    probe.wait_for(lambda: 'profile ignored' in node.node.voice, 10, 'profile applied')
    say(probe, '换了声音以后还能说话。', 1, 'speech after a profile change')
    time.sleep(0.1)
