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

Speculative reply (``announce``): a finished job whose utterance is still open is
*announced* (``on_announce(job)``: the hearing node publishes a ``speculative_transcript``
event under the open turn's id, so dialect and LLM start ~0.3 s before the hangover ends).
An announced job is later either confirmed (:meth:`claim` returns it for the closed
utterance with exactly its audio: the same turn id gets the confirmed ``transcript``) or
*withdrawn* (``on_withdraw(job, reason)``: speech resumed, the closed audio differs, the
stream restarted): the hearing node states a ``cancelled`` outcome for that turn id and the
utterance continues under a new one.  Announce, withdraw and claim run under one lock, so a
job is never announced after it was dropped, nor withdrawn after it was confirmed.
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
        self.speech_end_s = key[1]
        self.audio = audio
        self.created_s = created_s
        self.stale = False           # speech resumed: never used
        self.text: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.asr_s = 0.0             # time the transcription took
        self.finished_s: Optional[float] = None
        self.turn_id = ''            # the open turn it belongs to (speculative reply)
        self.turn_stamp: Optional[float] = None   # that turn's start (end of speech)
        self.announced = False       # its text went out as a speculative transcript
        self.withdrawn = ''          # why an announced job was withdrawn ('' = it was not)
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

    def __init__(self, after_silence_s: float = 0.3, clock: Callable[[], float] = time.monotonic,
                 announce: bool = False,
                 on_announce: Optional[Callable[[SpeculativeJob], None]] = None,
                 on_withdraw: Optional[Callable[[SpeculativeJob, str], None]] = None):
        self.after_silence_s = float(after_silence_s)
        self.clock = clock
        self.announce = bool(announce) and self.after_silence_s > 0.0
        self._on_announce = on_announce
        self._on_withdraw = on_withdraw
        # update/claim run on the audio callback, finished() on the ASR worker.
        self._lock = threading.RLock()
        self.job: Optional[SpeculativeJob] = None
        self.started = 0     # jobs started
        self.discarded = 0   # jobs made stale by resumed speech
        self.used = 0        # utterances whose transcript came from a job
        self.announced = 0   # jobs announced as speculative transcripts
        self.withdrawn = 0   # announced jobs withdrawn (cancelled turns)
        self.confirmed = 0   # announced jobs confirmed by the close

    @property
    def enabled(self) -> bool:
        return self.after_silence_s > 0.0

    def _drop(self, reason: str = 'speech resumed before the hangover ended',
              withdraw: bool = True) -> None:
        if self.job is not None:
            job, self.job = self.job, None
            job.stale = True
            self.discarded += 1
            self._withdraw(job, reason, withdraw)

    def _withdraw(self, job: SpeculativeJob, reason: str, tell: bool = True) -> None:
        if job.announced and not job.withdrawn:
            job.withdrawn = reason
            self.withdrawn += 1
            if tell and self._on_withdraw is not None:
                self._on_withdraw(job, reason)

    def finished(self, job: SpeculativeJob) -> bool:
        """
        Announce ``job`` (the worker ran it) if its utterance is still open.

        Returns True when ``on_announce(job)`` was called.  Not announced: announcing off,
        the job is stale or already claimed by the close (then the close publishes it as
        an ordinary transcript), or its text is empty or failed.
        """
        with self._lock:
            if (not self.announce or job is not self.job or job.stale or job.error is not None
                    or not (job.text or '').strip()):
                return False
            job.announced = True
            self.announced += 1
            if self._on_announce is not None:
                self._on_announce(job)
            return True

    def update(self, segmenter) -> Optional[SpeculativeJob]:
        """
        Look at the segmenter after it took audio; return a new job to run, or None.

        ``segmenter`` is an :class:`~qwen_voice_ros.audio.vad.UtteranceSegmenter` (``in_speech``,
        ``silence_s``, ``peek()``).
        """
        if not self.enabled:
            return None
        with self._lock:
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
        """
        Return the job of a closed utterance if it transcribed exactly its audio, else None.

        An announced job that does not match is withdrawn (``on_withdraw``): its turn was
        about different audio.
        """
        with self._lock:
            job, self.job = self.job, None
            if job is None or job.stale:
                return None
            key = (round(utterance.start_s, 6), round(utterance.speech_end_s, 6))
            if key != job.key or not np.array_equal(job.audio, utterance.audio):
                job.stale = True
                self.discarded += 1
                self._withdraw(job, "the closed utterance's audio differs from the "
                               "speculative transcript's")
                return None
            self.used += 1
            if job.announced:
                self.confirmed += 1
            return job

    def reset(self, reason: str = 'the audio stream restarted', withdraw: bool = True) -> None:
        """Drop the job: the stream restarted, nothing speculative holds."""
        with self._lock:
            self._drop(reason, withdraw)
