"""
Per-turn events: the JSON schema carried on the ``voice/events`` topic (std_msgs/String).

Every stage publishes one event per thing it produces for a user turn, all carrying the
same ``turn_id``.  Plain text topics (``transcript``, ``dialect``, ``reply``...) stay plain
text for any subscriber; the event is the attributable record (turn id, stamps, latency),
and it is what the replay report and barge-in logic follow.  Audio messages carry the turn
id in ``header.frame_id``.

Schema ``qwen_voice_ros/turn_event/v1`` (keys; all but the first five optional)::

    schema      "qwen_voice_ros/turn_event/v1"
    turn_id     str    e.g. "t-3f2a9c-0007"
    stage       str    one of STAGES
    node        str    fully qualified name of the publishing node
    stamp       float  seconds (ROS clock of the publisher) when this event was produced
    turn_stamp  float  seconds when the turn started (end of the user's utterance, or when
                       its transcript arrived if no audio stage ran)
    latency_s   float  stamp - turn_stamp
    text        str    the stage's text output (transcript, reply sentence, reply)
    seq         int    index of a streamed chunk within the turn (reply_sentence, tts_audio)
    final       bool   last chunk of the turn for this stage
    dialect     dict   {"label": str, "scores": {label: p}, "confidence": float, "stage": str}
    thinking    str    the model's <think> text (reply stage, thinking mode only)
    duration_s  float  audio duration (utterance, tts_audio)
    error       str    what went wrong (stage "error"); the turn is dropped, the node keeps serving
    speculative bool   true on the events of a turn not confirmed yet: the hearing node's
                       ``speculative_transcript`` (the VAD hangover has not closed the
                       utterance), the dialect label computed on it, and the ``cancelled``
                       that withdraws it; absent (false) on everything confirmed.  Nothing
                       of a speculative turn is published on a text or audio topic before
                       its confirming ``transcript`` event (same turn id)
    detail      dict   stage-specific extras (backend name, timings)

Unknown keys must be ignored by readers; a new major version changes the schema string.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
import uuid
from typing import Any, Dict, Optional

SCHEMA = 'qwen_voice_ros/turn_event/v1'

STAGES = (
    'speech_start',    # VAD heard the user start speaking (playback stops at once)
    'utterance',       # VAD closed an utterance (audio published on `utterance`)
    'transcript',      # ASR text (or a text turn injected by replay / a user node): confirmed
    'speculative_transcript',  # ASR text before the utterance closed (speculative: true);
                               # confirmed by a `transcript` event of the same turn id, or
                               # withdrawn by a `cancelled` event (docs/latency.md)
    'dialect',         # dialect label and scores
    'reply_sentence',  # one streamed sentence of the reply
    'reply',           # the full reply (final; what was spoken if barged in)
    'tts_audio',       # one chunk of synthesised audio (published on `tts/audio`)
    'playback_start',  # a chunk started playing (seq, duration_s): the robot is speaking
    'playback',        # a chunk finished playing
    'cancelled',       # the turn was superseded (barge-in); later output for it is dropped
    'error',           # the stage failed for this turn; the node keeps serving
)

_REQUIRED = ('schema', 'turn_id', 'stage', 'node', 'stamp')


class EventError(ValueError):
    """A message on the events topic does not follow the schema."""


def make_event(turn_id: str, stage: str, node: str, stamp: float,
               turn_stamp: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
    """Build an event dict, filling latency from the stamps."""
    if stage not in STAGES:
        raise EventError('unknown stage %r' % stage)
    event = {'schema': SCHEMA, 'turn_id': turn_id, 'stage': stage, 'node': node,
             'stamp': float(stamp)}
    if turn_stamp is not None:
        event['turn_stamp'] = float(turn_stamp)
        event['latency_s'] = round(float(stamp) - float(turn_stamp), 6)
    for key, value in fields.items():
        if value is not None:
            event[key] = value
    return event


def encode(event: Dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(',', ':'))


# ---- validation: the one check every incoming event passes (issue 8) ------------------------
# Anything on the events topic may come from a hostile or broken node.  ``decode`` checks the
# size and nesting depth of the raw text before json.loads can recurse, then the type and
# range of every known key; it raises EventError and nothing else.

DIALECT_LABELS = ('mandarin', 'sichuanese', 'cantonese', 'shanghainese', 'northeastern',
                  'henan', 'hunan', 'shaanxi')  # = dialect.markers.DIALECT_LABELS (tested)
UNKNOWN_DIALECT = 'unknown'

MAX_EVENT_CHARS = 65536      # whole message
MAX_DEPTH = 8                # JSON nesting (the event object itself is depth 1)
MAX_TEXT_CHARS = 16384       # text
MAX_THINKING_CHARS = 32768   # thinking
MAX_ERROR_CHARS = 4096       # error
MAX_NODE_CHARS = 256         # node
MAX_DETAIL_CHARS = 8192      # detail, as JSON
MAX_SEQ = 1000000
MAX_STAMP = 1e10             # seconds; ROS time (wall ~1.8e9 or sim time from 0)
MAX_DURATION_S = 3600.0
TURN_ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z')
_STRUCTURE = re.compile(r'["\\\[\]{}]')


def _reject_constant(name: str):
    raise ValueError('%s is not allowed' % name)


def _depth(data: str) -> int:
    """Return the maximum nesting depth of JSON text without parsing it (no recursion)."""
    depth = deepest = 0
    in_string = False
    skip = -1
    for match in _STRUCTURE.finditer(data):
        pos = match.start()
        if pos == skip:
            continue
        char = match.group()
        if in_string:
            if char == '\\':
                skip = pos + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in '[{':
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        else:
            depth -= 1
    return deepest


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(event: dict, key: str, low: float, high: float) -> None:
    if key not in event:
        return
    value = event[key]
    if not _is_number(value):
        raise EventError('%s must be a number, got %s' % (key, type(value).__name__))
    try:
        number = float(value)
    except OverflowError:
        raise EventError('%s is out of range' % key) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise EventError('%s must be finite and within [%g, %g]' % (key, low, high))
    event[key] = number


def _string(event: dict, key: str, limit: int, required: bool = False) -> None:
    if key not in event:
        return
    value = event[key]
    if value is None and not required:
        del event[key]
        return
    if not isinstance(value, str):
        raise EventError('%s must be a string, got %s' % (key, type(value).__name__))
    if len(value) > limit:
        raise EventError('%s is longer than %d characters' % (key, limit))
    _utf8(key, value)


def _utf8(key: str, value: str) -> None:
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        raise EventError('%s is not valid UTF-8 (lone surrogate)' % key) from None


def _check_dialect(value: Any) -> None:
    if not isinstance(value, dict):
        raise EventError('dialect must be an object, got %s' % type(value).__name__)
    label = value.get('label')
    if label is not None and (not isinstance(label, str)
                              or label not in DIALECT_LABELS + (UNKNOWN_DIALECT,)):
        raise EventError('dialect.label must be one of %s or %s'
                         % ('|'.join(DIALECT_LABELS), UNKNOWN_DIALECT))
    scores = value.get('scores')
    if scores is not None:
        if not isinstance(scores, dict) or len(scores) > 16:
            raise EventError('dialect.scores must be an object of at most 16 labels')
        for name, score in scores.items():
            if len(name) > 32 or not _is_number(score) or not math.isfinite(float(score)):
                raise EventError('dialect.scores must map short labels to finite numbers')
    confidence = value.get('confidence')
    if confidence is not None and (not _is_number(confidence)
                                   or not math.isfinite(float(confidence))):
        raise EventError('dialect.confidence must be a finite number')
    stage = value.get('stage')
    if stage is not None and (not isinstance(stage, str) or len(stage) > 64):
        raise EventError('dialect.stage must be a short string')


def validate(event: Any) -> Dict[str, Any]:
    """Check a parsed event's keys, types and ranges; return it (numbers as floats)."""
    if not isinstance(event, dict):
        raise EventError('event is not a JSON object')
    missing = [k for k in _REQUIRED if k not in event]
    if missing:
        raise EventError('missing keys %s' % missing)
    if event['schema'] != SCHEMA:
        raise EventError('unsupported schema %r' % (str(event['schema'])[:80],))
    turn_id = event['turn_id']
    if not isinstance(turn_id, str) or not TURN_ID_RE.match(turn_id):
        raise EventError('turn_id must be a string of 1-64 letters, digits, "_.:-"')
    stage = event['stage']
    if not isinstance(stage, str) or stage not in STAGES:
        raise EventError('unknown stage %r' % (str(stage)[:40],))
    _string(event, 'node', MAX_NODE_CHARS, required=True)
    _number(event, 'stamp', 0.0, MAX_STAMP)
    _number(event, 'turn_stamp', 0.0, MAX_STAMP)
    _number(event, 'latency_s', -MAX_STAMP, MAX_STAMP)
    _number(event, 'duration_s', 0.0, MAX_DURATION_S)
    _string(event, 'text', MAX_TEXT_CHARS)
    _string(event, 'thinking', MAX_THINKING_CHARS)
    _string(event, 'error', MAX_ERROR_CHARS)
    if 'seq' in event:
        seq = event['seq']
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
            raise EventError('seq must be an integer in [0, %d]' % MAX_SEQ)
    if 'final' in event and not isinstance(event['final'], bool):
        raise EventError('final must be true or false')
    if 'speculative' in event and not isinstance(event['speculative'], bool):
        raise EventError('speculative must be true or false')
    if 'dialect' in event:
        if event['dialect'] is None:
            del event['dialect']
        else:
            _check_dialect(event['dialect'])
    if 'detail' in event:
        detail = event['detail']
        if detail is None:
            del event['detail']
        elif not isinstance(detail, dict):
            raise EventError('detail must be an object, got %s' % type(detail).__name__)
        elif len(encode(detail).encode('utf-8', errors='replace')) > MAX_DETAIL_CHARS:
            raise EventError('detail is larger than %d bytes' % MAX_DETAIL_CHARS)
    return event


def decode(data: Any) -> Dict[str, Any]:
    """Parse and check an event; raise EventError (and nothing else) for anything invalid."""
    try:
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode('utf-8')
        if not isinstance(data, str):
            raise EventError('event is not text')
        if len(data) > MAX_EVENT_CHARS:
            raise EventError('event is larger than %d characters' % MAX_EVENT_CHARS)
        if data.count('[') + data.count('{') > MAX_DEPTH and _depth(data) > MAX_DEPTH:
            raise EventError('event nests deeper than %d levels' % MAX_DEPTH)
        try:
            event = json.loads(data, parse_constant=_reject_constant)
        except ValueError as exc:
            raise EventError('not JSON: %s' % str(exc)[:200]) from None
        return validate(event)
    except EventError:
        raise
    except Exception as exc:  # e.g. RecursionError: nothing but EventError escapes
        raise EventError('bad event: %s' % type(exc).__name__) from None


class TurnIdFactory:
    """Mint turn ids unique across processes: a per-process random prefix plus a counter."""

    def __init__(self, prefix: Optional[str] = None):
        self._prefix = prefix or uuid.uuid4().hex[:6]
        self._counter = itertools.count(1)

    def new(self) -> str:
        return 't-%s-%04d' % (self._prefix, next(self._counter))


def wall_time() -> float:
    """Fallback clock for code running outside ROS (tests, tools)."""
    return time.time()


def node_label(default: str = 'qwen_voice_ros') -> str:
    return os.environ.get('QWEN_VOICE_NODE', default)
