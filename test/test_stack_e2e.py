"""The e2e runner's parameter file and the llm node's reply timing (no processes)."""
import pytest

from qwen_voice_ros.stack import e2e


def test_params_point_hearing_at_the_bag_topic_and_playback_at_wav(tmp_path):
    params = e2e.stack_params('/robot/audio_stamped', 'robot/audio_info', str(tmp_path),
                              '/asr', llm_model_dir='/m', min_silence_ms=600)
    assert params['hearing']['audio_topic'] == 'robot/audio_stamped'
    assert params['hearing']['info_topic'] == 'robot/audio_info'
    assert params['hearing']['faster_whisper.model_dir'] == '/asr'
    assert params['hearing']['min_silence_ms'] == 600
    assert params['playback'] == {'sink': 'wav', 'wav_dir': str(tmp_path), 'realtime': True}
    assert params['llm']['onnx.model_dir'] == '/m'
    text = e2e.params_yaml(params)
    assert '/**/hearing:\n  ros__parameters:\n    audio_topic: "robot/audio_stamped"' in text


def test_bench_measures_the_stack_defaults_not_its_own_latency_settings(tmp_path):
    # The latency choices live in config/voice_stack.yaml (what qwen-voice-stack and the
    # launch file load), so the e2e bench must not set them itself.
    import os

    import yaml
    params = e2e.stack_params('audio_stamped', 'audio_info', str(tmp_path), '/asr')
    latency_keys = {'min_silence_ms', 'speculative_silence_ms', 'first_min_chars',
                    'first_max_chars', 'faster_whisper.temperature_fallback',
                    'faster_whisper.cpu_threads', 'onnx.intra_op_threads', 'kokoro.threads'}
    for node, values in params.items():
        assert not latency_keys & set(values), (node, values)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'config', 'voice_stack.yaml'), encoding='utf-8') as f:
        config = yaml.safe_load(f)
    hearing = config['/**/hearing']['ros__parameters']
    llm = config['/**/llm']['ros__parameters']
    assert hearing['min_silence_ms'] == 700 and hearing['speculative_silence_ms'] == 200
    assert hearing['faster_whisper.temperature_fallback'] is False
    assert (llm['first_min_chars'], llm['first_max_chars']) == (4, 6)


def test_llm_reply_timing():
    llm_node = pytest.importorskip('qwen_voice_ros.nodes.llm_node')
    timing = llm_node._timing(10.0, [10.4, 10.5, 10.6, 10.8])
    assert timing['ttft_s'] == pytest.approx(0.4) and timing['tokens'] == 4
    assert timing['tok_per_s'] == pytest.approx(7.5)
    assert llm_node._timing(1.0, [1.2])['tok_per_s'] is None


def test_a_turn_is_over_when_its_reply_has_played_or_it_failed():
    def ev(stage, **kw):
        return dict(kw, stage=stage, turn_id='t-1')
    assert not e2e.turn_finished([ev('utterance'), ev('transcript')])
    reply = ev('reply', seq=2)
    assert not e2e.turn_finished([reply, ev('playback_start'), ev('playback')])
    assert e2e.turn_finished([reply, ev('playback'), ev('playback')])
    assert e2e.turn_finished([ev('transcript'), ev('error')])
    assert e2e.turn_finished([ev('transcript'), ev('cancelled')])


def test_info_bag_primes_the_format_only(tmp_path):
    pytest.importorskip('rosbags')
    from qwen_voice_ros.replay import bags, speech_bag
    speech_bag.write_info_bag(str(tmp_path / 'format'))
    infos = bags.topic_infos(str(tmp_path / 'format'))
    assert [(i.topic, i.count, i.latched) for i in infos] == [('/audio_info', 1, True)]
