"""The llm and playback nodes driven in-process (no DDS graph): parameters, lifecycle, errors.

Each test makes its own rclpy context; events the node emits are captured from ``emit``.
"""
from __future__ import annotations

import contextlib
import time

import pytest

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('audio_common_msgs')

from llm_server import ChatServer, reply_for  # noqa: E402
from ros_harness import random_domain  # noqa: E402


@contextlib.contextmanager
def in_process(node_class, **params):
    """Init rclpy with ``params`` as overrides, build the node (autostart off), yield it."""
    args = ['--ros-args', '-p', 'autostart:=false']
    for key, value in params.items():
        value = ('true' if value else 'false') if isinstance(value, bool) else value
        args += ['-p', '%s:=%s' % (key, value)]
    context = rclpy.Context()
    rclpy.init(args=args, context=context, domain_id=random_domain())
    import qwen_voice_ros.nodes.base as base
    original = base.LifecycleNode.__init__

    def init(self, name, **kwargs):
        original(self, name, context=context, **kwargs)
    base.LifecycleNode.__init__ = init
    try:
        node = node_class()
    finally:
        base.LifecycleNode.__init__ = original
    node.emitted = []
    emit = node.emit

    def capture(*args, **kwargs):
        event = emit(*args, **kwargs)
        node.emitted.append(event)
        return event
    node.emit = capture
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.spin_until = lambda pred, timeout=10.0: _spin_until(executor, pred, timeout)
    try:
        yield node
    finally:
        node._teardown()
        node.destroy_node()
        context.try_shutdown()


def _spin_until(executor, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)
    raise AssertionError('timed out')


def _stages(node, stage):
    return [e for e in node.emitted if e['stage'] == stage]


def test_bad_parameter_fails_configure_with_one_clear_line():
    from rclpy.lifecycle import TransitionCallbackReturn
    from qwen_voice_ros.nodes.llm_node import LLMNode
    with in_process(LLMNode, max_new_tokens='abc', temperature=1) as node:
        assert node.get_parameter('temperature').value == 1.0   # an int is taken as a float
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "max_new_tokens must be a number, got 'abc'" in node.health[1]


def test_parameters_are_checked_when_set():
    from rclpy.parameter import Parameter
    from qwen_voice_ros.nodes.playback_node import PlaybackNode
    with in_process(PlaybackNode, sink='null') as node:
        desc = node.describe_parameter('sample_rate')
        assert desc.integer_range[0].from_value == 8000 and desc.description
        assert node.describe_parameter('max_pending').description
        result = node.set_parameters([Parameter('sample_rate', value=0)])[0]
        assert not result.successful and '8000' in result.reason
        result = node.set_parameters([Parameter('sink', value='speaker')])[0]
        assert not result.successful and 'sounddevice|wav|null' in result.reason
        assert node.get_parameter('sink').value == 'null'


def test_llm_backend_params_are_namespaced_and_the_old_names_still_work():
    from qwen_voice_ros.nodes.llm_node import LLMNode
    with ChatServer() as server, in_process(LLMNode, backend='openai_http',
                                            base_url=server.url) as node:
        assert node.has_parameter('onnx.model_dir') and node.has_parameter('onnx.max_context')
        assert node.has_parameter('openai_http.connect_timeout_s')
        node.trigger_configure()
        assert node.get_parameter('openai_http.base_url').value == server.url


def test_deactivated_node_publishes_nothing():
    from qwen_voice_ros.nodes.playback_node import PlaybackNode
    with in_process(PlaybackNode, sink='null') as node:
        node.trigger_configure()
        node.trigger_activate()
        assert node.events_pub.is_activated
        node.trigger_deactivate()
        assert not node.events_pub.is_activated


def test_llm_error_speaks_the_fallback_and_a_crashed_worker_restarts():
    from qwen_voice_ros.nodes.llm_node import LLMNode
    with ChatServer() as server, in_process(LLMNode, backend='openai_http',
                                            base_url=server.url, dialect_wait_s=0.0) as node:
        node.trigger_configure()
        node.trigger_activate()
        server.fail_next = True
        node.on_transcript('t-1', node.now_s(), '你好', None)
        node.spin_until(lambda: _stages(node, 'reply_sentence'))
        [error] = _stages(node, 'error')
        assert error['turn_id'] == 't-1' and 'HTTP 500' in error['error']
        [fallback] = _stages(node, 'reply_sentence')
        assert fallback['detail'] == {'fallback': True} and fallback['text'] == \
            node.get_parameter('fallback_text').value
        # A bug in the worker loop itself: reported, the worker restarts, the next turn works.
        session = node.session
        real = session.next_turn
        calls = []

        def broken(timeout=None):
            if not calls:
                calls.append(1)
                raise RuntimeError('worker bug')
            return real(timeout)
        session.next_turn = broken
        node.spin_until(lambda: node.counters.get('worker_restarts') == 1)
        node.on_transcript('t-2', node.now_s() + 1, '第二句话。', None)
        node.spin_until(lambda: _stages(node, 'reply'))
        assert _stages(node, 'reply')[0]['text'] == reply_for('第二句话。')
        assert 'worker llm-worker raised' in node._last_error or node.counters['errors'] >= 2
        # The failed turn is answered in memory by the fallback the user heard, so the next
        # user message stands alone (not merged with the failed one).
        history = [(m['role'], m['content']) for m in server.requests[-1]['messages']
                   if m['role'] != 'system']
        assert history[-3:] == [('user', '你好'), ('assistant', fallback['text']),
                                ('user', '第二句话。')]


def test_llm_cancel_is_published_by_the_newer_turn_not_after_generation():
    from qwen_voice_ros.nodes.llm_node import LLMNode
    with ChatServer(delay_s=0.3) as server, in_process(
            LLMNode, backend='openai_http', base_url=server.url, dialect_wait_s=0.0) as node:
        node.trigger_configure()
        node.trigger_activate()
        node.on_transcript('t-a', node.now_s(), '讲一个很长很长的故事，慢慢讲。', None)
        node.spin_until(lambda: _stages(node, 'reply_sentence'), 20)
        node.on_transcript('t-b', node.now_s() + 0.001, '停。', None)
        [cancel] = _stages(node, 'cancelled')        # published before this call returned
        assert cancel['turn_id'] == 't-a' and cancel['detail']['superseded_by'] == 't-b'
        node.spin_until(lambda: _stages(node, 'reply'), 20)
        assert [e['turn_id'] for e in _stages(node, 'reply')] == ['t-b']
