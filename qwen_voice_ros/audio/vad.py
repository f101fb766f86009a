"""
Voice activity detection: a frame classifier plus the segmenter that turns it into utterances.

The segmenter is the part every VAD needs (frame models split on syllable gaps): speech
starts after ``min_speech_ms`` of voiced frames, ends after ``min_silence_ms`` of silence
(hangover), keeps ``pad_ms`` of context either side, and force-closes at ``max_utterance_s``.
Frame classifiers: ``energy`` (adaptive noise floor, no weights) ships here; model-based
ones (Silero) plug in through :class:`FrameClassifier`.
"""
from __future__ import annotations

import abc
import collections
import dataclasses
from typing import Deque, List, Optional

import numpy as np


class FrameClassifier(abc.ABC):
    """Speech probability of one fixed-size frame."""

    frame_samples: int = 512

    @abc.abstractmethod
    def speech_probability(self, frame: np.ndarray) -> float:
        """Return P(speech) for one frame of ``frame_samples`` float32 samples."""

    def reset(self) -> None:
        """Forget state between streams."""


class EnergyClassifier(FrameClassifier):
    """Energy above an adaptive noise floor; robust enough for close-talk microphones."""

    def __init__(self, frame_samples: int = 512, threshold_db: float = 12.0,
                 floor_db: float = -65.0):
        self.frame_samples = frame_samples
        self.threshold_db = threshold_db
        self.min_floor_db = floor_db
        self.reset()

    def reset(self) -> None:
        self.noise_db = self.min_floor_db + 10.0

    def speech_probability(self, frame: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if frame.size else 0.0
        level = 20.0 * np.log10(max(rms, 1e-10))
        margin = level - max(self.noise_db, self.min_floor_db)
        # Track the floor quickly downwards, slowly upwards (speech must not raise it much).
        rate = 0.3 if level < self.noise_db else 0.01
        self.noise_db += rate * (level - self.noise_db)
        return float(1.0 / (1.0 + np.exp(-(margin - self.threshold_db) / 2.0)))


@dataclasses.dataclass
class Utterance:
    """A closed segment of speech."""

    audio: np.ndarray
    start_s: float      # stream time of the first sample
    end_s: float        # stream time after the last sample
    forced: bool = False  # closed by max_utterance_s, not by silence

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class UtteranceSegmenter:
    """Feed audio of any chunk size; get closed utterances back."""

    def __init__(self, classifier: FrameClassifier, sample_rate: int = 16000,
                 threshold: float = 0.5, min_speech_ms: int = 150, min_silence_ms: int = 500,
                 pad_ms: int = 200, max_utterance_s: float = 20.0):
        self.classifier = classifier
        self.rate = sample_rate
        self.frame = classifier.frame_samples
        self.threshold = threshold
        frame_ms = 1000.0 * self.frame / sample_rate
        self.min_speech_frames = max(1, int(round(min_speech_ms / frame_ms)))
        self.min_silence_frames = max(1, int(round(min_silence_ms / frame_ms)))
        self.pad_frames = int(round(pad_ms / frame_ms))
        self.max_frames = int(max_utterance_s * 1000.0 / frame_ms)
        self.reset()

    def reset(self) -> None:
        self.classifier.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames_seen = 0
        self._history: Deque[np.ndarray] = collections.deque(maxlen=self.pad_frames + 64)
        self._speech: List[np.ndarray] = []
        self._in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        self._start_frame = 0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def feed(self, audio: np.ndarray) -> List[Utterance]:
        out: List[Utterance] = []
        self._pending = np.concatenate([self._pending, np.asarray(audio, dtype=np.float32)])
        n = len(self._pending) // self.frame
        for i in range(n):
            utt = self._step(self._pending[i * self.frame:(i + 1) * self.frame])
            if utt is not None:
                out.append(utt)
        self._pending = self._pending[n * self.frame:]
        return out

    def flush(self) -> Optional[Utterance]:
        """Close an open utterance at end of stream."""
        if self._in_speech and self._speech:
            return self._close(forced=True)
        return None

    def _step(self, frame: np.ndarray) -> Optional[Utterance]:
        voiced = self.classifier.speech_probability(frame) >= self.threshold
        self._frames_seen += 1
        if not self._in_speech:
            self._history.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self.min_speech_frames:
                keep = min(len(self._history), self._voiced_run + self.pad_frames)
                self._speech = list(self._history)[-keep:]
                self._start_frame = self._frames_seen - keep
                self._in_speech = True
                self._silence_run = 0
            return None
        self._speech.append(frame)
        self._silence_run = 0 if voiced else self._silence_run + 1
        if self._silence_run >= self.min_silence_frames:
            # Keep pad_ms of the trailing silence, drop the rest.
            drop = max(0, self._silence_run - self.pad_frames)
            if drop:
                del self._speech[-drop:]
            return self._close(forced=False)
        if len(self._speech) >= self.max_frames:
            return self._close(forced=True)
        return None

    def _close(self, forced: bool) -> Utterance:
        audio = np.concatenate(self._speech)
        start = self._start_frame * self.frame / self.rate
        utt = Utterance(audio=audio, start_s=start, end_s=start + len(audio) / self.rate,
                        forced=forced)
        self._speech = []
        self._history.clear()
        self._in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        return utt


def create_classifier(backend: str, sample_rate: int = 16000, **kwargs) -> FrameClassifier:
    if backend == 'energy':
        return EnergyClassifier(frame_samples=int(sample_rate * 0.032), **kwargs)
    raise ValueError('unknown VAD backend %r (available: energy)' % backend)
