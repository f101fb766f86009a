"""
Speculative ASR: transcribe during the VAD's hangover, keep the result if no speech follows.

An utterance ends after ``min_silence_ms`` (1 s) of silence, so comma pauses stay inside
it; waiting that long and only then running Whisper puts the hangover *and* the ASR time
between the end of speech and the transcript.  :class:`SpeculativeASR` starts transcribing
the audio so far once ``after_silence_s`` (~0.3 s) of silence follows speech:

* speech resumes (the silence is shorter than the threshold again, or the speech end moved):
  the job is stale; a worker skips a stale job it has not started and its result is never
  used;
* the hangover confirms the end: :meth:`claim` returns the job when the utterance's audio is
  exactly the audio it transcribed, and the caller publishes its text (waiting for it if it
  is still running) instead of transcribing again.

The turn's stamps do not change: they stay the true end of speech (the hearing node's
``ArrivalClock``); only the transcript comes sooner.  Plain Python, no rclpy: the hearing
node calls :meth:`update` after each audio message and :meth:`claim` per closed utterance,
and runs :meth:`SpeculativeJob.run` on its ASR worker.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Tuple

import numpy as np


class SpeculativeJob:
    """One speculative transcription of the audio of an utterance not closed yet."""

    def __init__(self, key: Tuple[float, float], audio: np.ndarray, created_s: float):
        self.key = key               # (utterance start_s, speech_end_s) on the stream clock
        self.audio = audio
        self.created_s = created_s
        self.stale = False           # speech resumed: never used
        self.text: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.asr_s = 0.0             # time the transcription took
        self.finished_s: Optional[float] = None
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def run(self, transcribe: Callable[[np.ndarray], str],
            clock: Callable[[], float] = time.monotonic) -> bool:
        """Transcribe unless stale (then return False without running)."""
        if self.stale:
            self._done.set()
            return False
        started = clock()
        try:
            self.text = transcribe(self.audio)
        except Exception as exc:  # the caller reports it with the turn
            self.error = exc
        self.finished_s = clock()
        self.asr_s = self.finished_s - started
        self._done.set()
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._done.wait(timeout)


class SpeculativeASR:
    """Decide when to start a speculative transcription and whether its result holds."""

    def __init__(self, after_silence_s: float = 0.3, clock: Callable[[], float] = time.monotonic):
        self.after_silence_s = float(after_silence_s)
        self.clock = clock
        self.job: Optional[SpeculativeJob] = None
        self.started = 0     # jobs started
        self.discarded = 0   # jobs made stale by resumed speech
        self.used = 0        # utterances whose transcript came from a job

    @property
    def enabled(self) -> bool:
        return self.after_silence_s > 0.0

    def _drop(self) -> None:
        if self.job is not None:
            self.job.stale = True
            self.discarded += 1
            self.job = None

    def update(self, segmenter) -> Optional[SpeculativeJob]:
        """
        Look at the segmenter after it took audio; return a new job to run, or None.

        ``segmenter`` is an :class:`~qwen_voice_ros.audio.vad.UtteranceSegmenter` (``in_speech``,
        ``silence_s``, ``peek()``).
        """
        if not self.enabled:
            return None
        if not segmenter.in_speech or segmenter.silence_s < self.after_silence_s:
            self._drop()  # speech goes on (or no utterance open): the audio will change
            return None
        peek = segmenter.peek()
        if peek is None:
            self._drop()
            return None
        key = (round(peek.start_s, 6), round(peek.speech_end_s, 6))
        if self.job is not None and self.job.key == key:
            return None  # same speech end, already started
        self._drop()
        self.job = SpeculativeJob(key, peek.audio, self.clock())
        self.started += 1
        return self.job

    def claim(self, utterance) -> Optional[SpeculativeJob]:
        """Return the job of a closed utterance if it transcribed exactly its audio, else None."""
        job, self.job = self.job, None
        if job is None or job.stale:
            return None
        key = (round(utterance.start_s, 6), round(utterance.speech_end_s, 6))
        if key != job.key or not np.array_equal(job.audio, utterance.audio):
            job.stale = True
            self.discarded += 1
            return None
        self.used += 1
        return job

    def reset(self) -> None:
        """Drop the job: the stream restarted, nothing speculative holds."""
        self._drop()
