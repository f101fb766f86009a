"""
Attribute plain-text messages to turns, and track which turn is current (barge-in).

``std_msgs/String`` has no header, so a text message is matched to its turn through the
event its producer publishes alongside (same text, same stage).  Messages and events travel
on different topics, so either may arrive first: a text waits up to ``grace_s`` for its event;
if none comes (the producer is a user's own node that publishes no events), it starts a new
turn.  Pure Python with an injected clock, so unit tests drive it without ROS.
"""
from __future__ import annotations

import collections
from typing import Callable, Deque, Dict, List, Optional, Tuple

from qwen_voice_ros.core.events import TurnIdFactory

# (turn_id, turn_stamp, text, event-or-None)
Resolved = Tuple[str, float, str, Optional[dict]]


class TextTurnMatcher:
    """Pair text messages of one stage with that stage's events by exact text."""

    def __init__(self, stage: str, clock: Callable[[], float], grace_s: float = 0.25,
                 id_factory: Optional[TurnIdFactory] = None, memory: int = 256,
                 event_ttl_s: float = 10.0):
        self.stage = stage
        self._clock = clock
        self._grace_s = grace_s
        self._ids = id_factory or TurnIdFactory()
        # Events whose text has not been seen yet, oldest first.
        self._events: Deque[Tuple[float, dict]] = collections.deque(maxlen=memory)
        self._event_ttl_s = event_ttl_s
        # Texts whose event has not been seen yet: (deadline, text, arrival stamp).
        self._texts: Deque[Tuple[float, str, float]] = collections.deque(maxlen=memory)

    def on_event(self, event: dict) -> List[Resolved]:
        """Feed an event of any stage; returns texts now resolved to a turn."""
        if event.get('stage') != self.stage or 'text' not in event:
            return []
        for i, (_deadline, text, _arrival) in enumerate(self._texts):
            if text == event['text']:
                del self._texts[i]
                return [self._from_event(event)]
        self._events.append((self._clock(), event))
        return []

    def on_text(self, text: str) -> List[Resolved]:
        """Feed a text message; returns it resolved if its event is already known."""
        self._expire_events()
        for i, (_seen, event) in enumerate(self._events):
            if event['text'] == text:
                del self._events[i]
                return [self._from_event(event)]
        now = self._clock()
        self._texts.append((now + self._grace_s, text, now))
        return []

    def poll(self) -> List[Resolved]:
        """Texts whose grace expired become new turns (their producer publishes no events)."""
        now = self._clock()
        out = []
        while self._texts and self._texts[0][0] <= now:
            _deadline, text, arrival = self._texts.popleft()
            out.append((self._ids.new(), arrival, text, None))
        return out

    def _expire_events(self) -> None:
        # A user may say the same words again later: only recent events can match.
        oldest = self._clock() - self._event_ttl_s
        while self._events and self._events[0][0] < oldest:
            self._events.popleft()

    @staticmethod
    def _from_event(event: dict) -> Resolved:
        return (event['turn_id'], float(event.get('turn_stamp', event['stamp'])),
                event['text'], event)


class TurnTracker:
    """Which turn is the newest; output for older turns is stale (barge-in drops it)."""

    def __init__(self):
        self._order: Dict[str, float] = {}
        self._latest: Optional[str] = None
        self._latest_stamp = float('-inf')

    def observe(self, turn_id: str, turn_stamp: float) -> bool:
        """Record a turn; return True if it is now the newest turn."""
        if turn_id not in self._order:
            self._order[turn_id] = turn_stamp
            if len(self._order) > 1024:
                for key in list(self._order)[:512]:
                    del self._order[key]
        if turn_stamp >= self._latest_stamp:
            self._latest, self._latest_stamp = turn_id, turn_stamp
        return self._latest == turn_id

    @property
    def latest(self) -> Optional[str]:
        return self._latest

    def is_stale(self, turn_id: str) -> bool:
        stamp = self._order.get(turn_id)
        return stamp is not None and stamp < self._latest_stamp
