"""
Half-duplex gate: hearing is muted (or made less sensitive) while the robot speaks.

Without echo cancellation the microphone hears the robot's own voice and the VAD would
start a new "user" turn that cancels the reply it is hearing.  Like pipecat's STT mute
filter and whisper_ros's ``enable_vad``, the hearing node asks this gate per audio frame:
``muted(now)`` (drop the frame) or ``vad_threshold(now, base)`` (raise the threshold, so
only a user talking over the robot, louder than the echo, starts a turn: barge-in stays
possible).  The gate is fed by playback events (``playback_start`` with ``duration_s``,
``playback``, playback's ``cancelled``) or directly by ``on_speaking``; it releases
``tail_s`` after the robot stopped (room echo, output latency).
"""
from __future__ import annotations

from typing import Callable, Optional

MODES = ('off', 'mute', 'raise')


class HalfDuplexGate:
    """See the module docstring; ``clock`` gives seconds (the same clock as ``now``)."""

    def __init__(self, mode: str = 'raise', tail_s: float = 0.3, raised_threshold: float = 0.9,
                 clock: Optional[Callable[[], float]] = None, max_chunk_s: float = 30.0):
        if mode not in MODES:
            raise ValueError('half-duplex mode must be one of %s, got %r' % (MODES, mode))
        if tail_s < 0:
            raise ValueError('tail_s must be >= 0, got %r' % (tail_s,))
        self.mode = mode
        self.tail_s = float(tail_s)
        self.raised_threshold = float(raised_threshold)
        self.max_chunk_s = float(max_chunk_s)
        self._clock = clock
        self._speaking = False
        self._speaking_until = float('-inf')   # end of the chunk playing (if not told)
        self._released_at = float('-inf')      # when speaking stopped
        self.muted_s = 0.0

    def _now(self, now: Optional[float]) -> float:
        if now is not None:
            return float(now)
        if self._clock is None:
            raise ValueError('HalfDuplexGate needs now= or a clock')
        return self._clock()

    def on_speaking(self, speaking: bool, now: Optional[float] = None,
                    duration_s: Optional[float] = None) -> None:
        """Tell the gate the robot started (for about ``duration_s``) or stopped speaking."""
        now = self._now(now)
        if speaking:
            self._speaking = True
            span = self.max_chunk_s if duration_s is None else min(max(0.0, float(duration_s)),
                                                                   self.max_chunk_s)
            self._speaking_until = max(self._speaking_until, now + span)
        else:
            if self._speaking:
                self._released_at = now
            self._speaking = False
            self._speaking_until = float('-inf')

    def on_playback_event(self, event: dict, now: Optional[float] = None) -> None:
        """Feed any event; playback's start/done/cancelled move the gate."""
        stage = event.get('stage')
        node = str(event.get('node', ''))
        if stage == 'playback_start':
            duration = event.get('duration_s')
            ok = isinstance(duration, (int, float)) and not isinstance(duration, bool)
            self.on_speaking(True, now, float(duration) if ok else None)
        elif stage == 'playback' or (stage == 'cancelled' and node.endswith('playback')):
            self.on_speaking(False, now)

    def speaking(self, now: Optional[float] = None) -> bool:
        """Return True while a chunk plays (a missed done event ends at its length)."""
        now = self._now(now)
        if self._speaking and now >= self._speaking_until:
            self._speaking = False
            self._released_at = self._speaking_until
        return self._speaking

    def gated(self, now: Optional[float] = None) -> bool:
        """Speaking, or within ``tail_s`` after it stopped."""
        now = self._now(now)
        return self.mode != 'off' and (self.speaking(now) or now < self._released_at + self.tail_s)

    def muted(self, now: Optional[float] = None) -> bool:
        """Drop microphone frames now (mode ``mute``)."""
        return self.mode == 'mute' and self.gated(now)

    def vad_threshold(self, now: Optional[float], base: float) -> float:
        """Return the VAD threshold for now: ``base``, or raised while gated (``raise``)."""
        if self.mode == 'raise' and self.gated(now):
            return max(float(base), self.raised_threshold)
        return float(base)
