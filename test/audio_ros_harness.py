"""Helpers for the audio node tests: nodes as child processes, an rclpy probe in this process.

The domain, environment and probe come from ros_harness (shared with the text-graph tests);
this module adds the audio-node process wrapper and diagnostics helpers.
"""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from ros_harness import REPO, Probe, param_args, random_domain, ros_env  # noqa: F401 (re-exported)
from ros_harness import level_of as diag_level  # noqa: F401 (re-exported)


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


def diag_statuses(msgs: list, node_fqn: str) -> list:
    """Return the DiagnosticStatus entries of one node (name starts with its FQN)."""
    out = []
    for array in list(msgs):
        for status in array.status:
            if status.name.startswith(node_fqn + ':'):
                out.append(status)
    return out


def diag_values(status) -> Dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
