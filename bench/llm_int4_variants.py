#!/usr/bin/env python3
"""
Decode speed and quantisation error of fused INT4 graph variants (e.g. block 32 vs 128).

For each graph directory (``--dirs``; default: the llama.cpp bench's fused INT4 and, when
``--build-blocks`` names them, fused INT4 graphs of the same HF directory with those block
sizes, built once under ``.cache/llm_vs_llamacpp/fused-int4-b<N>``):

* speed: interleaved rounds (order reversed every round, so a load change hits all
  variants alike), 64 greedy tokens from the llama.cpp bench's prompt; decode tok/s (wall)
  and CPU ms per token (``time.process_time``: with ``--threads 1`` there are no spinning
  pool threads, so this is the compute cost even on a loaded machine); ratios are medians of
  per-round ratios against the first directory;
* error: a fixed chat text (Chinese dialogue + a little Python, 163 tokens) teacher-forced
  through each graph one token at a time vs the fp32 transformers model of the same weights
  (``.cache/llm_vs_llamacpp/hf``, the dequantised GGUF): mean KL(fp32 || int4) per token,
  top-1 agreement, NLL.

``--json``: the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'bench'))
CACHE = ROOT / '.cache' / 'llm_vs_llamacpp'
TEXT = ('<|im_start|>system\n你是一个友好的中文语音助手。<|im_end|>\n<|im_start|>user\n'
        '你好，请介绍一下你自己，今天天气怎么样？<|im_end|>\n<|im_start|>assistant\n'
        '你好！我是一个机器人语音助手，可以帮你查询天气、设置闹钟、播放音乐，还能陪你聊天。'
        '今天北京天气晴朗，最高气温二十五度，最低气温十三度，空气质量良好，适合出门散步。'
        '如果你要去公园，记得带上水和帽子。另外，晚上可能会起风，回家的时候多穿一件外套。<|im_end|>\n'
        '<|im_start|>user\n用Python写一个函数，计算列表里所有偶数的和。<|im_end|>\n'
        '<|im_start|>assistant\ndef sum_even(numbers):\n    total = 0\n    for n in numbers:\n'
        '        if n % 2 == 0:\n            total += n\n    return total\n<|im_end|>')


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def variant_dirs(blocks: List[int]) -> List[Path]:
    """Return the bench's fused INT4 graph and one per extra block size (built once)."""
    from llm_vs_llamacpp import prepare
    from qwen_voice_ros.llm.export.fused_builder import build_fused

    paths = prepare(with_q8=False)
    dirs = [paths['fused-int4']]
    for block in blocks:
        out = CACHE / ('fused-int4-b%d' % block)
        info = out / 'fused_info.json'
        if not info.is_file() or json.loads(info.read_text())['extra_options'].get(
                'block_size') != str(block):
            log('[variants] building fused INT4, block %d ...' % block)
            build_fused(paths['hf'], out, 'int4', block_size=block)
        dirs.append(out)
    return dirs


class _LlamaCpp:
    """llama.cpp on the GGUF itself, with the engine's generate_ids/reset shape."""

    def __init__(self, gguf: Path, threads: int) -> None:
        from llama_cpp import Llama
        self.llm = Llama(model_path=str(gguf), n_threads=threads, n_threads_batch=threads,
                         n_ctx=1024, n_batch=512, seed=0, verbose=False)

    def reset(self) -> None:
        pass

    def generate_ids(self, ids, options, stop_token_ids=()):
        for n, token in enumerate(self.llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0,
                                                    temp=0.0, repeat_penalty=1.0, reset=True)):
            if n >= options.max_new_tokens:
                return
            yield int(token)

    def generate(self, ids, options, stop_token_ids=()):
        return list(self.generate_ids(ids, options, stop_token_ids))


def speed(dirs: List[Path], threads: int, rounds: int, new_tokens: int,
          gguf: Optional[Path] = None) -> Dict[str, Dict]:
    from llm_vs_llamacpp import prompt_ids
    from qwen_voice_ros.llm.base import GenerationOptions
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM

    engines = [OnnxCausalLM(d, intra_op_threads=threads, max_context=1024, max_prompt=512)
               for d in dirs]
    ids, _ = prompt_ids(dirs[0], engines[0].tokenizer)
    if gguf is not None:  # same prompt ids, its own 4-bit scheme (Q4_K_M)
        dirs = list(dirs) + [Path('llamacpp-q4_k_m')]
        engines.append(_LlamaCpp(gguf, threads))
    for engine in engines:  # warm-up
        engine.generate(ids, GenerationOptions(max_new_tokens=4), stop_token_ids=())
    tok_s: List[List[float]] = [[] for _ in dirs]
    cpu_ms: List[List[float]] = [[] for _ in dirs]
    tokens: List[List[int]] = [[] for _ in dirs]
    loads = []
    for rnd in range(rounds):
        loads.append(os.getloadavg()[0])
        order = list(range(len(dirs)))
        for i in (order if rnd % 2 == 0 else order[::-1]):
            engine = engines[i]
            engine.reset()
            out: List[int] = []
            for token in engine.generate_ids(ids, GenerationOptions(max_new_tokens=new_tokens),
                                             stop_token_ids=()):
                if not out:  # decode = after the first token (prefill excluded)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                out.append(token)
            steps = len(out) - 1
            tok_s[i].append(steps / (time.perf_counter() - wall0))
            cpu_ms[i].append(1000.0 * (time.process_time() - cpu0) / steps)
            tokens[i] = tokens[i] or out
        log('[variants] round %d/%d (load %.1f): %s' % (rnd + 1, rounds, loads[-1], ', '.join(
            '%s %.1f tok/s %.1f cpu-ms' % (d.name, tok_s[i][-1], cpu_ms[i][-1])
            for i, d in enumerate(dirs))))
    result = {}
    for i, d in enumerate(dirs):
        agree = next((k for k, (a, b) in enumerate(zip(tokens[i], tokens[0])) if a != b),
                     len(tokens[i]))
        result[d.name] = {
            'decode_tok_s': round(statistics.median(tok_s[i]), 2),
            'decode_tok_s_per_round': [round(x, 2) for x in tok_s[i]],
            'cpu_ms_per_token': round(statistics.median(cpu_ms[i]), 2),
            'cpu_ms_per_token_per_round': [round(x, 2) for x in cpu_ms[i]],
            'speed_over_first': round(statistics.median(
                a / b for a, b in zip(tok_s[i], tok_s[0])), 3),
            'cpu_saving_over_first': round(statistics.median(
                b / a for a, b in zip(cpu_ms[i], cpu_ms[0])), 3),
            'greedy_prefix_agreement_with_first': agree}
    result['_load_average_per_round'] = [round(x, 1) for x in loads]
    return result


def error(dirs: List[Path], threads: int) -> Dict[str, Dict]:
    import numpy as np

    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    from qwen_voice_ros.llm.sampling import log_softmax

    engine = OnnxCausalLM(dirs[0], intra_op_threads=threads, max_context=1024)
    ids = engine.tokenizer.encode(TEXT)
    del engine
    import torch
    import transformers
    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(CACHE / 'hf'), dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0, :-1].numpy().astype(np.float64)
    del model
    n = len(ids) - 1
    ref_lp = np.stack([log_softmax(r) for r in ref])
    targets = np.array(ids[1:])
    result = {'_tokens': len(ids),
              '_fp32_nll': round(-float(np.mean(ref_lp[np.arange(n), targets])), 4)}
    for d in dirs:
        engine = OnnxCausalLM(d, intra_op_threads=threads, max_context=1024)
        rows = [engine._forward([t])[-1].astype(np.float64) for t in ids[:-1]]
        lp = np.stack([log_softmax(r) for r in rows])
        result[d.name] = {
            'kl_fp32_to_int4': round(float(np.mean(np.sum(np.exp(ref_lp) * (ref_lp - lp), 1))), 4),
            'top1_agreement_with_fp32': round(float(np.mean(
                np.argmax(lp, 1) == np.argmax(ref_lp, 1))), 3),
            'nll': round(-float(np.mean(lp[np.arange(n), targets])), 4)}
        log('[variants] %s: %s' % (d.name, result[d.name]))
    return result


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--dirs', nargs='*', default=None, help='fused graph directories to compare')
    ap.add_argument('--build-blocks', type=int, nargs='*', default=[32],
                    help='extra INT4 block sizes to build and compare (default: 32)')
    ap.add_argument('--threads', type=int, default=1,
                    help='ONNX Runtime threads (default 1: CPU time without spinning threads)')
    ap.add_argument('--rounds', type=int, default=6)
    ap.add_argument('--new-tokens', type=int, default=64)
    ap.add_argument('--no-error', action='store_true', help='skip the KL measurement')
    ap.add_argument('--llamacpp', action='store_true',
                    help='also time llama.cpp on the Q4_K_M GGUF in the same rounds (needs '
                         'llama-cpp-python; speed only)')
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args(argv)
    dirs = [Path(d) for d in args.dirs] if args.dirs else variant_dirs(args.build_blocks)
    gguf = None
    if args.llamacpp:
        gguf = next(CACHE.glob('*q4_k_m.gguf'), None)
        if gguf is None:
            ap.error('no Q4_K_M GGUF under %s (run bench/llm_vs_llamacpp.py once)' % CACHE)
    result = {'speed': speed(dirs, args.threads, args.rounds, args.new_tokens, gguf),
              'threads': args.threads, 'rounds': args.rounds,
              'block_size': {d.name: json.loads((d / 'fused_info.json').read_text())
                             ['extra_options'].get('block_size') for d in dirs}}
    if not args.no_error:
        result['error'] = error(dirs, max(args.threads, 2))
    if gguf is not None:
        s = result['speed']['llamacpp-q4_k_m']
        print('%-20s decode %6.2f tok/s  %6.2f cpu-ms/token  x%.3f speed  x%.3f cpu' % (
            'llamacpp-q4_k_m', s['decode_tok_s'], s['cpu_ms_per_token'], s['speed_over_first'],
            s['cpu_saving_over_first']))
    for d in dirs:
        s = result['speed'][d.name]
        e = result.get('error', {}).get(d.name, {})
        print('%-20s block %-4s decode %6.2f tok/s  %6.2f cpu-ms/token  x%.3f speed  '
              'x%.3f cpu  KL %s  top1 %s' % (
                  d.name, result['block_size'][d.name], s['decode_tok_s'], s['cpu_ms_per_token'],
                  s['speed_over_first'], s['cpu_saving_over_first'],
                  e.get('kl_fp32_to_int4'), e.get('top1_agreement_with_fp32')))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
