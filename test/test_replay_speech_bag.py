"""Bags of spoken requests and the report CLI on a recorded bag (rosbags, no rclpy)."""
import json
import os

import numpy as np
import pytest

pytest.importorskip('rosbags')

from qwen_voice_ros.core.events import encode, make_event  # noqa: E402
from qwen_voice_ros.replay import bags, speech_bag, turn_report  # noqa: E402

RATE = speech_bag.RATE


def tone(seconds, freq=220.0):
    t = np.arange(int(seconds * RATE)) / float(RATE)
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_speech_bag_is_microphone_audio_with_latched_info(tmp_path, storage):
    path = tmp_path / 'speech'
    timeline = speech_bag.write_speech_bag(str(path), [tone(1.0), tone(0.5, 330.0)],
                                           storage=storage, lead_s=0.5, gap_s=2.0, tail_s=0.5)
    assert timeline == [{'speech_start_s': 0.5, 'speech_end_s': 1.5},
                        {'speech_start_s': 3.5, 'speech_end_s': 4.0}]
    infos = {i.topic: i for i in bags.topic_infos(str(path))}
    assert infos['/audio_info'].latched and not infos['/audio_stamped'].latched
    msgs = list(bags.read_messages(str(path), ['/audio_stamped']))
    chunk = RATE * 32 // 1000
    assert len(msgs) == int(np.ceil(4.5 * RATE / chunk))
    audio = []
    for i, msg in enumerate(msgs):
        decoded = bags.deserialize(msg)
        stamp_ns = decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec
        # header.stamp = the chunk's first sample = the bag time it is played at
        assert stamp_ns == msg.timestamp_ns == bags.DEFAULT_START_NS + i * 32 * 10**6
        audio.append(np.frombuffer(bytes(decoded.audio.data), '<i2'))
    audio = np.concatenate(audio).astype(np.float32) / 32767.0
    rms = lambda a, b: float(np.sqrt(np.mean(audio[int(a * RATE):int(b * RATE)] ** 2)))  # noqa
    assert rms(0.6, 1.4) > 0.1 and rms(3.6, 3.9) > 0.1       # speech where the timeline says
    assert rms(0.0, 0.45) < 1e-3 and rms(1.6, 3.4) < 1e-3    # quiet room noise elsewhere
    info = bags.deserialize(next(iter(bags.read_messages(str(path), ['/audio_info']))))
    assert (info.sample_rate, info.channels, info.sample_format) == (RATE, 1, 'S16LE')


def test_report_cli_on_a_recorded_bag_names_what_is_missing(tmp_path, capsys):
    """A run where the LLM never configured: 1 turn heard, 0 answered, the reason printed."""
    path = tmp_path / 'recorded'
    t0 = 1800000000.0
    events = [make_event('t-x-0001', 'utterance', '/hearing', t0 + 0.7, t0, duration_s=1.5),
              make_event('t-x-0001', 'transcript', '/hearing', t0 + 1.5, t0, text='你好'),
              make_event('t-x-0001', 'dialect', '/dialect', t0 + 1.52, t0, text='你好',
                         dialect={'label': 'mandarin', 'confidence': 0.9})]
    store = bags.get_typestore()
    types = store.types
    status = types['diagnostic_msgs/msg/DiagnosticStatus'](
        level=2, name='/llm: llm', message='configure failed: onnx backend needs model_dir',
        hardware_id='/llm', values=[])
    diag = types['diagnostic_msgs/msg/DiagnosticArray'](
        header=types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id=''),
        status=[status])
    with bags.BagRecorder(str(path)) as rec:
        rec.add_topic('/voice/events', bags.STRING_TYPE)
        rec.add_topic('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray')
        rec.write('/diagnostics', 1, bags.serialize(diag, 'diagnostic_msgs/msg/DiagnosticArray'))
        for i, event in enumerate(events):
            rec.write('/voice/events', 10 + i, bags.string_cdr(encode(event)))
    with open(os.path.join(str(path), 'replay_info.json'), 'w') as f:
        json.dump({'subscribers': {'/audio_stamped': 1}}, f)
    truth = tmp_path / 'truth.json'
    truth.write_text(json.dumps([{'transcript': '你好。', 'dialect': 'mandarin'}],
                                ensure_ascii=False), encoding='utf-8')
    assert turn_report.main([str(path), '--truth', str(truth), '--json',
                             '--plot', str(tmp_path / 'p.png')]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result['turns'] == 1 and result['answered_turns'] == 0
    assert result['first_audio_p50_s'] is None and result['first_audio_p95_s'] is None
    assert result['cer'] == 0.0 and result['dialect_accuracy'] == 1.0
    assert result['stages']['eos_detect']['p50'] == pytest.approx(0.7)
    assert 'not answered: no reply: stage not configured: /llm configure failed' in out
    assert 'why: stage not configured: /llm' in out
    assert (tmp_path / 'p.png').exists()
    # An empty recording still says why there are no turns.
    empty = tmp_path / 'empty'
    with bags.BagRecorder(str(empty)) as rec:
        rec.add_topic('/transcript', bags.STRING_TYPE)
    assert turn_report.main([str(empty)]) == 0
    assert 'is the stack running' in capsys.readouterr().out
