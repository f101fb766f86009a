"""
First-chunk hold: the llm pauses its decode until tts has voiced the reply's first chunk.

On a CPU shared by the LLM and the TTS (this project's 2-core machine, a Jetson's CPU
running Kokoro while the LLM decodes), the time to the first audio out is end of speech ->
first chunk of text -> its synthesis.  Once the first chunk is published, the LLM decoding
sentence 2 competes with the TTS synthesising sentence 1 for the same cores, and the first
audio comes later (docs/latency.md: Kokoro's first chunk 0.75-0.80 s alone, 1.45 s beside
the decode).  Sentence 2 is not needed until sentence 1 has played (>= 1 s of audio), so
the worker holds after publishing sentence 1 until a ``tts_audio`` event of that turn
arrives, for at most ``hold_s``.  A turn being cancelled ends the hold at once.

The hold arms only once the graph shows a tts (some ``tts_audio`` event was seen), so an
llm without a tts downstream never waits.  ``hold_s`` 0 turns it off.  Pure Python, no
rclpy; thread-safe (the event callback releases, the llm worker waits).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class FirstChunkHold:
    """Arm on a turn's first published sentence; release on its first ``tts_audio``."""

    def __init__(self, hold_s: float, clock: Callable[[], float] = time.monotonic,
                 step_s: float = 0.01):
        self.hold_s = float(hold_s)
        self._clock = clock
        self._step_s = step_s
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._armed: Optional[str] = None
        self.tts_seen = False
        self.holds = 0          # holds that ended by the first tts_audio
        self.timeouts = 0       # holds that ran out (tts slow or gone)
        self.held_s = 0.0       # total time the decode waited

    def arm(self, turn_id: str) -> None:
        """Hold the next wait() of ``turn_id`` for its audio (its sentence 1 was published)."""
        if self.hold_s <= 0 or not self.tts_seen:
            return
        with self._lock:
            self._armed = turn_id
            self._released.clear()

    def on_tts_audio(self, turn_id: str) -> None:
        """Note a ``tts_audio`` event: tts is in the graph; the armed turn may go on."""
        with self._lock:
            self.tts_seen = True
            if self._armed is not None and self._armed == turn_id:
                self._released.set()

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            if self._armed == old:
                self._armed = new

    def wait(self, turn_id: str, cancel: threading.Event) -> float:
        """Hold if armed for ``turn_id``; return the seconds waited (0.0 when not armed)."""
        with self._lock:
            if self._armed is None or self._armed != turn_id:
                return 0.0
        start = self._clock()
        released = False
        while not cancel.is_set():
            if self._released.wait(self._step_s):
                released = True
                break
            if self._clock() - start >= self.hold_s:
                break
        waited = self._clock() - start
        with self._lock:
            self._armed = None
            self.held_s += waited
            if released:
                self.holds += 1
            elif not cancel.is_set():
                self.timeouts += 1
        return waited

    def values(self) -> dict:
        return {'first_chunk_holds': self.holds, 'first_chunk_hold_timeouts': self.timeouts,
                'first_chunk_held_s': round(self.held_s, 3)}
