#!/usr/bin/env python3
"""
Latency and memory of exported models: TTFT, decode tok/s and peak RSS per model directory.

TTFT is for a 300-token prompt; one child process per model directory (so peak RSS is the
model's own).

TTFT = prefill of the whole prompt (cache reset first, chunked as the llm node does) + the
first sampled token; decode = greedy tokens after it with stop tokens off, so every run
decodes the same count.  Median over ``--runs``; wall and process CPU seconds are both given
(the CPU figure is what a busy shared machine distorts least).

    python bench/llm_pack_latency.py models/qwen2.5-coder-0.5b-int4-fused \
        models/qwen2.5-coder-1.5b-int4-fused --json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

FILLER = ('我家的机器人每天早上七点叫我起床，然后提醒我吃药、看天气、安排今天的日程。'
          '它还会讲故事，陪孩子聊天，帮我记下要买的东西。')


def child(model_dir, prompt_tokens, new_tokens, runs, threads):
    from qwen_voice_ros.llm.base import GenerationOptions
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    engine = OnnxCausalLM(model_dir, intra_op_threads=threads or None, max_context=2048)
    load_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    body = engine.tokenizer.encode(FILLER * 20)
    user = engine.tokenizer.decode(body[:prompt_tokens]) if hasattr(engine.tokenizer, 'decode') \
        else FILLER * 4
    messages = [{'role': 'system', 'content': '你是一个机器人助手，回答简短。'},
                {'role': 'user', 'content': user + '请总结一下。'}]
    prompt = engine.encode_chat(messages)
    prompt = prompt[len(prompt) - prompt_tokens:] if len(prompt) > prompt_tokens else prompt
    options = GenerationOptions(max_new_tokens=new_tokens)
    ttft, ttft_cpu, tok_s, tok_s_cpu = [], [], [], []
    for _ in range(runs):
        engine.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        stamps = []
        for _token in engine.generate_ids(prompt, options, stop_token_ids=()):
            stamps.append((time.perf_counter(), time.process_time()))
        ttft.append(stamps[0][0] - wall)
        ttft_cpu.append(stamps[0][1] - cpu)
        n = len(stamps) - 1
        tok_s.append(n / (stamps[-1][0] - stamps[0][0]))
        tok_s_cpu.append(n / max(1e-9, stamps[-1][1] - stamps[0][1]))
    info = {}
    try:
        with open(os.path.join(model_dir, 'export_info.json')) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        pass
    print(json.dumps({
        'model_dir': model_dir, 'model': info.get('model'),
        'graph': (info.get('quantization') or {}).get('graph'),
        'precision': (info.get('quantization') or {}).get('scheme'),
        'layers': engine.num_layers, 'prompt_tokens': len(prompt), 'new_tokens': new_tokens,
        'runs': runs, 'threads': threads,
        'ttft_s': round(statistics.median(ttft), 3),
        'ttft_cpu_s': round(statistics.median(ttft_cpu), 3),
        'decode_tok_per_s': round(statistics.median(tok_s), 2),
        'decode_tok_per_cpu_s': round(statistics.median(tok_s_cpu), 2),
        'rss_after_load_mb': round(load_rss, 1),
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model_dirs', nargs='+')
    parser.add_argument('--prompt-tokens', type=int, default=300)
    parser.add_argument('--new-tokens', type=int, default=64)
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2, help='0: physical cores')
    parser.add_argument('--json', action='store_true', help='last line: one JSON summary')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.model_dirs[0], args.prompt_tokens, args.new_tokens, args.runs, args.threads)
        return 0
    results = []
    load_before = os.getloadavg()
    for model_dir in args.model_dirs:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child',
                               os.path.abspath(model_dir), '--prompt-tokens',
                               str(args.prompt_tokens), '--new-tokens', str(args.new_tokens),
                               '--runs', str(args.runs), '--threads', str(args.threads)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit('%s failed (rc %d)' % (model_dir, proc.returncode))
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print('%-45s TTFT(%d tok) %6.2f s (cpu %6.2f s)  decode %6.2f tok/s (%6.2f per cpu-s)'
              '  peak RSS %7.1f MB' % (os.path.basename(model_dir), r['prompt_tokens'],
                                       r['ttft_s'], r['ttft_cpu_s'], r['decode_tok_per_s'],
                                       r['decode_tok_per_cpu_s'], r['peak_rss_mb']))
    if args.json:
        print(json.dumps({'load_avg_before': load_before, 'load_avg_after': os.getloadavg(),
                          'models': results}, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
