"""
``qwen-voice-clone-eval``: how close the cloned/matched voice is to a reference speaker.

::

    qwen-voice-clone-eval --reference REF.wav --texts FILE.txt [--backend kokoro] [--json]

Synthesises every line of ``FILE.txt`` with the voice made from ``REF.wav`` (Kokoro: the
blend of shipped voice vectors found by voice matching, see :mod:`.voice_match`; a cloning
backend such as ``cosyvoice``: the clip itself as its prompt) and prints the speaker
similarity -- cosine of the d-vectors of the reference and of each output, same embedder,
averaged over the texts.  The baseline is the best single shipped Kokoro voice on the same
texts.  With ``--json`` the last line is one JSON object with keys ``similarity`` and
``baseline_similarity`` (and more).  ``--exclude`` holds shipped voices out of the search
(to measure on a voice that is none of the searched vectors).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np


def _texts(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        texts = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    if not texts:
        raise SystemExit('error: %s has no text lines' % path)
    return texts


def _similarity(tts, embedder, reference: np.ndarray, texts: Sequence[str],
                style=None) -> float:
    from qwen_voice_ros.speaker.embedder import cosine
    values = []
    for text in texts:
        speech = tts.synthesize(text, style=style) if style is not None else \
            tts.synthesize(text)
        values.append(cosine(reference, embedder.embed(speech.audio, speech.sample_rate)))
    return float(np.mean(values))


def _backend_params(pairs: Sequence[str]) -> Dict[str, object]:
    params: Dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep:
            raise SystemExit('error: --param takes key=value, got %r' % pair)
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-clone-eval', description=__doc__.split(
        '\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--reference', required=True, help='reference clip (WAV)')
    parser.add_argument('--texts', required=True, help='UTF-8 file, one text per line')
    parser.add_argument('--backend', default='kokoro',
                        help='kokoro (voice matching) or a cloning backend of tts.REGISTRY')
    parser.add_argument('--param', action='append', default=[], metavar='KEY=VALUE',
                        help='backend parameter (repeatable), e.g. base_url=http://host:50000')
    parser.add_argument('--transcript', default='', help='what the reference clip says')
    parser.add_argument('--tries', type=int, default=32, help='blends tried by voice matching')
    parser.add_argument('--exclude', action='append', default=[], metavar='VOICE',
                        help='shipped voice held out of the search and the baseline')
    parser.add_argument('--floor', type=float, default=0.0,
                        help='lowest timbre blend weight (0: blends only; < 0: extrapolate)')
    parser.add_argument('--cer-margin', type=float, default=0.05,
                        help='intelligibility constraint: the matched voice\'s CER through the '
                        'project\'s ASR may exceed the best single voice\'s by at most this')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the intelligibility check (then no extrapolation)')
    parser.add_argument('--cache-dir', default='', help='matched-voice cache (default ~/.cache)')
    parser.add_argument('--json', action='store_true', help='last line: one JSON object')
    args = parser.parse_args(argv)

    from qwen_voice_ros.speaker.embedder import SpeakerEmbedder
    from qwen_voice_ros.tts import create_tts
    from qwen_voice_ros.tts.kokoro import format_voice
    from qwen_voice_ros.tts.profiles import ProfileError, VoiceProfile, load_reference
    from qwen_voice_ros.tts.voice_match import match_profile

    started = time.monotonic()
    texts = _texts(args.texts)
    profile = VoiceProfile(wav_path=args.reference, transcript=args.transcript)
    try:
        ref_audio, ref_rate = load_reference(profile)
    except ProfileError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    embedder = SpeakerEmbedder()
    reference = embedder.embed(ref_audio)
    kokoro = create_tts('kokoro', **(_backend_params(args.param)
                                     if args.backend == 'kokoro' else {}))
    kokoro.load()
    names = sorted(n for n in kokoro.voices if n not in set(args.exclude))
    if not names:
        raise SystemExit('error: --exclude left no shipped voice')
    singles = {n: _similarity(kokoro, embedder, reference, texts, kokoro.voices[n])
               for n in names}
    baseline_voice = max(singles, key=singles.get)
    report = {'reference': args.reference, 'reference_rate': ref_rate, 'backend': args.backend,
              'texts': len(texts), 'excluded': args.exclude,
              'baseline_voice': baseline_voice, 'singles': {k: round(v, 4)
                                                            for k, v in singles.items()}}
    if args.backend == 'kokoro':
        from qwen_voice_ros.tts.kokoro import blend
        result = match_profile(kokoro, profile, tries=args.tries,
                               cache_dir=args.cache_dir or None, embedder=embedder,
                               exclude=args.exclude, floor=args.floor,
                               cer_margin=args.cer_margin, use_asr=not args.no_check)
        similarity = _similarity(kokoro, embedder, reference, texts,
                                 blend(kokoro.voices, result.weights, result.prosody))
        report.update(matched_voice=format_voice(result.weights, result.prosody),
                      tries=result.tries, floor=args.floor,
                      search_similarity=round(result.similarity, 4), cached=result.cached,
                      cer=result.cer, baseline_cer=result.baseline_cer,
                      cer_margin=args.cer_margin, check=result.check)
    else:
        backend = create_tts(args.backend, **_backend_params(args.param))
        backend.load()
        report['voice'] = backend.set_profile(profile)
        similarity = _similarity(backend, embedder, reference, texts)
    report.update(similarity=round(similarity, 4),
                  baseline_similarity=round(singles[baseline_voice], 4),
                  gain=round(similarity - singles[baseline_voice], 4),
                  seconds=round(time.monotonic() - started, 1))
    print('reference %s (%d Hz), %d texts, backend %s'
          % (args.reference, ref_rate, len(texts), args.backend))
    for name, value in sorted(singles.items(), key=lambda kv: -kv[1]):
        print('  single %-16s %.4f' % (name, value))
    if 'matched_voice' in report:
        print('  matched %s (%d tries%s)' % (report['matched_voice'], report['tries'],
                                             ', cached' if report['cached'] else ''))
        print('  intelligibility: %s' % report['check'])
    print('similarity %.4f  baseline_similarity %.4f (%s)  gain %+.4f'
          % (similarity, singles[baseline_voice], baseline_voice, report['gain']))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
