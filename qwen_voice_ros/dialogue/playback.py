"""
Playback queue: which chunk plays next, and what a newer turn or the user's voice cuts.

Chunks play in arrival order.  A newer turn (an ``utterance``/``transcript`` event)
supersedes older turns: their queued chunks are dropped, the chunk playing is cut off if it
is theirs, later chunks of theirs are dropped on arrival (stale), and each cut turn ends
with one ``cancelled`` outcome (``superseded_by`` = the newer turn).  A ``speech_start``
event (the user began talking) stops the robot at once, before any transcript exists.

Bounded: at most ``max_pending`` chunks wait; beyond that the oldest is dropped and
counted (``dropped_overflow``).  Pure Python, no sink: the node plays ``current`` and
calls :meth:`done`.  Thread-safe (the sink reports from its own thread).
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, Dict, List, NamedTuple, Optional, Tuple

from qwen_voice_ros.core.turns import TurnTracker
from qwen_voice_ros.dialogue.outcomes import CANCELLED, COMPLETED, Outcome, TurnLifecycle


class Chunk(NamedTuple):
    turn_id: str
    seq: int
    audio: Any
    duration_s: float


class Cut(NamedTuple):
    """What a supersede or speech start decided: stop the sink? and the outcomes."""

    stop_sink: bool
    outcomes: List[Outcome]


class PlaybackQueue:
    """See the module docstring."""

    def __init__(self, clock: Callable[[], float], max_pending: int = 64,
                 max_turns: int = 64):
        self._clock = clock
        self.max_pending = max_pending
        self.tracker = TurnTracker(clock)
        self.lifecycle = TurnLifecycle('playback', max_open=max_turns)
        self._lock = threading.RLock()
        self._pending: Deque[Chunk] = collections.deque()
        self.current: Optional[Chunk] = None
        self._seq: 'collections.OrderedDict[str, int]' = collections.OrderedDict()
        self._played: Dict[str, int] = {}
        self._expected: Dict[str, int] = {}
        self._superseded: 'collections.OrderedDict[str, str]' = collections.OrderedDict()
        self._stamps: 'collections.OrderedDict[str, float]' = collections.OrderedDict()
        self.counters: Dict[str, int] = {'played_chunks': 0, 'interrupted': 0,
                                         'dropped_stale': 0, 'dropped_overflow': 0,
                                         'barge_ins': 0}
        self.played_s = 0.0

    # ---- input ------------------------------------------------------------------------------
    def note_stamp(self, turn_id: str, turn_stamp: float) -> None:
        with self._lock:
            self._stamps[turn_id] = turn_stamp
            while len(self._stamps) > 512:
                self._stamps.popitem(last=False)

    def turn_stamp(self, turn_id: str) -> Optional[float]:
        return self._stamps.get(turn_id)

    def push(self, turn_id: str, audio: Any,
             duration_s: float) -> Tuple[Optional[Chunk], List[Outcome]]:
        """Queue a chunk; returns (chunk or None if stale, outcomes of evicted turns)."""
        with self._lock:
            if self.is_stale(turn_id):
                return None, [o for o in [self.drop_stale(turn_id)] if o is not None]
            outcomes = self.lifecycle.start(turn_id, self._stamps.get(turn_id))
            seq = self._seq.get(turn_id, 0)
            self._seq[turn_id] = seq + 1
            while len(self._seq) > 256:
                self._seq.popitem(last=False)
            chunk = Chunk(turn_id, seq, audio, float(duration_s))
            self._pending.append(chunk)
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.counters['dropped_overflow'] += 1
            return chunk, outcomes

    def drop_stale(self, turn_id: str) -> Optional[Outcome]:
        """
        Count a chunk of a superseded turn dropped on arrival.

        Returns the turn's ``cancelled`` outcome when playback had not stated one yet: a
        turn whose first chunk arrives after a newer turn began was never open here, so
        no cut covered it, and without this its audio would vanish without an event.
        """
        with self._lock:
            self.counters['dropped_stale'] += 1
            if self.lifecycle.ended(turn_id) is not None:
                return None
            outcome = self.lifecycle.finish(
                turn_id, CANCELLED, turn_stamp=self._stamps.get(turn_id),
                superseded_by=self._superseded.get(turn_id) or self.tracker.latest or '',
                reason='stale on arrival', dropped_chunks=1,
                played_chunks=self._played.get(turn_id, 0))
            if outcome is not None:
                self.counters['stale_turns'] = self.counters.get('stale_turns', 0) + 1
            return outcome

    def is_stale(self, turn_id: str) -> bool:
        return turn_id in self._superseded or self.tracker.is_stale(turn_id)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ---- playing ----------------------------------------------------------------------------
    def next(self) -> Optional[Chunk]:
        """Return the chunk to play now, if the sink is idle and something waits."""
        with self._lock:
            if self.current is not None or not self._pending:
                return None
            self.current = self._pending.popleft()
            return self.current

    def done(self, chunk: Chunk, completed: bool, played_s: float = 0.0) -> Optional[Outcome]:
        """
        Record that the sink finished (or was cut off in) ``chunk``.

        Returns the turn's ``completed`` outcome once as many chunks played as
        :meth:`expect` announced (the llm's final ``reply`` event counts its sentences).
        """
        with self._lock:
            if self.current is chunk:
                self.current = None
            if not completed:
                self.counters['interrupted'] += 1
                return None
            self.counters['played_chunks'] += 1
            self.played_s += played_s
            self._played[chunk.turn_id] = self._played.get(chunk.turn_id, 0) + 1
            while len(self._played) > 256:
                self._played.pop(next(iter(self._played)))
            return self._maybe_complete(chunk.turn_id)

    def expect(self, turn_id: str, chunks: int) -> Optional[Outcome]:
        """Set the turn's chunk count; completed if they have all played."""
        with self._lock:
            self._expected[turn_id] = int(chunks)
            while len(self._expected) > 256:
                self._expected.pop(next(iter(self._expected)))
            return self._maybe_complete(turn_id)

    def _maybe_complete(self, turn_id: str) -> Optional[Outcome]:
        expected = self._expected.get(turn_id)
        played = self._played.get(turn_id, 0)
        if expected is None or played < expected or self.is_stale(turn_id):
            return None
        if expected == 0 and not self.lifecycle.is_open(turn_id):
            return None  # nothing to say and nothing said: no playback turn
        return self.lifecycle.finish(turn_id, COMPLETED, turn_stamp=self._stamps.get(turn_id),
                                     played_chunks=played)

    # ---- barge-in ---------------------------------------------------------------------------
    def on_new_turn(self, turn_id: str, turn_stamp: float) -> Cut:
        """Cut older turns when a user turn begins (utterance/transcript event)."""
        with self._lock:
            if not self.tracker.observe(turn_id, turn_stamp):
                return Cut(False, [])
            return self._cut(lambda tid: tid != turn_id, turn_id, 'newer turn')

    def on_speech_start(self, turn_id: str = '') -> Cut:
        """Stop the robot now and drop everything queued: the user started talking."""
        with self._lock:
            return self._cut(lambda tid: tid != turn_id, turn_id, 'user started speaking')

    def _cut(self, victim: Callable[[str], bool], by_turn: str, reason: str) -> Cut:
        cut: Dict[str, int] = {}
        kept: Deque[Chunk] = collections.deque()
        for chunk in self._pending:
            if victim(chunk.turn_id):
                cut[chunk.turn_id] = cut.get(chunk.turn_id, 0) + 1
            else:
                kept.append(chunk)
        self._pending = kept
        stop = self.current is not None and victim(self.current.turn_id)
        if stop:
            cut.setdefault(self.current.turn_id, 0)
        outcomes = []
        for turn_id in list(cut) + [t for t in self.lifecycle.open_turns
                                    if t not in cut and victim(t)]:
            self._superseded[turn_id] = by_turn
            while len(self._superseded) > 512:
                self._superseded.popitem(last=False)
            dropped = cut.get(turn_id, 0)
            self.counters['dropped_stale'] += dropped
            outcome = self.lifecycle.finish(
                turn_id, CANCELLED, turn_stamp=self._stamps.get(turn_id),
                superseded_by=by_turn, reason=reason, dropped_chunks=dropped,
                played_chunks=self._played.get(turn_id, 0),
                cut_off=bool(stop and self.current.turn_id == turn_id))
            if outcome is not None:
                self.counters['barge_ins'] += 1
                outcomes.append(outcome)
        return Cut(stop, outcomes)

    def values(self) -> Dict[str, Any]:
        """Return diagnostics key/values; queue policy: drop oldest beyond max_pending."""
        out: Dict[str, Any] = dict(self.counters)
        out.update(queued=len(self._pending), max_pending=self.max_pending,
                   queue_policy='drop oldest', played_s=round(self.played_s, 2),
                   playing=self.current.turn_id if self.current else '',
                   open_turns=len(self.lifecycle.open_turns))
        return out
