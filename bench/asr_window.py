#!/usr/bin/env python3
"""
Whisper-base on a short encoder window vs the full 30 s window: CER and CPU time.

    bench/asr_window.py [SPEECH_BAG] [--pads 0 1.0 1.5 2.0] [--round-trip N] [--json]

Transcribes, with each ``faster_whisper.encoder_pad_s`` in ``--pads`` (0 = Whisper's usual
30 s window), the requests of a speech bag (``bench/make_speech_bag.py``; the utterance the
VAD hands over: speech + 0.2 s pads), the VAD test's three comma-paused requests, and the
first ``--round-trip`` sentences of ``data/tts/round_trip_zh.txt`` voiced by Kokoro (the
TTS round-trip set).  Prints per setting the CER over all clips, the CPU seconds (median per
clip and total) and how many decodes the loop guard sent back to the full window.  With
``--json`` the last line is one JSON object keyed by the padding.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'bench'))
sys.path.insert(0, os.path.join(REPO, 'test'))

import numpy as np  # noqa: E402


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def clips(bag: str, round_trip: int):
    out = []
    if bag:
        from stage_costs import clips_from_bag
        out += clips_from_bag(bag)
    import test_audio_vad_speech as vad_test
    out += [(text, np.pad(vad_test.speech(text, voice, speed), (3200, 3200)))
            for text, voice, speed in vad_test.REQUESTS]
    if round_trip:
        from qwen_voice_ros.audio.pcm import resample
        from qwen_voice_ros.tts.intelligibility import read_texts
        from qwen_voice_ros.tts.kokoro import KokoroTTS
        from qwen_voice_ros.tts.text_norm import normalize
        tts = KokoroTTS()
        tts.load()
        for text in read_texts()[:round_trip]:
            speech = tts.synthesize(normalize(text))
            out.append((text, resample(speech.audio, speech.sample_rate, 16000)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('bag', nargs='?', default='')
    parser.add_argument('--pads', type=float, nargs='+', default=[0.0, 1.0, 1.5, 2.0])
    parser.add_argument('--round-trip', type=int, default=20)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR
    from qwen_voice_ros.asr.textnorm import edit_distance, normalize_for_cer
    data = clips(args.bag, args.round_trip)
    results = {}
    for pad in args.pads:
        asr = FasterWhisperASR(beam_size=1, temperature_fallback=False,
                               cpu_threads=args.threads, encoder_pad_s=pad)
        asr.load()
        asr.transcribe(np.zeros(8000, np.float32))
        errors = chars = 0
        cpus = []
        for ref, audio in data:
            before = cpu_s()
            hyp = asr.transcribe(audio)
            cpus.append(cpu_s() - before)
            ref, hyp = normalize_for_cer(ref), normalize_for_cer(hyp)
            errors += edit_distance(list(ref), list(hyp))
            chars += len(ref)
        results[str(pad)] = {'clips': len(data), 'cer': round(errors / float(chars), 4),
                             'cpu_p50_s': round(statistics.median(cpus), 3),
                             'cpu_total_s': round(sum(cpus), 2),
                             'full_window_retries': asr.full_window_retries}
        print('encoder_pad_s %-4s %s' % (pad, results[str(pad)]), flush=True)
    results['load_avg'] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
