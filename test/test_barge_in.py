"""Barge-in across processes: a new user turn cancels the reply being spoken.

llm (streaming slowly from the local server), tts and playback (null sink: real-time
timing, no device) run as processes.  While turn A is being spoken, turn B arrives: the llm
cancels A within one network read, playback cuts A off, and the conversation history sent
with B holds A's reply only as far as playback reported it spoken.
"""
from llm_server import ChatServer, reply_for
from ros_harness import text_graph


def _events(probe, stage, turn_id=None):
    return [e for e in probe.events() if e['stage'] == stage
            and (turn_id is None or e['turn_id'] == turn_id)]


def test_new_turn_cuts_the_old_reply_and_history_keeps_only_what_was_spoken():
    from std_msgs.msg import String
    from qwen_voice_ros.nodes import ros_io
    with ChatServer(delay_s=0.2) as server, text_graph(
            server.url, extra_nodes=[('qwen_voice_ros.nodes.playback_node',
                                      {'sink': 'null'})]) as (probe, env):
        transcript = probe.publisher(String, 'transcript', ros_io.QOS_TEXT)
        probe.wait_for(lambda: transcript.get_subscription_count() >= 2, 30, 'subscribers')
        transcript.publish(String(data='请讲一个故事，要很长很长，有开头，有经过，还有结尾，讲得慢一点，让我听清楚每一句话'))
        probe.wait_for(lambda: len(_events(probe, 'playback')) >= 1, 30,
                       'the first sentence of turn A to be played')
        turn_a = _events(probe, 'playback')[0]['turn_id']
        transcript.publish(String(data='停一下。'))
        probe.wait_for(lambda: len(_events(probe, 'reply')) >= 1, 60, 'the reply to turn B')

        cancelled = [e for e in _events(probe, 'cancelled', turn_a) if e['node'] == '/llm']
        assert len(cancelled) == 1
        spoken = cancelled[0]['text']
        played = [e['text'] for e in _events(probe, 'tts_audio', turn_a)
                  if any(p['seq'] == e['seq'] for p in _events(probe, 'playback', turn_a))]
        full_a = reply_for('请讲一个故事，要很长很长，有开头，有经过，还有结尾，讲得慢一点，让我听清楚每一句话')
        # Cancelled mid-reply: part of the reply, not all of it, and never a full reply event.
        assert spoken and full_a.startswith(spoken) and spoken != full_a
        assert not _events(probe, 'reply', turn_a)
        assert spoken.startswith(''.join(played[:1]))
        # Turn B's request carries A's reply only as far as it was spoken.  The system
        # messages (persona, each user turn's reply-style instruction) are left out; the
        # persona's few-shot example turns come before the conversation.
        history = [m for m in server.requests[-1]['messages'] if m['role'] != 'system']
        assert [(m['role'], m['content']) for m in history[-3:]] == [
            ('user', '请讲一个故事，要很长很长，有开头，有经过，还有结尾，讲得慢一点，让我听清楚每一句话'),
            ('assistant', spoken), ('user', '停一下。')]
        assert _events(probe, 'reply')[0]['text'] == reply_for('停一下。')
