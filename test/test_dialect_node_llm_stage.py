"""The dialect node's LLM stage drives a real ONNX engine (a generated tiny Qwen3).

The label and scores published over DDS must equal what the classifier computes in-process
with the same engine settings, so the node's llm_* parameters really reach the engine; an
unavailable provider fails configure with the reason on /diagnostics.
"""
import pytest

from ros_harness import NodeProcess, Probe, diagnostics_of, level_of, ros_env
from qwen_voice_ros.dialect import load_dialect_classifier
from qwen_voice_ros.llm.tiny_models import tiny_onnx_model

TEXT = '你在搞么子咯？'


def _start(params):
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    from qwen_voice_ros.nodes import ros_io
    env = ros_env()
    node = NodeProcess('qwen_voice_ros.nodes.dialect_node', env, params)
    probe = Probe(env['ROS_DOMAIN_ID'])
    probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
    probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
    return node, probe


def test_llm_stage_asks_the_engine_with_the_node_parameters():
    from std_msgs.msg import String
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    from qwen_voice_ros.nodes import ros_io
    model_dir = str(tiny_onnx_model('qwen3'))
    # backend llm: every turn is scored by the engine (hybrid only when the fast stage is unsure)
    node, probe = _start({'backend': 'llm', 'llm_model_dir': model_dir,
                          'llm_provider': 'cpu', 'llm_max_context': 2048})
    try:
        pub = probe.publisher(String, 'transcript', ros_io.QOS_TEXT)
        probe.wait_for(lambda: pub.get_subscription_count() > 0
                       and getattr(diagnostics_of(probe, 'dialect'), 'message', '') == 'serving',
                       60, 'dialect serving')
        pub.publish(String(data=TEXT))
        probe.wait_for(lambda: [e for e in probe.events() if e['stage'] == 'dialect'], 60,
                       'a dialect event')
        event = [e for e in probe.events() if e['stage'] == 'dialect'][0]
    finally:
        probe.close()
        node.stop()
    expected = load_dialect_classifier(
        stage='llm', llm_scorer=OnnxCausalLM(model_dir, max_context=2048)).classify(TEXT)
    assert event['dialect']['stage'] == 'llm'
    assert event['dialect']['label'] == expected.label
    for label, score in expected.scores.items():
        assert event['dialect']['scores'][label] == pytest.approx(score, abs=1e-6)


def test_unavailable_llm_provider_fails_configure_with_the_reason():
    model_dir = str(tiny_onnx_model('qwen3'))
    node, probe = _start({'backend': 'hybrid', 'llm_model_dir': model_dir,
                          'llm_provider': 'tensorrt'})
    try:
        probe.wait_for(lambda: diagnostics_of(probe, 'dialect') is not None
                       and level_of(diagnostics_of(probe, 'dialect')) == 2, 60,
                       'dialect reports the error')
        message = diagnostics_of(probe, 'dialect').message
    finally:
        probe.close()
        node.stop()
    assert 'configure failed' in message and 'TensorRT' in message, message
