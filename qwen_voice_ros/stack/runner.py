"""
``qwen-voice-stack``: start the voice stack as processes where launch_ros is not installed.

Same node list and parameters as ``launch/voice_stack.launch.py`` (both come from
:mod:`qwen_voice_ros.stack.description`); nodes configure and activate themselves
(``autostart``), crashed nodes are respawned, Ctrl-C stops all.  Arguments in launch style
(``dialect:=false llm_backend:=openai_http``) or as flags.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from qwen_voice_ros.stack.description import NODES, NodeLaunch, build_stack

LAUNCH_ARGS = [n.name for n in NODES] + ['params_file', 'namespace', 'llm_backend',
                                         'llm_model_dir', 'use_sim_time', 'share_llm']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='qwen-voice-stack', description=__doc__.split('\n\n')[0],
        epilog='Launch-style arguments: %s (e.g. capture:=false llm_backend:=openai_http)'
               % ', '.join('%s:=...' % a for a in LAUNCH_ARGS))
    parser.add_argument('launch_args', nargs='*', metavar='NAME:=VALUE')
    parser.add_argument('--params-file', default='')
    parser.add_argument('--extra-params-file', action='append', default=[],
                        help='applied after params_file (repeatable)')
    parser.add_argument('--namespace', default='')
    parser.add_argument('--llm-backend', default='')
    parser.add_argument('--llm-model-dir', default='',
                        help='the llm node\'s ONNX model directory (a qwen-voice-export output)')
    parser.add_argument('--use-sim-time', action='store_true')
    parser.add_argument('--share-llm', action='store_true',
                        help='dialect + llm in one process sharing one loaded model')
    parser.add_argument('--print', dest='print_only', action='store_true',
                        help='print the node list (JSON) and exit')
    parser.add_argument('--respawn-delay', type=float, default=2.0)
    parser.add_argument('--no-respawn', action='store_true')
    for spec in NODES:
        parser.add_argument('--no-%s' % spec.name, dest='off_' + spec.name, action='store_true',
                            help='do not start %s (%s)' % (spec.name, spec.summary))
    args = parser.parse_args(argv)
    values: Dict[str, str] = {}
    for item in args.launch_args:
        if ':=' not in item:
            parser.error('expected NAME:=VALUE, got %r' % item)
        key, value = item.split(':=', 1)
        if key not in LAUNCH_ARGS:
            parser.error('unknown argument %r (known: %s)' % (key, ', '.join(LAUNCH_ARGS)))
        values[key] = value
    args.enabled = {s.name: values.get(s.name, 'false' if getattr(args, 'off_' + s.name)
                                       else str(s.enabled)) for s in NODES}
    args.params_file = values.get('params_file', args.params_file)
    args.namespace = values.get('namespace', args.namespace)
    args.llm_backend = values.get('llm_backend', args.llm_backend)
    args.llm_model_dir = values.get('llm_model_dir', args.llm_model_dir)
    args.use_sim_time = values.get('use_sim_time', args.use_sim_time)
    args.share_llm = values.get('share_llm', args.share_llm)
    return args


def stack_from_args(args: argparse.Namespace) -> List[NodeLaunch]:
    stack = build_stack(args.enabled, args.params_file, args.namespace, args.llm_backend,
                        args.use_sim_time, autostart=True,
                        llm_model_dir=getattr(args, 'llm_model_dir', ''),
                        share_llm=getattr(args, 'share_llm', False))
    for node in stack:
        node.params_files.extend(getattr(args, 'extra_params_file', []))
    return stack


def describe(stack: List[NodeLaunch]) -> List[dict]:
    """Describe a node list comparably (the launch test uses the same shape)."""
    return [dict({'name': n.name, 'executable': n.spec.executable, 'namespace': n.namespace,
                  'params_files': n.params_files, 'overrides': n.overrides},
                 **({'node_overrides': n.node_overrides} if n.node_overrides else {}))
            for n in stack]


class Supervisor:
    """Run each node as a child process; respawn on crash; stop all on signal."""

    def __init__(self, stack: List[NodeLaunch], respawn_delay: float = 2.0,
                 respawn: bool = True, out=sys.stdout):
        self.stack = stack
        self.respawn_delay = respawn_delay
        self.respawn = respawn
        self.out = out
        self.procs: Dict[str, subprocess.Popen] = {}
        self.restarts: Dict[str, int] = {n.name: 0 for n in stack}
        self._stopping = threading.Event()
        self._print_lock = threading.Lock()

    def command(self, node: NodeLaunch) -> List[str]:
        return [sys.executable, '-m', node.spec.module] + node.ros_arguments()

    def start(self, node: NodeLaunch) -> None:
        proc = subprocess.Popen(self.command(node), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=os.environ.copy())
        self.procs[node.name] = proc
        threading.Thread(target=self._pump, args=(node.name, proc), daemon=True).start()

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for line in iter(proc.stdout.readline, b''):
            with self._print_lock:
                self.out.write('[%s] %s' % (name, line.decode(errors='replace')))
                self.out.flush()

    def run(self) -> int:
        for node in self.stack:
            self.start(node)
        by_name = {n.name: n for n in self.stack}
        while not self._stopping.is_set():
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or self._stopping.is_set():
                    continue
                if not self.respawn:
                    self.log('%s exited with %s' % (name, code))
                    self.procs.pop(name)
                    continue
                self.restarts[name] += 1
                self.log('%s exited with %s; respawning in %.1f s (restart %d)'
                         % (name, code, self.respawn_delay, self.restarts[name]))
                self._stopping.wait(self.respawn_delay)
                if not self._stopping.is_set():
                    self.start(by_name[name])
            if not self.procs:
                return 1
            self._stopping.wait(0.2)
        return 0

    def stop(self, *_args) -> None:
        self._stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 5.0
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()

    def log(self, text: str) -> None:
        with self._print_lock:
            self.out.write('[qwen-voice-stack] %s\n' % text)
            self.out.flush()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        stack = stack_from_args(args)
    except ValueError as exc:
        print('qwen-voice-stack: %s' % exc, file=sys.stderr)
        return 2
    if args.print_only:
        print(json.dumps(describe(stack), indent=2))
        return 0
    supervisor = Supervisor(stack, args.respawn_delay, not args.no_respawn)
    supervisor.log('starting %s' % ', '.join(n.name for n in stack))
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    code = supervisor.run()
    supervisor.stop()
    return code


if __name__ == '__main__':
    sys.exit(main())
