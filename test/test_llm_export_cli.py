"""qwen-voice-export on a tiny random Qwen3: ONNX signature, validation, INT8/INT4, errors."""
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('torch')
pytest.importorskip('transformers')
pytest.importorskip('optimum.exporters.onnx')
onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from qwen_voice_ros.llm.export_cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NUM_LAYERS = 2


@pytest.fixture(scope='session')
def tiny_hf_dir():
    from qwen_voice_ros.llm.tiny_models import build_tiny_hf_model
    # Tied embeddings like Qwen3-0.6B..4B and Qwen2.5-0.5B (exercises the lm_head untying).
    return build_tiny_hf_model(None, arch='qwen3', num_layers=NUM_LAYERS,
                               tie_word_embeddings=True)


def run_cli(capsys, args):
    code = main([str(a) for a in args])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


@pytest.fixture(scope='module')
def fp32_export(tiny_hf_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('export') / 'fp32'
    code = main(['--model', str(tiny_hf_dir), '--out', str(out), '--json'])
    return code, out


def run_subprocess(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    env['PYTHONPATH'] = str(REPO)
    return subprocess.run([sys.executable, '-m', 'qwen_voice_ros.llm.export_cli'] + args,
                          capture_output=True, text=True, env=env, timeout=120, cwd=str(REPO))


def graph_io(model_path):
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [i.name for i in graph.input], [o.name for o in graph.output], graph


def test_fp32_export_has_kv_cache_signature_and_matches_transformers(fp32_export, capsys):
    code, out = fp32_export
    assert code == 0
    inputs, outputs, _ = graph_io(out / 'model.onnx')
    expected_in = ['input_ids', 'attention_mask', 'position_ids']
    expected_out = ['logits']
    for layer in range(NUM_LAYERS):
        expected_in += ['past_key_values.%d.key' % layer, 'past_key_values.%d.value' % layer]
        expected_out += ['present.%d.key' % layer, 'present.%d.value' % layer]
    assert inputs == expected_in
    assert outputs == expected_out
    model = onnx.load(str(out / 'model.onnx'), load_external_data=False)
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [17]
    # The engine directory is self-contained.
    for name in ('config.json', 'generation_config.json', 'tokenizer.json',
                 'tokenizer_config.json', 'export_info.json'):
        assert (out / name).is_file(), name
    assert not (out / '.work').exists()
    info = json.loads((out / 'export_info.json').read_text())
    assert info['status'] == 'ok'
    assert info['quantization'] == {'scheme': 'none', 'external_data': False,
                                    'last_logits_only': True}
    assert info['opset'] == 17
    # Both the graph as exported (all positions) and the shipped one (LM head on the last
    # position only, the engine's faster graph) match transformers.
    assert info['validation']['last_logits_only'] is True
    assert info['validation']['fp32']['last_logits_only'] is False
    # The trimmed graph is stepped token by token, so it is compared at every position too.
    assert info['validation']['positions'] == info['validation']['fp32']['positions'] > 3 * 5
    for result in (info['validation'], info['validation']['fp32']):
        assert result['max_abs_diff'] < 1e-3
        assert result['kv_step_max_abs_diff'] < 1e-3
        assert result['argmax_agreement'] == 1.0
        assert result['prompts'] == 3
    assert info['onnx_bytes'] == (out / 'model.onnx').stat().st_size
    assert set(info['seconds']) >= {'export', 'validate', 'total'}


def test_json_summary_is_the_last_stdout_line(tiny_hf_dir, tmp_path, capsys):
    code, summary = run_cli(capsys, ['--model', tiny_hf_dir, '--out', tmp_path / 'o',
                                     '--no-validate', '--all-logits', '--json'])
    assert code == 0
    assert summary['status'] == 'ok'
    assert summary['quantization']['last_logits_only'] is False
    _, _, graph = graph_io(tmp_path / 'o' / 'model.onnx')
    logits_dims = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert logits_dims[1] == 'sequence_length'  # every position, as optimum exported it
    assert 'validation' not in summary and 'max_abs_diff' not in summary
    assert summary['model_onnx'] == str(tmp_path / 'o' / 'model.onnx')
    assert summary['files']['model.onnx'] == summary['onnx_bytes'] > 0
    assert summary['seconds']['total'] >= summary['seconds']['export'] > 0


@pytest.mark.parametrize('scheme,bits,block', [('int8', 8, 32), ('int4', 4, 16)])
def test_quantised_graph_uses_matmulnbits_and_still_runs(tiny_hf_dir, tmp_path, capsys,
                                                         scheme, bits, block):
    out = tmp_path / scheme
    code, summary = run_cli(capsys, ['--model', tiny_hf_dir, '--out', out, '--quantize', scheme,
                                     '--block-size', block, '--json'])
    assert code == 0, summary
    _, _, graph = graph_io(out / 'model.onnx')
    nbits = [n for n in graph.node if n.op_type == 'MatMulNBits']
    # 7 projections per layer + lm_head (untied from the embedding so it is quantised too).
    assert len(nbits) == 7 * NUM_LAYERS + 1
    for node in nbits:
        attrs = {a.name: a.i for a in node.attribute}
        assert attrs['bits'] == bits and attrs['block_size'] == block
        assert attrs['accuracy_level'] == 4  # int8 activations on CPU (the fast kernels)
    initializers = {t.name for t in graph.initializer}
    assert not [n.name for n in graph.node
                if n.op_type == 'MatMul' and n.input[1] in initializers]
    assert not (out / '.work').exists()  # the fp32 staging graph is removed
    assert summary['quantization']['scheme'] == scheme
    assert summary['quantization']['untied_matmul_weights'] == 1
    assert summary['quantization']['last_logits_only'] is True
    # Validation compares both graphs: the fp32 one exactly, the quantised one loosely.
    assert summary['validation']['fp32']['max_abs_diff'] < 1e-3
    assert np.isfinite(summary['max_abs_diff'])
    assert summary['max_abs_diff'] > summary['validation']['fp32']['max_abs_diff']
    assert summary['argmax_agreement'] >= (0.9 if bits == 8 else 0.6)

    # The quantised graph runs a prefill + KV-cache decode loop on plain ONNX Runtime.
    from qwen_voice_ros.llm.export.validate import DecoderSession
    session = DecoderSession(out / 'model.onnx')
    ids = [5, 17, 42, 99]
    logits, past = session.forward(ids)
    generated = []
    for _ in range(4):
        token = int(np.argmax(logits[-1]))
        generated.append(token)
        logits, past = session.forward([token], past=past, past_len=len(ids) + len(generated) - 1)
        assert np.isfinite(logits).all()
    assert past['past_key_values.0.key'].shape[2] == len(ids) + len(generated)


def test_int8_is_closer_to_transformers_than_int4(tiny_hf_dir, tmp_path, capsys):
    results = {}
    for scheme in ('int8', 'int4'):
        code, summary = run_cli(capsys, ['--model', tiny_hf_dir, '--out', tmp_path / scheme,
                                         '--quantize', scheme, '--json'])
        assert code == 0
        results[scheme] = summary['max_abs_diff']
    assert results['int8'] < results['int4']


def test_missing_model_dir_is_a_clear_error_with_exit_2(tmp_path):
    missing = tmp_path / 'no-such-model'
    proc = run_subprocess(['--model', str(missing), '--out', str(tmp_path / 'o'), '--json'])
    assert proc.returncode == 2
    assert 'does not exist' in proc.stderr and str(missing) in proc.stderr
    assert 'Traceback' not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary['status'] == 'model_not_found'
    assert not (tmp_path / 'o').exists()


def test_unfetchable_hub_id_is_a_clear_error_with_exit_2(tmp_path):
    proc = run_subprocess(['--model', 'Qwen/Qwen3-1.7B-not-cached-here', '--out',
                           str(tmp_path / 'o')],
                          {'HF_HUB_OFFLINE': '1', 'HF_HOME': str(tmp_path / 'hf-home')})
    assert proc.returncode == 2
    assert 'could not be fetched from the Hugging Face Hub' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_directory_without_config_is_rejected(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    code, summary = run_cli(capsys, ['--model', tmp_path / 'empty', '--out', tmp_path / 'o',
                                     '--json'])
    assert code == 2
    assert 'no config.json' in summary['error']


def test_no_model_and_no_existing_export_is_exit_2(tmp_path, capsys):
    code, summary = run_cli(capsys, ['--out', tmp_path / 'o', '--trt-prebuild', '--json'])
    assert code == 2
    assert '--model' in summary['error']


@pytest.mark.skipif('TensorrtExecutionProvider' in ort.get_available_providers(),
                    reason='TensorRT EP present: the prebuild would really run')
def test_trt_prebuild_without_tensorrt_fails_that_step_only(fp32_export, tmp_path, capsys):
    _, src = fp32_export
    out = tmp_path / 'copy'
    shutil.copytree(str(src), str(out))
    before = (out / 'model.onnx').read_bytes()
    code, summary = run_cli(capsys, ['--out', out, '--trt-prebuild', '--trt-cache',
                                     tmp_path / 'cache', '--json'])
    assert code == 4
    assert summary['status'] == 'trt_unavailable'
    assert 'TensorrtExecutionProvider' in summary['trt']['error']
    assert (out / 'model.onnx').read_bytes() == before
    assert 'trt_prebuild' in summary['seconds']
    # The export's own record survives; the failed prebuild is added to it.
    info = json.loads((out / 'export_info.json').read_text())
    assert info['max_abs_diff'] < 1e-3
    assert 'TensorrtExecutionProvider' in info['trt']['error']
