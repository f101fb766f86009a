#!/usr/bin/env python3
"""
Kokoro Mandarin through the project's ASR: CER of every shipped voice x speed.

    nice -n 10 python bench/tts_round_trip.py --json                 # 5 voices x 0.9/1.0/1.1
    python bench/tts_round_trip.py --voices jf_nezumi --speeds 1.0 --worst 10

Sentences: ``data/tts/round_trip_zh.txt`` (``--texts``), normalised by ``tts/text_norm.py``,
synthesised by the tts backend (``KokoroTTS``, offline pack), resampled to 16 kHz and
transcribed by the hearing node's default ``FasterWhisperASR()`` (Whisper-base pack, beam 1,
temperature fallback: the fallback samples, so repeated runs differ by about a point).
Voices are names or blends (``jf_alpha:0.5,jf_nezumi:0.5``).  Prints a table, the worst
sentences of the best voice, and with ``--json`` one JSON object as the last line:
``cer`` ({"voice@speed": CER}), ``best``, ``sentences``, ``chars``, ``cpu_s``, ``wall_s``,
``load_avg``, ``tone_sandhi``, ``clause_split``, ``asr_seeds``, ``asr_beam``, ``asr_prompt``,
``rows`` (per voice@speed: [text, heard, errors]) when ``--rows``.  ``--asr-seeds 3`` decodes
each clip 3 times with fixed seeds and averages (what docs/tts.md's current figures use);
``--beam``/``--prompt`` measure other decoding without touching the hearing defaults.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--texts', default='',
                        help='sentences (default data/tts/round_trip_zh.txt)')
    parser.add_argument('--voices', default='', help='comma-separated; blends with ";" between '
                        'voices, e.g. "jm_kumo;jf_alpha:0.5,jf_nezumi:0.5"; TIMBRE|PROSODY '
                        'splits and named profiles of data/tts/kokoro_voices.txt too '
                        '(default: the named voices and all shipped ones)')
    parser.add_argument('--speeds', default='0.9,1.0,1.1')
    parser.add_argument('--limit', type=int, default=0, help='first N sentences only')
    parser.add_argument('--threads', type=int, default=0, help='Kokoro intra-op threads')
    parser.add_argument('--sandhi', choices=('default', 'on', 'off'), default='default',
                        help='tone sandhi + pinyin overrides in the G2P (kokoro.tone_sandhi)')
    parser.add_argument('--clause-split', choices=('default', 'on', 'off'), default='default',
                        help='synthesise clause by clause (kokoro.clause_split)')
    parser.add_argument('--cache-dir', default='',
                        help='cache synthesised audio here (re-runs cost only the ASR)')
    parser.add_argument('--beam', type=int, default=0,
                        help='ASR beam size (measurement only; 0 = the hearing default)')
    parser.add_argument('--prompt', default=None,
                        help='ASR initial prompt (measurement only; default: the hearing one)')
    parser.add_argument('--asr-seeds', type=int, default=0,
                        help='N > 0: N seeded decodes per clip, errors averaged (Whisper\'s '
                        'temperature fallback samples; 0 = one unseeded decode, as before)')
    parser.add_argument('--worst', type=int, default=6, help='worst sentences shown per voice')
    parser.add_argument('--rows', action='store_true', help='per-sentence rows in the JSON')
    parser.add_argument('--json', action='store_true', help='last line: one JSON object')
    parser.add_argument('--progress', action='store_true', help='print every sentence')
    args = parser.parse_args(argv)

    from qwen_voice_ros.tts.intelligibility import RoundTrip, read_texts
    from qwen_voice_ros.tts.kokoro import KokoroTTS, named_voices, voice_style

    texts = read_texts(args.texts)
    if args.limit:
        texts = texts[:args.limit]
    kwargs = {} if args.sandhi == 'default' else {'tone_sandhi': args.sandhi == 'on'}
    if args.clause_split != 'default':
        kwargs['clause_split'] = args.clause_split == 'on'
    tts = KokoroTTS(threads=args.threads, **kwargs)
    tts.load()
    names = sorted(tts.voices)
    if ';' in args.voices:
        voices = [v for v in args.voices.split(';') if v.strip()]
    else:
        voices = [v for v in args.voices.split(',') if v.strip()] or \
            sorted(named_voices()) + names
    speeds = [float(s) for s in args.speeds.split(',') if s.strip()]
    asr = None
    if args.beam or args.prompt is not None:
        # the hearing defaults stay as they are; this only measures what other decoding does
        from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR
        asr_kwargs = {'beam_size': args.beam} if args.beam else {}
        if args.prompt is not None:
            asr_kwargs['initial_prompt'] = args.prompt
        asr = FasterWhisperASR(**asr_kwargs)
    trip = RoundTrip(tts, asr=asr, cache_dir=args.cache_dir).load()
    cpu0, wall0 = time.process_time(), time.monotonic()
    results, rows = {}, {}
    for voice in voices:
        style = voice_style(tts.voices, voice)
        for speed in speeds:
            key = '%s@%.1f' % (voice, speed)
            score = trip.score(texts, style=style, speed=speed, seeds=args.asr_seeds,
                               progress=(lambda r: print('  %s %d %s -> %s' % (
                                   key, r.errors, r.text, r.heard), flush=True))
                               if args.progress else None)
            results[key] = round(score.cer, 4)
            rows[key] = [[r.text, r.heard, r.errors] for r in score.rows]
            print('%-40s CER %.3f (%g/%d)' % (key, score.cer, score.errors, score.chars),
                  flush=True)
            for r in sorted(score.rows, key=lambda r: -r.errors / max(1, r.chars))[:args.worst]:
                if r.errors:
                    print('    %g  %s -> %s' % (r.errors, r.text, r.heard), flush=True)
    best = min(results, key=results.get)
    chars = sum(len(r[0]) for r in rows[best])
    report = {'cer': results, 'best': best, 'best_cer': results[best], 'sentences': len(texts),
              'tone_sandhi': tts.tone_sandhi, 'clause_split': tts.clause_split,
              'asr_seeds': args.asr_seeds, 'asr_beam': trip.asr.beam_size,
              'asr_prompt': trip.asr.initial_prompt or '',
              'chars_raw': chars, 'cpu_s': round(time.process_time() - cpu0, 1),
              'wall_s': round(time.monotonic() - wall0, 1),
              'load_avg': [round(x, 2) for x in os.getloadavg()]}
    if args.rows:
        report['rows'] = rows
    print('best %s CER %.3f; %d sentences; CPU %.0f s, wall %.0f s, load %s'
          % (best, results[best], len(texts), report['cpu_s'], report['wall_s'],
             report['load_avg']))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
