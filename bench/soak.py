#!/usr/bin/env python3
"""
Soak test: replay N typed turns through ``qwen-voice-stack`` and account for every one.

Starts the stack (dialect, llm, tts, playback; capture and hearing off) on a private ROS
domain, with the llm on an OpenAI-compatible server: by default the local test server
(``test/llm_server.py``: deterministic replies, streamed), or ``--llm-url`` for a real
one.  Publishes N typed turns on ``transcript``, ``--gap-s`` apart, and follows
``voice/events``.  Reports, per turn, its terminal outcome (``played``: playback of its
reply to its final chunk; ``cancelled``: superseded by a newer turn; ``error`` /
``error_fallback_played``; lost: ``none`` -- no terminal event at all --,
``reply_not_played`` -- a reply, then nothing --, or ``playback_unfinished`` -- some
chunks played, no final one and no cancel or error), and per node the RSS at the start
(after a warm-up) and at the end, with growth in %.

    python bench/soak.py [--turns 1000] [--gap-s 1.5] [--domain 121] [--tts espeak] [--json]

With ``--json`` the last line is one JSON object: turns, outcomes, lost, rss_mb (per node
start/end/growth_pct), max_growth_pct, restarts, diagnostics (last values per node),
seconds; and since issue 8's last fixes: domain, cancelled_by_stage and errors_by_stage
(per turn, the ``detail.stage``/node of its first ``cancelled`` / ``error`` event: ``tts``
shows the tts pipeline's drop path ran; ``playback`` or ``tts`` errors from ``/llm`` are
its downstream watch).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'test'))
NODES = ('dialect', 'llm', 'tts', 'playback')
PARAMS = """
/**/llm:
  ros__parameters:
    backend: openai_http
    base_url: {url}
    openai_http.base_url: {url}
    timeout_s: 10.0
/**/tts:
  ros__parameters:
    backend: {tts}
/**/playback:
  ros__parameters:
    sink: "null"
    realtime: {realtime}
"""
QUESTIONS = ('帮我拿一瓶水', '今天天气怎么样', '把灯打开', '你叫什么名字', '带我去厨房',
             '现在几点了', '给我讲个笑话', '声音小一点')


def rss_mb(pid: int) -> float:
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float('nan')


def node_pids(stack_pid: int) -> dict:
    pids = {}
    for name in NODES:
        out = subprocess.run(['pgrep', '-P', str(stack_pid), '-f',
                              'qwen_voice_ros.nodes.%s_node' % name],
                             stdout=subprocess.PIPE, text=True).stdout.split()
        if out:
            pids[name] = int(out[0])
    return pids


def outcome_of(stages) -> str:
    """
    Return a turn's terminal outcome from the event stages seen for it.

    ``stages`` holds the event stages, plus ``playback_final`` for a ``playback`` event
    with ``final`` (the turn's last chunk).
    """
    if 'cancelled' in stages:
        return 'cancelled'            # superseded by a newer turn (maybe partly played)
    if 'error' in stages:
        return 'error_fallback_played' if 'playback' in stages else 'error'
    if 'playback_final' in stages:
        return 'played'
    if 'playback' in stages:
        return 'playback_unfinished'  # some chunks played, then nothing: lost
    if 'reply' in stages:
        return 'reply_not_played'     # silently lost after the llm: counted as lost
    return 'none'


LOST = ('none', 'reply_not_played', 'playback_unfinished')
# Fast DDS refuses domain ids above 232; the default keeps to the range this bench always
# used, away from the per-engineer test ranges handed out for parallel work.
DEFAULT_DOMAINS = (120, 129)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--turns', type=int, default=1000)
    parser.add_argument('--gap-s', type=float, default=1.5)
    parser.add_argument('--warmup', type=int, default=20,
                        help='turns before the start RSS is taken')
    parser.add_argument('--settle-s', type=float, default=30.0,
                        help='after the last turn, wait this long for outcomes')
    parser.add_argument('--llm-url', default='', help='OpenAI-compatible server ("" = local)')
    parser.add_argument('--tts', default='espeak', help='tts backend (espeak, kokoro, ...)')
    parser.add_argument('--no-realtime', action='store_true',
                        help='null sink returns at once instead of taking the audio time')
    parser.add_argument('--domain', type=int, default=None,
                        help='ROS_DOMAIN_ID of the private stack (0-232; default: a random '
                        'one in %d-%d)' % DEFAULT_DOMAINS)
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    if args.domain is None:
        args.domain = random.SystemRandom().randint(*DEFAULT_DOMAINS)
    if not 0 <= args.domain <= 232:
        parser.error('--domain must be in 0-232 (Fast DDS rejects larger ids)')

    import rclpy  # noqa: F401  (fail early outside the ROS environment)
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String

    from llm_server import ChatServer
    from qwen_voice_ros.core import events as turn_events
    from qwen_voice_ros.nodes import ros_io
    from ros_harness import Probe, diagnostics_of, ros_env

    server = None
    url = args.llm_url
    if not url:
        server = ChatServer(delay_s=0.03).__enter__()
        url = server.url
    env = ros_env(args.domain)
    tmp = tempfile.mkdtemp(prefix='soak-')
    params = os.path.join(tmp, 'params.yaml')
    with open(params, 'w') as f:
        f.write(PARAMS.format(url=url, tts=args.tts,
                              realtime='false' if args.no_realtime else 'true'))
    log = open(os.path.join(tmp, 'stack.log'), 'wb')
    stack = subprocess.Popen(
        [sys.executable, '-m', 'qwen_voice_ros.stack.runner', 'capture:=false',
         'hearing:=false', '--extra-params-file', params], cwd=REPO, env=env,
        stdout=log, stderr=subprocess.STDOUT)
    probe = Probe(env['ROS_DOMAIN_ID'])
    stages = collections.defaultdict(set)   # turn id -> stages seen
    ended_by = {}          # (turn id, cancelled|error) -> 'detail.stage/node' of the first
    text_to_turn = {}
    invalid = [0]
    lock = threading.Lock()

    def on_event(msg):
        try:
            event = turn_events.decode(msg.data)
        except turn_events.EventError:
            invalid[0] += 1
            return
        with lock:
            stages[event['turn_id']].add(event['stage'])
            if event['stage'] == 'playback' and event.get('final') is True:
                stages[event['turn_id']].add('playback_final')
            if event['stage'] in ('cancelled', 'error'):
                ended_by.setdefault((event['turn_id'], event['stage']), '%s/%s' % (
                    (event.get('detail') or {}).get('stage') or '?', event['node']))
            if event['stage'] == 'transcript' and 'text' in event:
                text_to_turn.setdefault(event['text'], event['turn_id'])

    start = time.monotonic()
    rss = {}
    summary = {}
    try:
        probe.node.create_subscription(String, 'voice/events', on_event, ros_io.QOS_EVENTS)
        probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        pub = probe.publisher(String, 'transcript', ros_io.QOS_TEXT)
        probe.wait_for(lambda: all(diagnostics_of(probe, n) is not None
                                   and diagnostics_of(probe, n).message == 'serving'
                                   for n in NODES), 90, 'the stack serving')
        pids = node_pids(stack.pid)
        texts = []
        next_at = time.monotonic()
        for i in range(args.turns):
            if i == min(args.warmup, args.turns - 1):
                pids = node_pids(stack.pid)
                rss = {n: {'start': round(rss_mb(p), 1)} for n, p in pids.items()}
            text = '第%d句：%s' % (i + 1, QUESTIONS[i % len(QUESTIONS)])
            texts.append(text)
            pub.publish(String(data=text))
            next_at += args.gap_s
            time.sleep(max(0.0, next_at - time.monotonic()))
            if (i + 1) % 50 == 0:
                with lock:
                    done = sum(1 for t in texts if outcome_of(
                        stages.get(text_to_turn.get(t, ''), ())) not in LOST)
                print('%d/%d turns sent, %d with an outcome, %.0f s'
                      % (i + 1, args.turns, done, time.monotonic() - start), flush=True)
        settle_end = time.monotonic() + args.settle_s
        while time.monotonic() < settle_end:
            with lock:
                if all(outcome_of(stages.get(text_to_turn.get(t, ''), ())) not in LOST
                       for t in texts):
                    break
            time.sleep(0.5)
        end_pids = node_pids(stack.pid)
        for name, row in rss.items():
            row['end'] = round(rss_mb(end_pids.get(name, -1)), 1)
            row['growth_pct'] = round(100.0 * (row['end'] - row['start']) / row['start'], 1)
            row['respawned'] = end_pids.get(name) != pids.get(name)
        with lock:
            outcomes = collections.Counter(
                outcome_of(stages.get(text_to_turn.get(t, ''), ())) for t in texts)
            unattributed = sum(1 for t in texts if t not in text_to_turn)
            by_stage = {kind: dict(collections.Counter(
                ended_by[(text_to_turn[t], kind)] for t in texts
                if (text_to_turn.get(t), kind) in ended_by)) for kind in ('cancelled', 'error')}
            lost_examples = [(text_to_turn.get(t, ''), sorted(stages.get(
                text_to_turn.get(t, ''), ()))) for t in texts
                if outcome_of(stages.get(text_to_turn.get(t, ''), ())) in LOST][:8]
        diagnostics = {}
        for name in NODES:
            status = diagnostics_of(probe, name)
            if status is not None:
                diagnostics[name] = {kv.key: kv.value for kv in status.values}
        growths = [r['growth_pct'] for r in rss.values()]
        summary = {
            'turns': args.turns, 'gap_s': args.gap_s,
            'outcomes': dict(outcomes), 'lost': sum(outcomes.get(k, 0) for k in LOST),
            'unattributed': unattributed, 'invalid_events': invalid[0],
            'lost_examples': lost_examples, 'domain': args.domain,
            'cancelled_by_stage': by_stage['cancelled'], 'errors_by_stage': by_stage['error'],
            'rss_mb': rss, 'max_growth_pct': max(growths) if growths else None,
            'restarts': sum(1 for r in rss.values() if r.get('respawned')),
            'diagnostics': diagnostics,
            'seconds': round(time.monotonic() - start, 1),
        }
    finally:
        probe.close()
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(timeout=15)
        except subprocess.TimeoutExpired:
            stack.kill()
        log.close()
        if server is not None:
            server.__exit__(None, None, None)
    print('turns by outcome: %s (lost: %d)' % (summary['outcomes'], summary['lost']))
    print('first cancelled per turn by stage/node: %s; first error: %s'
          % (summary['cancelled_by_stage'], summary['errors_by_stage']))
    for name, row in summary['rss_mb'].items():
        print('%-9s RSS %7.1f MB -> %7.1f MB (%+.1f %%)'
              % (name, row['start'], row['end'], row['growth_pct']))
    print('stack log: %s' % os.path.join(tmp, 'stack.log'))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary['lost'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
