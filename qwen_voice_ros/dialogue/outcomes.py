"""
Turn lifecycle: every turn a stage starts ends in exactly one terminal outcome.

``completed`` (the stage did its job), ``cancelled`` (a newer turn superseded it;
``detail.superseded_by`` names that turn) or ``error``.  The node publishes each outcome as
one event (``reply``/``playback``..., ``cancelled``, ``error``); a second attempt to end the
same turn returns None, so nothing is reported twice and nothing is left open silently:
the table is bounded, and a turn pushed out of it ends as an error (``evicted``).
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Dict, List, NamedTuple, Optional

COMPLETED, CANCELLED, ERROR = 'completed', 'cancelled', 'error'
KINDS = (COMPLETED, CANCELLED, ERROR)


class Outcome(NamedTuple):
    """The one terminal outcome of a turn at one stage."""

    turn_id: str
    turn_stamp: Optional[float]
    kind: str                 # completed | cancelled | error
    text: str = ''            # what the stage produced (the reply, or what was spoken)
    error: str = ''
    detail: Dict[str, Any] = {}

    @property
    def event_stage(self) -> str:
        """Return the event stage an adapter publishes for a cancel or an error."""
        return {CANCELLED: 'cancelled', ERROR: 'error'}.get(self.kind, '')


class TurnLifecycle:
    """Open turns of one stage and their single terminal outcome (thread-safe)."""

    def __init__(self, stage: str, max_open: int = 64):
        self.stage = stage
        self.max_open = max_open
        self._open: 'collections.OrderedDict[str, Optional[float]]' = collections.OrderedDict()
        self._ended: 'collections.OrderedDict[str, str]' = collections.OrderedDict()
        self._lock = threading.Lock()
        self.counts: Dict[str, int] = {kind: 0 for kind in KINDS}
        self.evicted = 0

    def start(self, turn_id: str, turn_stamp: Optional[float]) -> List[Outcome]:
        """Open a turn; returns outcomes of turns evicted to keep the table bounded."""
        evicted = []
        with self._lock:
            if turn_id in self._open or turn_id in self._ended:
                return []
            self._open[turn_id] = turn_stamp
            while len(self._open) > self.max_open:
                old_id, old_stamp = self._open.popitem(last=False)
                self.evicted += 1
                evicted.append(self._end_locked(old_id, old_stamp, ERROR, error=(
                    '%s: more than %d turns open; the oldest was dropped'
                    % (self.stage, self.max_open)), detail={'stage': self.stage,
                                                            'reason': 'evicted'}))
        return evicted

    def is_open(self, turn_id: str) -> bool:
        with self._lock:
            return turn_id in self._open

    def ended(self, turn_id: str) -> Optional[str]:
        """Return the outcome kind of an ended turn, or None."""
        with self._lock:
            return self._ended.get(turn_id)

    @property
    def open_turns(self) -> List[str]:
        with self._lock:
            return list(self._open)

    def finish(self, turn_id: str, kind: str, text: str = '', error: str = '',
               turn_stamp: Optional[float] = None, **detail: Any) -> Optional[Outcome]:
        """End a turn with ``kind``; None if it already ended (exactly one outcome)."""
        if kind not in KINDS:
            raise ValueError('outcome kind must be one of %s, got %r' % (KINDS, kind))
        with self._lock:
            if turn_id in self._ended:
                return None
            stamp = self._open.pop(turn_id, turn_stamp)
            return self._end_locked(turn_id, stamp if stamp is not None else turn_stamp, kind,
                                    text=text, error=error, detail=dict(detail))

    def rename(self, old: str, new: str) -> None:
        """Re-attribute ``old`` to ``new`` (a late event); the open turn keeps its place."""
        with self._lock:
            if old in self._open and new not in self._open:
                items = [(new if k == old else k, v) for k, v in self._open.items()]
                self._open = collections.OrderedDict(items)

    def _end_locked(self, turn_id, turn_stamp, kind, text='', error='', detail=None):
        self._ended[turn_id] = kind
        while len(self._ended) > 4 * self.max_open:
            self._ended.popitem(last=False)
        self.counts[kind] += 1
        detail = dict(detail or {})
        detail.setdefault('stage', self.stage)
        return Outcome(turn_id, turn_stamp, kind, text, error, detail)
