"""A replayed bag of transcripts drives dialect -> llm -> tts; the recorded bag holds every turn.

The input bag is written here with rosbags (plain std_msgs/String transcripts, as a user's
`ros2 bag record /transcript` would hold); qwen-voice-replay publishes it into the running
nodes with its timing and records their outputs into a new bag, which is then checked turn
by turn: one dialect label, one reply, and TTS audio whose frame_id is that turn's id.
"""
import json
import subprocess
import sys

import pytest

from llm_server import ChatServer, reply_for
from ros_harness import text_graph
from qwen_voice_ros.replay import bags

TURNS = ['你好，请介绍一下你自己。', '今天巴适得很，我们去耍嘛。', '侬今朝夜饭吃啥？',
         '俺们那嘎达冬天贼拉冷。']
LABELS = ['mandarin', 'sichuanese', 'shanghainese', 'northeastern']


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_replayed_transcripts_come_back_as_labelled_spoken_turns(tmp_path, storage):
    bag_in = tmp_path / 'turns_in'
    bag_out = tmp_path / 'turns_out'
    bags.write_text_turns_bag(str(bag_in), TURNS, gap_s=1.5, storage=storage)
    with ChatServer() as server, text_graph(server.url) as (probe, env):
        replay = subprocess.run(
            [sys.executable, '-m', 'qwen_voice_ros.replay.cli', str(bag_in), '--record',
             str(bag_out), '--storage', storage, '--record-topics', 'voice/events', 'dialect',
             'reply', 'tts/audio', '--wait-for-subscribers', '2', '--tail-s', '6', '--json'],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr[-3000:]
        summary = json.loads(replay.stdout.strip().splitlines()[-1])
        assert summary['published'] == {'/transcript': len(TURNS)}

    recorded = {}
    for msg in bags.read_messages(str(bag_out)):
        recorded.setdefault(msg.topic, []).append(bags.deserialize(msg))
    events = [json.loads(m.data) for m in recorded['/voice/events']]
    turns = [e for e in events if e['stage'] == 'transcript']
    assert [e['text'] for e in turns] == TURNS
    for turn, text, label in zip(turns, TURNS, LABELS):
        turn_id = turn['turn_id']
        mine = [e for e in events if e['turn_id'] == turn_id]
        dialect = [e for e in mine if e['stage'] == 'dialect']
        reply = [e for e in mine if e['stage'] == 'reply']
        assert len(dialect) == 1 and dialect[0]['dialect']['label'] == label
        assert len(reply) == 1 and reply[0]['text'] == reply_for(text)
        audio = [m for m in recorded['/tts/audio'] if m.header.frame_id == turn_id]
        assert len(audio) == reply[0]['seq'] >= 1
        assert all(len(m.audio.data) > 1600 for m in audio)
    # The plain topics were recorded too, in turn order.
    assert [m.data for m in recorded['/dialect']] == LABELS
    assert [m.data for m in recorded['/reply']] == [reply_for(t) for t in TURNS]
