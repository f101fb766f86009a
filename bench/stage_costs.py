#!/usr/bin/env python3
"""
What each stage of a spoken turn costs, in wall time *and* CPU time, in one process.

    bench/stage_costs.py SPEECH_BAG [--llm-model-dir DIR] [--json]

On a shared machine wall times grow with everyone else's load; the CPU time a stage burns
does not (much).  For each request of a speech bag (``bench/make_speech_bag.py``) this runs the
offline packs the stack uses: Whisper-base (greedy, no temperature fallback) on the request's
audio, the LLM from the prompt to the first streamed sentence (the llm node's sentence
splitter), and Kokoro on that first sentence, with the stack's settings from
``config/voice_stack.yaml`` (threads per engine, first chunk 4-6 characters).  It prints per
stage the median wall time and the median CPU time (user + system of this process), and the
machine's load average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from qwen_voice_ros.replay import bags  # noqa: E402


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def timed(fn, *args, **kwargs):
    wall, cpu = time.monotonic(), cpu_s()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - wall, cpu_s() - cpu


def clips_from_bag(bag: str):
    with open(os.path.join(bag, 'truth.json'), encoding='utf-8') as f:
        truth = json.load(f)
    topic = truth.get('audio_topic', '/audio_stamped')
    audio = np.concatenate([np.frombuffer(bytes(bags.deserialize(m).audio.data), '<i2')
                            for m in bags.read_messages(bag, [topic])]).astype(np.float32)
    audio /= 32767.0
    # The utterance the VAD hands to ASR: the speech plus ~0.2 s pads.
    return [(t['transcript'], audio[max(0, int((t['speech_start_s'] - 0.2) * 16000)):
                                    int((t['speech_end_s'] + 0.2) * 16000)])
            for t in truth['turns']]


def stack_defaults() -> dict:
    """Return the latency settings of ``config/voice_stack.yaml`` (what the stack runs)."""
    import yaml
    with open(os.path.join(REPO, 'config', 'voice_stack.yaml'), encoding='utf-8') as f:
        config = yaml.safe_load(f)
    hearing = config['/**/hearing']['ros__parameters']
    llm = config['/**/llm']['ros__parameters']
    tts = config['/**/tts']['ros__parameters']
    return {'first_min_chars': int(llm.get('first_min_chars', 6)),
            'first_max_chars': int(llm.get('first_max_chars', 10)),
            'asr_threads': int(hearing.get('faster_whisper.cpu_threads', 0)),
            'llm_threads': int(llm.get('onnx.intra_op_threads', 0)),
            'tts_threads': int(tts.get('kokoro', {}).get('threads', 0))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('bag')
    parser.add_argument('--llm-model-dir', default=os.environ.get('QWEN_VOICE_LLM_DIR', ''))
    parser.add_argument('--max-new-tokens', type=int, default=48)
    stack = stack_defaults()
    parser.add_argument('--first-min-chars', type=int, default=stack['first_min_chars'],
                        help='the llm node\'s first_min_chars (default: the stack\'s, '
                             '%(default)s)')
    parser.add_argument('--first-max-chars', type=int, default=stack['first_max_chars'],
                        help='the llm node\'s first_max_chars (cap on the first chunk; 0: none; '
                             'default: the stack\'s, %(default)s)')
    parser.add_argument('--threads', type=int, default=-1,
                        help='threads of every engine (0 = the engines\' own defaults); default: '
                             'the stack\'s per engine (ASR %d, LLM %d, Kokoro %d)'
                             % (stack['asr_threads'], stack['llm_threads'], stack['tts_threads']))
    parser.add_argument('--no-warm-up', action='store_true',
                        help='skip the llm node\'s system-prompt warm-up (request 1 then '
                             'prefills the whole system prompt)')
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    threads = {k: (args.threads if args.threads >= 0 else stack[k])
               for k in ('asr_threads', 'llm_threads', 'tts_threads')}

    from qwen_voice_ros.asr import create_asr
    from qwen_voice_ros.llm import create_backend
    from qwen_voice_ros.llm.base import GenerationOptions
    from qwen_voice_ros.llm.memory import ConversationMemory
    from qwen_voice_ros.llm.sentences import SentenceSplitter
    from qwen_voice_ros.tts.kokoro import KokoroTTS

    asr = create_asr('faster_whisper', beam_size=1, temperature_fallback=False,
                     cpu_threads=threads['asr_threads'])
    asr.load()
    llm = create_backend('onnx', model_dir=args.llm_model_dir,
                         intra_op_threads=threads['llm_threads']) if args.llm_model_dir else None
    warm = {}
    if llm is not None:
        llm.load()
        if not args.no_warm_up:  # as the llm node does at configure (warm_up: true)
            from qwen_voice_ros.dialogue.warmup import warm_prefix
            warm = warm_prefix(llm, ConversationMemory(count_tokens=llm.count_tokens),
                               GenerationOptions())
    tts = KokoroTTS(threads=threads['tts_threads'])
    tts.load()
    tts.synthesize('你好。')  # warm-up, as the tts node does at configure
    rows = []
    for ref, audio in clips_from_bag(args.bag):
        row = {'ref': ref, 'audio_s': round(len(audio) / 16000.0, 3)}
        text, row['asr_wall'], row['asr_cpu'] = timed(asr.transcribe, audio)
        row['transcript'] = text
        sentence = text
        if llm is not None:
            memory = ConversationMemory(count_tokens=llm.count_tokens)
            memory.add_user(text)
            splitter = SentenceSplitter(first_min_chars=args.first_min_chars,
                                        first_max_chars=args.first_max_chars)
            wall, cpu = time.monotonic(), cpu_s()
            first_token = None
            sentence = ''
            opts = GenerationOptions(max_new_tokens=args.max_new_tokens, temperature=0.7,
                                     top_p=0.8, top_k=20, repetition_penalty=1.05)
            for delta in llm.stream_chat(memory.messages(), opts, None):
                if first_token is None and delta:
                    first_token = time.monotonic() - wall
                done = splitter.feed(delta)
                if done:
                    sentence = done[0]
                    break
            if not sentence:
                sentence = ''.join(splitter.flush()) or text
            row['llm_ttft_wall'] = first_token
            row['llm_sentence_wall'] = time.monotonic() - wall
            row['llm_sentence_cpu'] = cpu_s() - cpu
            row['llm_reused_tokens'] = llm.engine.last_stats.get('reused_tokens')
            row['llm_prompt_tokens'] = llm.engine.last_stats.get('prompt_tokens')
            row['first_sentence'] = sentence
        speech, row['tts_wall'], row['tts_cpu'] = timed(tts.synthesize, sentence)
        row['tts_audio_s'] = round(len(speech.audio) / float(speech.sample_rate), 3)
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in row.items()}, ensure_ascii=False), flush=True)
    summary = {'load_avg': os.getloadavg(), 'requests': len(rows), 'threads': threads,
               'first_min_chars': args.first_min_chars, 'first_max_chars': args.first_max_chars,
               'warm_up': warm or None}
    if rows and rows[0].get('llm_sentence_cpu') is not None:
        # Request 1 is the one the system-prompt warm-up is for.
        summary['llm_sentence_cpu_first'] = round(rows[0]['llm_sentence_cpu'], 3)
        summary['llm_reused_tokens_first'] = rows[0]['llm_reused_tokens']
    for key in ('asr_wall', 'asr_cpu', 'llm_ttft_wall', 'llm_sentence_wall', 'llm_sentence_cpu',
                'tts_wall', 'tts_cpu', 'audio_s', 'tts_audio_s'):
        values = [r[key] for r in rows if r.get(key) is not None]
        summary[key + '_p50'] = round(statistics.median(values), 3) if values else None
    print(json.dumps(summary) if args.json else '\n'.join(
        '%-24s %s' % (k, v) for k, v in summary.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
