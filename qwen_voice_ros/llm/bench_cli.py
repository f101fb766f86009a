"""
qwen-voice-bench-llm: this engine vs transformers on one random Qwen3-0.6B-shaped model.

One model (hidden 1024, 16 query / 8 KV heads, head_dim 128, vocabulary 151,936, tied
embeddings, ``--layers`` decoder layers, random weights), one prompt, greedy, 64 new tokens;
runs alternate between transformers' ``generate`` (torch, fp32) and our engine (fp32, INT8
and INT4 MatMulNBits) so drift in machine load hits all of them alike; medians are
reported.  Also: time to first token for a 300-token prompt, the machine's measured memory
bandwidth and each variant's effective bandwidth (weight bytes read per token x tok/s).
Needs the dev extras (torch, transformers, optimum, onnx).  ``--json``: the last line is
one JSON object.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

NEW_TOKENS = 64
TTFT_PROMPT = 300


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def memory_bandwidth_gbs(size_mb: int = 512, repeats: int = 5) -> float:
    """Best-of copy bandwidth (bytes read + written per second) of a large numpy array."""
    src = np.ones(size_mb * (1 << 20) // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def weight_bytes_per_token(model_path: Path) -> int:
    """
    Bytes of weights a decode step reads: initializers not used by Gather alone.

    The embedding table is only gathered (one row per token) unless the LM head reads it
    too (tied weights through a Transpose), in which case it is read in full.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(str(model_path), load_external_data=False)
    other_uses = {name for n in model.graph.node if n.op_type != 'Gather' for name in n.input}
    gathered = {n.input[0] for n in model.graph.node if n.op_type == 'Gather'} - other_uses
    total = 0
    for tensor in model.graph.initializer:
        if tensor.name in gathered:
            continue
        if uses_external_data(tensor):
            info = {e.key: e.value for e in tensor.external_data}
            total += int(info.get('length', 0))
        else:
            total += len(tensor.raw_data) or _typed_size(tensor)
    return total


def _typed_size(tensor) -> int:
    from onnx import helper
    count = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize


def prepare_models(layers: int, seed: int = 0) -> Dict[str, Path]:
    """Build/export/quantise (cached) and return {'hf', 'fp32', 'int8', 'int4'} dirs."""
    from qwen_voice_ros.llm import tiny_models
    from qwen_voice_ros.llm.decode_graph import keep_last_logits_file

    hf_dir = tiny_models.build_tiny_hf_model(
        None, arch='qwen3', hidden_size=1024, num_layers=layers, num_heads=16,
        num_kv_heads=8, head_dim=128, vocab_size=151936, intermediate_size=3072, seed=seed,
        tie_word_embeddings=True)
    log('[bench] HF model: %s' % hf_dir)
    onnx_dir = tiny_models.export_onnx(hf_dir)
    log('[bench] ONNX export: %s' % onnx_dir)
    out = {'hf': hf_dir}
    fp32 = onnx_dir.parent / (onnx_dir.name + '-last')
    if not (fp32 / '.complete').exists():
        _copy_side_files(onnx_dir, fp32)
        keep_last_logits_file(onnx_dir / 'model.onnx', fp32 / 'model.onnx')
        (fp32 / '.complete').write_text('ok\n')
    out['fp32'] = fp32
    from qwen_voice_ros.llm.export.fused_builder import builder_available
    if builder_available():
        # The fused graph (GroupQueryAttention, INT4 tied embedding) is what users run.
        out['int4_fused'] = tiny_models.fused_onnx_model(hf_dir, 'int4')
    for scheme in ('int8', 'int4'):
        qdir = onnx_dir.parent / (onnx_dir.name + '-last-' + scheme)
        if not (qdir / '.complete').exists():
            log('[bench] quantising %s (MatMulNBits) ...' % scheme)
            _copy_side_files(onnx_dir, qdir)
            quantize(fp32 / 'model.onnx', qdir / 'model.onnx', scheme)
            (qdir / '.complete').write_text('ok\n')
        out[scheme] = qdir
    return out


_RSS_PROBE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
from qwen_voice_ros.llm.base import GenerationOptions
from qwen_voice_ros.llm.kernel_count import process_peak_rss_mb
from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
engine = OnnxCausalLM(sys.argv[2], intra_op_threads=int(sys.argv[3]), max_context=1024,
                      max_prompt=512)
ids = engine.encode_chat([{'role': 'user', 'content': '你好，请介绍一下你自己。'}])
engine.generate(ids, GenerationOptions(max_new_tokens=int(sys.argv[4])), stop_token_ids=())
print(json.dumps({'peak_rss_mb': process_peak_rss_mb()}))
'''


def engine_peak_rss_mb(model_dir: Path, threads: int, new_tokens: int) -> float:
    """Peak RSS of a fresh process that loads ``model_dir`` and generates ``new_tokens``."""
    import subprocess
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, '-c', _RSS_PROBE, root, str(model_dir), str(threads),
                          str(new_tokens)], stdout=subprocess.PIPE, check=True)
    return float(json.loads(out.stdout.decode().strip().splitlines()[-1])['peak_rss_mb'])


def _copy_side_files(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(str(dst))
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.suffix in ('.json', '.txt', '.jinja') and path.is_file():
            shutil.copy(str(path), str(dst / path.name))


def quantize(src: Path, dst: Path, scheme: str) -> None:
    """Weight-only MatMulNBits quantisation, through the export tool's quantiser."""
    from qwen_voice_ros.llm.export.quantize import quantize_weights
    info = quantize_weights(src, dst, scheme, block_size=32, accuracy_level=4)
    log('[bench] %s: %s' % (scheme, info))


class TimingStreamer:
    """transformers streamer that timestamps the first generated token."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_token_at: Optional[float] = None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first_token_at is None:  # call 1 is the prompt
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


def run_transformers(model, prompt: List[int], new_tokens: int):
    import torch
    streamer = TimingStreamer()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens,
                             do_sample=False, eos_token_id=None,
                             pad_token_id=0, streamer=streamer)
    end = time.perf_counter()
    tokens = out[0, len(prompt):].tolist()
    first = streamer.first_token_at or end
    return tokens, first - start, (len(tokens) - 1) / max(end - first, 1e-9), \
        len(tokens) / (end - start)


def run_ours(engine, prompt: List[int], new_tokens: int):
    from qwen_voice_ros.llm.base import GenerationOptions
    engine.reset()
    options = GenerationOptions(max_new_tokens=new_tokens)
    start = time.perf_counter()
    first = None
    tokens = []
    for token in engine.generate_ids(prompt, options, stop_token_ids=()):
        if first is None:
            first = time.perf_counter()
        tokens.append(token)
    end = time.perf_counter()
    return tokens, first - start, (len(tokens) - 1) / max(end - first, 1e-9), \
        len(tokens) / (end - start)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-bench-llm', description=__doc__.split(
        '\n')[0])
    parser.add_argument('--json', action='store_true', help='last line: one JSON object')
    parser.add_argument('--runs', type=int, default=5, help='interleaved runs (median)')
    parser.add_argument('--layers', type=int, default=4, help='decoder layers (>= 4)')
    parser.add_argument('--threads', type=int, default=0, help='0: physical cores')
    parser.add_argument('--new-tokens', type=int, default=NEW_TOKENS)
    args = parser.parse_args(argv)
    if args.layers < 4:
        parser.error('--layers must be >= 4')

    import torch
    import transformers

    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM, physical_cores

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    bandwidth = memory_bandwidth_gbs()
    log('[bench] memory bandwidth (numpy copy): %.1f GB/s; threads %d' % (bandwidth, threads))
    dirs = prepare_models(args.layers)
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(dirs['hf']),
                                                                  dtype=torch.float32)
    reference.eval()
    int4_dir = dirs.get('int4_fused', dirs['int4'])
    graph_dirs = {'fp32': dirs['fp32'], 'int8': dirs['int8'], 'int4': int4_dir}
    engines = {name: OnnxCausalLM(path, intra_op_threads=threads, max_context=1024,
                                  max_prompt=512) for name, path in graph_dirs.items()}
    tok = engines['fp32'].tokenizer
    prompt = engines['fp32'].encode_chat([
        {'role': 'system', 'content': '你是一个友好的中文语音助手。'},
        {'role': 'user', 'content': '你好，请介绍一下你自己，今天天气怎么样？'}])
    long_text = '机器人正在充电，电量百分之八十。前方有障碍物，请注意安全。' * 40
    long_prompt = (prompt + tok.encode(long_text))[:TTFT_PROMPT]

    bytes_fp32 = weight_bytes_per_token(dirs['fp32'] / 'model.onnx')
    bytes_per_token = {name: weight_bytes_per_token(path / 'model.onnx')
                       for name, path in graph_dirs.items()}
    bytes_per_token['transformers'] = bytes_fp32

    # Warm-up (allocations, thread pools, one-time graph work).
    run_transformers(reference, prompt, 4)
    for engine in engines.values():
        run_ours(engine, prompt, 4)

    decode: Dict[str, List[float]] = {k: [] for k in ('transformers', 'fp32', 'int8', 'int4')}
    e2e: Dict[str, List[float]] = {k: [] for k in decode}
    ttft: Dict[str, List[float]] = {k: [] for k in decode}
    outputs: Dict[str, List[int]] = {}
    for run in range(args.runs):
        tokens, _, tok_s, e2e_s = run_transformers(reference, prompt, args.new_tokens)
        outputs['transformers'] = tokens
        decode['transformers'].append(tok_s)
        e2e['transformers'].append(e2e_s)
        for name, engine in engines.items():
            tokens, _, tok_s, e2e_s = run_ours(engine, prompt, args.new_tokens)
            outputs.setdefault(name, tokens)
            decode[name].append(tok_s)
            e2e[name].append(e2e_s)
        # TTFT on the long prompt (cache cleared: a full prefill each time).
        ttft['transformers'].append(run_transformers(reference, long_prompt, 1)[1])
        for name, engine in engines.items():
            ttft[name].append(run_ours(engine, long_prompt, 1)[1])
        log('[bench] run %d/%d: decode tok/s %s' % (run + 1, args.runs, {
            k: round(v[-1], 2) for k, v in decode.items()}))

    from qwen_voice_ros.llm.kernel_count import kernels_per_decode_step
    kernels = kernels_per_decode_step(int4_dir / 'model.onnx', threads=threads)['kernels']
    int4_rss = engine_peak_rss_mb(int4_dir, threads, args.new_tokens)
    med = {k: statistics.median(v) for k, v in decode.items()}
    med_e2e = {k: statistics.median(v) for k, v in e2e.items()}
    med_ttft = {k: statistics.median(v) for k, v in ttft.items()}
    tokens_match = outputs['fp32'] == outputs['transformers']
    # Ratios are taken within each interleaved run (same machine state), then the median.
    ratio = statistics.median(o / t for o, t in zip(decode['fp32'], decode['transformers']))
    int4_ratio = statistics.median(q / o for q, o in zip(decode['int4'], decode['fp32']))
    result = {
        'ours_tok_s': round(med['fp32'], 2),
        'transformers_tok_s': round(med['transformers'], 2),
        'ratio': round(ratio, 2),
        'int8_tok_s': round(med['int8'], 2),
        'int4_tok_s': round(med['int4'], 2),
        'int4_over_fp32': round(int4_ratio, 2),
        'decode_tok_s_per_run': {k: [round(x, 2) for x in v] for k, v in decode.items()},
        'tokens_match': tokens_match,
        'ttft_ms_300': {k: round(v * 1000, 1) for k, v in med_ttft.items()},
        'e2e_tok_s': {k: round(v, 2) for k, v in med_e2e.items()},
        'effective_gb_s': {k: round(bytes_per_token[k] * med[k] / 1e9, 2) for k in med},
        'weight_mb_per_token': {k: round(v / 1e6, 1) for k, v in bytes_per_token.items()},
        'memory_bandwidth_gb_s': round(bandwidth, 1),
        'kernels_per_step': kernels,
        'int4_peak_rss_mb': round(int4_rss, 1),
        'int4_graph': 'fused' if 'int4_fused' in dirs else 'plain',
        'int4_over_transformers': round(statistics.median(
            q / t for q, t in zip(decode['int4'], decode['transformers'])), 2),
        'runs': args.runs, 'threads': threads, 'layers': args.layers,
        'new_tokens': args.new_tokens, 'prompt_tokens': len(prompt),
    }
    print('model: Qwen3-0.6B-shaped, %d layers, random weights; prompt %d tokens, greedy %d new'
          % (args.layers, len(prompt), args.new_tokens))
    print('%-14s %10s %10s %12s %10s' % ('variant', 'decode t/s', 'e2e t/s', 'TTFT300 ms',
                                         'eff GB/s'))
    for name in ('transformers', 'fp32', 'int8', 'int4'):
        label = name if name == 'transformers' else 'ours-' + name
        print('%-14s %10.2f %10.2f %12.1f %10.2f' % (
            label, med[name], med_e2e[name], med_ttft[name] * 1000,
            result['effective_gb_s'][name]))
    print('ratio ours/transformers (fp32 decode, median of per-run ratios): %.2fx; INT4/fp32: '
          '%.2fx; tokens match: %s; '
          'machine bandwidth %.1f GB/s' % (result['ratio'], result['int4_over_fp32'],
                                           tokens_match, bandwidth))
    print('INT4 (%s graph): %d kernels per decode step, peak RSS %.1f MB, %.2fx transformers'
          % (result['int4_graph'], kernels, int4_rss, result['int4_over_transformers']))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
