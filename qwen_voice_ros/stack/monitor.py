"""
Print what the stack does, turn by turn: each stage's output and each node's health.

``python -m qwen_voice_ros.stack.monitor [--duration S] [--namespace NS]`` follows
``voice/events`` and ``/diagnostics``; the README's run command uses it to show the stack.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from qwen_voice_ros.core import events as turn_events


def format_event(event: dict) -> str:
    """One human-readable line for an event."""
    stage = event['stage']
    head = '[%s] %-14s' % (event['turn_id'], stage)
    latency = ' (+%.2f s)' % event['latency_s'] if 'latency_s' in event else ''
    if stage == 'dialect':
        d = event.get('dialect', {})
        return '%s %s  conf %.2f via %s%s' % (head, d.get('label'), d.get('confidence', 0.0),
                                              d.get('stage', '?'), latency)
    if stage in ('tts_audio', 'playback_start', 'playback', 'utterance'):
        return '%s #%s %.2f s audio%s  %s' % (head, event.get('seq', 0),
                                              event.get('duration_s', 0.0), latency,
                                              event.get('text', ''))
    if stage == 'error':
        return '%s %s' % (head, event.get('error'))
    return '%s %s%s' % (head, event.get('text', ''), latency)


LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-monitor', description=__doc__)
    parser.add_argument('--duration', type=float, default=0.0, help='seconds; 0 = until Ctrl-C')
    parser.add_argument('--namespace', default='')
    parser.add_argument('--jsonl', default='', help='also append every event to this file')
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    from qwen_voice_ros.nodes import ros_io

    rclpy.init()
    node = rclpy.create_node('voice_monitor', namespace=args.namespace or None)
    health = {}
    sink = open(args.jsonl, 'a') if args.jsonl else None

    def on_event(msg):
        try:
            event = turn_events.decode(msg.data)
        except turn_events.EventError:
            return
        if sink:
            sink.write(json.dumps(event, ensure_ascii=False) + '\n')
            sink.flush()
        print(format_event(event), flush=True)

    def on_diag(msg):
        for status in msg.status:
            level = ros_io.diagnostic_level(status)
            state = (LEVELS.get(level, level), status.message)
            if health.get(status.name) != state:
                health[status.name] = state
                note = '  <- not configured' if level == 2 else ''
                print('[health] %-28s %-5s %s%s' % (status.name, state[0], state[1], note),
                      flush=True)

    node.create_subscription(String, 'voice/events', on_event, ros_io.QOS_EVENTS)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, ros_io.QOS_DIAGNOSTICS)
    end = time.monotonic() + args.duration if args.duration else float('inf')
    try:
        while rclpy.ok() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if sink:
            sink.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
