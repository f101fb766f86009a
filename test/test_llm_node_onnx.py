"""The llm node on its default backend: the ONNX Runtime engine with a generated tiny Qwen3.

The reply published over DDS must be exactly what the engine generates in-process for the
same chat (greedy), so the node really drives the engine, memory and splitter end to end.
"""
from ros_harness import NodeProcess, Probe, diagnostics_of, ros_env
from qwen_voice_ros.llm import GenerationOptions, create_backend
from qwen_voice_ros.llm.memory import DEFAULT_PERSONA, ConversationMemory
from qwen_voice_ros.llm.thinking import ThinkFilter
from qwen_voice_ros.llm.tiny_models import tiny_onnx_model


def _expected_reply(model_dir, user_text, max_new_tokens):
    backend = create_backend('onnx', model_dir=str(model_dir))
    backend.load()
    memory = ConversationMemory(DEFAULT_PERSONA, 'mandarin', 1536,
                                count_tokens=backend.count_tokens)
    memory.add_user(user_text)
    think = ThinkFilter()
    options = GenerationOptions(max_new_tokens=max_new_tokens, temperature=0.0,
                                repetition_penalty=1.0)
    for delta in backend.stream_chat(memory.messages(), options):
        think.feed(delta)
    think.flush()
    return think.spoken.strip()


def test_llm_node_replies_with_the_onnx_engine():
    from std_msgs.msg import String
    from diagnostic_msgs.msg import DiagnosticArray
    from qwen_voice_ros.nodes import ros_io
    model_dir = tiny_onnx_model('qwen3')
    env = ros_env()
    node = NodeProcess('qwen_voice_ros.nodes.llm_node', env, {
        'backend': 'onnx', 'model_dir': str(model_dir), 'temperature': 0.0,
        'repetition_penalty': 1.0, 'max_new_tokens': 24})
    probe = Probe(env['ROS_DOMAIN_ID'])
    try:
        probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
        probe.subscribe(String, 'reply', ros_io.QOS_TEXT)
        probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        pub = probe.publisher(String, 'transcript', ros_io.QOS_TEXT)
        probe.wait_for(lambda: pub.get_subscription_count() > 0
                       and diagnostics_of(probe, 'llm') is not None
                       and diagnostics_of(probe, 'llm').message == 'serving', 60, 'llm active')
        pub.publish(String(data='你好'))
        probe.wait_for(lambda: probe.messages('reply'), 60, 'a reply')
        reply_event = [e for e in probe.events() if e['stage'] == 'reply'][0]
        assert reply_event['detail']['backend'] == 'onnx'
        expected = _expected_reply(model_dir, '你好', 24)
        assert expected  # the random model does say something
        assert probe.messages('reply')[0].data == expected == reply_event['text']
    finally:
        probe.close()
        node.stop()
