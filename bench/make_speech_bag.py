#!/usr/bin/env python3
"""
Write a bag of spoken requests (microphone audio) and its truth file.

    bench/make_speech_bag.py OUT_BAG [--tts kokoro|espeak] [--count N] [--gap-s S]
                             [--storage sqlite3|mcap] [--audio-topic T] [--info-topic T]

Voices >= 8 requests in several dialects (``qwen_voice_ros.replay.speech_bag.REQUESTS``) with
the offline neural TTS (Kokoro, from the registry pack; two voices alternate) or espeak-ng,
and writes them as audio_common_msgs AudioDataStamped (32 ms chunks, S16LE 16 kHz mono) with
a latched AudioInfo, separated by ``--gap-s`` seconds of quiet noise.  ``OUT_BAG/truth.json``
holds per turn the reference transcript, dialect label and speech start/end in bag seconds
(the format ``qwen-voice-report --truth`` reads).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qwen_voice_ros.replay import speech_bag  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='bench/make_speech_bag.py',
                                     description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('bag', help='new bag folder')
    parser.add_argument('--tts', default='kokoro', choices=('kokoro', 'espeak'))
    parser.add_argument('--count', type=int, default=len(speech_bag.REQUESTS))
    parser.add_argument('--gap-s', type=float, default=10.0,
                        help='silence after each request (time for the reply to play)')
    parser.add_argument('--storage', default='sqlite3', choices=('sqlite3', 'mcap'))
    parser.add_argument('--audio-topic', default='audio_stamped')
    parser.add_argument('--info-topic', default='audio_info')
    args = parser.parse_args(argv)
    if os.path.exists(args.bag):
        print('%s exists; choose a new folder' % args.bag, file=sys.stderr)
        return 2
    if args.tts == 'kokoro':
        reason = speech_bag.kokoro_unavailable()
        if reason:
            print('Kokoro unavailable (%s); use --tts espeak' % reason, file=sys.stderr)
            return 2
    requests = [speech_bag.REQUESTS[i % len(speech_bag.REQUESTS)] for i in range(args.count)]
    truth = speech_bag.make_request_bag(
        args.bag, requests, tts=args.tts, truth_path=os.path.join(args.bag, 'truth.json'),
        progress=lambda text: print(text, flush=True), gap_s=args.gap_s,
        storage=args.storage, audio_topic=args.audio_topic, info_topic=args.info_topic)
    end = truth['turns'][-1]['speech_end_s'] if truth['turns'] else 0.0
    print('wrote %s: %d requests, %.1f s of audio on %s; truth: %s'
          % (args.bag, len(requests), end + 1.0, truth['audio_topic'], truth['path']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
