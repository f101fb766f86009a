#!/usr/bin/env python3
"""
Replay typed turns through ``qwen-voice-stack`` and count how every turn ended.

Starts the stack without its audio front end (``capture:=false hearing:=false``; dialect,
llm, tts and playback run as processes, playback into the ``null`` or ``wav`` sink), waits
until every node serves, then publishes ``--turns`` texts on ``transcript`` ``--gap-s``
seconds apart -- plain ``std_msgs/String`` without events, like a user's own ASR node, so
the dialect node announces each turn and the llm node must match the text to it.  The llm
uses ``--llm-model-dir`` or the offline pack in ``models/`` if there is one.

Reports: turns with a dialect, turns with a terminal llm outcome (reply, cancelled or
error), split turn ids (one text under two ids), and the latency of each llm ``cancelled``
event after the newer turn's ``transcript`` event (and after the text was published).
``--json`` prints one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

BASE_TEXTS = (
    '你好，今天天气怎么样？', '巴适得板，我们去吃火锅嘛。', '侬今朝吃饭了伐？', '你这是干啥呢，整得挺好啊。',
    '我哋今晚去边度食饭？', '请帮我把灯关掉。', '给我讲一个关于月亮的短故事。', '明天早上七点叫我起床。',
    '这个东西咋整嘛，我搞不懂。', '你觉得北京和上海哪个城市更好？', '帮我查一下去机场的路。',
    '俺想吃碗烩面，中不中？', '今天有点累，想听点轻松的音乐。', '你会说粤语吗？', '推荐一本好看的小说。',
    '我的快递什么时候到？', '你叫什么名字？', '外头落雨了，记得带伞哦。', '把客厅的空调调到二十六度。',
    '再见，明天见。',
)


def turn_texts(n: int) -> List[str]:
    """``n`` distinct texts (a numbered prefix keeps repeats apart)."""
    return ['第%d句，%s' % (i + 1, BASE_TEXTS[i % len(BASE_TEXTS)]) for i in range(n)]


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Return the nearest-rank q-th percentile, q in 0..100; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def analyse(texts: Sequence[str], published: Sequence[float], events: Sequence[dict],
            llm_node: str = '/llm') -> Dict[str, object]:
    """Count outcomes per typed turn from the recorded events (pure; unit-tested)."""
    ids_of: Dict[str, set] = {t: set() for t in texts}
    announced: Dict[str, float] = {}
    for e in events:
        if e.get('stage') == 'transcript' and e.get('text') in ids_of:
            ids_of[e['text']].add(e['turn_id'])
            announced.setdefault(e['turn_id'], float(e['stamp']))
    turn_of = {tid: i for i, t in enumerate(texts) for tid in ids_of[t]}
    dialect, outcomes = set(), {}
    kinds = {'reply': 0, 'cancelled': 0, 'error': 0}
    cancel_event, cancel_publish, late_cancels = [], [], []
    for e in events:
        i = turn_of.get(e.get('turn_id'))
        if i is None:
            continue
        if e['stage'] == 'dialect':
            dialect.add(i)
        if e.get('node') == llm_node and e['stage'] in kinds:
            outcomes.setdefault(i, []).append(e['stage'])
            kinds[e['stage']] += 1
            newer = (e.get('detail') or {}).get('superseded_by')
            if e['stage'] == 'cancelled' and newer in turn_of:
                j = turn_of[newer]
                cancel_publish.append(float(e['stamp']) - published[j])
                if newer in announced:
                    cancel_event.append(float(e['stamp']) - announced[newer])
                if cancel_event and cancel_event[-1] > 0.5:
                    late_cancels.append(round(cancel_event[-1], 3))
    split = sum(1 for t in texts if len(ids_of[t]) > 1)

    def r(x):
        return None if x is None else round(x, 3)
    return {
        'turns': len(texts),
        'turns_announced': sum(1 for t in texts if ids_of[t]),
        'turns_with_dialect': len(dialect),
        'turns_with_llm_outcome': len(outcomes),
        'turns_with_several_llm_outcomes': sum(1 for o in outcomes.values() if len(o) > 1),
        'split_turn_ids': split,
        'llm_replies': kinds['reply'], 'llm_cancelled': kinds['cancelled'],
        'llm_errors': kinds['error'],
        'cancels_measured': len(cancel_event),
        'cancel_latency_p50_s': r(percentile(cancel_event, 50)),
        'cancel_latency_p95_s': r(percentile(cancel_event, 95)),
        'cancel_latency_max_s': r(max(cancel_event) if cancel_event else None),
        'cancel_after_publish_p50_s': r(percentile(cancel_publish, 50)),
        'cancel_after_publish_p95_s': r(percentile(cancel_publish, 95)),
        'turns_played': len({turn_of[e['turn_id']] for e in events
                             if e.get('stage') == 'playback' and e.get('turn_id') in turn_of}),
    }


def playing(events: Sequence[dict]) -> bool:
    """Tell whether a reply is still to be played: a chunk started and not ended, or none yet."""
    started, ended, replied, done = set(), set(), set(), set()
    for e in list(events):
        if e.get('node') == '/llm' and e.get('stage') == 'reply' and e.get('seq'):
            replied.add(e['turn_id'])
        if e.get('node') == '/playback' and (e['stage'] == 'cancelled' or e.get('final')):
            done.add(e['turn_id'])
        if e.get('node') == '/playback':
            if e['stage'] == 'playback_start':
                started.add((e['turn_id'], e.get('seq')))
            elif e['stage'] == 'playback':
                ended.add((e['turn_id'], e.get('seq')))
            elif e['stage'] == 'cancelled':
                ended.update(k for k in started if k[0] == e['turn_id'])
    return bool(started - ended) or bool(replied - done)


def find_model_dir(explicit: str) -> str:
    if explicit:
        return explicit
    for info in sorted(glob.glob(os.path.join(REPO, 'models', '*', 'export_info.json'))):
        return os.path.dirname(info)
    return os.environ.get('QWEN_VOICE_LLM_DIR', '')


class Probe:
    """rclpy node: publish texts, record events and diagnostics."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        from qwen_voice_ros.nodes import ros_io
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('dialogue_turns_bench', context=self.context)
        self.events: List[dict] = []
        self.health: Dict[str, tuple] = {}
        self.node.create_subscription(String, 'voice/events', self._on_event, ros_io.QOS_EVENTS)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag,
                                      ros_io.QOS_DIAGNOSTICS)
        self.transcript = self.node.create_publisher(String, 'transcript', ros_io.QOS_TEXT)
        self.String = String
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._stop.is_set():
                    return
                raise

    def _on_event(self, msg):
        try:
            self.events.append(json.loads(msg.data))
        except ValueError:
            pass

    def _on_diag(self, msg):
        from qwen_voice_ros.nodes import ros_io
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            self.health[status.name.split(':', 1)[0]] = (
                ros_io.diagnostic_level(status), status.message, values)

    def publish(self, text: str) -> None:
        self.transcript.publish(self.String(data=text))

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.node.destroy_node()
        self.context.try_shutdown()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--turns', type=int, default=80)
    parser.add_argument('--gap-s', type=float, default=4.0)
    parser.add_argument('--json', action='store_true', help='last line: one JSON object')
    parser.add_argument('--llm-model-dir', default='', help='default: models/*/ (offline pack)')
    parser.add_argument('--llm-backend', default='', help='onnx | openai_http')
    parser.add_argument('--max-new-tokens', type=int, default=64)
    parser.add_argument('--tts', default='espeak', help='tts backend (espeak is fastest)')
    parser.add_argument('--sink', default='null', choices=('null', 'wav'))
    parser.add_argument('--tail-s', type=float, default=60.0,
                        help='after the last turn, wait up to this long for outcomes')
    parser.add_argument('--settle-s', type=float, default=20.0,
                        help='then wait up to this long for playback to finish')
    parser.add_argument('--ready-timeout-s', type=float, default=600.0)
    parser.add_argument('--domain', type=int, default=117, help='ROS_DOMAIN_ID')
    parser.add_argument('--events-out', default='', help='write every event here (JSONL)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ['ROS_DOMAIN_ID'] = str(args.domain)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    profile = os.path.join(REPO, 'config', 'fastdds_fast_discovery.xml')
    if os.path.exists(profile):
        os.environ.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', profile)
    work = tempfile.mkdtemp(prefix='dialogue-turns-')
    model_dir = find_model_dir(args.llm_model_dir)
    params = os.path.join(work, 'bench.yaml')
    with open(params, 'w') as f:
        f.write('/**/llm:\n  ros__parameters:\n    max_new_tokens: %d\n' % args.max_new_tokens)
        f.write('/**/tts:\n  ros__parameters:\n    backend: %s\n' % args.tts)
        f.write('/**/playback:\n  ros__parameters:\n    sink: %s\n    wav_dir: "%s"\n'
                % (args.sink, os.path.join(work, 'wav')))
    cmd = [sys.executable, '-m', 'qwen_voice_ros.stack.runner', 'capture:=false',
           'hearing:=false', '--extra-params-file', params]
    if model_dir:
        cmd += ['--llm-model-dir', model_dir]
    if args.llm_backend:
        cmd += ['--llm-backend', args.llm_backend]
    log = open(os.path.join(work, 'stack.log'), 'w')
    stack = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    probe = Probe()
    texts = turn_texts(args.turns)
    published: List[float] = []
    nodes = ('/dialect', '/llm', '/tts', '/playback')
    try:
        deadline = time.time() + args.ready_timeout_s
        while time.time() < deadline and not all(
                probe.health.get(n, (0, '', {}))[2].get('state') == 'active' for n in nodes):
            if stack.poll() is not None:
                raise SystemExit('qwen-voice-stack exited; see %s' % log.name)
            time.sleep(0.2)
        ready = {n: probe.health.get(n, (None, 'no diagnostics'))[:2] for n in nodes}
        print('nodes: %s (model %s)' % (ready, model_dir or 'none'), flush=True)
        start = time.time()
        for i, text in enumerate(texts):
            delay = start + i * args.gap_s - time.time()
            if delay > 0:
                time.sleep(delay)
            published.append(time.time())
            probe.publish(text)
        deadline = time.time() + args.tail_s
        while time.time() < deadline:
            summary = analyse(texts, published, list(probe.events))
            if summary['turns_with_llm_outcome'] >= len(texts):
                break
            time.sleep(0.5)
        # Let the last replies play (or be cut): every started chunk ends in an event.
        deadline = time.time() + args.settle_s
        while time.time() < deadline and playing(probe.events):
            time.sleep(0.5)
        time.sleep(1.0)
        events = list(probe.events)
        summary = analyse(texts, published, events)
        summary.update(gap_s=args.gap_s, max_new_tokens=args.max_new_tokens, tts=args.tts,
                       model_dir=os.path.basename(model_dir.rstrip('/')) if model_dir else '',
                       llm_health=probe.health.get('/llm', (None, ''))[1],
                       llm_stop_latency_max_ms=probe.health.get('/llm', (0, '', {}))[2].get(
                           'stop_latency_max_ms'),
                       respawns=open(log.name).read().count('respawning'))
        if args.events_out:
            with open(args.events_out, 'w') as f:
                for e in events:
                    f.write(json.dumps(e, ensure_ascii=False) + '\n')
    finally:
        probe.close()
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(timeout=20)
        except subprocess.TimeoutExpired:
            stack.kill()
        log.close()
    for key, value in summary.items():
        print('%-34s %s' % (key, value))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    ok = (summary['turns_with_dialect'] == summary['turns_with_llm_outcome'] == len(texts)
          and summary['split_turn_ids'] == 0)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
