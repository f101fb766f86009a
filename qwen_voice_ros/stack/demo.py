"""
The README's run command: the whole stack on its embedded defaults, turn by turn.

Starts every node of the stack (``qwen-voice-stack``), a monitor that prints each stage's
output per turn and each node's health, then plays a bag of text turns into ``transcript``
(microphone + ASR stand in for it once the hearing stage has a model) with
``qwen-voice-replay``, records the outputs and prints the per-turn report.  A stage whose
backend is not configured here says so on /diagnostics and in the printout; nothing is faked.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--llm-model-dir', default=os.environ.get('QWEN_VOICE_LLM_DIR', ''),
                        help='ONNX model directory for the llm node (qwen-voice-export output)')
    # A new turn is a barge-in: leave each reply time to be generated and spoken.
    parser.add_argument('--gap-s', type=float, default=15.0, help='seconds between text turns')
    parser.add_argument('--tail-s', type=float, default=15.0)
    parser.add_argument('--max-new-tokens', type=int, default=64)
    parser.add_argument('stack_args', nargs='*', metavar='NAME:=VALUE',
                        help='passed to qwen-voice-stack (e.g. llm_backend:=openai_http)')
    args = parser.parse_args(argv)

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
        time.sleep(8.0)  # nodes start, configure and report their health
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
