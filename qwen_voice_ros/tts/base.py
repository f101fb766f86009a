"""The one small interface every TTS backend implements."""
from __future__ import annotations

import abc
import dataclasses
from typing import Optional, Tuple

import numpy as np


class TTSError(RuntimeError):
    """Synthesis failed for this text; the node reports it and serves the next one."""


class TTSNotConfigured(TTSError):
    """The backend cannot run here (binary or model missing); raised from ``load()``."""


@dataclasses.dataclass
class Speech:
    """Synthesised audio: float32 mono in [-1, 1] at ``sample_rate``."""

    audio: np.ndarray   # float32 mono
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.audio) / float(self.sample_rate) if self.sample_rate else 0.0


class TTSBackend(abc.ABC):
    """
    Text (one sentence) -> speech, with an optional per-turn dialect hint.

    A backend declares its parameters in ``PARAMS`` (core.params.Param) and takes them as
    keyword arguments; ``dialects`` lists the dialect labels it can speak (None: any, it
    handles them itself).  ``set_profile`` gives it the voice to imitate (a
    :class:`~qwen_voice_ros.tts.profiles.VoiceProfile`, or None for its default voice).
    """

    name = 'base'
    PARAMS: Tuple = ()
    # Dialect labels this backend speaks; None = every label (e.g. espeak picks a voice).
    dialects: Optional[Tuple[str, ...]] = None

    def load(self) -> None:
        """Check binaries / load models.  Raise TTSNotConfigured."""

    def close(self) -> None:
        """Free models."""

    def speaks(self, dialect: Optional[str]) -> bool:
        """Whether this backend can speak a turn of ``dialect`` (None/unknown: Mandarin)."""
        if self.dialects is None or not dialect or dialect == 'unknown':
            return True
        return dialect in self.dialects

    def set_profile(self, profile) -> str:
        """Use ``profile``'s voice from now on (None: default); return a one-line summary."""
        return 'profile ignored by %s' % self.name

    @abc.abstractmethod
    def synthesize(self, text: str, dialect: Optional[str] = None) -> Speech:
        """Synthesise one sentence.  Raise TTSError for text it cannot speak."""
