"""Bad model directories and graphs give a clear LLMNotConfigured at load time."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip('onnxruntime')
pytest.importorskip('optimum')
onnx = pytest.importorskip('onnx')

from qwen_voice_ros.llm import tiny_models  # noqa: E402
from qwen_voice_ros.llm.base import LLMNotConfigured  # noqa: E402
from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM, OnnxChatBackend  # noqa: E402


@pytest.fixture(scope='module')
def good_dir():
    return tiny_models.tiny_onnx_model('qwen3')


def copy_model(src, dst):
    shutil.copytree(str(src), str(dst))
    return dst


def test_missing_directory(tmp_path):
    with pytest.raises(LLMNotConfigured, match='does not exist'):
        OnnxCausalLM(tmp_path / 'nope')
    backend = OnnxChatBackend(tmp_path / 'nope')
    with pytest.raises(LLMNotConfigured):
        backend.load()


@pytest.mark.parametrize('victim,match', [('model.onnx', 'no ONNX graph'),
                                          ('tokenizer.json', 'tokenizer.json'),
                                          ('config.json', 'config.json')])
def test_missing_files(good_dir, tmp_path, victim, match):
    model_dir = copy_model(good_dir, tmp_path / 'm')
    (model_dir / victim).unlink()
    with pytest.raises(LLMNotConfigured, match=match):
        OnnxCausalLM(model_dir)


@pytest.mark.parametrize('victim', ['model.onnx', 'tokenizer.json', 'config.json'])
def test_corrupt_files(good_dir, tmp_path, victim):
    model_dir = copy_model(good_dir, tmp_path / 'm')
    data = (model_dir / victim).read_bytes()
    (model_dir / victim).write_bytes(data[:len(data) // 3] + b'\x00garbage')
    with pytest.raises(LLMNotConfigured, match='corrupt|cannot load'):
        OnnxCausalLM(model_dir)


def test_config_disagrees_with_graph(good_dir, tmp_path):
    import json
    model_dir = copy_model(good_dir, tmp_path / 'm')
    config = json.loads((model_dir / 'config.json').read_text())
    config['num_key_value_heads'] = config['num_key_value_heads'] * 2
    (model_dir / 'config.json').write_text(json.dumps(config))
    with pytest.raises(LLMNotConfigured, match='KV heads'):
        OnnxCausalLM(model_dir)


def test_graph_with_unexpected_input(good_dir, tmp_path):
    model_dir = copy_model(good_dir, tmp_path / 'm')
    model = onnx.load(str(model_dir / 'model.onnx'))
    extra = onnx.helper.make_tensor_value_info('token_type_ids', onnx.TensorProto.INT64,
                                               ['batch_size', 'sequence_length'])
    model.graph.input.append(extra)
    onnx.save(model, str(model_dir / 'model.onnx'))
    with pytest.raises(LLMNotConfigured, match='token_type_ids'):
        OnnxCausalLM(model_dir)


def test_graph_without_cache(tmp_path):
    model_dir = tmp_path / 'm'
    model_dir.mkdir()
    good = tiny_models.tiny_onnx_model('qwen3')
    for name in ('config.json', 'tokenizer.json'):
        shutil.copy(str(good / name), str(model_dir / name))
    ids = onnx.helper.make_tensor_value_info('input_ids', onnx.TensorProto.INT64, ['b', 's'])
    mask = onnx.helper.make_tensor_value_info('attention_mask', onnx.TensorProto.INT64,
                                              ['b', 's'])
    out = onnx.helper.make_tensor_value_info('logits', onnx.TensorProto.INT64, ['b', 's'])
    graph = onnx.helper.make_graph([onnx.helper.make_node('Add', ['input_ids', 'attention_mask'],
                                                          ['logits'])], 'g', [ids, mask], [out])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid('', 17)]),
              str(model_dir / 'model.onnx'))
    with pytest.raises(LLMNotConfigured, match='past_key_values'):
        OnnxCausalLM(model_dir)


def test_unavailable_provider_is_clear(good_dir):
    import onnxruntime
    if 'TensorrtExecutionProvider' in onnxruntime.get_available_providers():
        pytest.skip('this machine has TensorRT')
    with pytest.raises(LLMNotConfigured, match='TensorrtExecutionProvider'):
        OnnxCausalLM(good_dir, provider='tensorrt')
