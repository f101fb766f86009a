"""
Voice activity detection: frame classifiers behind one interface, and the segmenter.

The segmenter is the part every VAD needs (frame models split on syllable gaps and comma
pauses): speech is confirmed after ``min_speech_ms`` of voiced frames (then ``on_speech_start``
fires: the barge-in signal), ends after ``min_silence_ms`` of silence (hangover), keeps
``pad_ms`` of context either side (pre-roll / post-roll for the recogniser), and force-closes at
``max_utterance_s``.  Input is conditioned first: NaN/inf become the chunk's mean, samples
are clipped to [-1, 1] and the DC offset is removed (the classifier sees each frame without
its mean; the kept audio loses a slowly tracked offset), so a bad microphone cannot make
every frame "speech".

Frame classifiers (registry :data:`VAD_BACKENDS`, parameters declared per backend):

* ``energy``: energy above an adaptive noise floor (no weights);
* ``silero``: Silero VAD v5/v6 ONNX from the ``silero-vad`` wheel, run with onnxruntime
  (never torch), 512-sample frames at 16 kHz with the recurrent state carried
  (``audio/vad_silero.py``);
* ``webrtc``: the WebRTC GMM VAD (``webrtcvad-wheels``), 10/20/30 ms frames
  (``audio/vad_webrtc.py``).
"""
from __future__ import annotations

import abc
import collections
import dataclasses
from typing import Callable, Deque, List, Optional

import numpy as np

from qwen_voice_ros.core.params import Param, Registry

VAD_BACKENDS = Registry('vad', {
    'energy': 'qwen_voice_ros.audio.vad:EnergyClassifier',
    'silero': 'qwen_voice_ros.audio.vad_silero:SileroClassifier',
    'webrtc': 'qwen_voice_ros.audio.vad_webrtc:WebRTCClassifier',
})


class VADNotAvailable(RuntimeError):
    """The VAD backend cannot run here (package or model file missing, rate unsupported)."""


class FrameClassifier(abc.ABC):
    """Speech probability of one fixed-size frame."""

    name = 'vad'
    frame_samples: int = 512
    PARAMS = ()

    def prepare(self, sample_rate: int) -> None:
        """Set up for ``sample_rate`` (frame size, model); raise VADNotAvailable if unusable."""
        self.frame_samples = int(round(sample_rate * 0.032))

    @abc.abstractmethod
    def speech_probability(self, frame: np.ndarray) -> float:
        """Return P(speech) for one frame of ``frame_samples`` float32 samples."""

    def reset(self) -> None:
        """Forget state between streams."""


class EnergyClassifier(FrameClassifier):
    """Energy above an adaptive noise floor; robust enough for close-talk microphones."""

    name = 'energy'
    PARAMS = (
        Param('threshold_db', 12.0, 'dB above the tracked noise floor for a voiced frame',
              min=0.0, max=60.0),
        Param('floor_db', -65.0, 'lowest noise floor assumed (dBFS)', min=-120.0, max=0.0),
    )

    def __init__(self, threshold_db: float = 12.0, floor_db: float = -65.0,
                 frame_samples: int = 512):
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
    """A closed segment of speech (audio includes the pads)."""

    audio: np.ndarray
    start_s: float      # stream time of the first sample (speech onset minus pre-roll)
    end_s: float        # stream time after the last sample
    forced: bool = False  # closed by max_utterance_s (or flush), not by silence
    speech_start_s: float = 0.0  # the VAD's onset: start of the first voiced frame
    speech_end_s: float = 0.0    # the VAD's offset: end of the last voiced frame

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclasses.dataclass
class InputStats:
    """What the conditioner repaired in the stream (for diagnostics)."""

    nonfinite_samples: int = 0
    clipped_samples: int = 0
    dc_offset: float = 0.0


class UtteranceSegmenter:
    """Feed audio of any chunk size; get closed utterances back."""

    def __init__(self, classifier: FrameClassifier, sample_rate: int = 16000,
                 threshold: float = 0.5, min_speech_ms: int = 150, min_silence_ms: int = 1000,
                 pad_ms: int = 200, max_utterance_s: float = 20.0,
                 on_speech_start: Optional[Callable[[float], None]] = None,
                 remove_dc: bool = True):
        self.classifier = classifier
        self.rate = sample_rate
        self.frame = classifier.frame_samples
        self.threshold = threshold
        frame_ms = 1000.0 * self.frame / sample_rate
        self.min_speech_frames = max(1, int(round(min_speech_ms / frame_ms)))
        self.min_silence_frames = max(1, int(round(min_silence_ms / frame_ms)))
        self.pad_frames = int(round(pad_ms / frame_ms))
        self.max_frames = max(self.min_speech_frames + 1, int(max_utterance_s * 1000.0 / frame_ms))
        self.on_speech_start = on_speech_start
        self.remove_dc = remove_dc
        self.stats = InputStats()
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
        self._onset_frame = 0
        self._dc = None

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def silence_s(self) -> float:
        """Silence since the last voiced frame of the open utterance (0 outside speech)."""
        return self._silence_run * self.frame / float(self.rate) if self._in_speech else 0.0

    def peek(self) -> Optional[Utterance]:
        """
        Return the utterance as it would close now if no speech followed (None outside one).

        Its audio is what :meth:`feed` will return when the hangover ends with no voiced
        frame in between (the trailing silence is cut to ``pad_ms`` the same way).
        """
        if not self._in_speech or not self._speech:
            return None
        trailing = self._silence_run
        voiced_frames = len(self._speech) - trailing
        keep = len(self._speech) - max(0, trailing - self.pad_frames)
        audio = np.concatenate(self._speech[:keep])
        frame_s = self.frame / float(self.rate)
        start = self._start_frame * frame_s
        return Utterance(audio=audio, start_s=start, end_s=start + len(audio) / self.rate,
                         speech_start_s=self._onset_frame * frame_s,
                         speech_end_s=(self._start_frame + voiced_frames) * frame_s)

    def _condition(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size and not np.all(np.isfinite(audio)):
            bad = ~np.isfinite(audio)
            self.stats.nonfinite_samples += int(bad.sum())
            # The chunk's mean, not 0: with a DC offset, zeros would be clicks.
            fill = np.float32(audio[~bad].mean()) if (~bad).any() else np.float32(0.0)
            audio = np.where(bad, fill, audio)
        if audio.size:
            over = np.abs(audio) > 1.0
            if over.any():
                self.stats.clipped_samples += int(over.sum())
                audio = np.clip(audio, -1.0, 1.0)
        return audio

    def feed(self, audio: np.ndarray, muted: bool = False) -> List[Utterance]:
        """Take samples; return the utterances they closed (``muted``: frames count as silence)."""
        out: List[Utterance] = []
        self._pending = np.concatenate([self._pending, self._condition(audio)])
        n = len(self._pending) // self.frame
        for i in range(n):
            frame = self._pending[i * self.frame:(i + 1) * self.frame]
            probe = frame
            if self.remove_dc:
                mean = float(frame.mean())
                # The classifier sees the frame without its own mean (memoryless: a click
                # leaves nothing behind); the kept audio loses a slowly tracked offset.
                probe = frame - np.float32(mean)
                self._dc = mean if self._dc is None else self._dc + 0.02 * (mean - self._dc)
                if abs(self._dc) > 1e-3:
                    frame = frame - np.float32(self._dc)
                self.stats.dc_offset = self._dc
            utt = self._step(frame, probe, muted)
            if utt is not None:
                out.append(utt)
        self._pending = self._pending[n * self.frame:]
        return out

    def flush(self) -> Optional[Utterance]:
        """Close an open utterance at end of stream."""
        if self._in_speech and self._speech:
            return self._close(forced=True, trailing_silence=self._silence_run)
        return None

    def _step(self, frame: np.ndarray, probe: np.ndarray, muted: bool) -> Optional[Utterance]:
        voiced = (not muted) and self.classifier.speech_probability(probe) >= self.threshold
        self._frames_seen += 1
        if not self._in_speech:
            self._history.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self.min_speech_frames:
                keep = min(len(self._history), self._voiced_run + self.pad_frames)
                self._speech = list(self._history)[-keep:]
                self._start_frame = self._frames_seen - keep
                self._onset_frame = self._frames_seen - self._voiced_run
                self._in_speech = True
                self._silence_run = 0
                if self.on_speech_start is not None:
                    self.on_speech_start(self._onset_frame * self.frame / float(self.rate))
            return None
        self._speech.append(frame)
        self._silence_run = 0 if voiced else self._silence_run + 1
        if self._silence_run >= self.min_silence_frames:
            return self._close(forced=False, trailing_silence=self._silence_run)
        if len(self._speech) >= self.max_frames:
            return self._close(forced=True, trailing_silence=self._silence_run)
        return None

    def _close(self, forced: bool, trailing_silence: int) -> Utterance:
        # Keep pad_ms of the trailing silence, drop the rest.
        voiced_frames = len(self._speech) - trailing_silence
        drop = max(0, trailing_silence - self.pad_frames)
        if drop:
            del self._speech[-drop:]
        audio = np.concatenate(self._speech)
        frame_s = self.frame / float(self.rate)
        start = self._start_frame * frame_s
        utt = Utterance(audio=audio, start_s=start, end_s=start + len(audio) / self.rate,
                        forced=forced, speech_start_s=self._onset_frame * frame_s,
                        speech_end_s=(self._start_frame + voiced_frames) * frame_s)
        self._speech = []
        self._history.clear()
        self._in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        return utt


def create_classifier(backend: str, sample_rate: int = 16000, **params) -> FrameClassifier:
    """Build and prepare a frame classifier; unknown names / bad params raise ValueError."""
    try:
        classifier = VAD_BACKENDS.create(backend, params)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    classifier.prepare(int(sample_rate))
    return classifier
