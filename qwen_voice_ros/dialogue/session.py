"""
Reply session: the LLM stage's per-turn logic, without ROS.

A transcript opens a turn.  The turn waits up to ``dialect_wait_s`` for its dialect label
(the reply's system prompt names the user's dialect), then is queued for the generation
worker.  The worker streams sentences; each is published only while the turn is current.
A newer user turn cancels every older one at once -- waiting, queued or generating -- with
one ``cancelled`` outcome naming the newer turn (``superseded_by``), published by the
caller's thread, not after the backend's next token.  The conversation memory gets the
cut-off reply only as far as playback reported it spoken (all published sentences when no
playback is in the graph); a reply that finished generating but was cut while playing is
revised down to what was spoken.

Speculative turns (:meth:`ReplySession.on_speculative`): a transcript the hearing node
announced before the VAD hangover closed the utterance opens a turn that is *not confirmed*.
It waits for its dialect label (no deadline while unconfirmed) and generates as usual, but
its sentences and its outcome are held: nothing of it is published until the confirming
transcript (same turn id, same text) arrives, then the held sentences go out in order and
the turn goes on like any other.  Withdrawn (:meth:`withdraw`: speech resumed, the closed
audio differed, ``confirm_timeout_s`` passed) or superseded before that, it ends with one
``cancelled`` outcome (``detail.speculative``, ``reason``) and the conversation memory is
put back as it was before the turn (the partial text never becomes a user message).

Bounded: at most ``max_queue`` turns wait for the worker (drop oldest: it ends with an
error outcome) and the per-turn maps keep the newest 256 entries.  Every turn the session
opens ends in exactly one outcome (see :mod:`qwen_voice_ros.dialogue.outcomes`).
"""
from __future__ import annotations

import collections
import threading
from typing import Callable, Deque, Dict, List, NamedTuple, Optional

from qwen_voice_ros.core.turns import TurnTracker
from qwen_voice_ros.dialogue.outcomes import (CANCELLED, COMPLETED, ERROR, Outcome,
                                              TurnLifecycle)

WAITING, QUEUED, RUNNING, ENDED = 'waiting', 'queued', 'running', 'ended'
_MAP_LIMIT = 256


class ReplyTurn:
    """One user turn at the LLM stage."""

    def __init__(self, turn_id: str, turn_stamp: float, text: str, deadline: float):
        self.turn_id = turn_id
        self.turn_stamp = turn_stamp
        self.text = text
        self.deadline = deadline
        self.dialect: Optional[str] = None
        self.state = WAITING
        self.cancel = threading.Event()
        self.cancelled_at: Optional[float] = None  # when a cancel found it generating
        self.sentences: List[str] = []
        # Speculative turns: not confirmed until the hearing node's close says so.
        self.confirmed = True
        self.speculative = False
        self.confirm_by = float('inf')   # withdrawn if still unconfirmed then
        self.held: List = []             # (seq, publish) of sentences not published yet
        self.deferred: Optional[Callable[[], Optional[Outcome]]] = None  # held outcome
        self.snapshot = None             # memory before the turn's user message
        self.opened_at: Optional[float] = None
        self.confirm_wait_s: Optional[float] = None  # opened -> confirmed
        self.first_held_at: Optional[float] = None
        self.first_held_s = 0.0          # how long its first sentence waited for confirmation


class Step(NamedTuple):
    """What a call decided: outcomes for the caller to publish (as events)."""

    outcomes: List[Outcome]


def _bounded_set(mapping, key, value):
    mapping[key] = value
    while len(mapping) > _MAP_LIMIT:
        mapping.popitem(last=False)


class ReplySession:
    """See the module docstring.  ``memory`` is a ``llm.memory.ConversationMemory``."""

    def __init__(self, clock: Callable[[], float], memory, dialect_wait_s: float = 0.3,
                 max_queue: int = 4, max_open: int = 64, confirm_timeout_s: float = 10.0):
        self._clock = clock
        self.memory = memory
        self.dialect_wait_s = float(dialect_wait_s)
        self.confirm_timeout_s = float(confirm_timeout_s)
        self.max_queue = max_queue
        self.lifecycle = TurnLifecycle('llm', max_open=max_open)
        self.tracker = TurnTracker(clock)
        self._lock = threading.RLock()
        self._ready = threading.Condition(self._lock)
        self._turns: 'collections.OrderedDict[str, ReplyTurn]' = collections.OrderedDict()
        self._queue: Deque[ReplyTurn] = collections.deque()
        self._dialects: 'collections.OrderedDict[str, str]' = collections.OrderedDict()
        self._spoken_seq: 'collections.OrderedDict[str, int]' = collections.OrderedDict()
        self.saw_playback = False
        self.last_finished: Optional[ReplyTurn] = None
        self.counters: Dict[str, int] = {'dropped_queue': 0, 'revised_after_playback': 0,
                                         'reattributed': 0, 'speculative_started': 0,
                                         'speculative_confirmed': 0,
                                         'speculative_withdrawn': 0}
        self._closed = False

    # ---- events from the graph (subscription callbacks) -------------------------------------
    def on_transcript(self, turn_id: str, turn_stamp: float, text: str) -> Step:
        """Open a user turn from its text, cut older turns, wait for its dialect."""
        text = (text or '').strip()
        with self._lock:
            known = self._turns.get(turn_id)
            if known is not None and not known.confirmed:
                return Step(self._confirm(known, text))
            outcomes = self.lifecycle.start(turn_id, turn_stamp)
            if turn_id in self._turns or self.lifecycle.ended(turn_id):
                return Step(outcomes)  # the same turn delivered twice
            if not text:
                outcomes.append(self.lifecycle.finish(
                    turn_id, ERROR, error='empty transcript: no reply generated'))
                return Step(outcomes)
            newest = self.tracker.observe(turn_id, turn_stamp)
            if not newest:
                outcomes.append(self.lifecycle.finish(
                    turn_id, CANCELLED, superseded_by=self.tracker.latest or '',
                    reason='a newer turn had already started'))
                return Step(outcomes)
            outcomes += self._cut_older(turn_id)
            turn = ReplyTurn(turn_id, turn_stamp, text, self._clock() + self.dialect_wait_s)
            _bounded_set(self._turns, turn_id, turn)
            if turn_id in self._dialects:
                turn.dialect = self._dialects.pop(turn_id)
                outcomes += self._enqueue(turn)
            return Step(outcomes)

    def on_speculative(self, turn_id: str, turn_stamp: float, text: str) -> Step:
        """
        Open a turn from a speculative transcript: it generates, but publishes nothing yet.

        Confirmed by :meth:`on_transcript` with the same id and text; ended by
        :meth:`withdraw`, a newer turn, or ``confirm_timeout_s`` without confirmation.
        """
        text = (text or '').strip()
        with self._lock:
            if not text or turn_id in self._turns or self.lifecycle.ended(turn_id):
                return Step([])
            outcomes = self.lifecycle.start(turn_id, turn_stamp)
            if not self.tracker.observe(turn_id, turn_stamp):
                outcomes.append(self.lifecycle.finish(
                    turn_id, CANCELLED, superseded_by=self.tracker.latest or '',
                    reason='a newer turn had already started', speculative=True))
                return Step(outcomes)
            outcomes += self._cut_older(turn_id)
            now = self._clock()
            # No dialect deadline while unconfirmed: the label comes from the dialect
            # node's speculative event, or (a dialect node that ignores speculation) after
            # the confirmed transcript, whose dialect_wait_s starts at the confirmation.
            turn = ReplyTurn(turn_id, turn_stamp, text, float('inf'))
            turn.confirmed, turn.speculative, turn.opened_at = False, True, now
            turn.confirm_by = now + self.confirm_timeout_s
            self.counters['speculative_started'] += 1
            _bounded_set(self._turns, turn_id, turn)
            if turn_id in self._dialects:
                turn.dialect = self._dialects.pop(turn_id)
                outcomes += self._enqueue(turn)
            return Step(outcomes)

    def withdraw(self, turn_id: str, reason: str) -> Step:
        """End an unconfirmed speculative turn (its producer withdrew it); else nothing."""
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None or turn.confirmed or turn.state == ENDED:
                return Step([])
            outcomes = self._withdraw(turn, reason)
            self._turns.pop(turn_id, None)
            return Step(outcomes)

    def is_unconfirmed(self, turn_id: str) -> bool:
        with self._lock:
            turn = self._turns.get(turn_id)
            return turn is not None and not turn.confirmed and turn.state != ENDED

    def on_dialect(self, turn_id: str, label: Optional[str]) -> Step:
        """Take a turn's dialect label: a waiting turn starts now."""
        with self._lock:
            turn = self._turns.get(turn_id)
            if turn is None:
                _bounded_set(self._dialects, turn_id, label or '')
                return Step([])
            if turn.state != WAITING:
                return Step([])
            turn.dialect = label
            return Step(self._enqueue(turn))

    def on_user_turn(self, turn_id: str, turn_stamp: float) -> Step:
        """Another stage saw a user turn begin (utterance/transcript event): cut older ones."""
        with self._lock:
            if self.tracker.observe(turn_id, turn_stamp):
                return Step(self._cut_older(turn_id))
            return Step([])

    def on_playback(self, turn_id: str, seq: int) -> None:
        """Playback finished chunk ``seq`` (= sentence ``seq``) of a turn."""
        with self._lock:
            self.saw_playback = True
            _bounded_set(self._spoken_seq, turn_id, max(self._spoken_seq.get(turn_id, -1),
                                                        int(seq)))

    def poll(self) -> Step:
        """Start the turns whose dialect wait ran out, without a label."""
        now = self._clock()
        with self._lock:
            due = [t for t in self._turns.values() if t.state == WAITING and t.deadline <= now]
            outcomes: List[Outcome] = []
            for turn in due:
                outcomes += self._enqueue(turn)
            late = [t for t in self._turns.values()
                    if not t.confirmed and t.state != ENDED and t.confirm_by <= now]
            for turn in late:
                outcomes += self._withdraw(turn, 'not confirmed within %.1f s'
                                           % self.confirm_timeout_s)
                self._turns.pop(turn.turn_id, None)
            return Step(outcomes)

    def rename(self, old: str, new: str) -> None:
        """Rename a turn to its producer's id (a late event) and keep going."""
        with self._lock:
            turn = self._turns.pop(old, None)
            self.counters['reattributed'] += 1
            self.tracker.rename(old, new)
            self.lifecycle.rename(old, new)
            if turn is not None:
                turn.turn_id = new
                _bounded_set(self._turns, new, turn)

    # ---- the generation worker ------------------------------------------------------------
    def next_turn(self, timeout: Optional[float] = None) -> Optional[ReplyTurn]:
        """Block until a turn is ready (None on timeout or close)."""
        with self._ready:
            if not self._queue and not self._closed:
                self._ready.wait(timeout)
            while self._queue:
                turn = self._queue.popleft()
                if turn.state == QUEUED:
                    return turn
            return None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the worker and stop any generation (node cleanup)."""
        with self._ready:
            self._closed = True
            for turn in self._turns.values():
                turn.cancel.set()
            self._ready.notify_all()

    def begin(self, turn: ReplyTurn):
        """Mark the turn generating and return the chat messages, or None if cancelled."""
        with self._lock:
            if turn.state != QUEUED:
                return None
            turn.state = RUNNING
            if not turn.confirmed:
                turn.snapshot = self.memory.snapshot()  # put back if it is withdrawn
            self.memory.set_dialect(turn.dialect)
            self.memory.add_user(turn.text)
            return self.memory.messages()

    def add_sentence(self, turn: ReplyTurn, sentence: str,
                     publish: Callable[[int], None]) -> bool:
        """Record and publish (``publish(seq)``) a sentence unless the turn was cancelled."""
        with self._lock:
            if turn.state != RUNNING:
                return False
            seq = len(turn.sentences)
            turn.sentences.append(sentence)
            if turn.confirmed:
                publish(seq)
            else:
                if not turn.held:
                    turn.first_held_at = self._clock()
                turn.held.append((seq, publish))  # published when the turn is confirmed
            return True

    def complete(self, turn: ReplyTurn, reply: str, thinking: str = '') -> Optional[Outcome]:
        """End a generation normally: commit the reply, one ``completed`` outcome."""
        with self._lock:
            if turn.state != RUNNING:
                return None
            if not turn.confirmed:
                turn.deferred = lambda: self.complete(turn, reply, thinking)
                return None
            turn.state = ENDED
            self.memory.commit_assistant(reply)
            self.last_finished = turn
            extra = {}
            if turn.speculative:
                extra = {'speculative': True,
                         'confirm_wait_s': round(turn.confirm_wait_s or 0.0, 4),
                         'first_sentence_held_s': round(turn.first_held_s, 4)}
            return self.lifecycle.finish(turn.turn_id, COMPLETED, text=reply,
                                         sentences=len(turn.sentences), thinking=thinking,
                                         dialect=turn.dialect, **extra)

    def fail(self, turn: ReplyTurn, error: str, fallback: str = '') -> Optional[Outcome]:
        """
        End a failed generation: commit what was said, one ``error`` outcome.

        ``fallback`` is the sentence the caller speaks after the error: it is committed
        after the published sentences as the failed turn's reply, so the user message is
        answered and the next turn is not merged with it (as it would be if nothing was
        committed: merging is for turns superseded before anything was spoken).
        """
        with self._lock:
            if turn.state == ENDED:
                return None
            if not turn.confirmed and turn.state == RUNNING:
                turn.deferred = lambda: self.fail(turn, error, fallback)
                return None
            if turn.state == RUNNING:
                self.memory.commit_assistant(''.join(turn.sentences) + (fallback or ''))
            turn.state = ENDED
            return self.lifecycle.finish(turn.turn_id, ERROR, text=''.join(turn.sentences),
                                         error=error, sentences=len(turn.sentences),
                                         dialect=turn.dialect)

    def stopped(self, turn: ReplyTurn) -> None:
        """Record that the worker is done with ``turn`` (and how long its cancel took)."""
        if turn.cancelled_at is None:
            return
        ms = int(round(1000 * (self._clock() - turn.cancelled_at)))
        with self._lock:
            self.counters['stop_latency_last_ms'] = ms
            self.counters['stop_latency_max_ms'] = max(ms, self.counters.get(
                'stop_latency_max_ms', 0))

    # ---- internals ---------------------------------------------------------------------------
    def _confirm(self, turn: ReplyTurn, text: str) -> List[Outcome]:
        """Confirm a speculative turn (its producer closed it): publish what was held."""
        if turn.state == ENDED:
            return []
        if text != turn.text:  # not what it generated for: no reply to a text never said
            outcomes = self._withdraw(turn, 'the confirmed transcript differs from the '
                                      'speculative one')
            self._turns.pop(turn.turn_id, None)
            return outcomes
        now = self._clock()
        turn.confirmed = True
        turn.confirm_wait_s = now - turn.opened_at if turn.opened_at is not None else None
        if turn.first_held_at is not None:
            turn.first_held_s = now - turn.first_held_at
        self.counters['speculative_confirmed'] += 1
        if turn.state == WAITING:
            turn.deadline = now + self.dialect_wait_s
        held, turn.held = turn.held, []
        for seq, publish in held:
            publish(seq)
        outcomes: List[Outcome] = []
        deferred, turn.deferred = turn.deferred, None
        if deferred is not None:
            outcome = deferred()
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _withdraw(self, turn: ReplyTurn, reason: str, superseded_by: str = '') -> List[Outcome]:
        """End an unconfirmed turn: nothing of it was published; memory as before it."""
        was = turn.state
        turn.state = ENDED
        turn.cancel.set()
        if was == RUNNING and turn.deferred is None:
            turn.cancelled_at = self._clock()  # the worker is still on it
        if turn.snapshot is not None:
            self.memory.restore(turn.snapshot)
            turn.snapshot = None
        turn.held, turn.deferred = [], None
        self.counters['speculative_withdrawn'] += 1
        detail = {'superseded_by': superseded_by} if superseded_by else {}
        outcome = self.lifecycle.finish(
            turn.turn_id, CANCELLED, text='', reason=reason, state=was, speculative=True,
            sentences_generated=len(turn.sentences), **detail)
        return [outcome] if outcome is not None else []

    def _enqueue(self, turn: ReplyTurn) -> List[Outcome]:
        outcomes: List[Outcome] = []
        turn.state = QUEUED
        # Cut turns stay in the deque until the worker pops them; a busy worker must not
        # let them pile up (issue 8: every structure bounded), so drop them here.
        self._queue = collections.deque(t for t in self._queue if t.state == QUEUED)
        self._queue.append(turn)
        while len([t for t in self._queue if t.state == QUEUED]) > self.max_queue:
            old = self._queue.popleft()
            if old.state == QUEUED:
                old.state = ENDED
                self.counters['dropped_queue'] += 1
                outcomes.append(self.lifecycle.finish(
                    old.turn_id, ERROR, error='llm queue full (%d): turn dropped'
                    % self.max_queue, reason='queue full'))
        self._ready.notify()
        return outcomes

    def spoken_text(self, turn: ReplyTurn) -> str:
        if not self.saw_playback:
            return ''.join(turn.sentences)  # no playback in the graph: published counts
        return ''.join(turn.sentences[:self._spoken_seq.get(turn.turn_id, -1) + 1])

    def _cut_older(self, new_id: str) -> List[Outcome]:
        outcomes = []
        for turn in list(self._turns.values()):
            if turn.turn_id == new_id or turn.state == ENDED:
                continue
            if not turn.confirmed:  # published nothing: no reply to commit
                outcomes += self._withdraw(turn, 'barge-in', superseded_by=new_id)
                continue
            was = turn.state
            turn.state = ENDED
            turn.cancel.set()
            if was == RUNNING:
                turn.cancelled_at = self._clock()
            spoken = self.spoken_text(turn) if was == RUNNING else ''
            if was == RUNNING:
                self.memory.commit_assistant(spoken)
            outcome = self.lifecycle.finish(
                turn.turn_id, CANCELLED, text=spoken, superseded_by=new_id,
                reason='barge-in', state=was, sentences_generated=len(turn.sentences))
            if outcome is not None:
                outcomes.append(outcome)
        last = self.last_finished
        if last is not None and last.turn_id != new_id:
            self.last_finished = None
            spoken = self.spoken_text(last)
            if self.saw_playback and len(spoken) < len(''.join(last.sentences)):
                # It had finished generating; the user cut in while it was being played.
                self.memory.revise_last_assistant(spoken)
                self.counters['revised_after_playback'] += 1
        for turn_id in [t for t, turn in self._turns.items() if turn.state == ENDED]:
            del self._turns[turn_id]
        return outcomes

    def values(self) -> Dict[str, object]:
        """Diagnostics key/values."""
        with self._lock:
            out: Dict[str, object] = dict(self.counters)
            out.update({'waiting': len([t for t in self._turns.values()
                                        if t.state == WAITING]),
                        'queued': len([t for t in self._queue if t.state == QUEUED]),
                        'max_queue': self.max_queue, 'queue_policy': 'drop oldest',
                        'completed': self.lifecycle.counts[COMPLETED],
                        'cancelled': self.lifecycle.counts[CANCELLED],
                        'failed': self.lifecycle.counts[ERROR]})
            return out
