"""
Capture-side bookkeeping without ROS: chunk stamps and the input level meter.

:class:`ChunkStamper` gives each captured chunk the time of its first sample.  A source
callback fires when a chunk is complete, so its first sample is one chunk older; callbacks
come in bursts (ALSA periods), so stamps follow the sample count, pulled gently towards the
clock (device clock drift), and re-anchor after a real gap (> ``reanchor_ns``).

:class:`LevelMeter` keeps RMS level (dBFS) and the clipping ratio over a sliding window of
samples (bounded: the window's chunks only).
"""
from __future__ import annotations

import collections
import math
import threading
from typing import Deque, Optional, Tuple

import numpy as np

from qwen_voice_ros.audio.pcm import clipping_ratio


class ChunkStamper:
    """Stamp chunks in nanoseconds; ``stamp(now_ns, samples, rate)`` -> first-sample time."""

    def __init__(self, reanchor_ns: int = 100000000, pull: int = 100):
        self.reanchor_ns = int(reanchor_ns)
        self.pull = int(pull)
        self._next_ns: Optional[int] = None

    def stamp(self, now_ns: int, samples: int, rate: int) -> int:
        duration_ns = int(samples * 1e9 / rate)
        estimate_ns = now_ns - duration_ns
        if self._next_ns is None or abs(estimate_ns - self._next_ns) > self.reanchor_ns:
            self._next_ns = estimate_ns
        else:
            self._next_ns += (estimate_ns - self._next_ns) // self.pull
        start_ns = self._next_ns
        self._next_ns = start_ns + duration_ns
        return start_ns


class LevelMeter:
    """RMS level and clipping over the last ``window_s`` of audio (thread-safe)."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = float(window_s)
        self._stats: Deque[Tuple[int, float, int]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, audio: np.ndarray, rate: int) -> None:
        n = len(audio)
        if not n:
            return
        sum_sq = float(np.sum(np.square(audio, dtype=np.float64)))
        clipped = int(round(clipping_ratio(audio) * n))
        window = int(self.window_s * rate)
        with self._lock:
            self._stats.append((n, sum_sq, clipped))
            total = sum(s[0] for s in self._stats)
            while len(self._stats) > 1 and total - self._stats[0][0] >= window:
                total -= self._stats.popleft()[0]

    def level(self) -> Tuple[float, float]:
        """Return (RMS level in dBFS, clipping ratio) over the window."""
        with self._lock:
            n = sum(s[0] for s in self._stats)
            sum_sq = sum(s[1] for s in self._stats)
            clipped = sum(s[2] for s in self._stats)
        if not n:
            return float('-inf'), 0.0
        return 20.0 * math.log10(max(math.sqrt(sum_sq / n), 1e-10)), clipped / float(n)
