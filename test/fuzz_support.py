"""
Fuzz sizes for the hypothesis tests of issue 8: a CI profile and the full run.

``QWEN_VOICE_FUZZ=full`` (what ``bench/fuzz_subscriptions.py`` sets) runs every fuzz test at
its full example count (>= 10,000 cases across the suite); the default CI profile runs a
tenth, so the whole suite stays fast.  Hypothesis profiles ``qwen-ci`` / ``qwen-full`` carry
the shared settings (no deadline: a loaded CI machine must not fail on timing).
"""
import os
import time

from hypothesis import HealthCheck, settings

FULL = os.environ.get('QWEN_VOICE_FUZZ', 'ci') == 'full'
CI_FRACTION = 10

settings.register_profile('qwen-ci', deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.filter_too_much])
settings.register_profile('qwen-full', deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.filter_too_much])
PROFILE = settings.get_profile('qwen-full' if FULL else 'qwen-ci')


def fuzz_settings(full_examples: int):
    """Return hypothesis settings for a test worth ``full_examples`` cases in the full run."""
    count = full_examples if FULL else max(20, full_examples // CI_FRACTION)
    return settings(PROFILE, max_examples=count)


# ---- an in-process graph whose subscriptions the fuzz tests call directly ---------------------
# Every node of the stack that subscribes to something is built in this process on a private
# ROS context (no executor spinning while fuzzing): a test calls each subscription's callback
# (the guarded one the node registered) with generated messages, then spins the graph to
# check that the next real turn is still answered end to end.

GRAPH_NODES = (
    # (name, module:class, parameters)
    ('dialect', 'qwen_voice_ros.nodes.dialect_node:DialectNode', {'backend': 'fast'}),
    ('llm', 'qwen_voice_ros.nodes.llm_node:LLMNode', {
        'backend': 'openai_http', 'timeout_s': 5.0, 'dialect_wait_s': 0.2}),
    ('tts', 'qwen_voice_ros.nodes.tts_node:TTSNode', {'backend': 'espeak', 'fallback': ''}),
    ('playback', 'qwen_voice_ros.nodes.playback_node:PlaybackNode', {
        'sink': 'null', 'realtime': False}),
    ('hearing', 'qwen_voice_ros.nodes.hearing_node:HearingNode', {
        'vad_backend': 'energy', 'backend': 'none'}),
)


class InProcessGraph:
    """The stack's subscribing nodes in this process, configured and active, not spinning."""

    def __init__(self, llm_url: str, domain_id: int, only=None):
        import importlib

        import rclpy
        from rclpy.parameter import Parameter

        from qwen_voice_ros.nodes.base import VoiceNode

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.nodes = {}
        self.failed = {}
        original = VoiceNode.__init__
        try:
            for name, target, params in GRAPH_NODES:
                if only and name not in only:
                    continue
                params = dict(params, autostart=False)
                if name == 'llm':
                    params['openai_http.base_url'] = llm_url
                overrides = [Parameter(k, value=v) for k, v in params.items()]

                def patched(node, node_name, _o=overrides, **kwargs):
                    kwargs.setdefault('context', self.context)
                    kwargs.setdefault('parameter_overrides', _o)
                    original(node, node_name, **kwargs)
                VoiceNode.__init__ = patched
                module, _, cls = target.partition(':')
                node = getattr(importlib.import_module(module), cls)()
                VoiceNode.__init__ = original
                node.trigger_configure()
                node.trigger_activate()
                if not node.active:
                    self.failed[name] = node.health[1]
                    node.destroy_node()
                    continue
                self.nodes[name] = node
        finally:
            VoiceNode.__init__ = original

    def subscriptions(self):
        """(node name, node, subscription) for every subscription of every node."""
        for name, node in self.nodes.items():
            for sub in list(node.subscriptions):
                yield name, node, sub

    def pump(self, name: str) -> None:
        """Run every timer of a node once (the executor is not spinning)."""
        for timer in list(self.nodes[name].timers):
            timer.callback()

    def spin(self, seconds: float, probe=None) -> None:
        from rclpy.executors import SingleThreadedExecutor
        executor = SingleThreadedExecutor(context=self.context)
        for node in self.nodes.values():
            executor.add_node(node)
        if probe is not None:
            executor.add_node(probe)
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.02)
        finally:
            executor.shutdown()

    def close(self) -> None:
        for node in self.nodes.values():
            try:
                node.trigger_deactivate()
                node.trigger_cleanup()
            except Exception:
                pass
            node.destroy_node()
        self.context.try_shutdown()


# ---- message strategies ---------------------------------------------------------------------

def _strategies():
    import json as _json

    from hypothesis import strategies as st

    from qwen_voice_ros.core import events

    turn_ids = st.one_of(st.sampled_from(['t-fz-0001', 't-fz-0002', 't-fz-0003']),
                         st.text(max_size=80), st.integers(), st.none(),
                         st.lists(st.text(max_size=3), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    numbers = st.one_of(st.floats(), st.integers(min_value=-10 ** 30, max_value=10 ** 30),
                        st.floats(min_value=0, max_value=events.MAX_STAMP),
                        st.sampled_from([1e12, 9.9e9, 0.0, 1.7e9]),
                        st.text(max_size=12), st.none(), st.booleans())
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
    anything = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
        max_leaves=12)
    dialects = st.one_of(
        st.fixed_dictionaries({'label': st.one_of(st.sampled_from(
            events.DIALECT_LABELS + ('unknown',)), st.none(), st.text(max_size=10))},
            optional={'scores': anything, 'confidence': numbers}),
        anything)
    fields = {
        'schema': st.one_of(st.just(events.SCHEMA), scalars),
        'turn_id': turn_ids,
        'stage': st.one_of(st.sampled_from(events.STAGES), scalars),
        'node': st.one_of(st.sampled_from(['/evil', '/llm', '/tts', '/dialect']), scalars),
        'stamp': numbers, 'turn_stamp': numbers, 'latency_s': numbers,
        'duration_s': numbers,
        'text': st.one_of(st.text(max_size=200), scalars, st.just('好' * 20000)),
        'seq': st.one_of(st.integers(min_value=-5, max_value=2 * 10 ** 6), scalars),
        'final': st.one_of(st.booleans(), scalars),
        'dialect': dialects,
        'thinking': st.one_of(st.text(max_size=50), scalars),
        'error': st.one_of(st.text(max_size=50), scalars),
        'detail': anything,
    }

    @st.composite
    def event_text(draw):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            return draw(st.text(max_size=300))
        if kind == 1:
            depth = draw(st.integers(1, 120000))
            return draw(st.sampled_from(['[', '{"a":'])) * depth
        if kind == 2:
            return _json.dumps(draw(anything))
        # an event-shaped object: valid base, some keys replaced or dropped
        base = events.make_event(draw(st.sampled_from(['t-fz-0001', 't-fz-0002'])),
                                 draw(st.sampled_from(events.STAGES)), '/evil',
                                 1.7e9, 1.7e9, text=draw(st.text(max_size=40)))
        for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)):
            if draw(st.integers(0, 5)) == 0:
                base.pop(key, None)
            else:
                base[key] = draw(fields[key])
        try:
            return _json.dumps(base, ensure_ascii=False, allow_nan=True)
        except (ValueError, TypeError):
            return '{}'

    texts = st.one_of(st.text(max_size=400), st.just(''), st.just('  \n\t'),
                      st.just('好' * 30000), st.text(alphabet='。！？，', max_size=50))

    @st.composite
    def audio(draw):
        from qwen_voice_ros.nodes import ros_io
        msg = ros_io.audio_msgs().AudioDataStamped()
        msg.header.frame_id = draw(st.one_of(
            st.sampled_from(['t-fz-0001', 't-fz-0002', '']), st.text(max_size=50),
            st.just('x' * 5000)))
        msg.header.stamp.sec = draw(st.integers(-2 ** 31, 2 ** 31 - 1))
        msg.header.stamp.nanosec = draw(st.integers(0, 2 ** 32 - 1))
        size = draw(st.sampled_from([0, 1, 2, 3, 320, 640, 6401]))
        msg.audio.data = draw(st.binary(min_size=size, max_size=size))
        return msg

    @st.composite
    def info(draw):
        from qwen_voice_ros.nodes import ros_io
        msg = ros_io.audio_msgs().AudioInfo()
        msg.channels = draw(st.integers(0, 255))
        msg.sample_rate = draw(st.one_of(st.sampled_from([0, 1, 8000, 16000, 48000]),
                                         st.integers(0, 2 ** 32 - 1)))
        msg.sample_format = draw(st.one_of(st.sampled_from(['S16LE', 'F32LE', 'U8', '']),
                                           st.text(max_size=10)))
        msg.bitrate = draw(st.integers(0, 2 ** 32 - 1))
        msg.coding_format = draw(st.one_of(st.sampled_from(['WAVE', 'wave', 'mp3', '']),
                                           st.text(max_size=10)))
        return msg

    return event_text(), texts, audio(), info()


def message_strategy(sub, events_topic: str = 'voice/events'):
    """Hypothesis strategy of messages for one subscription (by message type and topic)."""
    from hypothesis import strategies as st
    from std_msgs.msg import String
    event_text, texts, audio, info = _strategies()
    kind = sub.msg_type.__name__
    if sub.msg_type is String:
        data = event_text if sub.topic_name.strip('/').endswith(events_topic) else texts
        return data.map(lambda d: String(data=d))
    if kind == 'AudioDataStamped':
        return audio
    if kind == 'AudioInfo':
        return info
    return st.builds(sub.msg_type)


def node_state(node) -> dict:
    """Return what a fuzz run checks afterwards: counters, health, live worker threads."""
    import threading
    workers = [t for t in threading.enumerate() if t.name.endswith('worker')]
    return {'counters': dict(node.counters), 'health': node.health, 'active': node.active,
            'workers_alive': sorted(t.name for t in workers if t.is_alive())}
