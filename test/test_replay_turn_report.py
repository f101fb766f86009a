"""qwen-voice-report: per-stage latencies on one clock, reasons, truth, plot (no rclpy)."""
import json

import pytest

from qwen_voice_ros.core.events import make_event
from qwen_voice_ros.core.stream_clock import ArrivalClock
from qwen_voice_ros.replay import turn_report as tr

T0 = 1700000000.0  # node clock at the end of speech


def spoken_turn(turn_id='t-a-0001', t0=T0, text='你好', label='mandarin', turn_stamp=None):
    ts = t0 if turn_stamp is None else turn_stamp

    def ev(stage, dt, node, **kw):
        return make_event(turn_id, stage, node, t0 + dt, ts, **kw)
    return [
        ev('utterance', 0.5, '/hearing', duration_s=1.2),
        ev('transcript', 1.3, '/hearing', text=text, detail={'asr_s': 0.8}),
        ev('dialect', 1.35, '/dialect', text=text, dialect={'label': label, 'confidence': 0.9}),
        ev('reply_sentence', 1.9, '/llm', text='你好！', seq=0),
        ev('tts_audio', 2.4, '/tts', text='你好！', seq=0, duration_s=1.0),
        ev('playback', 3.45, '/playback', seq=0, duration_s=1.0),
        ev('reply_sentence', 2.2, '/llm', text='有事吗？', seq=1),
        ev('reply', 2.3, '/llm', text='你好！有事吗？', final=True,
           detail={'ttft_s': 0.2, 'tok_per_s': 12.5}),
    ]


def test_every_stage_from_the_end_of_speech():
    rows = tr.build_turn_rows(spoken_turn(), [])
    st = rows[0]['stages']
    assert st['eos_detect'] == pytest.approx(0.5)
    assert st['asr'] == pytest.approx(0.8)
    assert st['dialect'] == pytest.approx(0.05)
    assert st['llm_ttft'] == 0.2 and st['llm_tok_per_s'] == 12.5
    assert st['llm_sentence'] == pytest.approx(0.55)   # dialect -> first sentence
    assert st['tts_synth'] == pytest.approx(0.5)       # first sentence -> its audio
    assert st['playout'] == pytest.approx(0.05)        # that audio -> audio out
    assert st['first_sentence'] == pytest.approx(1.9)
    assert st['first_tts_audio'] == pytest.approx(2.4)
    # The real-time sink stamps the chunk's end: audio went out duration_s earlier.
    assert st['first_audio'] == pytest.approx(2.45)
    assert rows[0]['answered'] and rows[0]['why'] == ''
    assert rows[0]['reply'] == '你好！有事吗？'


def test_playback_start_event_is_first_audio_out():
    events = spoken_turn()
    events.append(make_event('t-a-0001', 'playback_start', '/playback', T0 + 2.42, T0,
                             seq=0, duration_s=1.0))
    assert tr.build_turn_rows(events, [])[0]['stages']['first_audio'] == pytest.approx(2.42)


def test_turn_stamp_on_the_bags_audio_clock_is_repaired_not_32_million_seconds():
    # An old hearing node copied the bag's 2023 audio stamps into turn_stamp while every
    # event stamp is on the node clock (years later).
    events = spoken_turn(turn_stamp=T0 - 32e6)
    row = tr.build_turn_rows(events, [])[0]
    assert 'another clock' in row['clock_note'] or 'away from the node clock' in row['clock_note']
    assert row['stages']['first_audio'] == pytest.approx(2.45 - 0.5)
    assert 'eos_detect' not in row['stages']  # unknown: the start was taken from it


def test_percentiles_and_json_keys():
    events = spoken_turn('t-a-1') + spoken_turn('t-a-2', T0 + 20) + spoken_turn('t-a-3', T0 + 40)
    report = tr.assemble(tr.build_turn_rows(events, []), [], {}, len(events), 0)
    assert report['turns'] == 3 and report['answered_turns'] == 3
    assert report['first_audio_p50_s'] == pytest.approx(2.45)
    assert report['first_audio_p95_s'] == pytest.approx(2.45)
    assert tr.percentile([1, 2, 3, 4], 50) == 2.5
    assert tr.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert tr.percentile([], 50) is None
    json.loads(tr.compact_json(report))
    assert '3 turns, 3 answered' in tr.format_report(report)


def test_why_a_turn_was_not_answered():
    diag = [{'name': '/llm: llm', 'level': 2,
             'message': 'configure failed: onnx backend needs model_dir'},
            {'name': '/dialect: dialect', 'level': 0, 'message': 'serving'}]
    stuck = spoken_turn()[:3]  # transcript and dialect, then nothing
    row = tr.build_turn_rows(stuck, diag)[0]
    assert not row['answered']
    assert 'stage not configured' in row['why'] and 'model_dir' in row['why']
    # No node at all for the next stage.
    row = tr.build_turn_rows(spoken_turn()[:5], diag)[0]
    assert 'no playback node' in row['why']
    # An error event, a barge-in.
    err = spoken_turn()[:2] + [make_event('t-a-0001', 'error', '/llm', T0 + 2, T0,
                                          error='reply failed: timeout')]
    assert 'reply failed: timeout' in tr.build_turn_rows(err, diag)[0]['why']
    cut = spoken_turn()[:4] + [make_event('t-a-0001', 'cancelled', '/llm', T0 + 2, T0,
                                          detail={'by_turn': 't-a-0002'})]
    assert 'cancelled' in tr.build_turn_rows(cut, diag)[0]['why']
    # The whole run: no subscriber on the played topic, a node that never configured.
    reasons = tr.graph_reasons({'subscribers': {'/audio_stamped': 0}},
                               tr.latest_health(diag), 0)
    assert any('no subscriber on /audio_stamped' in r for r in reasons)
    assert any('stage not configured: /llm' in r for r in reasons)
    assert any('no voice/events' in r for r in reasons)
    assert 'is the stack running' in tr.graph_reasons({}, {}, 0)[0]


def test_truth_gives_cer_and_dialect_accuracy(tmp_path):
    events = spoken_turn('t-a-1', text='今天巴适得很', label='sichuanese') + \
        spoken_turn('t-a-2', T0 + 20, text='侬今朝夜饭吃啥', label='mandarin')
    truth = tmp_path / 'truth.json'
    truth.write_text(json.dumps({'turns': [
        {'transcript': '今天巴适得很。', 'dialect': 'sichuanese'},
        {'transcript': '侬今朝夜飯吃啥？', 'dialect': 'shanghainese'},
        {'transcript': '第三句没有说出来', 'dialect': 'henan'}]}, ensure_ascii=False))
    rows = tr.build_turn_rows(events, [])
    report = tr.assemble(rows, [], {}, len(events), 0, tr.load_truth(str(truth)))
    assert rows[0]['cer'] == 0.0 and rows[0]['dialect_ok']
    assert rows[1]['cer'] == 0.0  # traditional 飯 = simplified 饭, punctuation ignored
    assert not rows[1]['dialect_ok']
    assert report['dialect_accuracy'] == 0.5 and report['cer'] == 0.0
    assert report['missing_turns'] == 1
    assert tr.cer('今天天气', '今天天') == 0.25
    assert tr.cer('abc', 'xbcd') == pytest.approx(2 / 3)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip('matplotlib')
    events = spoken_turn('t-a-1') + spoken_turn('t-a-2', T0 + 20)[:3]
    report = tr.assemble(tr.build_turn_rows(events, []), [], {}, len(events), 0)
    out = tr.plot(report, str(tmp_path / 'p.png'))
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_arrival_clock_maps_samples_to_receive_time():
    clock = ArrivalClock(keep=8)
    assert clock.time_of(0) is None
    clock.add(512, 10.0)
    clock.add(1024, 10.5)
    clock.add(1024, 11.0)  # an empty message adds nothing
    assert clock.time_of(0) == 10.0 and clock.time_of(511) == 10.0
    assert clock.time_of(512) == 10.5 and clock.time_of(1023) == 10.5
    assert clock.time_of(1024) is None
    assert clock.time_of_s(512 / 16000.0, 16000) == 10.0  # the sample just before 32 ms
    for i in range(3, 20):
        clock.add(512 * i, 10.0 + i)
    assert clock.time_of(512 * 19 - 1) == 29.0 and clock.time_of(0) is None
    clock.reset()
    assert clock.time_of(10) is None


def test_true_end_of_speech_from_truth_and_replay_timing():
    # Bag time 1000 s went out at wall 5000 s; the request ended 3 s into the bag.
    info = {'play_started_wall_s': 5000.0, 'bag_first_ns': 1000 * 10**9, 'rate': 1.0}
    ref = {'transcript': '你好', 'speech_end_s': 3.0, 'bag_start_ns': 1000 * 10**9}
    assert tr.true_end_on_clock(ref, info, 5005.0) == 5003.0       # wall clock nodes
    assert tr.true_end_on_clock(ref, info, 1004.5) == 1003.0       # use_sim_time nodes
    assert tr.true_end_on_clock(ref, {}, 5005.0) is None           # no replay timing
    assert tr.true_end_on_clock({'transcript': 'x'}, info, 5005.0) is None
    events = spoken_turn(t0=5003.2)  # the hearing node's end of speech, 0.2 s late
    rows = tr.build_turn_rows(events, [])
    tr.apply_truth(rows, [ref], info)
    assert rows[0]['stages']['first_audio_true'] == pytest.approx(2.65)
    assert rows[0]['stages']['turn_start_err'] == pytest.approx(0.2)


def test_speech_start_does_not_start_the_turn():
    # speech_start carries the onset as turn_stamp; the turn starts at the end of speech.
    onset = make_event('t-a-0001', 'speech_start', '/hearing', T0 - 2.35, T0 - 2.5)
    row = tr.build_turn_rows([onset] + spoken_turn(), [])[0]
    assert row['turn_start'] == T0 and row['clock_note'] == ''
    assert row['stages']['eos_detect'] == pytest.approx(0.5)
    assert row['stages']['first_audio'] == pytest.approx(2.45)
