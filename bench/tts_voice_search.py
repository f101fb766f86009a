#!/usr/bin/env python3
"""
Search an intelligibility-tuned Kokoro voice: blends of the shipped vectors, lowest round-trip CER.

    nice -n 10 python bench/tts_voice_search.py --budget 30 --log search.jsonl --json
    nice -n 10 python bench/tts_voice_search.py --only "jf_nezumi" --clause-split on --json

Every candidate speaks ``data/tts/intelligibility_train_zh.txt`` (``--train``; never the eval
file ``data/tts/round_trip_zh.txt``, which ``bench/tts_round_trip.py`` scores the winner on
once) through the project's ASR (``tts.intelligibility.RoundTrip``, the hearing node's
``FasterWhisperASR()`` defaults).  A candidate is a timbre blend, a prosody blend (Kokoro's
style halves, ``TIMBRE|PROSODY`` as ``kokoro.voice`` takes it) and synthesis options.  Order:
the five single voices, seeded splits and mixes of the best ones, then a (1+1) evolution
strategy around the best (step x1.3 on success, x0.87 on failure).  A candidate is dropped as
soon as its running error count exceeds the best candidate's count on the same sentences by
more than ``--race`` (a race: on 2 shared cores a full score costs minutes), which saves most
of the CPU on bad blends.  Synthesised audio is cached on disk (``--cache-dir``),
so re-scoring or ASR-side experiments cost only recognition.  ``--log`` (JSON lines) is
appended per candidate and read back on start: an interrupted search resumes.

With ``--json`` the last line is one JSON object: ``best`` (voice spec), ``best_cer``,
``best_errors``, ``chars``, ``tried``, ``raced_out``, ``singles`` ({voice: CER}), ``cpu_s``,
``wall_s``, ``load_avg``, ``cache_hits``, ``cache_misses``, ``asr_seeds``, and with
``--similarity N`` ``similarity`` (``to_shipped``: {voice: cosine}, ``nearest``,
``shipped_nearest_other``: {voice: [nearest other, cosine]}).
"""
import argparse
import json
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
TRAIN_FILE = os.path.join(ROOT, 'data', 'tts', 'intelligibility_train_zh.txt')
CACHE_DIR = os.path.join('~', '.cache', 'qwen_voice_ros', 'tts-audio')


def _norm(weights, floor):
    """Clip to ``floor``, renormalise to sum 1, drop near-zero weights."""
    clipped = {k: max(floor, v) for k, v in weights.items()}
    total = sum(clipped.values())
    if total <= 0:
        return None
    return {k: round(v / total, 3) for k, v in clipped.items() if abs(v / total) > 5e-4}


def spec_of(timbre, prosody):
    from qwen_voice_ros.tts.kokoro import format_voice
    return format_voice(timbre, prosody if prosody != timbre else None)


def similarity(trip, names, spec, texts, speed):
    """
    Mean per-sentence d-vector cosine of ``spec``'s speech to each shipped voice's speech.

    Same sentences on both sides, so the cosine compares voices, not texts.  The shipped
    voices' similarity to their nearest other shipped voice gives the scale: a blend closer to
    one shipped voice than two shipped voices are to each other still sounds like that voice.
    """
    from qwen_voice_ros.speaker.embedder import SpeakerEmbedder, cosine
    from qwen_voice_ros.tts.kokoro import voice_style
    from qwen_voice_ros.tts.text_norm import normalize
    embedder = SpeakerEmbedder()
    tts = trip.tts

    def vectors(voice):
        style = voice_style(tts.voices, voice)
        return [embedder.embed(trip.speech16k(normalize(t), style, speed), 16000) for t in texts]

    def mean_cos(a, b):
        return round(sum(cosine(x, y) for x, y in zip(a, b)) / len(a), 4)

    single = {n: vectors(n) for n in names}
    mine = vectors(spec)
    to_shipped = {n: mean_cos(mine, single[n]) for n in names}
    others = {}
    for n in names:
        sims = {m: mean_cos(single[n], single[m]) for m in names if m != n}
        nearest = max(sims, key=sims.get)
        others[n] = [nearest, sims[nearest]]
    return {'to_shipped': to_shipped, 'nearest': max(to_shipped, key=to_shipped.get),
            'shipped_nearest_other': others, 'texts': len(texts)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--train', default=TRAIN_FILE, help='training sentences')
    parser.add_argument('--budget', type=int, default=30, help='candidates scored in all')
    parser.add_argument('--only', default='', help='score these specs only (";"-separated)')
    parser.add_argument('--floor', type=float, default=-0.3,
                        help='lowest blend weight (< 0 extrapolates away from a voice)')
    parser.add_argument('--race', type=int, default=10,
                        help='drop a candidate once its errors so far exceed the best one\'s on '
                        'the same sentences by more than this')
    parser.add_argument('--clause-split', choices=('on', 'off'), default='off')
    parser.add_argument('--speed', type=float, default=1.0)
    parser.add_argument('--row', type=int, default=-1,
                        help='style row used for every length (-1 = the row of the input\'s '
                        'length, as Kokoro does); an experiment, not a voice option')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--asr-seeds', type=int, default=3,
                        help='seeded decodes per clip, errors averaged (0 = one unseeded)')
    parser.add_argument('--cache-dir', default=CACHE_DIR, help="synthesised audio; '' = none")
    parser.add_argument('--log', default='', help='JSON lines per candidate (resumes from it)')
    parser.add_argument('--similarity', type=int, default=0, metavar='N',
                        help='then: speaker similarity (d-vector cosine, speaker/embedder.py) '
                        'of the best voice to each shipped voice on the first N training '
                        'sentences, and of each shipped voice to its nearest other one')
    parser.add_argument('--json', action='store_true', help='last line: one JSON object')
    args = parser.parse_args(argv)

    from qwen_voice_ros.tts.intelligibility import RoundTrip, Score, read_texts
    from qwen_voice_ros.tts.kokoro import KokoroTTS, parse_voice_spec, voice_style

    texts = read_texts(args.train)
    tts = KokoroTTS(clause_split=args.clause_split == 'on')
    tts.load()
    names = sorted(tts.voices)
    trip = RoundTrip(tts, cache_dir=args.cache_dir).load()
    cpu0, wall0 = time.process_time(), time.monotonic()
    done = {}            # spec -> (errors, chars, complete)
    per_row = {}         # spec -> errors per sentence (the race compares running sums)
    if args.log and os.path.exists(args.log):
        with open(args.log, encoding='utf-8') as f:
            for line in f:
                rec = json.loads(line)
                # raced-out ones are scored again (their audio is cached: ASR time only)
                if rec.get('clause_split') == tts.clause_split and rec.get('speed') == args.speed \
                        and rec.get('asr_seeds') == args.asr_seeds and \
                        rec.get('row', -1) == args.row and rec['complete']:
                    done[rec['voice']] = (rec['errors'], rec['chars'], rec['complete'])
                    per_row[rec['voice']] = [r[2] for r in rec['rows']]
    chars_all = None
    raced = [0]

    def best():
        full = {k: v for k, v in done.items() if v[2]}
        if not full:
            return None, None
        key = min(full, key=lambda k: full[k][0])
        return key, full[key][0]

    def score(spec):
        if spec in done:
            return done[spec]
        style = voice_style(tts.voices, spec)
        if args.row >= 0:       # the row experiment before @N existed: row index = N - 1
            style = style.copy()
            style[:] = style[args.row]
        leader, _ = best()
        rows = []
        complete = True
        for text in texts:
            rows.append(trip.hear(text, style=style, speed=args.speed, seeds=args.asr_seeds))
            errors = sum(r.errors for r in rows)
            if leader is not None and errors > sum(per_row[leader][:len(rows)]) + args.race:
                complete = False
                raced[0] += 1
                break
        s = Score(rows)
        done[spec] = (s.errors, s.chars, complete)
        per_row[spec] = [r.errors for r in rows]
        print('%-70s %s %5.1f/%d %s' % (spec, 'CER %.3f' % s.cer if complete else 'raced out',
                                        s.errors, s.chars,
                                        ' '.join('%g' % round(r.errors, 1) for r in rows)),
              flush=True)
        if args.log:
            with open(args.log, 'a', encoding='utf-8') as f:
                f.write(json.dumps({'voice': spec, 'errors': s.errors, 'chars': s.chars,
                                    'complete': complete, 'clause_split': tts.clause_split,
                                    'speed': args.speed, 'asr_seeds': args.asr_seeds,
                                    'row': args.row,
                                    'rows': [[r.text, r.heard, r.errors] for r in rows],
                                    'stamp': time.time(),
                                    'load_avg': [round(x, 2) for x in os.getloadavg()]},
                                   ensure_ascii=False) + '\n')
        return done[spec]

    if args.only:
        for spec in [s for s in args.only.split(';') if s.strip()]:
            score(spec)
    else:
        # singles, best-known first so racing bites early (docs/tts.md: nezumi, gongitsune)
        for name in ['jf_nezumi', 'jf_gongitsune', 'jm_kumo', 'jf_tebukuro', 'jf_alpha']:
            score(name)
        singles = sorted(names, key=lambda n: done[n][0] if done[n][2] else 1e9)
        a, b, c = singles[:3]
        seeds = [
            '%s:0.5,%s:0.5' % (a, b),
            '%s|%s' % (a, b), '%s|%s' % (b, a),
            '%s:0.7,%s:0.3' % (a, b),
            '%s|%s:0.5,%s:0.5' % (a, a, b),
            '%s|%s' % (a, c),
            '%s:1.3,%s:-0.3' % (a, singles[-1]),            # away from the least clear voice
            '%s|%s:1.3,%s:-0.3' % (a, a, singles[-1]),
        ]
        for spec in seeds:
            if len(done) >= args.budget:
                break
            score(spec)
        rng = random.Random(args.seed)
        step = 0.25
        while len(done) < args.budget:
            spec, _ = best()
            timbre, prosody = parse_voice_spec(spec, names)
            prosody = prosody or dict(timbre)
            t = _norm({n: timbre.get(n, 0.0) + rng.gauss(0, step) for n in names}, args.floor)
            p = _norm({n: prosody.get(n, 0.0) + rng.gauss(0, step) for n in names}, args.floor)
            if t is None or p is None:
                continue
            child = spec_of(t, p)
            if child in done:
                continue
            before = best()[1]
            score(child)
            step = step * 1.3 if best()[1] < before else step * 0.87
    key, errors = best()
    chars_all = done[key][1] if key else 0
    singles_cer = {n: round(done[n][0] / max(1, done[n][1]), 4) for n in names
                   if n in done and done[n][2]}
    report = {'best': key, 'best_cer': round(errors / max(1, chars_all), 4) if key else None,
              'best_errors': errors, 'chars': chars_all, 'tried': len(done),
              'raced_out': raced[0], 'singles': singles_cer, 'asr_seeds': args.asr_seeds,
              'clause_split': tts.clause_split, 'speed': args.speed, 'row': args.row,
              'train': os.path.relpath(args.train, ROOT), 'sentences': len(texts),
              'cpu_s': round(time.process_time() - cpu0, 1),
              'wall_s': round(time.monotonic() - wall0, 1),
              'load_avg': [round(x, 2) for x in os.getloadavg()],
              'cache_hits': trip.cache.hits if trip.cache else 0,
              'cache_misses': trip.cache.misses if trip.cache else 0}
    if args.similarity and key:
        report['similarity'] = similarity(trip, names, key, texts[:args.similarity], args.speed)
        sim = report['similarity']
        print('speaker similarity of %s: nearest shipped %s %.3f; shipped voices to their '
              'nearest other: %s' % (key, sim['nearest'], sim['to_shipped'][sim['nearest']],
                                     sim['shipped_nearest_other']))
    print('best %s CER %s (%s/%s), %d tried (%d raced out); CPU %.0f s, wall %.0f s, load %s'
          % (key, report['best_cer'], errors, chars_all, len(done), raced[0], report['cpu_s'],
             report['wall_s'], report['load_avg']))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
