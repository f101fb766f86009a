"""The one small interface every TTS backend implements."""
from __future__ import annotations

import abc
import dataclasses
from typing import Optional

import numpy as np


class TTSError(RuntimeError):
    """Synthesis failed for this text; the node reports it and serves the next one."""


class TTSNotConfigured(TTSError):
    """The backend cannot run here (binary or model missing); raised from ``load()``."""


@dataclasses.dataclass
class Speech:
    audio: np.ndarray   # float32 mono
    sample_rate: int


class TTSBackend(abc.ABC):
    """Text (one sentence) -> speech, with an optional per-turn dialect hint."""

    name = 'base'

    def load(self) -> None:
        """Check binaries / load models.  Raise TTSNotConfigured."""

    def close(self) -> None:
        """Free models."""

    @abc.abstractmethod
    def synthesize(self, text: str, dialect: Optional[str] = None) -> Speech:
        """Synthesise one sentence.  Raise TTSError for text it cannot speak."""
