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


def test_share_llm_puts_dialect_and_llm_in_one_process_with_per_node_parameters():
    from qwen_voice_ros.stack import runner
    args = runner.parse_args(['share_llm:=true', 'llm_model_dir:=/opt/m', 'capture:=false',
                              'llm_backend:=onnx', 'namespace:=robot1'])
    stack = runner.stack_from_args(args)
    assert [n.name for n in stack] == ['hearing', 'dialect_llm', 'tts', 'playback']
    shared = stack[1]
    assert shared.spec.executable == 'qwen-voice-dialect-llm'
    assert shared.overrides == {'use_sim_time': False, 'autostart': True}
    assert shared.node_overrides == {'dialect': {'llm_model_dir': '/opt/m'},
                                     'llm': {'backend': 'onnx', 'model_dir': '/opt/m'}}
    ros_args = shared.ros_arguments()
    assert not any(a.startswith('__node:=') for a in ros_args)  # both keep their names
    assert ros_args[ros_args.index('-r') + 1] == '__ns:=/robot1'
    node_file = [ros_args[i + 1] for i, a in enumerate(ros_args) if a == '--params-file'][-1]
    with open(node_file) as handle:
        assert yaml.safe_load(handle) == {
            '/**/dialect': {'ros__parameters': {'llm_model_dir': '/opt/m'}},
            '/**/llm': {'ros__parameters': {'backend': 'onnx', 'model_dir': '/opt/m'}}}
    # off by default, and without the dialect node there is nothing to share
    assert 'dialect_llm' not in [n.name for n in runner.stack_from_args(runner.parse_args([]))]
    alone = runner.stack_from_args(runner.parse_args(['share_llm:=true', 'dialect:=false']))
    assert 'llm' in [n.name for n in alone] and 'dialect_llm' not in [n.name for n in alone]


def test_launch_file_starts_the_shared_process_as_one_self_starting_node(monkeypatch):
    pytest.importorskip('lifecycle_msgs')
    import test_launch_stack_parity as parity
    stubs = parity._stub_modules()
    stubs['launch_ros.actions'].Node = type('Node', (parity._Recorded,), {})
    monkeypatch.setattr(parity, '_stub_modules', lambda: stubs)
    actions = parity._launch({'share_llm': 'true', 'llm_model_dir': '/opt/m'})
    plain = [a for a in actions if type(a).__name__ == 'Node']
    lifecycle = [a.kwargs['name'] for a in actions if type(a).__name__ == 'LifecycleNode']
    assert 'dialect' not in lifecycle and 'llm' not in lifecycle and 'tts' in lifecycle
    assert len(plain) == 1
    kwargs = plain[0].kwargs
    assert kwargs['executable'] == 'qwen-voice-dialect-llm' and 'name' not in kwargs
    assert kwargs['respawn'] is True
    assert kwargs['parameters'][-1] == {'use_sim_time': False, 'autostart': True}
