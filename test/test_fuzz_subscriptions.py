"""
Hypothesis fuzz of every subscription of every node (issue 8), in process.

The nodes run on a private ROS context without an executor; each test calls one node's
subscription callbacks (exactly what the executor would call) with generated messages --
malformed and valid-but-hostile events, odd texts, random audio and formats -- and checks
that nothing escapes, nothing was caught by the callback guard (``callback_errors`` stays
0: every bad input is handled where it arrives), worker threads live, and health is not
ERROR.  The last test spins the graph and checks that the next real turn, after foreign
``turn_stamp`` values of 1e12, Infinity and 9.9e9, is still answered end to end.
CI runs a tenth of the cases; ``bench/fuzz_subscriptions.py`` runs them all.
"""
import json
import os
import time

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('hypothesis')

from hypothesis import given, strategies as st  # noqa: E402

from fuzz_support import InProcessGraph, fuzz_settings, message_strategy, node_state  # noqa
from llm_server import ChatServer, reply_for  # noqa: E402
from ros_harness import random_domain  # noqa: E402

NODES = ('dialect', 'llm', 'tts', 'playback', 'hearing')
CASES_PER_NODE = 2000  # examples in the full run (each 1-4 messages)
REPORT = os.environ.get('QWEN_VOICE_FUZZ_REPORT', '')


@pytest.fixture(scope='module')
def server():
    with ChatServer() as s:
        yield s


@pytest.fixture(scope='module')
def graph(server):
    g = InProcessGraph(server.url, random_domain())
    yield g
    g.close()


def _report(name, row):
    if REPORT:
        with open(REPORT, 'a', encoding='utf-8') as f:
            f.write(json.dumps(dict(row, node=name), ensure_ascii=False) + '\n')


def test_hand_cases_counted_on_every_events_subscription(graph):
    from std_msgs.msg import String

    from test_events_validation import HAND_CASES
    cases = [c for c in HAND_CASES.values() if isinstance(c, str)]
    for name, node in graph.nodes.items():
        before = dict(node.counters)
        for sub in node.subscriptions:
            if sub.topic_name.endswith('voice/events'):
                for data in cases:
                    sub.callback(String(data=data))
        counted = node.counters.get('bad_events', 0) - before.get('bad_events', 0)
        assert counted == len(cases), (name, counted)
        assert node.counters.get('callback_errors', 0) == 0, node._last_error
        assert node.active


@pytest.mark.parametrize('name', NODES)
def test_fuzz_every_subscription(graph, name):
    if name not in graph.nodes:
        pytest.skip('%s did not configure here: %s' % (name, graph.failed.get(name)))
    node = graph.nodes[name]
    subs = list(node.subscriptions)
    assert subs, '%s has no subscriptions' % name
    batch = st.lists(st.one_of([st.tuples(st.just(i), message_strategy(s))
                                for i, s in enumerate(subs)]), min_size=1, max_size=4)
    delivered = {s.topic_name: 0 for s in subs}
    escaped = []
    start = time.monotonic()

    @fuzz_settings(CASES_PER_NODE)
    @given(batch)
    def run(messages):
        for index, msg in messages:
            try:
                subs[index].callback(msg)
            except BaseException as exc:  # the guard must make this impossible
                escaped.append('%s: %r' % (subs[index].topic_name, exc))
                raise
            delivered[subs[index].topic_name] += 1
        graph.pump(name)

    run()
    state = node_state(node)
    _report(name, {'messages': sum(delivered.values()), 'by_topic': delivered,
                   'seconds': round(time.monotonic() - start, 1), **state})
    assert not escaped
    assert state['counters'].get('callback_errors', 0) == 0, node._last_error
    assert node.active and node.health[0] != 2, node.health
    assert state['counters'].get('bad_events', 0) > 0 or name == 'hearing' \
        and 'voice/events' not in str(delivered)


def test_next_turn_answered_after_fuzz(graph, server):
    missing = [n for n in ('dialect', 'llm', 'tts', 'playback') if n not in graph.nodes]
    if missing:
        pytest.skip('not configured here: %s' % graph.failed)
    from std_msgs.msg import String

    from qwen_voice_ros.core import events
    from qwen_voice_ros.nodes import ros_io
    # foreign stamps from a hostile node: rejected (1e12, Infinity) or clamped (9.9e9)
    now = graph.nodes['llm'].now_s()
    hostile = [events.encode(events.make_event('t-evil-%d' % i, 'transcript', '/evil', stamp,
                                               stamp, text='别理我%d' % i))
               .replace('"Infinity"', 'Infinity')
               for i, stamp in enumerate([1e12, 9.9e9, now + 3600.0])]
    hostile.append(hostile[0].replace('1000000000000.0', 'Infinity'))
    for name, node in graph.nodes.items():
        for sub in node.subscriptions:
            if sub.topic_name.endswith('voice/events'):
                for data in hostile:
                    sub.callback(String(data=data))
    probe = __import__('rclpy').create_node('fuzz_probe', context=graph.context)
    seen = []

    def record(msg):
        try:
            seen.append(events.decode(msg.data))
        except events.EventError as exc:  # a node published an event others would reject
            seen.append({'turn_id': 'invalid', 'stage': 'invalid', 'error': str(exc)})
    probe.create_subscription(String, 'voice/events', record, ros_io.QOS_EVENTS)
    pub = probe.create_publisher(String, 'transcript', ros_io.QOS_TEXT)
    # drain what the fuzz left queued (its texts become turns too): wait for a quiet second
    drain_end, quiet_since, count = time.monotonic() + 60.0, time.monotonic(), -1
    while time.monotonic() < drain_end and time.monotonic() - quiet_since < 1.5:
        graph.spin(0.25, probe)
        if len(seen) != count:
            count, quiet_since = len(seen), time.monotonic()
    drained = len(seen)
    pub.publish(String(data='帮我拿水'))
    answer = reply_for('帮我拿水')
    deadline = time.monotonic() + 30.0
    played = None
    while time.monotonic() < deadline and played is None:
        graph.spin(0.5, probe)
        mine = {e['turn_id'] for e in seen[drained:]
                if e['stage'] == 'transcript' and e.get('text') == '帮我拿水'}
        replies = {e['turn_id'] for e in seen if e['stage'] == 'reply'
                   and e['turn_id'] in mine and answer[:8] in e.get('text', '')}
        played = next((e for e in seen if e['stage'] == 'playback'
                       and e['turn_id'] in replies), None)
    stages = [(e['turn_id'], e['stage'], e.get('error', '')[:60]) for e in seen[drained:]]
    probe.destroy_node()
    assert played is not None, 'no playback of the next turn; replies %s; events: %s; ' \
        'nodes: %s' % ([e.get('text') for e in seen if e['stage'] == 'reply'][-3:],
                       stages[-20:], {n: (v.counters, v.health) for n, v in graph.nodes.items()})
    assert not [e for e in seen if e['stage'] == 'invalid'], 'a node emitted an invalid event'
    for name, node in graph.nodes.items():
        assert node.active and node.health[0] != 2, (name, node.health)
