"""Every turn the tts stage drops ends in a stated outcome; its work queue is bounded (issue 8).

Pipeline tests run without ROS on a fake clock; one in-process node test checks the
``cancelled`` event (``detail.stage`` tts, ``superseded_by``) reaches ``voice/events``.
"""
import numpy as np
import pytest

from qwen_voice_ros.tts.base import Speech, TTSBackend
from qwen_voice_ros.tts.pipeline import Job, TTSPipeline


class FakeTTS(TTSBackend):
    name = 'fake'

    def __init__(self):
        self.calls = []

    def synthesize(self, text, dialect=None):
        self.calls.append(text)
        return Speech(np.full(160, 0.1, np.float32), 16000)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(**kw):
    audio, errors, dropped = [], [], []
    pipe = TTSPipeline(FakeTTS(), None, audio.append,
                       lambda job, msg, fb: errors.append((job.turn_id, msg)),
                       clock=Clock(), on_dropped=lambda job, by: dropped.append((job.turn_id, by)),
                       **kw)
    return pipe, audio, errors, dropped


def drain(pipe):
    while pipe.run_once(timeout=0):
        pass


def test_superseded_turn_is_reported_once_naming_the_newer_turn():
    pipe, audio, errors, dropped = make()
    for seq in range(3):
        pipe.submit(Job('old', 999.0, '旧的回答第%d句。' % seq, seq))
    pipe.observe_turn('new', 1000.0)
    pipe.submit(Job('new', 1000.0, '新的回答。', 0))
    drain(pipe)
    assert dropped == [('old', 'new')]          # once per turn, not per sentence
    assert pipe.counters['dropped'] == 3 and pipe.counters['turns_superseded'] == 1
    assert [p.job.turn_id for p in audio] == ['new'] and errors == []


def test_superseded_between_pieces_of_a_long_sentence_is_reported_once():
    pipe, audio, _, dropped = make(max_chars=20)

    def on_audio(piece):
        audio.append(piece)
        pipe.observe_turn('new', 1000.0)
    pipe.on_audio = on_audio
    pipe.submit(Job('old', 999.0, '很长的一句话，' * 10, 0))
    pipe.submit(Job('old', 999.0, '还有一句。', 1))
    drain(pipe)
    assert len(audio) == 1 and dropped == [('old', 'new')]


def test_turn_cancelled_by_another_stage_is_counted_not_reported_again():
    pipe, audio, _, dropped = make()
    pipe.submit(Job('t1', 1000.0, '这句会被取消。', 0))
    pipe.on_event({'stage': 'cancelled', 'turn_id': 't1'})
    drain(pipe)
    assert audio == [] and dropped == [] and pipe.counters['dropped'] == 1


def test_queue_is_bounded_drop_oldest_one_error_per_turn():
    pipe, audio, errors, _ = make(max_queue=4)
    for seq in range(6):
        pipe.submit(Job('t1', 1000.0, '第%d句。' % seq, seq))
    assert pipe.pending() == 4
    assert pipe.counters['dropped_overflow'] == 2
    assert len(errors) == 1 and errors[0][0] == 't1' and 'queue full' in errors[0][1]
    drain(pipe)
    assert [p.job.seq for p in audio] == [2, 3, 4, 5]


def test_stop_is_kept_when_the_queue_is_full():
    pipe, _, _, _ = make(max_queue=2)
    pipe.submit(Job('t1', 1000.0, '一。', 0))
    pipe.stop()
    pipe.submit(Job('t1', 1000.0, '二。', 1))
    pipe.submit(Job('t1', 1000.0, '三。', 2))
    assert pipe.run_once(timeout=0)     # 一
    assert not pipe.run_once(timeout=0)  # the stop sentinel is still there


def test_node_publishes_cancelled_for_a_superseded_turn():
    pytest.importorskip('rclpy')
    from std_msgs.msg import String

    from qwen_voice_ros.nodes import ros_io
    from ros_harness import Probe, random_domain
    from test_tts_node import NodeInProcess, wait_serving

    domain = random_domain()
    probe = Probe(domain)
    from diagnostic_msgs.msg import DiagnosticArray
    probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
    probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
    probe.pub = probe.publisher(String, 'reply_sentence', ros_io.QOS_TEXT)
    node = NodeInProcess(domain, {'backend': 'espeak', 'fallback': ''})
    try:
        wait_serving(node, probe)
        tts = node.node
        now = tts.now_s()
        tts.pipeline.observe_turn('old-turn', now - 2.0)
        tts.pipeline.observe_turn('new-turn', now - 1.0)
        tts.on_sentence('old-turn', now - 2.0, '旧的回答。', {'seq': 0})
        tts.on_sentence('old-turn', now - 2.0, '旧的第二句。', {'seq': 1})
        probe.wait_for(lambda: any(e['stage'] == 'cancelled' for e in probe.events()), 20,
                       'cancelled event')
        probe.wait_for(lambda: tts.pipeline.counters['dropped'] == 2, 10, 'both dropped')
        cancelled = [e for e in probe.events() if e['stage'] == 'cancelled']
        assert len(cancelled) == 1
        assert cancelled[0]['turn_id'] == 'old-turn'
        assert cancelled[0]['detail'] == {'stage': 'tts', 'superseded_by': 'new-turn'}
        values = tts.diagnostic_values()
        assert values['max_queue'] == 64 and values['queue_policy'] == 'drop oldest'
    finally:
        node.close()
        probe.close()


def test_stop_skips_queued_work_and_join_returns():
    import threading
    pipe, audio, errors, dropped = make()
    for seq in range(3):
        pipe.submit(Job('t1', 1000.0, '第%d句。' % seq, seq))
    pipe.stop()
    worker = threading.Thread(target=pipe.loop)
    worker.start()
    assert pipe.join(timeout=5)
    worker.join(5)
    assert audio == [] and errors == [] and dropped == [] and pipe.primary.calls == []


def test_sigint_mid_synthesis_exits_0_with_kokoro():
    """Kokoro loaded and synthesising, SIGINT: exit code 0 (was 134, a thread in onnxruntime)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip('rclpy')
    try:
        from qwen_voice_ros.tts.kokoro import pack_model_path
        pack_model_path()
        import misaki.zh  # noqa: F401
    except Exception as exc:
        pytest.skip('Kokoro pack not available: %s' % exc)
    from std_msgs.msg import String

    from qwen_voice_ros.nodes import ros_io
    from ros_harness import Probe, random_domain, ros_env
    domain = random_domain()
    node = subprocess.Popen([sys.executable, '-m', 'qwen_voice_ros.nodes.tts_node'],
                            env=ros_env(domain),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    probe = Probe(domain)
    try:
        probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
        pub = probe.publisher(String, 'reply_sentence', ros_io.QOS_TEXT)
        probe.wait_for(lambda: pub.get_subscription_count() > 0 or node.poll() is not None, 90,
                       'tts node up')
        assert node.poll() is None, node.communicate()[0].decode(errors='replace')[-2000:]
        time.sleep(0.5)
        pub.publish(String(data='这是一个很长的句子，用来测试合成过程中按下中断键时进程能否干净地退出。' * 3))
        time.sleep(1.5)   # Kokoro is now inside onnxruntime
        node.send_signal(signal.SIGINT)
        out, _ = node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            os.kill(node.pid, signal.SIGKILL)
            node.wait()
        probe.close()
    assert node.returncode == 0, out.decode(errors='replace')[-2000:]
    assert b'terminate called' not in out
