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
    detail      dict   stage-specific extras (backend name, timings)

Unknown keys must be ignored by readers; a new major version changes the schema string.
"""
from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from typing import Any, Dict, Optional

SCHEMA = 'qwen_voice_ros/turn_event/v1'

STAGES = (
    'speech_start',    # VAD heard the user start speaking (playback stops at once)
    'utterance',       # VAD closed an utterance (audio published on `utterance`)
    'transcript',      # ASR text (or a text turn injected by replay / a user node)
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


def decode(data: str) -> Dict[str, Any]:
    """Parse and check an event; raise EventError for anything that is not a v1 event."""
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise EventError('not JSON: %s' % exc) from None
    if not isinstance(event, dict):
        raise EventError('event is not a JSON object')
    missing = [k for k in _REQUIRED if k not in event]
    if missing:
        raise EventError('missing keys %s' % missing)
    if event['schema'] != SCHEMA:
        raise EventError('unsupported schema %r' % event['schema'])
    return event


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
