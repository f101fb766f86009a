"""The dialect (llm stage) and llm nodes in one process share one loaded model.

``qwen-voice-dialect-llm`` runs both lifecycle nodes on a MultiThreadedExecutor; with the
dialect node's llm_model_dir = the llm node's onnx.model_dir they use one engine (the
dialect node reports ``llm_engine_users`` 2 on /diagnostics), the dialect scores published
over DDS equal a standalone engine's, the llm node still replies, and Ctrl-C tears both
down cleanly (exit 0).
"""
import os

import pytest
import yaml

from ros_harness import NodeProcess, Probe, diagnostics_of, ros_env
from qwen_voice_ros.dialect import load_dialect_classifier
from qwen_voice_ros.llm.tiny_models import tiny_onnx_model

TEXT = '你在搞么子咯？'


def _value(status, key):
    for item in getattr(status, 'values', []):
        if item.key == key:
            return item.value
    return None


def test_dialect_and_llm_nodes_share_one_engine_in_one_process(tmp_path):
    pytest.importorskip('onnxruntime')
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    from qwen_voice_ros.nodes import ros_io
    model_dir = str(tiny_onnx_model('qwen3'))
    params = tmp_path / 'shared.yaml'
    params.write_text(yaml.safe_dump({
        '/**/dialect': {'ros__parameters': {
            'backend': 'llm', 'llm_model_dir': model_dir, 'llm_provider': 'cpu',
            'llm_max_context': 2048}},
        '/**/llm': {'ros__parameters': {
            'onnx.model_dir': model_dir, 'onnx.provider': 'cpu', 'temperature': 0.0,
            'max_new_tokens': 8, 'dialect_wait_s': 2.0}},
    }))
    env = ros_env(os.environ.get('QWEN_TEST_DOMAIN'))
    node = NodeProcess('qwen_voice_ros.nodes.dialect_llm', env,
                       extra_args=['--params-file', str(params)])
    probe = Probe(env['ROS_DOMAIN_ID'])
    probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
    probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
    try:
        pub = probe.publisher(String, 'transcript', ros_io.QOS_TEXT)

        def serving(name):
            return getattr(diagnostics_of(probe, name), 'message', '') == 'serving'
        probe.wait_for(lambda: pub.get_subscription_count() >= 2 and serving('dialect')
                       and serving('llm'), 90, 'dialect and llm serving\n' + node.output())
        assert _value(diagnostics_of(probe, 'dialect'), 'llm_engine_users') == '2'
        pub.publish(String(data=TEXT))
        probe.wait_for(lambda: [e for e in probe.events() if e['stage'] == 'reply'], 90,
                       'a reply event\n' + node.output())
        dialect = [e for e in probe.events() if e['stage'] == 'dialect'][0]
    finally:
        probe.close()
        node.proc.send_signal(2)
        code = node.proc.wait(timeout=30)
        output = node.output()
        node.stop()
    assert code == 0, output
    expected = load_dialect_classifier(
        stage='llm', llm_scorer=OnnxCausalLM(model_dir, max_context=2048)).classify(TEXT)
    assert dialect['dialect']['stage'] == 'llm'
    assert dialect['dialect']['label'] == expected.label
    for label, score in expected.scores.items():
        assert dialect['dialect']['scores'][label] == pytest.approx(score, abs=1e-6)
