"""Speech recognition backend interface: 16 kHz float32 mono in, text out."""
from __future__ import annotations

import abc

import numpy as np


class ASRNotConfigured(RuntimeError):
    """The backend lacks what it needs to run (model directory, package); says what to set."""


class ASRBackend(abc.ABC):
    """One recogniser.  ``load()`` once, ``transcribe()`` per utterance, ``close()`` at the end."""

    name = 'asr'
    sample_rate = 16000

    def load(self) -> None:
        """Load the model; raise ASRNotConfigured with a clear message when it cannot."""

    @abc.abstractmethod
    def transcribe(self, audio: np.ndarray) -> str:
        """Return the text of one utterance (float32 mono at ``sample_rate``); '' if none."""

    def close(self) -> None:
        """Free the model."""
