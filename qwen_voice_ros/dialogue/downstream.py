"""
Downstream watch: a reply ends in a stated outcome even if tts or playback dies (issue 8).

tts and playback state each turn's outcome themselves (``playback`` with ``final``,
``cancelled``, ``error``).  A process killed mid-turn states nothing, and its respawn does
not know the turn, so the turn would end in silence.  The llm node, which published the
turn's sentences, follows them from the outside:

- **tts**: a published sentence (``seq``) is owed a ``tts_audio`` event.  When sentences
  are still unvoiced ``tts_wait_s`` after the turn's last sign of tts progress (a sentence
  published or voiced), the turn ends with ``error`` "tts did not report"
  (``detail.stage`` tts).
- **playback**: every ``tts_audio`` chunk adds its duration to the turn's estimated end of
  play (chunks play one after another, in arrival order); every sign of progress
  (``playback_start``/``playback`` of the turn's chunks) moves the estimate to "now plus
  the audio still unplayed".  Audio still unplayed ``margin_s`` after that estimate ends
  the turn with ``error`` "playback did not report" (``detail.stage`` playback).

Any ``cancelled`` or ``error`` event for the turn, or its final ``playback``, ends the
watch for it: the turn's outcome has been stated.  Chunks are counted, not matched by
``seq``: the tts numbers chunks by sentence (a long sentence is several chunks with one
``seq``) while playback numbers them per turn.  Each check arms only once the graph shows
the stage (a ``tts_audio``, resp. a ``playback_start``/``playback`` event): without it, no
turn is owed that stage's outcome.

Bounded: at most ``max_turns`` turns are watched (beyond that the oldest is dropped and
counted, ``watch_dropped``: a newer turn has superseded it, which live stages state), and
the ended-turn memory keeps 4 x ``max_turns`` ids.  Pure Python; ``clock`` is injected.
Thread-safe.
"""
from __future__ import annotations

import collections
import threading
from typing import Callable, Deque, Dict, List, Optional, Set

from qwen_voice_ros.dialogue.outcomes import ERROR, Outcome

PLAYBACK_REASON = 'playback did not report'
TTS_REASON = 'tts did not report'


class _Watched:
    __slots__ = ('turn_stamp', 'unvoiced', 'tts_progress_s', 'pending', 'end_s', 'chunks',
                 'sentences')

    def __init__(self, turn_stamp: Optional[float]):
        self.turn_stamp = turn_stamp
        self.unvoiced: Set[int] = set()      # sentence seqs published, no tts_audio yet
        self.tts_progress_s = float('-inf')  # last sentence published or voiced
        self.sentences = 0
        self.pending: Deque[float] = collections.deque()  # durations not yet reported played
        self.end_s = float('-inf')  # estimated time the last pending chunk has played
        self.chunks = 0


class DownstreamWatch:
    """See the module docstring.  ``margin_s`` <= 0 turns the watch off."""

    def __init__(self, clock: Callable[[], float], margin_s: float = 5.0,
                 tts_wait_s: float = 30.0, max_turns: int = 64):
        self._clock = clock
        self.margin_s = float(margin_s)
        self.tts_wait_s = float(tts_wait_s)
        self.max_turns = max_turns
        self.tts_armed = self.playback_armed = False
        self._lock = threading.Lock()
        self._turns: 'collections.OrderedDict[str, _Watched]' = collections.OrderedDict()
        self._ended: 'collections.OrderedDict[str, bool]' = collections.OrderedDict()
        self.counters: Dict[str, int] = {'playback_unreported': 0, 'tts_unreported': 0,
                                         'watch_dropped': 0}

    @property
    def enabled(self) -> bool:
        return self.margin_s > 0

    def _turn_locked(self, turn_id: str, turn_stamp: Optional[float]) -> Optional[_Watched]:
        if turn_id in self._ended:
            return None
        turn = self._turns.get(turn_id)
        if turn is None:
            turn = self._turns[turn_id] = _Watched(turn_stamp)
            while len(self._turns) > self.max_turns:
                self._turns.popitem(last=False)
                self.counters['watch_dropped'] += 1
        return turn

    # ---- events ------------------------------------------------------------------------------
    def on_sentence(self, turn_id: str, turn_stamp: Optional[float], seq: int) -> None:
        """Note a sentence of the reply published for tts."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            turn = self._turn_locked(turn_id, turn_stamp)
            if turn is not None:
                turn.unvoiced.add(int(seq))
                turn.sentences += 1
                turn.tts_progress_s = now

    def on_tts_audio(self, turn_id: str, turn_stamp: Optional[float], seq: int,
                     duration_s: float) -> None:
        """Note a chunk of the turn's audio (sentence ``seq``) sent to playback."""
        self.tts_armed = True
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            turn = self._turn_locked(turn_id, turn_stamp)
            if turn is None:
                return
            turn.unvoiced.discard(int(seq))
            turn.tts_progress_s = now
            duration = max(0.0, float(duration_s))
            turn.pending.append(duration)
            turn.chunks += 1
            turn.end_s = max(turn.end_s, now) + duration

    def on_playback_start(self, turn_id: str) -> None:
        """Note playback starting one of the turn's chunks: it is alive and at this turn."""
        self.playback_armed = True
        now = self._clock()
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is not None:
                turn.end_s = max(turn.end_s, now + sum(turn.pending))

    def on_playback(self, turn_id: str, final: bool) -> None:
        """Note playback finishing one of the turn's chunks (``final``: the turn's last)."""
        self.playback_armed = True
        now = self._clock()
        with self._lock:
            if final:
                self._end_locked(turn_id)
                return
            turn = self._turns.get(turn_id)
            if turn is None:
                return
            if turn.pending:
                turn.pending.popleft()
            turn.end_s = max(turn.end_s, now + sum(turn.pending))

    def on_outcome(self, turn_id: str) -> None:
        """Stop watching: a ``cancelled`` or ``error`` event stated the turn's outcome."""
        with self._lock:
            self._end_locked(turn_id)

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            turn = self._turns.pop(old, None)
            if turn is not None and new not in self._turns:
                self._turns[new] = turn

    def poll(self) -> List[Outcome]:
        """Return one ``error`` outcome per turn whose tts or playback is overdue."""
        if not self.enabled or not (self.tts_armed or self.playback_armed):
            return []
        now = self._clock()
        outcomes = []
        with self._lock:
            for turn_id, turn in list(self._turns.items()):
                outcome = self._overdue_locked(turn_id, turn, now)
                if outcome is not None:
                    self._end_locked(turn_id)
                    outcomes.append(outcome)
        return outcomes

    def _overdue_locked(self, turn_id: str, turn: _Watched, now: float) -> Optional[Outcome]:
        if self.tts_armed and turn.unvoiced and now > turn.tts_progress_s + self.tts_wait_s:
            self.counters['tts_unreported'] += 1
            error = ('%s: %d of %d sentences not voiced %.1f s after the last tts progress'
                     % (TTS_REASON, len(turn.unvoiced), turn.sentences,
                        now - turn.tts_progress_s))
            return Outcome(turn_id, turn.turn_stamp, ERROR, error=error, detail={
                'stage': 'tts', 'reason': TTS_REASON,
                'unvoiced_sentences': len(turn.unvoiced), 'sentences': turn.sentences})
        if self.playback_armed and turn.pending and now > turn.end_s + self.margin_s:
            self.counters['playback_unreported'] += 1
            error = ('%s: %d of %d audio chunks (%.1f s) not reported played %.1f s after '
                     'they were due' % (PLAYBACK_REASON, len(turn.pending), turn.chunks,
                                        sum(turn.pending), now - turn.end_s))
            return Outcome(turn_id, turn.turn_stamp, ERROR, error=error, detail={
                'stage': 'playback', 'reason': PLAYBACK_REASON,
                'unreported_chunks': len(turn.pending), 'chunks': turn.chunks})
        return None

    def _end_locked(self, turn_id: str) -> None:
        self._turns.pop(turn_id, None)
        self._ended[turn_id] = True
        while len(self._ended) > 4 * self.max_turns:
            self._ended.popitem(last=False)

    @property
    def watched(self) -> int:
        with self._lock:
            return len(self._turns)

    def values(self) -> Dict[str, object]:
        """Diagnostics key/values."""
        out: Dict[str, object] = dict(self.counters)
        out.update(watched_turns=self.watched, playback_report_margin_s=self.margin_s,
                   tts_report_s=self.tts_wait_s)
        return out
