"""Test-suite set-up.

The test folder's helpers are importable (llm_server, ros_harness).  Under Python 3.8 (the
JetPack 5 check, scripts/py38-check) there is no ROS and no torch: test files that need them
are not collected, the ROS-free core tests run.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

NEEDS_FULL_ENV = ('rclpy', 'ros_harness', 'torch', 'transformers', 'optimum', 'audio_common_msgs',
                  'ament_', 'vermin', 'diagnostic_msgs', 'std_msgs', 'rosbags', 'tiny_models',
                  'lifecycle_msgs')

collect_ignore = []
if os.environ.get('QWEN_VOICE_CORE_ONLY') == '1':
    for name in sorted(os.listdir(HERE)):
        if name.startswith('test_') and name.endswith('.py'):
            with open(os.path.join(HERE, name), encoding='utf-8') as f:
                text = f.read()
            if any(token in text for token in NEEDS_FULL_ENV):
                collect_ignore.append(name)


class FakeClock:
    """A settable clock for the core classes that take ``clock`` (seconds, never moves alone)."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


@pytest.fixture
def clock():
    """Return a fresh :class:`FakeClock` at t = 1000 s."""
    return FakeClock()


@pytest.fixture(scope='module')
def probe():
    """Yield a test-process ROS node on a private DDS domain (``probe.domain``), one per module."""
    from ros_harness import Probe, random_domain
    p = Probe(random_domain())
    yield p
    p.close()
