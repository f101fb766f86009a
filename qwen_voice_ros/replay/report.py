"""
The replay report: one row per turn from a bag's ``voice/events`` (no rclpy).

    python -m qwen_voice_ros.replay.report OUT_BAG [--events-topic voice/events] [--json]

Per turn: id, transcript, dialect label and confidence, reply, number of TTS chunks, and the
latency of each stage's first event (seconds from the turn's start, as the publishing node
stamped it).  Malformed messages on the topic are counted, not fatal.
"""
from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from typing import Any, Dict, List, Optional

from qwen_voice_ros.core import events as turn_events
from qwen_voice_ros.replay import bags

LATENCY_STAGES = ('transcript', 'dialect', 'reply_sentence', 'reply', 'tts_audio', 'playback')


def _latency(event: Dict[str, Any]) -> Optional[float]:
    if 'latency_s' in event:
        return float(event['latency_s'])
    if 'turn_stamp' in event:
        return float(event['stamp']) - float(event['turn_stamp'])
    return None


def summarize_events(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Fold decoded events into per-turn rows, in order of each turn's first event."""
    turns = {}  # type: Dict[str, Dict[str, Any]]
    for event in events:
        turn_id = str(event['turn_id'])
        row = turns.get(turn_id)
        if row is None:
            row = turns[turn_id] = {
                'turn_id': turn_id, 'transcript': None, 'dialect': None,
                'dialect_confidence': None, 'reply': None, 'reply_sentences': [],
                'tts_chunks': 0, 'tts_audio_s': 0.0, 'latency_s': {}, 'errors': [],
                'cancelled': False, 'events': 0}
        row['events'] += 1
        stage = event['stage']
        latency = _latency(event)
        if latency is not None and stage not in row['latency_s']:
            row['latency_s'][stage] = round(latency, 4)
        if stage == 'transcript' and row['transcript'] is None:
            row['transcript'] = event.get('text')
        elif stage == 'dialect':
            info = event.get('dialect') or {}
            row['dialect'] = info.get('label')
            row['dialect_confidence'] = info.get('confidence')
        elif stage == 'reply_sentence':
            row['reply_sentences'].append(event.get('text') or '')
        elif stage == 'reply':
            row['reply'] = event.get('text')
            if latency is not None:  # the final reply's latency, not a partial one
                row['latency_s']['reply'] = round(latency, 4)
        elif stage == 'tts_audio':
            row['tts_chunks'] += 1
            row['tts_audio_s'] = round(row['tts_audio_s'] + float(event.get('duration_s')
                                                                  or 0.0), 4)
        elif stage == 'error':
            row['errors'].append(event.get('error') or 'error')
        elif stage == 'cancelled':
            row['cancelled'] = True
    for row in turns.values():
        if row['reply'] is None and row['reply_sentences']:
            row['reply'] = ''.join(row['reply_sentences'])
    return list(turns.values())


def read_events(path, topic: str = bags.EVENTS_TOPIC, distro: str = 'jazzy'):
    """Decode every v1 event in the bag; return (events, number of malformed messages)."""
    decoded = []
    malformed = 0
    for msg in bags.read_messages(path, [topic]):
        if msg.msgtype != bags.STRING_TYPE:
            malformed += 1
            continue
        try:
            decoded.append(turn_events.decode(bags.deserialize(msg, distro).data))
        except turn_events.EventError:
            malformed += 1
    return decoded, malformed


def build_report(path, topic: str = bags.EVENTS_TOPIC) -> Dict[str, Any]:
    events, malformed = read_events(path, topic)
    return {'bag': str(path), 'events_topic': bags.normalize_topic(topic),
            'events': len(events), 'malformed': malformed, 'turns': summarize_events(events)}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ('W', 'F') else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    """Cut to ``width`` display columns (CJK counts double) and pad."""
    out = ''
    for ch in text:
        if _width(out + ch) > width - (1 if _width(text) > width else 0):
            out += '…'
            break
        out += ch
    return out + ' ' * max(0, width - _width(out))


def format_table(report: Dict[str, Any], text_width: int = 24) -> str:
    header = [('turn', 16), ('transcript', text_width), ('dialect', 20),
              ('reply', text_width), ('tts', 4)]
    header += [(stage[:9], 9) for stage in LATENCY_STAGES]
    lines = ['  '.join(_fit(name, width) for name, width in header).rstrip()]
    for row in report['turns']:
        dialect = row['dialect'] or '-'
        if row['dialect_confidence'] is not None:
            dialect = '%s %.2f' % (dialect, float(row['dialect_confidence']))
        reply = row['reply'] if row['reply'] is not None else '-'
        if row['errors']:
            reply = 'ERROR: ' + '; '.join(row['errors'])
        elif row['cancelled']:
            reply = '[cancelled] ' + reply
        cells = [row['turn_id'], row['transcript'] or '-', dialect, reply, str(row['tts_chunks'])]
        cells += ['%.3f' % row['latency_s'][s] if s in row['latency_s'] else '-'
                  for s in LATENCY_STAGES]
        lines.append('  '.join(_fit(c, w) for c, (_, w) in zip(cells, header)).rstrip())
    lines.append('%d turns, %d events on %s, %d malformed; latencies in seconds from turn start'
                 % (len(report['turns']), report['events'], report['events_topic'],
                    report['malformed']))
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m qwen_voice_ros.replay.report',
                                     description='Per-turn table of a bag\'s voice/events.')
    parser.add_argument('bag')
    parser.add_argument('--events-topic', default=bags.EVENTS_TOPIC)
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    args = parser.parse_args(argv)
    report = build_report(args.bag, args.events_topic)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_table(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
