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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--llm-model-dir', default=os.environ.get('QWEN_VOICE_LLM_DIR', ''),
                        help='ONNX model directory for the llm node (qwen-voice-export output)')
    # A new turn is a barge-in: leave each reply time to be generated and spoken.
    parser.add_argument('--gap-s', type=float, default=15.0, help='seconds between text turns')
    parser.add_argument('--tail-s', type=float, default=15.0)
    parser.add_argument('--max-new-tokens', type=int, default=64)
    parser.add_argument('--ready-timeout-s', type=float, default=600.0,
                        help='longest wait for every node to report serving or an error')
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
