"""
The tts stage without ROS: sentences in, audio pieces out, in order, per turn.

:class:`TTSPipeline` takes sentences as they stream in (``submit``), synthesises them one by
one on the caller's worker thread (``run_once`` / ``loop``) and hands every piece of audio to
``on_audio`` as soon as it exists, so the first sentence is spoken while the LLM still writes
the rest.  Per sentence: refuse text with nothing to say (only punctuation, emoji, spaces);
normalise digits and symbols (:mod:`.text_norm`); split very long text into pieces; pick the
backend (the primary, or the fallback for a dialect the primary lacks, e.g. Cantonese ->
espeak ``yue``); if the primary fails, report it (``on_error``) and speak with the fallback.
A turn that was cancelled (barge-in) or superseded by a newer turn is dropped, also between
the pieces of a long sentence; a superseded turn is reported once (``on_dropped``: the
node publishes ``cancelled`` with ``detail.stage`` tts and ``superseded_by``), a turn
cancelled by another stage's ``cancelled`` event already has its outcome and is only
counted.  The work queue is bounded (``max_queue`` sentences): when full, the oldest
sentence is dropped, counted (``dropped_overflow``) and its turn reported once as an error.
The clock is injected (tests use a fake one).
"""
from __future__ import annotations

import collections
import queue
import threading
from typing import Callable, Dict, Iterator, NamedTuple, Optional, Tuple

from qwen_voice_ros.core.turns import TurnTracker
from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError
from qwen_voice_ros.tts.text_norm import chunk_text, normalize, speakable


class Job(NamedTuple):
    turn_id: str
    turn_stamp: float
    text: str
    seq: int = 0


class Piece(NamedTuple):
    """One synthesised piece of a sentence (``part`` of ``parts``)."""

    job: Job
    speech: Speech
    text: str
    backend: str
    part: int
    parts: int


class TTSPipeline:
    """See the module docstring."""

    def __init__(self, primary: TTSBackend, fallback: Optional[TTSBackend] = None,
                 on_audio: Callable[[Piece], None] = lambda piece: None,
                 on_error: Callable[[Job, str, Optional[str]], None] = lambda j, m, f: None,
                 normalize_text: bool = True, max_chars: int = 80,
                 clock: Optional[Callable[[], float]] = None,
                 on_dropped: Callable[[Job, str], None] = lambda job, by: None,
                 max_queue: int = 64):
        self.primary, self.fallback = primary, fallback
        self.on_audio, self.on_error, self.on_dropped = on_audio, on_error, on_dropped
        self.max_queue = max(1, int(max_queue))
        self.normalize_text, self.max_chars = normalize_text, int(max_chars)
        self.tracker = TurnTracker(clock=clock) if clock is not None else TurnTracker()
        self.dialects: Dict[str, str] = {}
        self.cancelled: Dict[str, str] = {}
        self.counters: Dict[str, int] = {'sentences': 0, 'pieces': 0, 'dropped': 0,
                                         'fallbacks': 0, 'errors': 0, 'dropped_overflow': 0,
                                         'turns_superseded': 0}
        # Bounded by hand (drop oldest): the stop sentinel must always fit.
        self._queue: 'queue.Queue[Optional[Job]]' = queue.Queue()
        self._lock = threading.Lock()
        self._current = ''   # turn being synthesised
        self._reported: 'collections.OrderedDict[str, bool]' = collections.OrderedDict()
        self._stopping = False
        self._idle = threading.Event()   # clear while loop() runs
        self._idle.set()

    # ---- inputs (any thread) ----------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self.tracker.observe(job.turn_id, job.turn_stamp)
        overflow = []
        with self._lock:
            while self._queue.qsize() >= self.max_queue:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    break
                if old is None:   # keep a pending stop
                    self._queue.put(None)
                    break
                self.counters['dropped_overflow'] += 1
                overflow.append(old)
            self._queue.put(job)
        for old in overflow:
            if self._first_report(old.turn_id):
                self.counters['errors'] += 1
                self.on_error(old, 'tts queue full (%d sentences): dropped the oldest '
                              'sentence of this turn' % self.max_queue, None)

    def observe_turn(self, turn_id: str, turn_stamp: float) -> None:
        """Note a new user turn (utterance/transcript): older turns become stale."""
        self.tracker.observe(turn_id, turn_stamp)

    def set_dialect(self, turn_id: str, label: Optional[str]) -> None:
        with self._lock:
            self.dialects[turn_id] = label or ''
            while len(self.dialects) > 256:
                self.dialects.pop(next(iter(self.dialects)))

    def cancel(self, turn_id: str, reason: str = 'cancelled') -> None:
        """Drop everything pending for ``turn_id`` (barge-in / cancelled event)."""
        with self._lock:
            self.cancelled[turn_id] = reason
            while len(self.cancelled) > 256:
                self.cancelled.pop(next(iter(self.cancelled)))
            busy = self._current == turn_id
        if busy:   # a request in flight for it (HTTP backends) is aborted too
            for backend in (self.primary, self.fallback):
                abort = getattr(backend, 'abort', None)
                if abort is not None:
                    abort()

    def on_event(self, event: dict) -> None:
        """Follow the turn events: dialect labels, new user turns, cancelled turns."""
        stage, turn_id = event.get('stage'), event.get('turn_id', '')
        if stage == 'dialect':
            self.set_dialect(turn_id, (event.get('dialect') or {}).get('label'))
        elif stage in ('utterance', 'transcript', 'speech_start'):
            self.observe_turn(turn_id, float(event.get('turn_stamp') or event['stamp']))
        elif stage == 'cancelled':
            self.cancel(turn_id)

    def stop(self) -> None:
        """Stop the worker: what is queued is skipped, the sentence in flight ends its piece."""
        self._stopping = True
        self._queue.put(None)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until ``loop()`` has returned (after ``stop()``); False on timeout."""
        return self._idle.wait(timeout)

    def _first_report(self, turn_id: str) -> bool:
        """Return True the first time a turn's outcome is reported here (bounded memory)."""
        with self._lock:
            if turn_id in self._reported:
                return False
            self._reported[turn_id] = True
            while len(self._reported) > 1024:
                self._reported.popitem(last=False)
            return True

    def _drop(self, job: Job, reason: str) -> None:
        """Count a dropped job; report a superseded turn once (not per sentence)."""
        self.counters['dropped'] += 1
        with self._lock:
            if job.turn_id in self.cancelled:   # another stage's cancelled event said so
                return
        if self._first_report(job.turn_id):
            self.counters['turns_superseded'] += 1
            self.on_dropped(job, self.tracker.latest or '')

    def pending(self) -> int:
        return self._queue.qsize()

    # ---- worker -------------------------------------------------------------------------------
    def dropped_reason(self, turn_id: str) -> Optional[str]:
        with self._lock:
            if turn_id in self.cancelled:
                return self.cancelled[turn_id]
        if self.tracker.is_stale(turn_id):
            return 'superseded by a newer turn'
        return None

    def loop(self) -> None:
        self._idle.clear()
        try:
            while self.run_once(timeout=None):
                pass
        finally:
            self._idle.set()

    def run_once(self, timeout: Optional[float] = 0.0) -> bool:
        """Process one queued sentence; False once ``stop()`` was called (or queue empty)."""
        try:
            if timeout is None:
                job = self._queue.get()
            elif timeout <= 0:
                job = self._queue.get_nowait()
            else:
                job = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        if job is None:
            return False
        self.process(job)
        return True

    def process(self, job: Job) -> None:
        if self._stopping:   # shutting down: no more synthesis, no more events
            return
        reason = self.dropped_reason(job.turn_id)
        if reason:
            self._drop(job, reason)
            return
        self.counters['sentences'] += 1
        with self._lock:
            self._current = job.turn_id
        try:
            for piece in self.speak(job):
                if self._stopping:
                    return
                reason = self.dropped_reason(job.turn_id)
                if reason:
                    self._drop(job, reason)
                    return
                self.counters['pieces'] += 1
                self.on_audio(piece)
        except Exception as exc:  # TTSError or a backend bug: this sentence fails, not the node
            if self._stopping:
                return
            reason = self.dropped_reason(job.turn_id)
            if reason:   # aborted by a cancel: not an error
                self._drop(job, reason)
                return
            self.counters['errors'] += 1
            self.on_error(job, str(exc) if isinstance(exc, TTSError) else repr(exc), None)
        finally:
            with self._lock:
                self._current = ''

    def speak(self, job: Job) -> Iterator[Piece]:
        """Yield the pieces of one sentence (raises TTSError if nothing can be spoken)."""
        text = ' '.join(job.text.split())
        if not speakable(text):
            raise TTSError('nothing to speak in %r (only punctuation, symbols or emoji)'
                           % job.text[:40])
        if self.normalize_text:
            text = normalize(text)
        with self._lock:
            dialect = self.dialects.get(job.turn_id) or None
        parts = chunk_text(text, self.max_chars) or [text]
        for index, part in enumerate(parts):
            if not speakable(part):
                continue
            speech, backend = self._synthesize(job, part, dialect)
            yield Piece(job, speech, part, backend, index, len(parts))

    def _synthesize(self, job: Job, text: str, dialect: Optional[str]) -> Tuple[Speech, str]:
        primary, fallback = self.primary, self.fallback
        if not primary.speaks(dialect):
            if fallback is None or not fallback.speaks(dialect):
                raise TTSError('%s cannot speak %s and no fallback does' % (primary.name, dialect))
            return fallback.synthesize(text, dialect=dialect), fallback.name
        try:
            return primary.synthesize(text, dialect=dialect), primary.name
        except Exception as exc:
            if fallback is None or fallback is primary or self.dropped_reason(job.turn_id):
                raise
            message = '%s failed for %r: %s' % (primary.name, text[:40],
                                                exc if isinstance(exc, TTSError) else repr(exc))
            self.counters['fallbacks'] += 1
            self.on_error(job, message, fallback.name)
            return fallback.synthesize(text, dialect=dialect), fallback.name


def build_backends(build: Callable[[str], TTSBackend], name: str,
                   fallback_name: str) -> Tuple[TTSBackend, Optional[TTSBackend], str]:
    """
    Build the main backend and the fallback; return (primary, fallback, warning).

    A fallback that cannot load is only a warning; a main backend that cannot load is
    replaced by the fallback with a warning saying why; with neither, raise.
    """
    fallback, note = None, ''
    if fallback_name and fallback_name != name:
        try:
            fallback = build(fallback_name)
        except Exception as exc:
            note = 'no fallback voice: %s' % exc
    try:
        return build(name), fallback, note
    except Exception as exc:
        if fallback is None:
            raise TTSError('%s%s' % (exc, '; ' + note if note else '')) from None
        return fallback, fallback, '%s unavailable (%s); speaking with %s' % (
            name, exc, fallback_name)
