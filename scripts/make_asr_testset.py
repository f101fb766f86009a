#!/usr/bin/env python3
"""
Voice Mandarin test sentences with Kokoro and write a manifest for ``qwen-voice-asr-eval``.

    python scripts/make_asr_testset.py --out /tmp/asr-zh            # all sentences
    qwen-voice-asr-eval --data /tmp/asr-zh/manifest.jsonl --json

Sentences: ``test/data/asr_mandarin.txt`` (written for this test set: everyday robot requests,
with commas, numbers and times).  Voice and speed rotate per sentence over Kokoro's shipped
voice vectors (Japanese speakers reading Mandarin phonemes through misaki's G2P).  WAVs are
written at Kokoro's 24 kHz, so the eval's resampling is exercised too.  Audio is not
committed: rerun this script to regenerate it (deterministic).  The voices are Japanese
speakers: how well Whisper understands them differs by voice and speed (docs/audio.md), so
``--voices jf_alpha,jf_nezumi --speeds 1.0`` gives the clearest Mandarin.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--out', required=True, help='output directory (WAVs + manifest.jsonl)')
    parser.add_argument('--sentences', default=os.path.join(ROOT, 'test', 'data',
                                                            'asr_mandarin.txt'))
    parser.add_argument('--limit', type=int, default=0, help='first N sentences only')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--voices', default='', help='comma-separated voices to rotate '
                        '(default: all five shipped voices)')
    parser.add_argument('--speeds', default='1.0,0.9,1.1', help='speeds to rotate')
    args = parser.parse_args(argv)

    from qwen_voice_ros.asr.kokoro_voice import RATE, VOICES, KokoroMandarin, available
    from qwen_voice_ros.audio.wavfile import write_wav
    reason = available()
    if reason:
        print('error: %s' % reason, file=sys.stderr)
        return 2
    with open(args.sentences, encoding='utf-8') as handle:
        sentences = [s.strip() for s in handle if s.strip() and not s.startswith('#')]
    if args.limit:
        sentences = sentences[:args.limit]
    os.makedirs(args.out, exist_ok=True)
    voices = [v for v in args.voices.split(',') if v] or list(VOICES)
    speeds = [float(v) for v in args.speeds.split(',') if v]
    tts = KokoroMandarin(threads=args.threads)
    rows = []
    for i, text in enumerate(sentences):
        name = 'zh%03d.wav' % i
        path = os.path.join(args.out, name)
        voice, speed = voices[i % len(voices)], speeds[i % len(speeds)]
        if not os.path.exists(path):
            write_wav(path, tts.synth(text, voice, speed), RATE)
        rows.append({'audio': name, 'text': text, 'voice': voice, 'speed': speed,
                     'label': 'mandarin'})
        print('%s %s' % (name, text), file=sys.stderr)
    with open(os.path.join(args.out, 'manifest.jsonl'), 'w', encoding='utf-8') as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + '\n')
    print(os.path.join(args.out, 'manifest.jsonl'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
