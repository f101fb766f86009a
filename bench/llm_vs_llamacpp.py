#!/usr/bin/env python3
"""
Our ONNX engine (fused INT4 / INT8 graphs) vs llama.cpp vs transformers on the same GGUF.

The model is the offline pack (Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, sha256-pinned; see
``llm/export/offline_pack.py``).  Prepared once under ``.cache/llm_vs_llamacpp/``: the GGUF
is reassembled, dequantised by transformers into a Hugging Face directory (fp32: the
transformers baseline), and built into fused INT4 and INT8 decoder graphs
(``llm/export/fused_builder.py``).  llama.cpp runs the GGUF itself (Q4_K_M) and a Q8_0
requantised from it (``--no-q8``: skip).

Every variant lives in its own worker process (so its peak RSS is its own) and the parent
runs interleaved rounds: each round every worker generates ``--new-tokens`` greedy tokens
from the same prompt token ids (EOS ignored) and times a ~300-token prefill, so a change in
machine load hits all variants alike; medians are reported, ratios are medians of per-round
ratios.  Also: kernels per decode step of each ONNX graph (ORT profiler).  ``--json``: the
last line is one JSON object.  Needs llama-cpp-python (optional; see docs/llm.md for the
build flags) -- without it the llama.cpp columns are null.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / '.cache' / 'llm_vs_llamacpp'
PACK = 'qwen2.5-coder-0.5b'
PROMPT_MESSAGES = [{'role': 'system', 'content': '你是一个友好的中文语音助手。'},
                   {'role': 'user', 'content': '你好，请介绍一下你自己，今天天气怎么样？'}]
LONG_TEXT = '机器人正在充电，电量百分之八十。前方有障碍物，请注意安全。' * 40
LONG_TOKENS = 300


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    from qwen_voice_ros.llm.kernel_count import process_peak_rss_mb
    return process_peak_rss_mb()


# -- preparation -----------------------------------------------------------------------------
def prepare(with_q8: bool) -> Dict[str, Path]:
    """Reassemble / convert / build (each step cached); return the artefact paths."""
    from qwen_voice_ros.llm.export import offline_pack
    from qwen_voice_ros.llm.export.fused_builder import build_fused, cached_build_is_current

    pack = offline_pack.get_pack(PACK)
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = {'gguf': offline_pack.assemble(offline_pack.locate_parts(pack),
                                           CACHE / pack.gguf_file, pack.sha256)}
    paths['hf'] = offline_pack.gguf_to_hf(paths['gguf'], CACHE / 'hf')
    for precision in ('int4', 'int8'):
        out = CACHE / ('fused-' + precision)
        # Rebuilt when the export defaults changed since (e.g. the INT4 block size).
        if not cached_build_is_current(out, precision):
            log('[prepare] building the fused %s graph ...' % precision)
            build_fused(paths['hf'], out, precision)
        paths['fused-' + precision] = out
    if with_q8:
        q8 = CACHE / 'qwen2.5-coder-0.5b-instruct-q8_0-requant.gguf'
        if not q8.is_file():
            try:
                requantize_q8(paths['gguf'], q8)
            except Exception as exc:  # llama-cpp-python missing or refused
                log('[prepare] no Q8_0 GGUF: %s' % exc)
        if q8.is_file():
            paths['q8_gguf'] = q8
    return paths


def requantize_q8(src: Path, dst: Path) -> None:
    import ctypes

    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = 2
    tmp = dst.with_name(dst.name + '.partial')
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(),
                                        ctypes.byref(params))
    if rc != 0:
        raise RuntimeError('llama_model_quantize returned %d' % rc)
    os.replace(str(tmp), str(dst))


def prompt_ids(model_dir: Path, tok=None):
    from qwen_voice_ros.llm import chat_template
    from qwen_voice_ros.llm.tokenizer import QwenTokenizer
    tok = tok or QwenTokenizer(model_dir)
    text = chat_template.render_chat(PROMPT_MESSAGES, add_generation_prompt=True,
                                     enable_thinking=False,
                                     flavor=chat_template.flavor_for_model_type('qwen2'))
    ids = tok.encode(text)
    return ids, (ids + tok.encode(LONG_TEXT))[:LONG_TOKENS]


# -- workers ---------------------------------------------------------------------------------
class OursRunner:
    def __init__(self, path: str, threads: int) -> None:
        from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
        self.engine = OnnxCausalLM(path, intra_op_threads=threads, max_context=1024,
                                   max_prompt=512)

    def run(self, ids: List[int], n: int):
        from qwen_voice_ros.llm.base import GenerationOptions
        self.engine.reset()
        start = time.perf_counter()
        first, out = None, []
        for token in self.engine.generate_ids(ids, GenerationOptions(max_new_tokens=n),
                                              stop_token_ids=()):
            if first is None:
                first = time.perf_counter()
            out.append(token)
        return out, first - start, time.perf_counter() - first


class LlamaRunner:
    def __init__(self, path: str, threads: int) -> None:
        from llama_cpp import Llama
        self.llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads,
                         n_ctx=1024, n_batch=512, seed=0, verbose=False)

    def run(self, ids: List[int], n: int):
        start = time.perf_counter()
        first, out = None, []
        for token in self.llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0,
                                       repeat_penalty=1.0, reset=True):
            if first is None:
                first = time.perf_counter()
            out.append(int(token))
            if len(out) >= n:
                break
        return out, first - start, time.perf_counter() - first


class TransformersRunner:
    def __init__(self, path: str, threads: int) -> None:
        import torch
        import transformers
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32).eval()

    def run(self, ids: List[int], n: int):
        from qwen_voice_ros.llm.bench_cli import run_transformers
        tokens, ttft, decode_rate, _ = run_transformers(self.model, ids, n)
        return tokens, ttft, (len(tokens) - 1) / decode_rate if decode_rate else 0.0


RUNNERS = {'ours': OursRunner, 'llama': LlamaRunner, 'transformers': TransformersRunner}


def worker(kind: str, path: str, threads: int) -> int:
    """Serve ``run N`` / ``prefill`` / ``quit`` lines on stdin with one JSON line each."""
    started = time.perf_counter()
    runner = RUNNERS[kind](path, threads)
    # The engine's own tokenizer where there is one (no second copy in the RSS figure).
    engine = getattr(runner, 'engine', None)
    ids, long_ids = prompt_ids(Path(path) if kind != 'llama' else CACHE / 'hf',
                               engine.tokenizer if engine is not None else None)
    runner.run(ids, 4)  # warm-up
    print(json.dumps({'ready': True, 'load_s': time.perf_counter() - started,
                      'rss_mb': peak_rss_mb()}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == 'quit':
            break
        if cmd[0] == 'run':
            n = int(cmd[1])
            tokens, ttft, decode_s = runner.run(ids, n)
            print(json.dumps({'tokens': tokens, 'ttft_s': ttft,
                              'decode_tok_s': (len(tokens) - 1) / max(decode_s, 1e-9)}),
                  flush=True)
        elif cmd[0] == 'prefill':
            _, ttft, _ = runner.run(long_ids, 1)
            print(json.dumps({'ttft_s': ttft}), flush=True)
    print(json.dumps({'peak_rss_mb': peak_rss_mb()}), flush=True)
    return 0


class Worker:
    def __init__(self, name: str, kind: str, path: Path, threads: int) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--worker', kind, str(path),
             '--threads', str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            universal_newlines=True, cwd=str(ROOT))
        self.ready = self._read()

    def _read(self) -> Dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('worker %s died (exit %s)' % (self.name, self.proc.wait()))
        return json.loads(line)

    def ask(self, command: str) -> Dict:
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> Dict:
        result = self.ask('quit')
        self.proc.wait(timeout=60)
        return result


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--threads', type=int, default=0, help='0: physical cores')
    ap.add_argument('--new-tokens', type=int, default=64)
    ap.add_argument('--no-transformers', action='store_true')
    ap.add_argument('--no-q8', action='store_true', help='skip llama.cpp Q8_0')
    ap.add_argument('--plain', default=str(ROOT / 'models' / 'qwen2.5-coder-0.5b-int8'),
                    help="optimum-export INT8 directory to include ('' to skip)")
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--worker', nargs=2, metavar=('KIND', 'PATH'), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from qwen_voice_ros.llm.onnx_engine import physical_cores
    threads = args.threads or physical_cores()
    if args.worker:
        return worker(args.worker[0], args.worker[1], threads)

    try:
        import llama_cpp
        llama_version = getattr(llama_cpp, '__version__', '?')
    except ImportError:
        llama_cpp, llama_version = None, None
        log('[bench] llama-cpp-python not installed: llama.cpp columns are null')
    paths = prepare(with_q8=llama_cpp is not None and not args.no_q8)
    from qwen_voice_ros.llm.kernel_count import kernels_per_decode_step

    specs = [('ours-int4', 'ours', paths['fused-int4']),
             ('ours-int8', 'ours', paths['fused-int8'])]
    if args.plain and (Path(args.plain) / 'model.onnx').is_file():
        specs.append(('ours-int8-plain', 'ours', Path(args.plain)))
    if llama_cpp is not None:
        specs.append(('llamacpp-q4_k_m', 'llama', paths['gguf']))
        if 'q8_gguf' in paths:
            specs.append(('llamacpp-q8_0', 'llama', paths['q8_gguf']))
    if not args.no_transformers:
        specs.append(('transformers-fp32', 'transformers', paths['hf']))
    kernels = {}
    cache_file = CACHE / 'kernels.json'
    known = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    for name, kind, path in specs:
        if kind == 'ours':
            graph = Path(path) / 'model.onnx'
            key = '%s:%s' % (graph, graph.stat().st_mtime)
            if key not in known:
                log('[bench] counting kernels per decode step: %s' % name)
                known[key] = kernels_per_decode_step(graph, threads=threads)
                cache_file.write_text(json.dumps(known))
            kernels[name] = known[key]
            log('[bench] %s: %d kernels per decode step' % (name, kernels[name]['kernels']))
    workers = []
    for name, kind, path in specs:
        log('[bench] starting %s (%s)' % (name, path))
        workers.append(Worker(name, kind, path, threads))
    decode: Dict[str, List[float]] = {w.name: [] for w in workers}
    ttft: Dict[str, List[float]] = {w.name: [] for w in workers}
    tokens: Dict[str, List[int]] = {}
    loads = []
    for run in range(args.runs):
        loads.append(os.getloadavg()[0])
        for w in workers:
            reply = w.ask('run %d' % args.new_tokens)
            decode[w.name].append(reply['decode_tok_s'])
            tokens.setdefault(w.name, reply['tokens'])
        for w in workers:
            ttft[w.name].append(w.ask('prefill')['ttft_s'])
        log('[bench] round %d/%d (load %.1f): %s' % (run + 1, args.runs, loads[-1], {
            k: round(v[-1], 1) for k, v in decode.items()}))
    rss = {w.name: w.close()['peak_rss_mb'] for w in workers}

    def ratio(a: str, b: str) -> Optional[float]:
        if a not in decode or b not in decode:
            return None
        return round(statistics.median(x / y for x, y in zip(decode[a], decode[b])), 3)

    def agree(a: str, b: str) -> Optional[int]:
        if a not in tokens or b not in tokens:
            return None
        n = 0
        for x, y in zip(tokens[a], tokens[b]):
            if x != y:
                break
            n += 1
        return n

    med = {k: round(statistics.median(v), 2) for k, v in decode.items()}
    result = {
        'int4_tok_s': med.get('ours-int4'), 'int8_tok_s': med.get('ours-int8'),
        'int8_plain_tok_s': med.get('ours-int8-plain'),
        'llamacpp_q4_k_m_tok_s': med.get('llamacpp-q4_k_m'),
        'llamacpp_q8_0_tok_s': med.get('llamacpp-q8_0'),
        'transformers_fp32_tok_s': med.get('transformers-fp32'),
        'int4_over_llamacpp_q4_k_m': ratio('ours-int4', 'llamacpp-q4_k_m'),
        'int8_over_llamacpp_q8_0': ratio('ours-int8', 'llamacpp-q8_0'),
        'int4_over_transformers_fp32': ratio('ours-int4', 'transformers-fp32'),
        'int4_over_int8_plain': ratio('ours-int4', 'ours-int8-plain'),
        'kernels_per_step': kernels.get('ours-int4', {}).get('kernels'),
        'kernels_per_step_by_variant': {k: v['kernels'] for k, v in kernels.items()},
        'int4_peak_rss_mb': round(rss.get('ours-int4', 0.0), 1),
        'llamacpp_peak_rss_mb': round(rss['llamacpp-q4_k_m'], 1)
        if 'llamacpp-q4_k_m' in rss else None,
        'peak_rss_mb': {k: round(v, 1) for k, v in rss.items()},
        'ttft_ms_300': {k: round(statistics.median(v) * 1000, 1) for k, v in ttft.items()},
        'decode_tok_s_per_run': {k: [round(x, 2) for x in v] for k, v in decode.items()},
        'greedy_prefix_agreement_int8_vs_llamacpp_q8_0': agree('ours-int8', 'llamacpp-q8_0'),
        'greedy_prefix_agreement_int4_vs_llamacpp_q4_k_m': agree('ours-int4',
                                                                 'llamacpp-q4_k_m'),
        'load_average_per_round': [round(x, 1) for x in loads],
        'threads': threads, 'runs': args.runs, 'new_tokens': args.new_tokens,
        'llama_cpp_python': llama_version,
    }
    if result['int4_peak_rss_mb'] and result['llamacpp_peak_rss_mb']:
        result['int4_rss_over_llamacpp'] = round(
            result['int4_peak_rss_mb'] / result['llamacpp_peak_rss_mb'], 3)
    for name in decode:
        print('%-18s decode %7.2f tok/s  TTFT(300) %7.1f ms  peak RSS %7.1f MB%s' % (
            name, med[name], result['ttft_ms_300'][name], rss[name],
            '  kernels/step %d' % kernels[name]['kernels'] if name in kernels else ''))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
