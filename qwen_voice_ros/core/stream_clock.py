"""
When did a sample of an audio stream reach this node?  One clock for every stage's stamps.

A turn's latency is "end of the user's speech -> first audio out".  Every stage stamps its
events with its own ROS clock (wall time, or ``/clock`` under ``use_sim_time``), so the turn's
start must be on that clock too.  The audio messages' header stamps are on the *capture's*
clock: a live microphone's (close to the node clock), but a replayed bag's are the time of
the recording, days or years ago, which made a replay report 32 million seconds of latency.

The hearing node therefore stamps a turn with the time *it received* the last voiced sample,
read off its own clock: :class:`ArrivalClock` remembers, per message, the stream sample
index it ended at and the node-clock time it arrived; ``time_of(sample)`` answers for any
recent sample.  The VAD's silence hangover (end-of-speech detection) then shows as the
``utterance`` event's latency, and ASR, LLM, TTS and playback latencies all count from the
same instant, live or replayed, with or without ``--clock``/``use_sim_time``.

Pure Python, no rclpy; the hearing node feeds it ``now_s()``.
"""
from __future__ import annotations

import bisect
from typing import List, Optional


class ArrivalClock:
    """Map stream sample indices to the receiver-clock time their message arrived."""

    def __init__(self, keep: int = 4096):
        self._keep = int(keep)
        self._ends: List[int] = []     # stream sample index after each message's last sample
        self._times: List[float] = []  # receiver clock (s) when that message arrived
        self._start = 0                # first sample still remembered

    def reset(self) -> None:
        """Forget everything (the stream restarted at sample 0)."""
        self._ends = []
        self._times = []
        self._start = 0

    def add(self, end_sample: int, received_s: float) -> None:
        """Record that the stream's samples up to ``end_sample`` (exclusive) arrived now."""
        end_sample = int(end_sample)
        if self._ends and end_sample <= self._ends[-1]:
            return  # an empty message adds no samples
        self._ends.append(end_sample)
        self._times.append(float(received_s))
        if len(self._ends) > self._keep:
            cut = len(self._ends) - self._keep // 2
            self._start = self._ends[cut - 1]
            del self._ends[:cut]
            del self._times[:cut]

    def time_of(self, sample: int) -> Optional[float]:
        """Arrival time of the message that carried stream sample ``sample``; None if unknown."""
        if not self._ends or int(sample) < self._start:
            return None
        index = bisect.bisect_right(self._ends, int(sample))
        if index >= len(self._ends):
            return None  # not received yet
        return self._times[index]

    def time_of_s(self, stream_s: float, sample_rate: int) -> Optional[float]:
        """Arrival time of the sample just before stream time ``stream_s`` (seconds)."""
        return self.time_of(max(0, int(round(stream_s * sample_rate)) - 1))
