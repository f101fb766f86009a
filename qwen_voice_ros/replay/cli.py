"""
qwen-voice-replay: play a rosbag2 into the running graph and record what the stack answers.

    qwen-voice-replay BAG [--rate R] [--topics T ...] [--loop] [--clock [HZ]]
                      [--record OUT_BAG] [--record-topics T[:pkg/msg/Type] ...]
                      [--storage sqlite3|mcap] [--wait-for-subscribers N]
                      [--wait-subscribers-s S] [--tail-s S] [--report] [--json]
                      [--ros-args ...]

Messages go out as the recorded CDR bytes (no decode/encode), on publishers whose durability
follows the bag's recorded QoS (``*/audio_info`` is latched even without QoS metadata).  The
recorder subscribes with ``raw=True`` and writes what arrives, stamped with the receive time.
This is the only replay module that imports rclpy.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from typing import Dict, List, Optional, Set, Tuple  # noqa: F401 - type comments

from qwen_voice_ros.replay import bags
from qwen_voice_ros.replay.player import Player

NODE_NAME = 'qwen_voice_replay'
DEFAULT_CLOCK_HZ = 100.0
# Topics nobody wants in a replay recording (the graph's own plumbing).
IGNORED_TOPICS = ('/rosout', '/parameter_events', '/clock')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='qwen-voice-replay',
        description='Publish a rosbag2 (sqlite3 or mcap) into the ROS graph with its recorded '
                    'timing and record the stack\'s outputs into a new bag.')
    parser.add_argument('bag', help='rosbag2 folder to play')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='playback speed factor (2 = twice as fast; default 1)')
    parser.add_argument('--topics', nargs='+', metavar='T',
                        help='play only these topics (default: all in the bag)')
    parser.add_argument('--loop', action='store_true', help='repeat until interrupted')
    parser.add_argument('--loops', type=int, metavar='N',
                        help='play the bag N times (implies --loop with an end)')
    parser.add_argument('--loop-gap-s', type=float, default=0.0, metavar='S',
                        help='pause between repetitions, in bag seconds (default 0)')
    parser.add_argument('--start-offset-s', type=float, default=0.0, metavar='S',
                        help='skip the first S seconds of the bag')
    parser.add_argument('--clock', nargs='?', type=float, const=DEFAULT_CLOCK_HZ, metavar='HZ',
                        help='publish /clock with bag time (for use_sim_time) at HZ '
                             '(default %g when given without a value)' % DEFAULT_CLOCK_HZ)
    parser.add_argument('--record', metavar='OUT_BAG',
                        help='record into this new bag folder (must not exist)')
    parser.add_argument('--record-topics', nargs='+', metavar='T',
                        help='topics to record, optionally typed as T:pkg/msg/Type '
                             '(default: every topic that gets a publisher, played ones too)')
    parser.add_argument('--storage', choices=bags.STORAGES, default='sqlite3',
                        help='storage of the recorded bag (default sqlite3)')
    parser.add_argument('--distro', choices=bags.DISTROS, default='jazzy',
                        help='message definitions used for the recorded bag (default jazzy)')
    parser.add_argument('--wait-for-subscribers', type=int, default=1, metavar='N',
                        help='before playing, wait for N subscribers (other than this tool) on '
                             'each played topic (default 1; 0 = do not wait)')
    parser.add_argument('--wait-subscribers-s', type=float, default=5.0, metavar='S',
                        help='give up waiting for subscribers/recorded publishers after S '
                             'seconds and play anyway (default 5)')
    parser.add_argument('--tail-s', type=float, default=0.0, metavar='S',
                        help='keep recording S seconds after the last message (default 0)')
    parser.add_argument('--report', action='store_true',
                        help='print the per-turn report of the recorded voice/events')
    parser.add_argument('--json', action='store_true',
                        help='end with one JSON line: published, recorded, duration_s, output')
    parser.add_argument('--node-name', default=NODE_NAME, help=argparse.SUPPRESS)
    return parser


def import_message_class(msgtype: str):
    """'std_msgs/msg/String' -> std_msgs.msg.String."""
    pkg, sub, name = bags.normalize_msgtype(msgtype).split('/')
    module = importlib.import_module('%s.%s' % (pkg, sub))
    return getattr(module, name)


def ensure_msgdef(msgtype: str, distro: str) -> None:
    """Make the typestore know ``msgtype``, building .msg text from the rclpy class if needed."""
    store = bags.get_typestore(distro)
    pending = [bags.normalize_msgtype(msgtype)]
    seen = set()  # type: Set[str]
    texts = []  # type: List[Tuple[str, str]]
    while pending:
        name = pending.pop()
        if name in seen or name in store.types:
            continue
        seen.add(name)
        cls = import_message_class(name)
        text, nested = bags.msg_text_from_fields(cls.get_fields_and_field_types())
        texts.append((name, text))
        pending.extend(nested)
    # Register dependencies first so every nested name resolves.
    for name, text in reversed(texts):
        bags.register_msg_text(name, text, distro)


def parse_record_topics(specs: Optional[List[str]]) -> Dict[str, Optional[str]]:
    topics = {}  # type: Dict[str, Optional[str]]
    for spec in specs or ():
        topic, _, msgtype = spec.partition(':')
        topics[bags.normalize_topic(topic)] = bags.normalize_msgtype(msgtype) if msgtype else None
    return topics


class Replay:
    """The rclpy side: publishers, /clock, recording subscriptions."""

    def __init__(self, args, topics: List[bags.TopicInfo]):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile,
                               ReliabilityPolicy)

        self._qos = (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
        self.args = args
        self.node = rclpy.create_node(args.node_name)
        self.log = self.node.get_logger()
        self.publishers = {}  # type: Dict[str, object]
        self.published = {}  # type: Dict[str, int]
        self.skipped = []  # type: List[str]
        for info in topics:
            try:
                cls = import_message_class(info.msgtype)
            except (ImportError, AttributeError, ValueError) as exc:
                self.log.warning('skipping %s: no Python class for %s (%s)'
                                 % (info.topic, info.msgtype, exc))
                self.skipped.append(info.topic)
                continue
            qos = self._latched_qos() if info.latched else QoSProfile(
                depth=100, history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
            self.publishers[info.topic] = self.node.create_publisher(cls, info.topic, qos)
            self.published[info.topic] = 0
        self.clock_pub = None
        if args.clock is not None:
            from rosgraph_msgs.msg import Clock

            self._clock_cls = Clock
            self.clock_pub = self.node.create_publisher(
                Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.recorder = None  # type: Optional[bags.BagRecorder]
        self.record_all = bool(args.record) and not args.record_topics
        self.record_wanted = parse_record_topics(args.record_topics)
        self.subscriptions = {}  # type: Dict[str, object]
        self._record_lock = threading.Lock()
        if args.record:
            self.recorder = bags.BagRecorder(args.record, storage=args.storage,
                                             distro=args.distro).open()
            self.discover()
            self._discover_timer = self.node.create_timer(0.25, self.discover)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spinning = True
        self._spin_thread = threading.Thread(target=self._spin, daemon=True)
        self._spin_thread.start()

    def _latched_qos(self):
        DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy = self._qos
        return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def _spin(self) -> None:
        import rclpy

        while self._spinning and rclpy.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutdown races end the thread quietly
                if not rclpy.ok():
                    return
                raise

    # --- graph helpers ----------------------------------------------------------------
    def _is_me(self, info) -> bool:
        return (info.node_name == self.node.get_name()
                and info.node_namespace == self.node.get_namespace())

    def subscriber_count(self, topic: str) -> int:
        return sum(1 for i in self.node.get_subscriptions_info_by_topic(topic)
                   if not self._is_me(i))

    def discover(self) -> None:
        """Subscribe to every wanted topic that now has a publisher and a known type."""
        if self.recorder is None:
            return
        if self.record_all:
            wanted = {}  # type: Dict[str, Optional[str]]
            for name, types in self.node.get_topic_names_and_types():
                if name in IGNORED_TOPICS:
                    continue
                wanted[name] = types[0] if types else None
        else:
            wanted = self.record_wanted
        for topic, msgtype in sorted(wanted.items()):
            if topic in self.subscriptions:
                continue
            # This tool's own publishers count: recording what was played keeps the output
            # bag self-contained (the report needs the transcript events).
            publishers = self.node.get_publishers_info_by_topic(topic)
            if not publishers:
                # Subscribe once a publisher exists, so the QoS can follow its offer.
                continue
            if msgtype is None:
                types = [t for n, t in self.node.get_topic_names_and_types() if n == topic]
                if not types or not types[0]:
                    continue
                msgtype = types[0][0]
            self._subscribe(topic, msgtype, publishers)

    def _subscribe(self, topic: str, msgtype: str, publishers) -> None:
        DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy = self._qos
        with self._record_lock:
            if topic in self.subscriptions:
                return
            try:
                cls = import_message_class(msgtype)
                ensure_msgdef(msgtype, self.args.distro)
            except (ImportError, AttributeError, ValueError, KeyError) as exc:
                self.log.warning('cannot record %s (%s): %s' % (topic, msgtype, exc))
                self.subscriptions[topic] = None
                return
            # Like rosbag2: match the publishers' offer so nothing is refused as incompatible.
            best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                              for p in publishers)
            latched = bool(publishers) and all(
                p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                for p in publishers)
            if not publishers and bags.is_latched_topic(topic):
                latched = True
            qos = QoSProfile(
                depth=1000, history=HistoryPolicy.KEEP_LAST,
                reliability=(ReliabilityPolicy.BEST_EFFORT if best_effort
                             else ReliabilityPolicy.RELIABLE),
                durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                            else DurabilityPolicy.VOLATILE))
            self.recorder.add_topic(topic, msgtype, qos=[bags.make_qos(
                latched=latched, reliable=not best_effort)])
            recorder = self.recorder

            def on_message(data, topic=topic):
                recorder.write(topic, time.time_ns(), data)

            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, on_message, qos, raw=True)
            self.log.info('recording %s [%s]' % (topic, msgtype))

    # --- phases ------------------------------------------------------------------------
    def wait_ready(self, player: Player, stop: threading.Event) -> Dict[str, int]:
        """Wait for subscribers on played topics and publishers on named recorded topics."""
        deadline = time.monotonic() + max(0.0, self.args.wait_subscribers_s)
        needed = self.args.wait_for_subscribers
        next_clock = 0.0
        while not stop.is_set():
            counts = {t: self.subscriber_count(t) for t in self.publishers}
            subs_ok = needed <= 0 or all(c >= needed for c in counts.values())
            rec_ok = all(self.subscriptions.get(t) is not None
                         for t in self.record_wanted) if self.recorder else True
            if subs_ok and rec_ok:
                break
            if time.monotonic() >= deadline:
                missing = [t for t, c in counts.items() if c < needed]
                unrecorded = [t for t in self.record_wanted if not self.subscriptions.get(t)]
                self.log.warning('playing anyway after %.1f s; no subscribers yet on %s; '
                                 'not yet recording %s' % (self.args.wait_subscribers_s,
                                                           missing, unrecorded))
                break
            if self.clock_pub is not None and time.monotonic() >= next_clock:
                self.publish_clock(player.sim_time_ns())
                next_clock = time.monotonic() + 1.0 / self.args.clock
            time.sleep(0.02)
        # Discovery says "matched" slightly before the first sample is safe to send.
        time.sleep(0.1)
        return {t: self.subscriber_count(t) for t in self.publishers}

    def publish(self, msg: bags.BagMessage) -> None:
        pub = self.publishers.get(msg.topic)
        if pub is None:
            return
        pub.publish(msg.data)
        self.published[msg.topic] += 1

    def publish_clock(self, sim_ns: int) -> None:
        if self.clock_pub is None:
            return
        from builtin_interfaces.msg import Time

        msg = self._clock_cls()
        msg.clock = Time(sec=int(sim_ns // 10**9), nanosec=int(sim_ns % 10**9))
        self.clock_pub.publish(msg)

    def finish(self) -> Dict[str, int]:
        recorded = {}  # type: Dict[str, int]
        if self.recorder is not None:
            with self._record_lock:
                for sub in self.subscriptions.values():
                    if sub is not None:
                        self.node.destroy_subscription(sub)
                recorded = self.recorder.counts
                self.recorder.close()
        return recorded

    def shutdown(self) -> None:
        import rclpy

        self._spinning = False
        self._spin_thread.join(timeout=2.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        self.node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def write_replay_info(record: str, bag: str, subscribers: Dict[str, int],
                      published: Dict[str, int], duration_s: float,
                      timing: Optional[Dict[str, object]] = None) -> None:
    """
    Leave what the report cannot see in the recording (``replay_info.json``).

    Who listened when playing began, and when bag time ``bag_first_ns`` went out on the wall
    clock (``play_started_wall_s``; message at bag time t left at that plus
    ``(t - bag_first_ns) / rate``), so a report can place a truth file's speech on the clock.
    """
    if not os.path.isdir(record):
        return
    info = {'played_bag': os.path.abspath(bag), 'subscribers': subscribers,
            'published': published, 'duration_s': round(duration_s, 3)}
    info.update(timing or {})
    with open(os.path.join(record, 'replay_info.json'), 'w', encoding='utf-8') as f:
        json.dump(info, f, ensure_ascii=False, indent=1)


def _init_rclpy(args: List[str]) -> None:
    import rclpy

    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # older rclpy: its handler shuts the context down on Ctrl-C
        rclpy.init(args=args)
        return
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def main(argv: Optional[List[str]] = None) -> int:
    import rclpy
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(remove_ros_args(['qwen-voice-replay'] + argv)[1:])
    if args.rate <= 0:
        print('--rate must be > 0', file=sys.stderr)
        return 2
    if args.record and os.path.exists(args.record):
        print('%s exists already; choose a new folder for --record' % args.record,
              file=sys.stderr)
        return 2
    try:
        all_infos = bags.topic_infos(args.bag)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds; report and exit
        print('cannot read bag %s: %s' % (args.bag, exc), file=sys.stderr)
        return 2
    infos = [i for i in all_infos if bags.topic_matches(i.topic, args.topics)]
    if args.topics:
        known = {i.topic for i in infos}
        absent = [t for t in args.topics if bags.normalize_topic(t) not in known]
        if absent:
            print('topics not in %s: %s' % (args.bag, ', '.join(absent)), file=sys.stderr)
    messages = list(bags.read_messages(args.bag, [i.topic for i in infos]))
    loops = args.loops if args.loops else None
    player = Player(messages, rate=args.rate, loop=args.loop or bool(loops), loops=loops,
                    start_offset_s=args.start_offset_s, loop_gap_s=args.loop_gap_s,
                    clock_hz=args.clock)

    stop = threading.Event()

    def on_signal(signum, frame):
        # Stop playing, but keep the ROS context alive so the recording is closed properly.
        stop.set()
        player.stop()

    _init_rclpy(['qwen-voice-replay'] + argv)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    replay = None
    started = time.monotonic()
    recorded = {}  # type: Dict[str, int]
    subscribers = {}  # type: Dict[str, int]
    wall_offset = None  # type: Optional[float]
    try:
        replay = Replay(args, infos)
        subscribers = replay.wait_ready(player, stop)
        started = time.monotonic()
        wall_offset = time.time() - started  # player times are monotonic: map them to wall
        on_clock = replay.publish_clock if args.clock is not None else None
        if not stop.is_set():
            player.run(replay.publish, on_clock=on_clock)
        if not stop.is_set():
            player.idle(args.tail_s, on_clock=on_clock)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        interrupted = stop.is_set()
        duration = time.monotonic() - started
        if replay is not None:
            recorded = replay.finish()
            published = dict(replay.published)
            replay.shutdown()
        else:
            published = {}
            if rclpy.ok():
                rclpy.shutdown()

    out = sys.stdout
    for topic in sorted(published):
        print('published %-32s %6d' % (topic, published[topic]), file=out)
    for topic in sorted(recorded):
        print('recorded  %-32s %6d' % (topic, recorded[topic]), file=out)
    if args.record:
        timing = {'bag_first_ns': player.first_ns, 'rate': player.rate,
                  'clock': args.clock is not None}
        if player.wall_start is not None and wall_offset is not None:
            timing['play_started_wall_s'] = round(player.wall_start + wall_offset, 6)
        write_replay_info(args.record, args.bag, subscribers, published, duration, timing)
        print('wrote %s (%s)' % (args.record, args.storage), file=out)
    if args.report and args.record:
        from qwen_voice_ros.replay import turn_report

        print(turn_report.format_report(turn_report.build(args.record)), file=out)
    if args.json:
        print(json.dumps({'published': published, 'recorded': recorded,
                          'duration_s': round(duration, 3), 'output': args.record,
                          'interrupted': interrupted}, ensure_ascii=False), file=out)
    out.flush()
    # Ctrl-C is how an endless --loop ends, so that is a success; elsewhere it is not.
    if interrupted and not (args.loop and not args.loops):
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
