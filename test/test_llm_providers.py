"""TensorRT / CUDA / CPU provider options derived from the decoder graph's inputs (no GPU)."""
from __future__ import annotations

import pytest

from qwen_voice_ros.llm.base import LLMNotConfigured
from qwen_voice_ros.llm.providers import describe_decoder, expected_inputs_from_config, \
    InputSpec, read_graph_inputs, session_providers, tensorrt_options, trt_profile_shapes

ALL = ['CPUExecutionProvider', 'CUDAExecutionProvider', 'TensorrtExecutionProvider']


def qwen3_1_7b_inputs(layers=28):
    """Build the inputs as optimum exports Qwen3-1.7B (8 KV heads, head_dim 128)."""
    specs = [InputSpec('input_ids', ['batch_size', 'sequence_length'], 'tensor(int64)'),
             InputSpec('attention_mask', ['batch_size', 'past_sequence_length + 1'],
                       'tensor(int64)'),
             InputSpec('position_ids', ['batch_size', 'sequence_length'], 'tensor(int64)')]
    for layer in range(layers):
        for kind in ('key', 'value'):
            specs.append(InputSpec('past_key_values.%d.%s' % (layer, kind),
                                   ['batch_size', 8, 'past_sequence_length', 128],
                                   'tensor(float16)'))
    return specs


def parse_profile(text):
    out = {}
    for item in text.split(','):
        name, shape = item.split(':')
        out[name] = [int(d) for d in shape.split('x')]
    return out


def test_profiles_cover_every_dynamic_input():
    inputs = qwen3_1_7b_inputs()
    shapes = trt_profile_shapes(inputs, max_context=4096, max_prompt=1024, opt_context=512)
    lo = parse_profile(shapes['trt_profile_min_shapes'])
    opt = parse_profile(shapes['trt_profile_opt_shapes'])
    hi = parse_profile(shapes['trt_profile_max_shapes'])
    names = [s.name for s in inputs]
    assert list(lo) == list(opt) == list(hi) == names  # 3 + 2*28 inputs, graph order
    assert len(names) == 59
    assert lo['input_ids'] == [1, 1] and hi['input_ids'] == [1, 1024]
    assert lo['position_ids'] == [1, 1] and hi['position_ids'] == [1, 1024]
    assert lo['attention_mask'] == [1, 1] and opt['attention_mask'] == [1, 513]
    assert hi['attention_mask'] == [1, 4095 + 1024]
    for layer in range(28):
        for kind in ('key', 'value'):
            name = 'past_key_values.%d.%s' % (layer, kind)
            assert lo[name] == [1, 8, 0, 128]
            assert opt[name] == [1, 8, 512, 128]
            assert hi[name] == [1, 8, 4095, 128]
    for name in names:  # min <= opt <= max elementwise, as TensorRT demands
        assert all(a <= b <= c for a, b, c in zip(lo[name], opt[name], hi[name]))


def test_tensorrt_options_fp16_and_cache(tmp_path):
    inputs = qwen3_1_7b_inputs(2)
    opts = tensorrt_options(inputs, max_context=2048, max_prompt=512,
                            cache_dir=str(tmp_path / 'trt'), fp16=True, device_id=0)
    assert opts['trt_fp16_enable'] == '1'
    assert opts['trt_engine_cache_enable'] == '1'
    assert opts['trt_engine_cache_path'] == str(tmp_path / 'trt')
    assert opts['trt_timing_cache_enable'] == '1'
    assert opts['trt_layer_norm_fp32_fallback'] == '1'
    assert all(isinstance(v, str) for v in opts.values())
    assert 'past_key_values.1.value:1x8x2047x128' in opts['trt_profile_max_shapes']
    no_cache = tensorrt_options(inputs, max_context=2048, max_prompt=512, fp16=False)
    assert no_cache['trt_fp16_enable'] == '0' and no_cache['trt_engine_cache_enable'] == '0'
    with pytest.raises(ValueError):
        trt_profile_shapes(inputs, max_context=100, max_prompt=200)


def test_session_providers_order_and_availability(tmp_path):
    inputs = qwen3_1_7b_inputs(2)
    cache = tmp_path / 'engines'
    providers = session_providers('tensorrt', inputs, max_context=1024, max_prompt=256,
                                  trt_cache_dir=str(cache), available=ALL)
    assert [p[0] for p in providers] == ALL[::-1]
    assert cache.is_dir()
    assert providers[0][1]['trt_profile_min_shapes'].startswith('input_ids:1x1,')
    assert [p[0] for p in session_providers('cuda', available=ALL)] == \
        ['CUDAExecutionProvider', 'CPUExecutionProvider']
    assert session_providers('cpu', available=ALL) == [('CPUExecutionProvider', {})]
    with pytest.raises(LLMNotConfigured, match='TensorrtExecutionProvider'):
        session_providers('tensorrt', inputs, available=['CPUExecutionProvider'])
    with pytest.raises(LLMNotConfigured):
        session_providers('vulkan', available=ALL)


def test_unexpected_or_missing_inputs_are_named():
    inputs = qwen3_1_7b_inputs(2) + [InputSpec('token_type_ids', ['b', 's'], 'tensor(int64)')]
    with pytest.raises(LLMNotConfigured, match='token_type_ids'):
        describe_decoder(inputs)
    no_cache = [s for s in qwen3_1_7b_inputs(2) if not s.name.startswith('past')]
    with pytest.raises(LLMNotConfigured, match='past_key_values'):
        describe_decoder(no_cache)
    gap = [s for s in qwen3_1_7b_inputs(3) if s.name != 'past_key_values.1.value']
    with pytest.raises(LLMNotConfigured, match='past_key_values.1.value'):
        describe_decoder(gap)
    with pytest.raises(LLMNotConfigured, match='KV heads'):
        describe_decoder(qwen3_1_7b_inputs(2), num_kv_heads=4)
    layout = describe_decoder(qwen3_1_7b_inputs(2), num_kv_heads=8, head_dim=128)
    assert (layout.num_layers, layout.num_kv_heads, layout.head_dim) == (2, 8, 128)
    assert layout.kv_type == 'tensor(float16)' and layout.has_position_ids


def test_real_export_inputs_match_config_prediction():
    pytest.importorskip('optimum')
    pytest.importorskip('onnx')
    from qwen_voice_ros.llm import tiny_models
    onnx_dir = tiny_models.tiny_onnx_model('qwen3')
    declared = read_graph_inputs(onnx_dir / 'model.onnx')
    predicted = expected_inputs_from_config(onnx_dir / 'config.json')
    assert [s.name for s in declared] == [s.name for s in predicted]
    assert [s.shape[1::2] for s in declared[3:]] == [s.shape[1::2] for s in predicted[3:]]
    shapes = trt_profile_shapes(declared, max_context=256, max_prompt=64)
    assert shapes['trt_profile_opt_shapes'].count('past_key_values') == len(declared) - 3


def test_a_provider_that_did_not_load_is_an_error_not_a_silent_fallback():
    from qwen_voice_ros.llm.base import LLMNotConfigured
    from qwen_voice_ros.llm.providers import check_active_provider
    check_active_provider('cpu', ['CPUExecutionProvider'])
    check_active_provider('tensorrt', ['TensorrtExecutionProvider', 'CUDAExecutionProvider',
                                       'CPUExecutionProvider'])
    # What onnxruntime-gpu did on an H100 without TensorRT libraries: a CUDA session.
    with pytest.raises(LLMNotConfigured, match='libnvinfer'):
        check_active_provider('tensorrt', ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    with pytest.raises(LLMNotConfigured, match='provider cpu'):
        check_active_provider('cuda', ['CPUExecutionProvider'])
