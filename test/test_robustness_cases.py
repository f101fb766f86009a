"""
Issue 8 cases that had no test of their own (see the case table in docs/robustness.md).

- the llm's waiting-turn, dialect and spoken-seq maps stay bounded under a flood of turns;
- a worker that keeps dying puts the node in ERROR health (never "serving" with nothing
  working), after the supervised restarts;
- a malformed event shows up on /diagnostics (``bad_events``, ``last_bad_event``);
- the llm node's downstream watch, wired: audio that playback never reports ends the turn
  with one ``error`` event (``detail.stage`` playback) on the node's clock.
"""
from __future__ import annotations

import time

import pytest

from qwen_voice_ros.dialogue import ReplySession
from qwen_voice_ros.llm.memory import ConversationMemory

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('audio_common_msgs')

from llm_server import ChatServer  # noqa: E402
from test_dialogue_nodes import in_process  # noqa: E402


def test_llm_session_maps_are_bounded_under_a_flood():
    now = [1000.0]
    session = ReplySession(lambda: now[0], ConversationMemory('persona'), dialect_wait_s=5.0)
    for i in range(3000):
        now[0] += 0.001
        session.on_dialect('ghost-%d' % i, 'mandarin')      # labels for turns never seen
        session.on_playback('ghost-%d' % i, i)               # playback of unknown turns
        if i % 2:
            session.on_dialect('t-%d' % i, 'mandarin')       # queued at once, no worker
        session.on_transcript('t-%d' % i, now[0], '第%d句' % i)  # each cuts the one before
    assert len(session._dialects) <= 256 and len(session._spoken_seq) <= 256
    assert len(session._turns) <= 256 and len(session._queue) <= session.max_queue
    assert session.values()['waiting'] <= 1                # older ones were cancelled
    assert len(session.lifecycle.open_turns) <= session.lifecycle.max_open
    assert len(session.lifecycle._ended) <= 4 * session.lifecycle.max_open


def _events_callbacks(node):
    return [s.callback for s in node.subscriptions if s.topic_name.endswith('voice/events')]


def test_a_worker_that_keeps_dying_puts_the_node_in_error():
    from qwen_voice_ros.nodes.base import ERROR
    from qwen_voice_ros.nodes.llm_node import LLMNode
    with ChatServer() as server, in_process(LLMNode, backend='openai_http',
                                            base_url=server.url) as node:
        node.trigger_configure()

        def broken(timeout=None):
            time.sleep(0.01)
            raise RuntimeError('worker bug')
        node.session.next_turn = broken
        node.trigger_activate()
        node.spin_until(lambda: node.health[0] == ERROR)
        assert node.counters['worker_restarts'] == 6          # 5 restarts, then ERROR
        assert 'worker llm-worker died 6 times' in node.health[1]


def test_malformed_events_are_counted_on_diagnostics():
    from std_msgs.msg import String

    from qwen_voice_ros.nodes.base import ERROR
    from qwen_voice_ros.nodes.playback_node import PlaybackNode
    with in_process(PlaybackNode, sink='null') as node:
        node.trigger_configure()
        node.trigger_activate()
        published = []
        node._diag_pub.publish = published.append
        for data in ('{"turn_id": ["a"], "stage": "reply"}', '[' * 100000, 'not json'):
            for callback in _events_callbacks(node):
                callback(String(data=data))
        node.publish_diagnostics()
        values = {kv.key: kv.value for kv in published[-1].status[0].values}
        assert values['bad_events'] == '3' and 'not JSON' in values['last_bad_event'], values
        assert node.health[0] != ERROR
        assert node.counters.get('callback_errors', 0) == 0 and node.active


def test_llm_node_ends_a_turn_playback_never_reported():
    from std_msgs.msg import String

    from qwen_voice_ros.core import events
    from qwen_voice_ros.nodes.base import OK
    from qwen_voice_ros.nodes.llm_node import LLMNode
    with ChatServer() as server, in_process(LLMNode, backend='openai_http',
                                            base_url=server.url,
                                            playback_report_margin_s=0.3) as node:
        node.trigger_configure()
        node.trigger_activate()
        callbacks = _events_callbacks(node)

        def feed(turn_id, stage, **fields):
            data = events.encode(events.make_event(turn_id, stage, '/other', node.now_s(),
                                                   node.now_s() - 1, **fields))
            for callback in callbacks:
                callback(String(data=data))
        feed('t-0', 'playback_start', seq=0, duration_s=0.2)   # a playback stage exists
        feed('t-0', 'playback', seq=0, final=True)
        feed('t-1', 'tts_audio', seq=0, duration_s=0.2)
        feed('t-1', 'tts_audio', seq=1, duration_s=0.2)
        feed('t-2', 'tts_audio', seq=0, duration_s=0.2)
        feed('t-2', 'cancelled', detail={'stage': 'playback'})  # stated: nothing owed
        started = time.monotonic()
        node.spin_until(lambda: [e for e in node.emitted if e['stage'] == 'error'])
        waited = time.monotonic() - started
        [error] = [e for e in node.emitted if e['stage'] == 'error']
        assert error['turn_id'] == 't-1' and 'playback did not report' in error['error']
        assert error['detail'] == {'stage': 'playback', 'reason': 'playback did not report',
                                   'unreported_chunks': 2, 'chunks': 2}
        assert 0.4 < waited < 5.0                              # 0.4 s of audio + 0.3 s margin
        deadline = time.monotonic() + 0.5                      # and only once
        node.spin_until(lambda: time.monotonic() > deadline)
        assert len([e for e in node.emitted if e['stage'] == 'error']) == 1
        assert node.diagnostic_values()['playback_unreported'] == 1
        assert node.health[0] == OK                            # the llm itself is fine
