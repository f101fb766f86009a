"""
Replay timing: when each recorded message is due, and what /clock says; no rclpy.

The schedule maps bag time to wall time: message ``i`` of loop iteration ``k`` is due at
``wall_start + (t_i - t_first + k * period) / rate`` where ``period`` is the bag's span plus
``loop_gap_s``.  Simulated (bag) time keeps running across loops instead of jumping back, so
nodes with ``use_sim_time`` never see time reverse; it is ``t_first + (wall - wall_start) *
rate`` (plus the start offset).  The clock and sleep functions are injectable, so the whole
timing logic runs against a fake clock in the tests.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from qwen_voice_ros.replay.bags import BagMessage

# Never sleep longer than this in one go, so a stop request is seen promptly.
MAX_SLEEP_S = 0.05


class Player:
    """
    Publish ``messages`` (sorted by timestamp) with their recorded timing.

    ``rate`` scales speed (2.0 = twice as fast), ``loop`` repeats until stopped (or ``loops``
    times when given), ``start_offset_s`` skips that much bag time from the first message.
    ``clock_hz`` makes ``run`` call ``on_clock(sim_time_ns)`` at that wall rate, and always
    just before a message is published.
    """

    def __init__(self, messages: Sequence[BagMessage], rate: float = 1.0, loop: bool = False,
                 loops: Optional[int] = None, start_offset_s: float = 0.0,
                 loop_gap_s: float = 0.0, clock_hz: Optional[float] = None,
                 now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError('rate must be > 0')
        if clock_hz is not None and clock_hz <= 0:
            raise ValueError('clock rate must be > 0')
        if loops is not None and loops < 1:
            raise ValueError('loops must be >= 1')
        ordered = sorted(messages, key=lambda m: m.timestamp_ns)
        self.bag_start_ns = ordered[0].timestamp_ns if ordered else 0
        offset_ns = int(round(start_offset_s * 1e9))
        self.first_ns = self.bag_start_ns + offset_ns
        self.messages = [m for m in ordered if m.timestamp_ns >= self.first_ns]  # type: List
        last_ns = self.messages[-1].timestamp_ns if self.messages else self.first_ns
        self.span_ns = last_ns - self.first_ns
        self.period_ns = self.span_ns + int(round(loop_gap_s * 1e9))
        if (loop or (loops or 1) > 1) and self.period_ns <= 0:
            # A single-instant bag would loop without pause; give each repetition a second.
            self.period_ns = 10**9
        self.rate = float(rate)
        self.loop = loop
        self.loops = loops if loops is not None else (None if loop else 1)
        self.clock_hz = clock_hz
        self._now = now
        self._sleep = sleep
        self._stop = False
        self.wall_start = None  # type: Optional[float]
        self.published = 0

    def stop(self) -> None:
        """Ask ``run`` to return at its next wake-up (safe from another thread)."""
        self._stop = True

    @property
    def stopped(self) -> bool:
        return self._stop

    def schedule(self) -> Iterator[Tuple[float, int, BagMessage]]:
        """Yield (seconds after start, loop iteration, message), forever if looping."""
        if not self.messages:
            return
        iteration = 0
        while self.loops is None or iteration < self.loops:
            base_ns = iteration * self.period_ns
            for msg in self.messages:
                yield (msg.timestamp_ns - self.first_ns + base_ns) / 1e9 / self.rate, \
                    iteration, msg
            iteration += 1

    def duration_s(self) -> Optional[float]:
        """Wall seconds a full replay takes (None when looping forever)."""
        if self.loops is None:
            return None
        if not self.messages:
            return 0.0
        return ((self.loops - 1) * self.period_ns + self.span_ns) / 1e9 / self.rate

    def sim_time_ns(self, wall: Optional[float] = None) -> int:
        """Bag time that corresponds to wall time ``wall`` (default: now)."""
        if self.wall_start is None:
            return self.first_ns
        wall = self._now() if wall is None else wall
        return self.first_ns + int(round(max(0.0, wall - self.wall_start) * self.rate * 1e9))

    def _wait_until(self, due: float, on_clock: Optional[Callable[[int], None]],
                    next_tick: List[float]) -> bool:
        """Sleep until wall time ``due``, ticking the clock; False when stopped."""
        while not self._stop:
            now = self._now()
            if on_clock is not None and self.clock_hz and now >= next_tick[0]:
                on_clock(self.sim_time_ns(now))
                # Skip ticks missed while busy rather than bursting them out.
                period = 1.0 / self.clock_hz
                next_tick[0] += period * max(1, int((now - next_tick[0]) / period) + 1)
            if now >= due:
                return True
            wake = due
            if on_clock is not None and self.clock_hz:
                wake = min(wake, next_tick[0])
            self._sleep(max(0.0, min(wake - now, MAX_SLEEP_S)))
        return False

    def run(self, publish: Callable[[BagMessage], None],
            on_clock: Optional[Callable[[int], None]] = None) -> int:
        """Publish every scheduled message on time; return how many were published."""
        self.wall_start = self._now()
        next_tick = [self.wall_start]
        for offset_s, _iteration, msg in self.schedule():
            if not self._wait_until(self.wall_start + offset_s, on_clock, next_tick):
                break
            if on_clock is not None:
                on_clock(self.sim_time_ns())
            publish(msg)
            self.published += 1
        return self.published

    def idle(self, seconds: float, on_clock: Optional[Callable[[int], None]] = None) -> None:
        """Wait ``seconds`` after the replay (recording tail), keeping /clock running."""
        if self.wall_start is None:
            self.wall_start = self._now()
        next_tick = [self._now()]
        self._wait_until(self._now() + max(0.0, seconds), on_clock, next_tick)
