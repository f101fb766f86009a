"""End to end: qwen-voice-replay publishes a bag, an echo node answers, the answers are recorded.

Each test runs the replay CLI and a small rclpy echo node (test/replay_echo.py) as
subprocesses on their own ROS domain, limited to localhost discovery.
"""
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

import pytest

from qwen_voice_ros.replay import bags

pytest.importorskip('rclpy')
pytestmark = pytest.mark.ros

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TURNS = ['你好', '今天天气怎么样？', '给我讲个笑话', 'bye', '再见啦']
GAP_S = 0.4
# Observed on this 2-core machine: gaps within +-5 ms when idle, single outliers up to 62 ms
# at load average 7.  So: the median gap must be tight, each single gap only loosely so
# (still well apart for rate 1 vs rate 2: 0.4 s vs 0.2 s).
GAP_TOLERANCE_S = 0.1
MEDIAN_GAP_TOLERANCE_S = 0.02


@pytest.fixture
def ros_env():
    env = dict(os.environ)
    env.update({
        'ROS_DOMAIN_ID': str(random.randint(101, 230)),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'FASTRTPS_DEFAULT_PROFILES_FILE': os.path.join(REPO, 'config',
                                                       'fastdds_fast_discovery.xml'),
        'PYTHONUNBUFFERED': '1',
        'PYTHONPATH': REPO + os.pathsep + env.get('PYTHONPATH', ''),
    })
    env.pop('ROS_LOCALHOST_ONLY', None)
    return env


@pytest.fixture
def children():
    procs = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)


def start_echo(env, children, pairs, *extra):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, 'replay_echo.py')]
                            + list(pairs) + list(extra),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    children.append(proc)
    assert proc.stdout.readline().strip() == 'ready', 'echo node did not start'
    return proc


def replay_command():
    script = shutil.which('qwen-voice-replay', path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, '-m', 'qwen_voice_ros.replay.cli']


def run_replay(env, children, *args, timeout=40):
    proc = subprocess.Popen(replay_command() + [str(a) for a in args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(proc)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out, err, json.loads(out.strip().splitlines()[-1])


def decoded(path, topic):
    return [(m.timestamp_ns, bags.deserialize(m).data)
            for m in bags.read_messages(path, [topic])]


def assert_gaps(stamps_ns, expected_gap_s):
    gaps = [(b - a) / 1e9 for a, b in zip(stamps_ns, stamps_ns[1:])]
    assert gaps == pytest.approx([expected_gap_s] * len(gaps), abs=GAP_TOLERANCE_S), gaps
    assert statistics.median(gaps) == pytest.approx(expected_gap_s,
                                                    abs=MEDIAN_GAP_TOLERANCE_S), gaps


@pytest.mark.parametrize('rate,in_storage,out_storage', [
    (1.0, 'sqlite3', 'mcap'),
    (2.0, 'mcap', 'sqlite3'),
])
def test_replay_through_echo_node_keeps_content_and_timing(
        tmp_path, ros_env, children, rate, in_storage, out_storage):
    source = tmp_path / 'in'
    bags.write_text_turns_bag(source, TURNS, gap_s=GAP_S, storage=in_storage, with_events=True)
    start_echo(ros_env, children, ['transcript:echo', 'voice/events:events_echo'])
    out_bag = tmp_path / 'out'
    out, _err, summary = run_replay(
        ros_env, children, source, '--rate', rate, '--record', out_bag,
        '--record-topics', 'echo', 'events_echo', 'voice/events:std_msgs/msg/String',
        '--storage', out_storage, '--tail-s', 0.5, '--wait-subscribers-s', 10,
        '--report', '--json')

    assert summary['published'] == {'/transcript': len(TURNS), '/voice/events': len(TURNS)}
    assert summary['recorded'] == {'/echo': len(TURNS), '/events_echo': len(TURNS),
                                   '/voice/events': len(TURNS)}
    assert summary['output'] == str(out_bag)
    assert (out_bag / 'metadata.yaml').exists()
    assert {i.topic: i.count for i in bags.topic_infos(out_bag)}['/echo'] == len(TURNS)

    echoed = decoded(out_bag, 'echo')
    assert [text for _, text in echoed] == TURNS
    assert_gaps([stamp for stamp, _ in echoed], GAP_S / rate)
    span_s = (echoed[-1][0] - echoed[0][0]) / 1e9
    assert span_s == pytest.approx((len(TURNS) - 1) * GAP_S / rate, abs=GAP_TOLERANCE_S)
    # Replay plus tail, not much more (start-up and discovery are not counted).
    assert summary['duration_s'] < span_s + 0.5 + 1.5

    # The events went out and came back intact; the report follows them per turn.
    events = [json.loads(text) for _, text in decoded(out_bag, 'events_echo')]
    assert [e['text'] for e in events] == TURNS
    for turn in TURNS:
        assert turn in out


def test_clock_drives_sim_time_of_a_subscriber(tmp_path, ros_env, children):
    source = tmp_path / 'in'
    stamps = bags.write_text_turns_bag(source, TURNS[:3], gap_s=0.3)
    start_echo(ros_env, children, ['transcript:echo'], '--stamp', '--ros-args', '-p',
               'use_sim_time:=true')
    out_bag = tmp_path / 'out'
    _out, _err, summary = run_replay(
        ros_env, children, source, '--clock', '200', '--record', out_bag,
        '--record-topics', 'echo', '--tail-s', 0.3, '--json')
    assert summary['recorded'] == {'/echo': 3}
    echoed = decoded(out_bag, 'echo')
    texts = [text.rsplit('|', 1) for _, text in echoed]
    assert [t for t, _ in texts] == TURNS[:3]
    sim_ns = [int(ns) for _, ns in texts]
    # The echo node's clock is the bag's time (2023), not wall time, and it advanced with the
    # bag: each message arrived when /clock said roughly its recorded stamp.
    for got, recorded in zip(sim_ns, stamps):
        assert abs(got - recorded) < 0.1e9, (got, recorded)
    assert sim_ns == sorted(sim_ns)


def test_loop_and_topic_filter(tmp_path, ros_env, children):
    source = tmp_path / 'in'
    bags.write_text_turns_bag(source, TURNS[:2], gap_s=0.4, storage='mcap', with_events=True)
    start_echo(ros_env, children, ['transcript:echo'])
    out_bag = tmp_path / 'out'
    _out, _err, summary = run_replay(
        ros_env, children, source, '--topics', 'transcript', '--loops', 3, '--loop-gap-s', 0.4,
        '--rate', 2, '--record', out_bag, '--record-topics', 'echo', '--tail-s', 0.3, '--json')
    assert summary['published'] == {'/transcript': 6}
    echoed = decoded(out_bag, 'echo')
    assert [text for _, text in echoed] == TURNS[:2] * 3
    # In bag time: 0.4 s between the two turns, 0.4 s gap before each repetition; at rate 2.
    assert_gaps([stamp for stamp, _ in echoed], 0.2)


def test_audio_types_and_latched_info_round_trip_through_the_graph(tmp_path, ros_env, children):
    """Latched AudioInfo and raw AudioDataStamped go out and come back decodable."""
    import numpy as np
    from rosbags.interfaces import QosDurability
    from rosbags.rosbag2 import Reader

    types = bags.get_typestore().types
    info = types['audio_common_msgs/msg/AudioInfo'](
        channels=1, sample_rate=16000, sample_format='S16LE', bitrate=256000,
        coding_format='WAVE')
    source = tmp_path / 'audio'
    pcm = (np.arange(640) % 251).astype(np.uint8)
    with bags.BagRecorder(source, storage='mcap') as rec:
        rec.add_topic('/tts/audio_info', 'audio_common_msgs/msg/AudioInfo', latched=True)
        rec.add_topic('/tts/audio', 'audio_common_msgs/msg/AudioDataStamped')
        rec.write('/tts/audio_info', bags.DEFAULT_START_NS,
                  bags.serialize(info, 'audio_common_msgs/msg/AudioInfo'))
        for i in range(4):
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](sec=1700000000, nanosec=i * 20000000),
                frame_id='t-audio-0001')
            msg = types['audio_common_msgs/msg/AudioDataStamped'](
                header=header, audio=types['audio_common_msgs/msg/AudioData'](data=pcm[i:]))
            rec.write('/tts/audio', bags.DEFAULT_START_NS + (i + 1) * 20000000,
                      bags.serialize(msg, 'audio_common_msgs/msg/AudioDataStamped'))

    out_bag = tmp_path / 'out'
    _out, _err, summary = run_replay(
        ros_env, children, source, '--wait-for-subscribers', 0, '--record', out_bag,
        '--record-topics', 'tts/audio_info', 'tts/audio', '--tail-s', 0.3, '--json')
    assert summary['published'] == {'/tts/audio_info': 1, '/tts/audio': 4}
    assert summary['recorded'] == {'/tts/audio_info': 1, '/tts/audio': 4}
    got = [bags.deserialize(m) for m in bags.read_messages(out_bag, ['tts/audio'])]
    assert [list(m.audio.data) for m in got] == [list(pcm[i:]) for i in range(4)]
    assert [m.header.stamp.nanosec for m in got] == [i * 20000000 for i in range(4)]
    assert {m.header.frame_id for m in got} == {'t-audio-0001'}
    (latched_info,) = [bags.deserialize(m) for m in bags.read_messages(out_bag,
                                                                       ['tts/audio_info'])]
    assert (latched_info.sample_rate, latched_info.coding_format) == (16000, 'WAVE')
    with Reader(out_bag) as reader:
        durability = {c.topic: c.ext.offered_qos_profiles[0].durability
                      for c in reader.connections}
        msgtypes = {c.topic: c.msgtype for c in reader.connections}
    assert durability == {'/tts/audio_info': QosDurability.TRANSIENT_LOCAL,
                          '/tts/audio': QosDurability.VOLATILE}
    assert msgtypes['/tts/audio'] == 'audio_common_msgs/msg/AudioDataStamped'


def test_ctrl_c_ends_an_endless_loop_and_still_writes_the_bag(tmp_path, ros_env, children):
    source = tmp_path / 'in'
    bags.write_text_turns_bag(source, TURNS[:2], gap_s=0.1)
    out_bag = tmp_path / 'out'
    proc = subprocess.Popen(
        replay_command() + [str(source), '--loop', '--wait-for-subscribers', '0', '--record',
                            str(out_bag), '--record-topics', 'transcript', '--json'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(proc)
    # The recorder announces itself just before playing starts.
    for line in proc.stderr:
        if 'recording /transcript' in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary['interrupted'] is True
    published = summary['published']['/transcript']
    assert published >= 6  # one message every 0.1 s for about a second
    texts = [bags.deserialize(m).data for m in bags.read_messages(out_bag)]
    assert len(texts) == summary['recorded']['/transcript']
    assert published - 2 <= len(texts) <= published
    assert texts == (TURNS[:2] * len(texts))[:len(texts)]


def test_cli_refuses_bad_input_before_touching_ros(tmp_path, capsys):
    from qwen_voice_ros.replay import cli

    assert cli.main([str(tmp_path / 'missing')]) == 2
    assert 'cannot read bag' in capsys.readouterr().err
    source = tmp_path / 'in'
    bags.write_text_turns_bag(source, ['x'])
    assert cli.main([str(source), '--record', str(source)]) == 2
    assert 'exists already' in capsys.readouterr().err
    assert cli.main([str(source), '--rate', '0']) == 2
