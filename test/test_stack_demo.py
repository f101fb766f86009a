"""The demo waits for the stack's health instead of a fixed sleep before playing turns."""
import pytest
from qwen_voice_ros.stack import demo

pytest.importorskip('diagnostic_msgs')

from ros_harness import NodeProcess, ros_env  # noqa: E402


def test_node_names_follow_switches_and_namespace():
    assert demo.node_fqns([]) == ['/capture', '/hearing', '/dialect', '/llm', '/tts', '/playback']
    assert demo.node_fqns(['namespace:=robot1', 'capture:=false', 'llm:=false']) == [
        '/robot1/hearing', '/robot1/dialect', '/robot1/tts', '/robot1/playback']


def test_settled_means_serving_or_failed():
    assert demo.settled(0, 'serving')
    assert demo.settled(2, 'configure failed: no model')
    assert not demo.settled(1, 'configured (inactive)')
    assert not demo.settled(0, 'starting')


def test_wait_returns_once_nodes_serve_or_fail_and_names_the_missing(monkeypatch):
    env = ros_env()
    monkeypatch.setenv('ROS_DOMAIN_ID', env['ROS_DOMAIN_ID'])
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    serving = NodeProcess('qwen_voice_ros.nodes.dialect_node', env)
    failing = NodeProcess('qwen_voice_ros.nodes.tts_node', env, {'backend': 'no_such_tts'})
    try:
        assert demo.wait_until_settled(['/dialect', '/tts'], 60.0) == []
        assert demo.wait_until_settled(['/dialect', '/nobody'], 2.0) == ['/nobody']
    finally:
        serving.stop()
        failing.stop()
