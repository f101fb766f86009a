"""Helpers for the audio node tests: nodes as child processes, an rclpy probe in this process.

Each test module gets a random ROS domain (101-230) with discovery kept on localhost and the
fast-discovery profile; the probe uses its own rclpy Context, so it does not collide with any
other test's use of the global context.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = os.path.join(REPO, 'config', 'fastdds_fast_discovery.xml')


def ros_env(domain_id: int) -> Dict[str, str]:
    env = dict(os.environ)
    env.update({'ROS_DOMAIN_ID': str(domain_id), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                'FASTRTPS_DEFAULT_PROFILES_FILE': PROFILE, 'PYTHONUNBUFFERED': '1',
                'RCUTILS_LOGGING_BUFFERED_STREAM': '0'})
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    return env


def param_args(params: Dict[str, object]) -> List[str]:
    args = []
    for key, value in params.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, str) and value == '':
            value = "''"
        args += ['-p', '%s:=%s' % (key, value)]
    return args


class NodeProcess:
    """One node run as ``python -m qwen_voice_ros.nodes.<module>``; output kept in a log."""

    def __init__(self, module: str, params: Dict[str, object], domain_id: int, log_path: str,
                 namespace: str = '', extra_env: Optional[Dict[str, str]] = None):
        cmd = [sys.executable, '-m', 'qwen_voice_ros.nodes.%s' % module, '--ros-args']
        cmd += param_args(params)
        if namespace:
            cmd += ['-r', '__ns:=%s' % namespace]
        env = ros_env(domain_id)
        env.update(extra_env or {})
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: the node tears down like on Ctrl-C
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


class Probe:
    """An rclpy node in this process, spinning on a background thread."""

    def __init__(self, domain_id: int, name: str = 'audio_test_probe'):
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        os.environ.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', PROFILE)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not self.context.ok():
                    return
                raise

    def collect(self, msg_type, topic: str, qos) -> list:
        """Subscribe and append every message to the returned list."""
        received: list = []

        def on_msg(msg):
            with self.lock:
                received.append(msg)
        self.node.create_subscription(msg_type, topic, on_msg, qos)
        return received

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=2.0)


def wait_for(condition: Callable[[], object], timeout: float, what: str = 'condition',
             procs: Optional[List[NodeProcess]] = None, interval: float = 0.05):
    """Poll until ``condition()`` is truthy; fail with the node logs on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for proc in procs or []:
            if proc.proc.poll() is not None:
                raise AssertionError('node exited (rc=%s) while waiting for %s:\n%s'
                                     % (proc.proc.returncode, what, proc.log()[-3000:]))
        time.sleep(interval)
    logs = '\n'.join('--- %s ---\n%s' % (p.log_path, p.log()[-3000:]) for p in procs or [])
    raise AssertionError('timed out after %.1f s waiting for %s\n%s' % (timeout, what, logs))


def random_domain() -> int:
    return random.SystemRandom().randint(101, 230)


def diag_statuses(msgs: list, node_fqn: str) -> list:
    """Return the DiagnosticStatus entries of one node (name starts with its FQN)."""
    out = []
    for array in list(msgs):
        for status in array.status:
            if status.name.startswith(node_fqn + ':'):
                out.append(status)
    return out


def diag_level(status) -> int:
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def diag_values(status) -> Dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
