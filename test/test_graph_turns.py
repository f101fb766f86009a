"""Nodes as separate processes talk over DDS, and every output of a turn carries its id.

dialect, llm (HTTP backend -> a local chat-completions server) and tts (espeak-ng) run as
their own processes on an isolated domain; the test publishes transcripts like a user's own
ASR node would (plain std_msgs/String, no events) and follows the graph's outputs.
"""
import pytest

from llm_server import ChatServer, reply_for
from ros_harness import diagnostics_of, level_of, text_graph

TURNS = ['你好，今天天气怎么样？', '巴适得板，我们去吃火锅嘛。', '侬今朝吃饭了伐？']


@pytest.fixture
def graph():
    with ChatServer() as server:
        with text_graph(server.url) as (probe, env):
            from std_msgs.msg import String
            from qwen_voice_ros.nodes import ros_io
            transcript = probe.publisher(String, 'transcript', ros_io.QOS_TEXT)
            probe.wait_for(lambda: transcript.get_subscription_count() >= 2, 30,
                           'dialect and llm to subscribe to transcript')
            yield probe, transcript, server


def _events(probe, stage):
    return [e for e in probe.events() if e['stage'] == stage]


def _all_spoken(probe):
    """Every finished reply has one tts/audio message per sentence."""
    audio = [m.header.frame_id for m in probe.messages('tts/audio')]
    return all(audio.count(r['turn_id']) == r['seq'] for r in _events(probe, 'reply'))


def test_every_turn_gets_label_reply_and_audio_with_its_turn_id(graph):
    from std_msgs.msg import String
    probe, transcript, server = graph
    for i, text in enumerate(TURNS):
        transcript.publish(String(data=text))
        probe.wait_for(lambda: len(_events(probe, 'reply')) > i and _all_spoken(probe),
                       30, 'reply and audio of turn %d' % i)
    # One turn id per input turn, announced once, shared by every stage.
    announced = _events(probe, 'transcript')
    assert [e['text'] for e in announced] == TURNS
    turn_ids = [e['turn_id'] for e in announced]
    assert len(set(turn_ids)) == len(TURNS)
    for turn_id, text in zip(turn_ids, TURNS):
        dialects = [e for e in _events(probe, 'dialect') if e['turn_id'] == turn_id]
        replies = [e for e in _events(probe, 'reply') if e['turn_id'] == turn_id]
        assert len(dialects) == 1 and len(replies) == 1
        assert replies[0]['text'] == reply_for(text)
        audio = [m for m in probe.messages('tts/audio') if m.header.frame_id == turn_id]
        sentences = [e for e in _events(probe, 'reply_sentence') if e['turn_id'] == turn_id]
        assert len(audio) == len(sentences) >= 2  # streamed: several sentences, each spoken
        assert all(len(m.audio.data) > 1600 for m in audio)  # > 50 ms of S16LE speech
        assert replies[0]['latency_s'] >= 0
    labels = [e['dialect']['label'] for e in _events(probe, 'dialect')]
    assert labels == ['mandarin', 'sichuanese', 'shanghainese']
    assert [m.data for m in probe.messages('dialect')] == labels
    # The LLM was told the user's dialect: the reply-style instruction is a system message
    # right before the newest user message (the persona system prompt stays constant).
    second = server.requests[1]['messages']
    assert second[-1] == {'role': 'user', 'content': TURNS[1]}
    assert second[-2]['role'] == 'system' and '四川话' in second[-2]['content']
    assert '四川话' not in second[0]['content']
    # Conversation memory: the third request carries the first two exchanges (after the
    # system prompt and the persona's fixed example turns; instructions left out).
    history = server.requests[2]['messages']
    assert history[0]['role'] == 'system'
    history = [m for m in history if m['role'] != 'system']
    assert [(m['role'], m['content']) for m in history[-5:]] == [
        ('user', TURNS[0]), ('assistant', reply_for(TURNS[0])),
        ('user', TURNS[1]), ('assistant', reply_for(TURNS[1])), ('user', TURNS[2])]


def test_bad_turns_are_reported_and_the_next_turn_works(graph):
    from std_msgs.msg import String
    probe, transcript, server = graph
    transcript.publish(String(data='   '))             # empty text
    probe.wait_for(lambda: len(_events(probe, 'error')) >= 2, 20, 'errors for empty text')
    server.fail_next = True                             # the LLM server fails once
    transcript.publish(String(data='第一句话。'))
    probe.wait_for(lambda: any('HTTP 500' in e.get('error', '') for e in _events(probe, 'error')),
                   20, 'LLM error event')
    status = diagnostics_of(probe, 'llm')
    probe.wait_for(lambda: 'HTTP 500' in diagnostics_of(probe, 'llm').message, 10,
                   'llm diagnostics to show the failure')
    assert level_of(diagnostics_of(probe, 'llm')) == 1  # WARN: the node keeps serving
    transcript.publish(String(data='第二句话。'))
    probe.wait_for(lambda: any(e['text'] == reply_for('第二句话。') for e in _events(probe, 'reply')),
                   20, 'the next turn to be answered')
    assert status is not None


def test_slow_llm_server_times_out_and_the_next_turn_works(graph):
    from std_msgs.msg import String
    probe, transcript, server = graph
    server.delay_s = 8.0                                # longer than the node's timeout_s (5 s)
    transcript.publish(String(data='慢一点的问题。'))
    words = ('stalled', 'timed out', 'deadline')
    probe.wait_for(lambda: any(w in e.get('error', '') for w in words
                               for e in _events(probe, 'error')), 20, 'LLM timeout error')
    server.delay_s = 0.0
    transcript.publish(String(data='快一点的问题。'))
    probe.wait_for(lambda: any(e['text'] == reply_for('快一点的问题。')
                               for e in _events(probe, 'reply')), 20, 'the next turn')
