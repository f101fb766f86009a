"""rosbag2 round trips (sqlite3 and mcap), typestore definitions, and the per-turn report."""
import glob
import json
import os
import sqlite3
import threading

import pytest

from qwen_voice_ros.core import events as turn_events
from qwen_voice_ros.replay import bags, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TURNS = ['你好', '今天天气怎么样？', '', 'bye 👋']


@pytest.mark.parametrize('storage', bags.STORAGES)
def test_text_turns_round_trip(tmp_path, storage):
    path = tmp_path / 'turns'
    stamps = bags.write_text_turns_bag(path, TURNS, gap_s=0.25, storage=storage,
                                       with_events=True)
    assert stamps == [bags.DEFAULT_START_NS + i * 250000000 for i in range(len(TURNS))]
    if storage == 'mcap':
        assert glob.glob(str(path / '*.mcap'))
    else:
        assert glob.glob(str(path / '*.db3'))

    infos = {i.topic: i for i in bags.topic_infos(path)}
    assert set(infos) == {'/transcript', '/voice/events'}
    assert infos['/transcript'].count == len(TURNS)
    assert infos['/transcript'].msgtype == 'std_msgs/msg/String'

    messages = list(bags.read_messages(path))
    assert [m.timestamp_ns for m in messages] == sorted(m.timestamp_ns for m in messages)
    texts = [bags.deserialize(m).data for m in messages if m.topic == '/transcript']
    assert texts == TURNS
    events = [turn_events.decode(bags.deserialize(m).data)
              for m in messages if m.topic == '/voice/events']
    assert [e['text'] for e in events] == TURNS
    assert [e['stage'] for e in events] == ['transcript'] * len(TURNS)
    assert len({e['turn_id'] for e in events}) == len(TURNS)

    only = list(bags.read_messages(path, topics=['transcript']))
    assert {m.topic for m in only} == {'/transcript'}
    assert list(bags.read_messages(path, topics=['/nothing'])) == []


@pytest.mark.parametrize('storage', bags.STORAGES)
def test_audio_and_diagnostics_round_trip_with_latched_info(tmp_path, storage):
    store = bags.get_typestore()
    types = store.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=5, nanosec=7), frame_id='t-x-0001')
    import numpy as np
    pcm = np.arange(320, dtype=np.uint8)
    audio = types['audio_common_msgs/msg/AudioDataStamped'](
        header=header, audio=types['audio_common_msgs/msg/AudioData'](data=pcm))
    info = types['audio_common_msgs/msg/AudioInfo'](
        channels=1, sample_rate=16000, sample_format='S16LE', bitrate=256000,
        coding_format='WAVE')
    status = types['diagnostic_msgs/msg/DiagnosticStatus'](
        level=b'\x00'[0], name='tts', message='ok', hardware_id='',
        values=[types['diagnostic_msgs/msg/KeyValue'](key='rtf', value='0.1')])
    diag = types['diagnostic_msgs/msg/DiagnosticArray'](header=header, status=[status])

    path = tmp_path / 'audio'
    with bags.BagRecorder(path, storage=storage) as rec:
        rec.add_topic('tts/audio_info', 'audio_common_msgs/AudioInfo')
        rec.add_topic('/tts/audio', 'audio_common_msgs/msg/AudioDataStamped')
        rec.add_topic('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray')
        rec.write('tts/audio_info', 10, bags.serialize(info, 'audio_common_msgs/msg/AudioInfo'))
        for i in range(3):
            rec.write('/tts/audio', 20 + i, bags.serialize(
                audio, 'audio_common_msgs/msg/AudioDataStamped'))
        rec.write('/diagnostics', 30, bags.serialize(
            diag, 'diagnostic_msgs/msg/DiagnosticArray'))
    assert rec.counts == {'/tts/audio_info': 1, '/tts/audio': 3, '/diagnostics': 1}

    infos = {i.topic: i for i in bags.topic_infos(path)}
    assert infos['/tts/audio_info'].latched
    assert not infos['/tts/audio'].latched
    decoded = {m.topic: bags.deserialize(m) for m in bags.read_messages(path)}
    assert decoded['/tts/audio_info'].sample_rate == 16000
    assert decoded['/tts/audio_info'].coding_format == 'WAVE'
    assert decoded['/tts/audio'].header.frame_id == 't-x-0001'
    assert list(decoded['/tts/audio'].audio.data) == list(pcm)
    assert decoded['/diagnostics'].status[0].values[0].value == '0.1'


def test_embedded_audio_common_msgs_match_third_party():
    folder = os.path.join(REPO, 'third_party', 'audio_common_msgs', 'msg')
    for name, text in bags.AUDIO_COMMON_MSGS.items():
        with open(os.path.join(folder, name.split('/')[-1] + '.msg'), encoding='utf-8') as f:
            assert f.read() == text, name


def test_type_hashes_match_the_built_interfaces():
    """The RIHS01 hashes written into bags equal the ones rosidl generated for rclpy."""
    venv_share = os.path.join(REPO, '.venv', 'share')
    checked = 0
    for msgtype in ('audio_common_msgs/msg/AudioInfo', 'audio_common_msgs/msg/AudioData',
                    'audio_common_msgs/msg/AudioDataStamped', 'std_msgs/msg/String'):
        json_path = os.path.join(venv_share, msgtype + '.json')
        if not os.path.exists(json_path):
            continue
        with open(json_path, encoding='utf-8') as f:
            generated = json.load(f)['type_hashes'][0]['hash_string']
        assert bags.get_typestore().hash_rihs01(msgtype) == generated
        checked += 1
    if not checked:
        pytest.skip('no generated interface JSON under .venv/share')


def test_recorder_accepts_writes_from_other_threads_with_sqlite(tmp_path):
    """ROS callbacks write from the executor's thread; sqlite3 objects are thread-bound."""
    path = tmp_path / 'threads'
    rec = bags.BagRecorder(path, storage='sqlite3').open()
    rec.add_topic('a', 'std_msgs/msg/String')
    threads = [threading.Thread(target=lambda k=k: [
        rec.write('a', k * 1000 + i, bags.string_cdr('%d-%d' % (k, i))) for i in range(50)])
        for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.close()
    assert rec.counts == {'/a': 200}
    db = glob.glob(str(path / '*.db3'))[0]
    assert sqlite3.connect(db).execute('select count(*) from messages').fetchone()[0] == 200
    with pytest.raises(RuntimeError):
        rec.write('a', 1, b'')


def test_rclpy_decodes_rosbags_cdr_and_back():
    rclpy_serialization = pytest.importorskip('rclpy.serialization')
    from audio_common_msgs.msg import AudioInfo
    from std_msgs.msg import String

    raw = bags.string_cdr('四川话：要得')
    assert rclpy_serialization.deserialize_message(raw, String).data == '四川话：要得'
    info = AudioInfo(channels=1, sample_rate=16000, sample_format='S16LE', bitrate=256000,
                     coding_format='WAVE')
    decoded = bags.get_typestore().deserialize_cdr(
        rclpy_serialization.serialize_message(info), 'audio_common_msgs/msg/AudioInfo')
    assert (decoded.channels, decoded.sample_rate, decoded.sample_format, decoded.bitrate,
            decoded.coding_format) == (1, 16000, 'S16LE', 256000, 'WAVE')


def test_msg_text_from_rosidl_fields_registers_unknown_types():
    text, nested = bags.msg_text_from_fields({
        'header': 'std_msgs/Header', 'ids': 'sequence<int32>', 'few': 'sequence<uint8, 4>',
        'grid': 'float[9]', 'name': 'string<8>', 'ok': 'boolean', 'raw': 'octet',
        'more': 'sequence<audio_common_msgs/AudioData>'})
    assert text.splitlines() == [
        'std_msgs/Header header', 'int32[] ids', 'uint8[<=4] few', 'float32[9] grid',
        'string<=8 name', 'bool ok', 'byte raw', 'audio_common_msgs/AudioData[] more']
    assert nested == ['std_msgs/msg/Header', 'audio_common_msgs/msg/AudioData']
    bags.register_msg_text('qvr_test_msgs/msg/Thing', text)
    assert 'qvr_test_msgs/msg/Thing' in bags.get_typestore().types
    assert bags.msgdef_text('qvr_test_msgs/Thing').startswith('std_msgs/Header header')


def _event_bag(path, storage='sqlite3'):
    node = '/test'
    t0 = 100.0
    evs = [
        turn_events.make_event('t-a-0001', 'transcript', node, t0, t0, text='你好'),
        turn_events.make_event('t-a-0001', 'dialect', node, t0 + 0.05, t0, dialect={
            'label': 'sichuanese', 'confidence': 0.82, 'scores': {'sichuanese': 0.82}}),
        turn_events.make_event('t-a-0001', 'reply_sentence', node, t0 + 0.4, t0, text='你好！',
                               seq=0),
        turn_events.make_event('t-a-0001', 'tts_audio', node, t0 + 0.6, t0, seq=0,
                               duration_s=0.8),
        turn_events.make_event('t-a-0001', 'reply_sentence', node, t0 + 0.7, t0,
                               text='有什么事？', seq=1, final=True),
        turn_events.make_event('t-a-0001', 'reply', node, t0 + 0.71, t0, text='你好！有什么事？'),
        turn_events.make_event('t-a-0001', 'tts_audio', node, t0 + 0.9, t0, seq=1,
                               duration_s=1.2, final=True),
        turn_events.make_event('t-a-0002', 'transcript', node, t0 + 3, t0 + 3, text='唱首歌'),
        turn_events.make_event('t-a-0002', 'error', node, t0 + 3.2, t0 + 3,
                               error='llm timeout'),
    ]
    with bags.BagRecorder(path, storage=storage) as rec:
        rec.add_topic('voice/events', 'std_msgs/msg/String')
        for i, event in enumerate(evs):
            rec.write('voice/events', 10**9 + i, bags.string_cdr(turn_events.encode(event)))
        rec.write('voice/events', 10**9 + 99, bags.string_cdr('not json'))


@pytest.mark.parametrize('storage', bags.STORAGES)
def test_report_rows_per_turn(tmp_path, storage):
    path = tmp_path / 'events'
    _event_bag(path, storage)
    rep = report.build_report(path)
    assert rep['events'] == 9 and rep['malformed'] == 1
    first, second = rep['turns']
    assert first['turn_id'] == 't-a-0001'
    assert first['transcript'] == '你好'
    assert (first['dialect'], first['dialect_confidence']) == ('sichuanese', 0.82)
    assert first['reply'] == '你好！有什么事？'
    assert first['tts_chunks'] == 2 and first['tts_audio_s'] == pytest.approx(2.0)
    assert first['latency_s']['dialect'] == pytest.approx(0.05)
    assert first['latency_s']['reply_sentence'] == pytest.approx(0.4)  # first sentence
    assert first['latency_s']['reply'] == pytest.approx(0.71)
    assert first['latency_s']['tts_audio'] == pytest.approx(0.6)  # first chunk
    assert second['errors'] == ['llm timeout'] and second['reply'] is None

    table = report.format_table(rep)
    lines = table.splitlines()
    assert len(lines) == 4
    assert 't-a-0001' in lines[1] and 'sichuanese 0.82' in lines[1] and '0.710' in lines[1]
    assert 'ERROR: llm timeout' in lines[2]
    assert lines[3].startswith('2 turns, 9 events')


def test_report_module_cli_json(tmp_path, capsys):
    path = tmp_path / 'events'
    _event_bag(path)
    assert report.main([str(path), '--json']) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [t['turn_id'] for t in out['turns']] == ['t-a-0001', 't-a-0002']
    assert report.main([str(path)]) == 0
    assert '你好！有什么事？' in capsys.readouterr().out
