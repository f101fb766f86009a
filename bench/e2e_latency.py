#!/usr/bin/env python3
"""
End-to-end latency of the voice stack from recorded microphone audio.

    bench/e2e_latency.py BAG --audio-topic TOPIC [--info-topic TOPIC] [--json]
                         [--truth truth.json] [--plot out.png] [--out DIR] [--clock]

Starts the stack (hearing subscribed to the bag's audio topic, capture off, playback into WAV
files in real time), replays the bag (audio_common_msgs AudioDataStamped + AudioInfo, sqlite3
or mcap) with its recorded timing, records everything the stack publishes and prints the
``qwen-voice-report`` of the recording.  With ``--json`` the last line is the report's JSON
object (``turns``, ``answered_turns``, ``first_audio_p50_s``, ``first_audio_p95_s``, ...).
A ``truth.json`` inside the bag folder (``bench/make_speech_bag.py`` writes one) is used
automatically.  Make a bag: ``bench/make_speech_bag.py speech_bag``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qwen_voice_ros.replay import turn_report  # noqa: E402
from qwen_voice_ros.stack import e2e  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LLM = os.path.join(REPO, 'models', 'qwen2.5-coder-0.5b-int8')


def default_info_topic(audio_topic: str) -> str:
    head, _sep, tail = audio_topic.rstrip('/').rpartition('/')
    if tail in ('audio_stamped', 'audio'):
        return (head + '/' if head else '') + 'audio_info'
    return 'audio_info'


def default_llm_dir() -> str:
    explicit = os.environ.get('QWEN_VOICE_LLM_DIR', '')
    if explicit:
        return explicit
    return DEFAULT_LLM if os.path.isfile(os.path.join(DEFAULT_LLM, 'export_info.json')) else ''


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='bench/e2e_latency.py', description=__doc__.split(
        '\n\n')[0].strip())
    parser.add_argument('bag', help='rosbag2 folder with AudioDataStamped (+ AudioInfo)')
    parser.add_argument('--audio-topic', required=True, help='e.g. /audio_stamped')
    parser.add_argument('--info-topic', default='',
                        help='AudioInfo topic (default: audio_info next to the audio topic)')
    parser.add_argument('--json', action='store_true', help='last line: the report as JSON')
    parser.add_argument('--truth', default='', help='default: BAG/truth.json when present')
    parser.add_argument('--plot', default='', metavar='OUT_PNG')
    parser.add_argument('--out', default='', help='output folder (default: a new temp folder)')
    parser.add_argument('--llm-model-dir', default=default_llm_dir(),
                        help='qwen-voice-export folder (default $QWEN_VOICE_LLM_DIR, else the '
                             'offline demo pack in models/)')
    parser.add_argument('--asr-model-dir', default='',
                        help='CTranslate2 Whisper folder (default: the offline Whisper pack)')
    parser.add_argument('--tts', default='kokoro', help='tts backend (kokoro | espeak)')
    parser.add_argument('--max-new-tokens', type=int, default=48)
    parser.add_argument('--min-silence-ms', type=int, default=0,
                        help='VAD end-of-speech hangover (0 = the node\'s default)')
    parser.add_argument('--tail-s', type=float, default=25.0,
                        help='keep recording this long after the bag ends')
    parser.add_argument('--clock', action='store_true',
                        help='replay with --clock and run the stack with use_sim_time')
    parser.add_argument('--monitor', action='store_true', help='print events as they happen')
    parser.add_argument('--extra-params-file', action='append', default=[],
                        help='parameter YAML applied after the stack defaults (repeatable), '
                             'e.g. to compare one node setting')
    parser.add_argument('stack_args', nargs='*', metavar='NAME:=VALUE',
                        help='passed to qwen-voice-stack')
    args = parser.parse_args(argv)

    truth = args.truth or os.path.join(args.bag, 'truth.json')
    truth = truth if os.path.isfile(truth) else None
    out = args.out or tempfile.mkdtemp(prefix='qwen-voice-e2e-')

    def log(text):
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
    if not args.llm_model_dir:
        log('[e2e] no LLM model (set --llm-model-dir or QWEN_VOICE_LLM_DIR): the llm stage '
            'will report not configured')
    try:
        report = e2e.run(args.bag, out, audio_topic=args.audio_topic,
                         info_topic=args.info_topic or default_info_topic(args.audio_topic),
                         llm_model_dir=args.llm_model_dir, asr_dir=args.asr_model_dir,
                         tts=args.tts, max_new_tokens=args.max_new_tokens,
                         tail_s=args.tail_s, sim_time=args.clock, monitor=args.monitor,
                         min_silence_ms=args.min_silence_ms, stack_args=args.stack_args + [
                             a for f in args.extra_params_file
                             for a in ('--extra-params-file', f)],
                         truth=truth, log=log)
    except (OSError, ValueError) as exc:
        print('e2e_latency: %s' % exc, file=sys.stderr)
        return 2
    print(turn_report.format_report(report), flush=True)
    print('output: %s (recorded bag, report.json, wav/, stack.log)' % out, flush=True)
    if args.plot:
        print('plot: %s' % turn_report.plot(report, args.plot), flush=True)
    if args.json:
        print(turn_report.compact_json(report), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
