"""
The README's run command: the whole stack from speech, turn by turn.

By default it voices a few user requests in several dialects with the offline neural TTS
(Kokoro, from the registry pack), writes them as microphone audio (a bag of AudioDataStamped
on ``audio_stamped``, 32 ms chunks, as the capture node publishes) and plays that bag into the
running stack: VAD -> ASR -> dialect -> LLM -> TTS -> playback into WAV files.  It prints each
node's health and every stage's event as it happens (the monitor), then per turn the
transcript, dialect, reply and the latency from the end of speech to the first audio out,
and joins each reply into ``reply_NN.wav``.  ``--typed`` replays typed text into
``transcript`` instead (no hearing stage).  A stage whose backend is not configured here says
so on /diagnostics and in the printout; nothing is faked.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

DEMO_TURNS = [
    '你好，请用一句话介绍一下你自己。',
    '今天巴适得很，我们去耍嘛。',
    '侬今朝夜饭吃啥？',
    '俺们那嘎达冬天贼拉冷。',
]


def node_fqns(stack_args) -> list:
    """Fully qualified names of the nodes ``qwen-voice-stack stack_args`` starts."""
    from qwen_voice_ros.stack import runner
    stack = runner.stack_from_args(runner.parse_args(list(stack_args)))
    return ['/'.join(['', n.namespace.strip('/'), n.name]).replace('//', '/') for n in stack]


def settled(level: int, message: str) -> bool:
    """Tell whether a health report is final: serving, or failed (with a reason to show)."""
    return level >= 2 or (level == 0 and message == 'serving')


def wait_until_settled(fqns, timeout_s: float) -> list:
    """
    Wait until every node reports serving or an error on /diagnostics; return the ones that didn't.

    A fixed sleep is not enough: loading a model at configure can take from seconds (the demo
    pack here) to minutes (Qwen3-1.7B on a Jetson), and a turn played before the llm node
    subscribes would never reach it.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from qwen_voice_ros.nodes import ros_io

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('voice_demo_wait', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    done = set()

    def on_diagnostics(msg):
        for status in msg.status:
            level = ros_io.diagnostic_level(status)
            if settled(level, status.message):
                done.add(status.name.split(':', 1)[0])
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics,
                             ros_io.QOS_DIAGNOSTICS)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not set(fqns) <= done:
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    return [name for name in fqns if name not in done]


def print_turns(report, truth_turns, wavs) -> None:
    """Per spoken request: what was heard, the dialect, the reply, the latency, the WAV."""
    rows = [r for r in report['rows'] if r['transcript'] is not None
            or 'eos_detect' in r['stages']]
    print('\n=== %d requests spoken, %d turns heard, %d answered ===' % (
        len(truth_turns), len(rows), report['answered_turns']), flush=True)
    for i, row in enumerate(rows, 1):
        said = truth_turns[i - 1] if i <= len(truth_turns) else {}
        st = row['stages']
        print('#%d said     %s  [%s]' % (i, said.get('transcript', '?'), said.get('dialect', '?')))
        print('   heard    %s' % (row['transcript'] or '-'))
        print('   dialect  %s' % (row['dialect'] or '-'))
        print('   reply    %s' % (row['reply'] if row['reply'] is not None else '-'))
        if 'first_audio' in st:
            parts = ['%s %.2f' % (name, st[key]) for name, key in (
                ('VAD', 'eos_detect'), ('ASR', 'asr'), ('1st sentence', 'first_sentence'),
                ('1st TTS audio', 'first_tts_audio')) if key in st]
            print('   latency  %.2f s end of speech -> first audio out (%s)'
                  % (st['first_audio'], ', '.join(parts)))
        else:
            print('   latency  - (not answered: %s)' % row['why'])
        if row['turn_id'] in wavs:
            print('   wav      %s' % wavs[row['turn_id']])
    for reason in report['reasons']:
        print('why: %s' % reason)
    print('first audio out p50 %s s, p95 %s s (from the end of speech)'
          % (report['first_audio_p50_s'], report['first_audio_p95_s']), flush=True)


def run_spoken(args) -> int:
    from qwen_voice_ros.replay import speech_bag, turn_report
    from qwen_voice_ros.stack import e2e
    work = args.out or tempfile.mkdtemp(prefix='qwen-voice-demo-')
    os.makedirs(work, exist_ok=True)
    tts = 'kokoro'
    reason = speech_bag.kokoro_unavailable()
    if reason:
        tts = 'espeak'
        print('[demo] Kokoro unavailable (%s): voicing the requests with espeak-ng, which '
              'Whisper-base cannot transcribe well' % reason, flush=True)
    bag = os.path.join(work, 'spoken_requests')
    requests = list(speech_bag.DEMO_REQUESTS)
    print('[demo] voicing %d requests with %s into %s' % (len(requests), tts, bag), flush=True)
    progress = lambda text: print('[demo] ' + text, flush=True)  # noqa: E731
    turn_bags = []
    if args.gap_s is None:  # one request at a time, each after the previous reply
        truth = speech_bag.make_turn_bags(bag, requests, tts=tts, progress=progress)
        bag, turn_bags = truth['format_bag'], truth['bags']
    else:  # one bag, requests a fixed gap apart (a newer request may cut a slow reply)
        truth = speech_bag.make_request_bag(bag, requests, tts=tts, gap_s=args.gap_s,
                                            truth_path=os.path.join(bag, 'truth.json'),
                                            progress=progress)
    report = e2e.run(bag, os.path.join(work, 'run'), llm_model_dir=args.llm_model_dir,
                     tts=args.tts, max_new_tokens=args.max_new_tokens, tail_s=args.tail_s,
                     monitor=True, ready_timeout_s=args.ready_timeout_s,
                     stack_args=args.stack_args, truth=truth['path'],
                     log=lambda text: print(text, flush=True), turn_bags=turn_bags)
    print('\n' + turn_report.format_report(report), flush=True)
    wavs = e2e.reply_wavs(report['wav_dir'], [r['turn_id'] for r in report['rows']], work)
    print_turns(report, truth['turns'], wavs)
    print('output: %s (spoken_requests + truth.json, run/recorded bag, run/report.json, '
          'reply_NN.wav)' % work, flush=True)
    return 0 if report['answered_turns'] else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--llm-model-dir', default=os.environ.get('QWEN_VOICE_LLM_DIR', ''),
                        help='ONNX model directory for the llm node (qwen-voice-export output)')
    parser.add_argument('--typed', action='store_true',
                        help='replay typed text into `transcript` instead of speech')
    parser.add_argument('--out', default='', help='output folder (default: a new temp folder)')
    parser.add_argument('--tts', default='kokoro', help='the stack\'s tts backend')
    # A new turn is a barge-in: leave each reply time to be generated and spoken.
    parser.add_argument('--gap-s', type=float, default=None,
                        help='seconds between turns (typed: default 15; spoken: default none = '
                             'each request once the previous reply has played)')
    parser.add_argument('--tail-s', type=float, default=None,
                        help='seconds recorded after the last turn (default 15 typed, 25 spoken)')
    parser.add_argument('--max-new-tokens', type=int, default=None,
                        help='reply length cap (default 64 typed, 48 spoken)')
    parser.add_argument('--ready-timeout-s', type=float, default=600.0,
                        help='longest wait for every node to report serving or an error')
    parser.add_argument('stack_args', nargs='*', metavar='NAME:=VALUE',
                        help='passed to qwen-voice-stack (e.g. llm_backend:=openai_http)')
    args = parser.parse_args(argv)
    typed = {'gap_s': 15.0, 'tail_s': 15.0, 'max_new_tokens': 64}
    spoken = {'tail_s': 25.0, 'max_new_tokens': 48}
    for key, value in (typed if args.typed else spoken).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.typed:
        return run_spoken(args)
    return run_typed(args)


def run_typed(args) -> int:
    """Replay typed text turns into ``transcript`` (the stack without its hearing stage)."""
    from qwen_voice_ros.replay.bags import write_text_turns_bag
    work = tempfile.mkdtemp(prefix='qwen-voice-demo-')
    bag = os.path.join(work, 'text_turns')
    write_text_turns_bag(bag, DEMO_TURNS, gap_s=args.gap_s)
    params = os.path.join(work, 'demo.yaml')
    with open(params, 'w') as f:
        f.write('/**/llm:\n  ros__parameters:\n    model_dir: "%s"\n    max_new_tokens: %d\n'
                % (args.llm_model_dir, args.max_new_tokens))
    py = sys.executable
    stack = subprocess.Popen([py, '-m', 'qwen_voice_ros.stack.runner', '--no-respawn',
                              '--extra-params-file', params] + args.stack_args)
    monitor = subprocess.Popen([py, '-m', 'qwen_voice_ros.stack.monitor'])
    code = 1
    try:
        late = wait_until_settled(node_fqns(args.stack_args), args.ready_timeout_s)
        if late:
            print('[demo] still starting after %.0f s: %s; playing anyway'
                  % (args.ready_timeout_s, ', '.join(late)), flush=True)
        print('\n=== playing %d text turns into `transcript` ===' % len(DEMO_TURNS), flush=True)
        out = os.path.join(work, 'recorded')
        code = subprocess.call([py, '-m', 'qwen_voice_ros.replay.cli', bag, '--record', out,
                                '--tail-s', str(args.tail_s), '--wait-for-subscribers', '1',
                                '--report'])
        print('recorded bag: %s' % out)
    finally:
        for proc in (monitor, stack):
            proc.send_signal(2)
        for proc in (monitor, stack):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


if __name__ == '__main__':
    sys.exit(main())
