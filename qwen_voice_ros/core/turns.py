"""
Attribute plain-text messages to turns, and track which turn is current (barge-in).

``std_msgs/String`` has no header, so a text message is matched to its turn through the
event its producer publishes alongside (same text, same stage).  Messages and events travel
on different topics, so either may arrive first: a text waits for its event; if none comes
(the producer is a user's own node that publishes no events), it starts a new turn.

How long a text waits adapts to the graph: ``grace_s`` while no other node has announced
this stage, ``grace_s + announced_grace_s`` once one has (then an event is expected and
merely late, e.g. the dialect node is slow under load: minting an id then would split one
turn in two; ``grace_s`` on top keeps the first announcer ahead of the nodes after it).
An event that still comes after its text was given a new id re-attributes it
(:meth:`TextTurnMatcher.on_event` returns it with ``replaces``) instead of a second turn.

Pure Python with an injected clock, so unit tests drive it without ROS.
"""
from __future__ import annotations

import collections
import math
from typing import Callable, Deque, Dict, List, NamedTuple, Optional, Tuple

from qwen_voice_ros.core.events import TurnIdFactory


class Resolved(NamedTuple):
    """A text attributed to a turn; ``replaces`` is the id it had before a late event."""

    turn_id: str
    turn_stamp: float
    text: str
    event: Optional[dict]
    replaces: str = ''


class TextTurnMatcher:
    """Pair text messages of one stage with that stage's events by exact text."""

    def __init__(self, stage: str, clock: Callable[[], float], grace_s: float = 0.25,
                 id_factory: Optional[TurnIdFactory] = None, memory: int = 256,
                 event_ttl_s: float = 10.0, announced_grace_s: float = 3.0,
                 announcer_ttl_s: float = 120.0):
        self.stage = stage
        self._clock = clock
        self._grace_s = grace_s
        # On top of grace_s, so the order down the pipeline holds once announced: the
        # dialect node (0.25 s) announces before the llm/tts (0.5 s) would mint their own.
        self._announced_grace_s = grace_s + max(0.0, announced_grace_s)
        self._announcer_ttl_s = announcer_ttl_s
        self._last_announcement = float('-inf')
        self._ids = id_factory or TurnIdFactory()
        # Events whose text has not been seen yet, oldest first.
        self._events: Deque[Tuple[float, dict]] = collections.deque(maxlen=memory)
        self._event_ttl_s = event_ttl_s
        # Texts whose event has not been seen yet: [arrival stamp, text].
        self._texts: Deque[Tuple[float, str]] = collections.deque(maxlen=memory)
        # Texts that got a new id for want of an event: (minted at, text, turn id).
        self._minted: Deque[Tuple[float, str, str]] = collections.deque(maxlen=memory)
        self.reattributed = 0

    @property
    def grace_s(self) -> float:
        """How long a text waits for its event now (longer once this stage is announced)."""
        if self._clock() - self._last_announcement <= self._announcer_ttl_s:
            return self._announced_grace_s
        return self._grace_s

    def on_event(self, event: dict) -> List[Resolved]:
        """Feed an event of any stage; returns texts now resolved (or re-attributed)."""
        if event.get('stage') != self.stage or not isinstance(event.get('text'), str):
            return []
        now = self._clock()
        self._last_announcement = now
        for i, (_arrival, text) in enumerate(self._texts):
            if text == event['text']:
                del self._texts[i]
                return [self._from_event(event)]
        for i, (minted, text, turn_id) in enumerate(self._minted):
            if text == event['text'] and now - minted <= self._event_ttl_s:
                del self._minted[i]
                self.reattributed += 1
                return [self._from_event(event)._replace(replaces=turn_id)]
        self._events.append((now, event))
        return []

    def on_text(self, text: str) -> List[Resolved]:
        """Feed a text message; returns it resolved if its event is already known."""
        self._expire_events()
        for i, (_seen, event) in enumerate(self._events):
            if event['text'] == text:
                del self._events[i]
                return [self._from_event(event)]
        self._texts.append((self._clock(), text))
        return []

    def poll(self) -> List[Resolved]:
        """Texts whose grace expired become new turns (their producer publishes no events)."""
        now = self._clock()
        grace = self.grace_s
        out = []
        while self._texts and self._texts[0][0] + grace <= now:
            arrival, text = self._texts.popleft()
            turn_id = self._ids.new()
            self._minted.append((now, text, turn_id))
            out.append(Resolved(turn_id, arrival, text, None))
        return out

    @property
    def waiting(self) -> int:
        return len(self._texts)

    def _expire_events(self) -> None:
        # A user may say the same words again later: only recent events can match.
        oldest = self._clock() - self._event_ttl_s
        while self._events and self._events[0][0] < oldest:
            self._events.popleft()

    @staticmethod
    def _from_event(event: dict) -> Resolved:
        stamp = event.get('turn_stamp', event.get('stamp'))
        return Resolved(event['turn_id'], float(stamp), event['text'], event)


class TurnTracker:
    """
    Which turn is the newest; output for older turns is stale (barge-in drops it).

    Order is the receiver's: a turn first seen later is newer, unless its stamp says it
    began before the newest turn known.  Foreign stamps are clamped to
    ``[now - max_age_s, now]`` of the injected clock, so one event stamped 1e12 or Infinity
    cannot make every later turn look stale.
    """

    def __init__(self, clock: Optional[Callable[[], float]] = None, max_age_s: float = 60.0,
                 memory: int = 1024):
        self._clock = clock
        self._max_age_s = max_age_s
        self._memory = memory
        self._order: Dict[str, float] = {}
        self._latest: Optional[str] = None
        self._latest_stamp = float('-inf')

    def _clamp(self, stamp) -> float:
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            stamp = float('nan')
        if self._clock is None:
            return stamp if math.isfinite(stamp) else self._latest_stamp
        now = self._clock()
        if not math.isfinite(stamp):
            return now
        return min(max(stamp, now - self._max_age_s), now)

    def observe(self, turn_id: str, turn_stamp: float) -> bool:
        """Record a turn; return True if it is now the newest turn."""
        if turn_id not in self._order:
            stamp = self._clamp(turn_stamp)
            self._order[turn_id] = stamp
            if len(self._order) > self._memory:
                for key in list(self._order)[:self._memory // 2]:
                    if key != self._latest:
                        del self._order[key]
            if stamp >= self._latest_stamp:
                self._latest, self._latest_stamp = turn_id, stamp
        return self._latest == turn_id

    @property
    def latest(self) -> Optional[str]:
        return self._latest

    def rename(self, old: str, new: str) -> None:
        """Give a re-attributed turn (a late event) its new id, in the old one's place."""
        if old in self._order:
            self._order.setdefault(new, self._order.pop(old))
        if self._latest == old:
            self._latest = new

    def is_stale(self, turn_id: str) -> bool:
        stamp = self._order.get(turn_id)
        return stamp is not None and turn_id != self._latest and stamp <= self._latest_stamp
