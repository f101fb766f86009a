"""The fused decode graph (GroupQueryAttention, SkipSimplifiedLayerNorm) on the engine.

Token parity with transformers on tiny random Qwen3 and Qwen2 models (fp32, two chat turns
reusing the cache), and the INT4 graph with tied embeddings: one quantised table shared by
GatherBlockQuantized and the LM head, far fewer nodes than optimum's export.
"""
from __future__ import annotations

import pytest

pytest.importorskip('onnxruntime')
torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
pytest.importorskip('onnxruntime_genai', reason='onnxruntime-genai (export extra) not installed')

from qwen_voice_ros.llm import tiny_models  # noqa: E402
from qwen_voice_ros.llm.base import GenerationOptions  # noqa: E402
from qwen_voice_ros.llm.export.fused_builder import count_ops  # noqa: E402
from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM  # noqa: E402

SYSTEM = {'role': 'system', 'content': '你是一个机器人助手。'}


def _greedy(reference, prompt, n):
    with torch.no_grad():
        out = reference.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize('arch', ['qwen3', 'qwen2'])
def test_fused_graph_matches_transformers(arch):
    hf_dir = tiny_models.build_tiny_hf_model(None, arch=arch)
    fused = tiny_models.fused_onnx_model(hf_dir, 'fp32')
    ops = count_ops(fused / 'model.onnx')
    assert ops.get('GroupQueryAttention') == 2 and ops.get('SkipSimplifiedLayerNormalization')
    plain = tiny_models.export_onnx(hf_dir) / 'model.onnx'
    assert sum(ops.values()) * 3 < sum(count_ops(plain).values())
    from qwen_voice_ros.llm.kernel_count import kernels_per_decode_step
    fused_step = kernels_per_decode_step(fused / 'model.onnx')
    assert fused_step['by_op']['GroupQueryAttention'] == 2
    assert fused_step['kernels'] * 3 < kernels_per_decode_step(plain)['kernels']
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir)).eval()
    engine = OnnxCausalLM(fused, max_context=512)
    assert not engine.has_position_ids and engine.last_logits_only
    turn1 = [SYSTEM, {'role': 'user', 'content': '你好，今天天气怎么样？'}]
    prompt1 = engine.encode_chat(turn1)
    reply1 = engine.generate(prompt1, GenerationOptions(max_new_tokens=32), stop_token_ids=())
    assert reply1 == _greedy(reference, prompt1, 32) and len(set(reply1)) > 3
    turn2 = turn1 + [{'role': 'assistant', 'content': engine.tokenizer.decode(reply1, True)},
                     {'role': 'user', 'content': '再说一遍。'}]
    prompt2 = engine.encode_chat(turn2)
    reply2 = engine.generate(prompt2, GenerationOptions(max_new_tokens=16), stop_token_ids=())
    assert engine.last_stats['reused_tokens'] > len(prompt1) // 2
    assert reply2 == _greedy(reference, prompt2, 16)


def test_fused_int4_shares_one_quantised_embedding_table():
    import onnx
    hf_dir = tiny_models.build_tiny_hf_model(None, arch='qwen3', tie_word_embeddings=True)
    fused = tiny_models.fused_onnx_model(hf_dir, 'int4')
    model = onnx.load(str(fused / 'model.onnx'))
    gbq = [n for n in model.graph.node if n.op_type == 'GatherBlockQuantized']
    assert len(gbq) == 1
    lm_head = [n for n in model.graph.node if 'logits' in n.output][0]
    assert lm_head.op_type == 'MatMulNBits'
    producers = {o: n for n in model.graph.node for o in n.output}
    table = producers[gbq[0].input[0]]  # a Reshape of the packed table
    assert table.op_type == 'Reshape' and table.input[0] == lm_head.input[1]
    assert list(gbq[0].input[2:4]) == list(lm_head.input[2:4])  # same scales, zero points
    floats = [t for t in model.graph.initializer
              if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2
              and sorted(t.dims) == [64, 637]]
    assert not floats  # no float copy of the vocabulary table
    engine = OnnxCausalLM(fused, max_context=256)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': '你好，今天天气怎么样？'}])
    out = engine.generate(prompt, GenerationOptions(max_new_tokens=8), stop_token_ids=())
    assert len(out) == 8
    # The quantised lookup is right: first-step logits track the fp32 fused graph's.
    import numpy as np
    reference = OnnxCausalLM(tiny_models.fused_onnx_model(hf_dir, 'fp32'), max_context=256)
    engine.reset()
    assert np.corrcoef(engine._prefill(prompt), reference._prefill(prompt))[0, 1] > 0.95


def test_export_cli_fused_int4(tmp_path, capsys):
    import json
    from qwen_voice_ros.llm.export_cli import main
    hf_dir = tiny_models.build_tiny_hf_model(None, arch='qwen2', tie_word_embeddings=True)
    out = tmp_path / 'fused'
    assert main(['--model', str(hf_dir), '--out', str(out), '--quantize', 'int4', '--fused',
                 '--json']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['status'] == 'ok' and summary['fused']['ops']['GroupQueryAttention'] == 2
    assert summary['fused']['ops']['GatherBlockQuantized'] == 1
    engine = OnnxCausalLM(out, max_context=128)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': '你好'}])
    assert len(engine.generate(prompt, GenerationOptions(max_new_tokens=4),
                               stop_token_ids=())) == 4


def test_decode_step_profile_splits_time_by_op():
    from qwen_voice_ros.llm.kernel_count import decode_step_profile
    fused = tiny_models.fused_onnx_model(tiny_models.build_tiny_hf_model(None, arch='qwen2'),
                                         'fp32')
    prof = decode_step_profile(fused / 'model.onnx', past=16, steps=3)
    assert prof['steps'] == 3 and prof['model_run_us'] >= prof['kernel_us'] > 0
    assert 'GroupQueryAttention' in prof['by_op_us'] and len(prof['top_nodes_us']) == 5
    assert abs(sum(prof['by_op_share'].values()) - 1.0) < 0.01
