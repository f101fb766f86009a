"""Run nodes as separate processes on an isolated DDS domain and watch them from the test.

Each test gets its own ROS_DOMAIN_ID with discovery kept on localhost, so parallel runs and
other machines never cross-talk.  :class:`Probe` is an rclpy node in the test process (own
context, same domain) that publishes inputs and records what the stack publishes.
"""
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASTDDS_PROFILE = os.path.join(REPO, 'config', 'fastdds_fast_discovery.xml')


def random_domain():
    fixed = os.environ.get('QWEN_VOICE_TEST_DOMAIN')  # a shared machine hands out id ranges
    if fixed:
        return int(fixed)
    return random.SystemRandom().randint(101, 230)


def ros_env(domain_id=None):
    """Child-process environment: own domain, localhost discovery, this checkout importable."""
    env = os.environ.copy()
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None else random_domain())
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['FASTRTPS_DEFAULT_PROFILES_FILE'] = FASTDDS_PROFILE
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    env['RCUTILS_LOGGING_BUFFERED_STREAM'] = '0'
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    return env


def param_args(params):
    args = []
    for key, value in params.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, str) and (value == '' or ' ' in value):
            value = json.dumps(value)
        args += ['-p', '%s:=%s' % (key, value)]
    return args


class NodeProcess:
    """A node started with ``python -m <module> --ros-args ...``; its output goes to a file."""

    def __init__(self, module, env, params=None, name=None, extra_args=()):
        self.log = tempfile.NamedTemporaryFile('w+b', suffix='.log', delete=False)
        args = [sys.executable, '-m', module, '--ros-args']
        if name:
            args += ['-r', '__node:=%s' % name]
        args += param_args(params or {}) + list(extra_args)
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log.name, 'rb') as f:
            return f.read().decode(errors='replace')

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)


class Probe:
    """rclpy node in the test process: publish inputs, record outputs, wait for conditions."""

    def __init__(self, domain_id):
        import rclpy
        self.domain = int(domain_id)
        from rclpy.executors import SingleThreadedExecutor
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        os.environ.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', FASTDDS_PROFILE)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = rclpy.create_node('test_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._stop.is_set() or not self.context.ok():
                    return
                raise

    def subscribe(self, msg_type, topic, qos):
        self.received[topic] = []

        def callback(msg):
            with self._lock:
                self.received[topic].append(msg)
        return self.node.create_subscription(msg_type, topic, callback, qos)

    def collect(self, msg_type, topic, qos):
        """Subscribe and append every message to the returned list."""
        received = []

        def callback(msg):
            with self._lock:
                received.append(msg)
        self.node.create_subscription(msg_type, topic, callback, qos)
        return received

    def publisher(self, msg_type, topic, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def messages(self, topic):
        with self._lock:
            return list(self.received.get(topic, []))

    def events(self, topic='voice/events'):
        return [json.loads(m.data) for m in self.messages(topic)]

    def wait_for(self, predicate, timeout=20.0, what='condition'):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError('timed out after %.0f s waiting for %s' % (timeout, what))

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.node.destroy_node()
        self.context.try_shutdown()


def diagnostics_of(probe, node_name):
    """Latest DiagnosticStatus published by a node (by name prefix), or None."""
    for array in reversed(probe.messages('/diagnostics')):
        for status in array.status:
            if status.name.startswith('/' + node_name.lstrip('/')):
                return status
    return None


def level_of(status):
    from qwen_voice_ros.nodes.ros_io import diagnostic_level
    return diagnostic_level(status)


@contextlib.contextmanager
def text_graph(llm_url, dialect_backend='fast', extra_llm_params=None, extra_nodes=()):
    """Start dialect + llm (HTTP backend at ``llm_url``) + tts as processes, and a Probe on them.

    Yields (probe, env) once all three nodes report 'serving' on /diagnostics; the probe
    records voice/events, dialect, reply, reply_sentence, tts/audio and /diagnostics.
    """
    from audio_common_msgs.msg import AudioDataStamped
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    from qwen_voice_ros.nodes import ros_io
    env = ros_env()
    llm_params = {'backend': 'openai_http', 'base_url': llm_url, 'timeout_s': 5.0}
    llm_params.update(extra_llm_params or {})
    nodes = [
        NodeProcess('qwen_voice_ros.nodes.dialect_node', env, {'backend': dialect_backend}),
        NodeProcess('qwen_voice_ros.nodes.llm_node', env, llm_params),
        # espeak-ng: fast and deterministic (the default Kokoro model loads for many seconds).
        NodeProcess('qwen_voice_ros.nodes.tts_node', env, {'backend': 'espeak'}),
    ] + [NodeProcess(module, env, params) for module, params in extra_nodes]
    probe = Probe(env['ROS_DOMAIN_ID'])
    try:
        for topic in ('voice/events', 'dialect', 'reply', 'reply_sentence'):
            probe.subscribe(String, topic, ros_io.QOS_EVENTS)
        probe.subscribe(AudioDataStamped, 'tts/audio', ros_io.QOS_AUDIO)
        probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        probe.wait_for(lambda: all(
            (diagnostics_of(probe, n) is not None
             and diagnostics_of(probe, n).message == 'serving')
            for n in ['dialect', 'llm', 'tts'] + [m.split('.')[-1].replace('_node', '')
                                                  for m, _ in extra_nodes]), 30,
            'all nodes active')
        yield probe, env
    except BaseException:
        for node in nodes:
            print(node.output()[-3000:])
        raise
    finally:
        probe.close()
        for node in nodes:
            node.stop()
