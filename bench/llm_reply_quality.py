#!/usr/bin/env python3
"""
Reply quality of the LLM stage: echo rate and reply length on typed requests.

Every request of a JSON-lines file (``data/llm/reply_requests.jsonl``: Mandarin and several
dialects) goes through the same path as the llm node -- ``ConversationMemory`` (persona,
dialect instruction from the row's ``dialect``) and ``OnnxChatBackend.stream_chat`` with the
node's default sampling -- as a fresh one-turn conversation.  Echo: the reply shares >= 50 %
of its characters with the request, in order (``LCS / len(reply)``, punctuation and spaces
ignored; see ``qwen_voice_ros/llm/reply_quality.py``).  ``--json``: the last line is one
JSON object (``echo_rate``, ``avg_reply_chars``, ``avg_sentences``, ...).

    python bench/llm_reply_quality.py --json
    python bench/llm_reply_quality.py --baseline --json   # old persona, no guards
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qwen_voice_ros.llm import reply_quality  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, 'models', 'qwen2.5-coder-0.5b-int8')
DEFAULT_REQUESTS = os.path.join(ROOT, 'data', 'llm', 'reply_requests.jsonl')
# The persona before issue 11 (kept here to measure against).
BASELINE_PERSONA = ('你是一个友好的中文语音助手，运行在机器人上。回答要简短、口语化，适合直接朗读；'
                    '不要使用列表、表格、表情符号或 Markdown。')


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model-dir', default=DEFAULT_MODEL)
    ap.add_argument('--requests', default=DEFAULT_REQUESTS)
    ap.add_argument('--limit', type=int, default=0, help='first N requests only')
    ap.add_argument('--reply-style', default='mandarin', choices=('mandarin', 'dialect'))
    ap.add_argument('--max-new-tokens', type=int, default=96)
    ap.add_argument('--temperature', type=float, default=0.7)   # llm node defaults
    ap.add_argument('--top-p', type=float, default=0.8)
    ap.add_argument('--top-k', type=int, default=20)
    ap.add_argument('--repetition-penalty', type=float, default=1.05)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--ngram', type=int, default=None,
                    help='request n-gram block (default: GenerationOptions default)')
    ap.add_argument('--max-sentences', type=int, default=None)
    ap.add_argument('--baseline', action='store_true',
                    help='the old persona, no n-gram block, no sentence limit')
    ap.add_argument('--persona-file', default='',
                    help='a UTF-8 text file whose content replaces the default persona')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--json', action='store_true')
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from qwen_voice_ros.llm.base import GenerationOptions
    from qwen_voice_ros.llm.kernel_count import process_peak_rss_mb
    from qwen_voice_ros.llm.memory import ConversationMemory, DEFAULT_PERSONA
    from qwen_voice_ros.llm.onnx_engine import OnnxChatBackend

    rows = reply_quality.load_requests(args.requests)
    if args.limit > 0:
        rows = rows[:args.limit]
    defaults = GenerationOptions()
    ngram = args.ngram if args.ngram is not None else defaults.request_ngram_block
    max_sentences = args.max_sentences if args.max_sentences is not None \
        else defaults.max_sentences
    persona = DEFAULT_PERSONA
    if args.persona_file:
        with open(args.persona_file, encoding='utf-8') as handle:
            persona = handle.read().strip()
    if args.baseline:
        persona, ngram, max_sentences = BASELINE_PERSONA, 0, 0
    started = time.perf_counter()
    backend = OnnxChatBackend(args.model_dir, max_context=2048,
                              intra_op_threads=args.threads)
    backend.load()
    load_s = time.perf_counter() - started
    engine = backend.engine
    results = []
    tokens = decode_s = 0.0
    latencies = []
    for index, row in enumerate(rows):
        memory = ConversationMemory(persona, args.reply_style, 2048,
                                    count_tokens=backend.count_tokens)
        memory.set_dialect(row['dialect'])
        memory.add_user(row['text'])
        options = GenerationOptions(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            top_p=args.top_p, top_k=args.top_k, repetition_penalty=args.repetition_penalty,
            seed=args.seed + index, request_ngram_block=ngram, max_sentences=max_sentences,
            timeout_s=0)
        t0 = time.perf_counter()
        reply = ''.join(backend.stream_chat(memory.messages(), options)).strip()
        latencies.append(time.perf_counter() - t0)
        stats = engine.last_stats
        tokens += float(stats.get('new_tokens', 0))
        decode_s += float(stats.get('decode_s', 0.0))
        ratio = reply_quality.echo_ratio(reply, row['text'])
        results.append({'id': row['id'], 'dialect': row['dialect'], 'request': row['text'],
                        'reply': reply, 'echo_ratio': round(ratio, 3),
                        'echo': reply_quality.is_echo(reply, row['text']),
                        'sentences': reply_quality.count_sentences(reply)})
        log('%-4s %-12s %s -> %s  [echo %.2f%s, %d sent, %.1fs]' % (
            row['id'], row['dialect'], row['text'], reply, ratio,
            ' ECHO' if results[-1]['echo'] else '', results[-1]['sentences'], latencies[-1]))
    summary = reply_quality.summarise(results)
    summary.update({
        'model_dir': os.path.relpath(os.path.abspath(args.model_dir), ROOT),
        'persona': 'baseline' if args.baseline else (
            os.path.basename(args.persona_file) if args.persona_file else 'default'),
        'request_ngram_block': ngram, 'max_sentences': max_sentences,
        'temperature': args.temperature, 'top_p': args.top_p, 'top_k': args.top_k,
        'repetition_penalty': args.repetition_penalty, 'seed': args.seed,
        'reply_style': args.reply_style,
        'dialects': sorted(set(r['dialect'] for r in rows)),
        'mean_latency_s': round(sum(latencies) / len(latencies), 3),
        'decode_tok_s': round(tokens / decode_s, 2) if decode_s else None,
        'load_s': round(load_s, 2),
        'peak_rss_mb': round(process_peak_rss_mb(), 1),
        'load_average': round(os.getloadavg()[0], 2),
    })
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in summary.items():
            print('%s: %s' % (key, value))
    return 0


if __name__ == '__main__':
    sys.exit(main())
