"""Speech recognition backend interface: 16 kHz float32 mono in, text out."""
from __future__ import annotations

import abc
from typing import Optional

import numpy as np


class ASRNotConfigured(RuntimeError):
    """The backend lacks what it needs to run (model directory, package); says what to set."""


def make_t2s():
    """Return an OpenCC traditional->simplified converter, or None without opencc."""
    try:
        import opencc
    except ImportError:
        return None
    for config in ('t2s', 't2s.json'):  # the config name differs between opencc packages
        try:
            return opencc.OpenCC(config)
        except Exception:
            continue
    return None


class ASRBackend(abc.ABC):
    """
    One recogniser.  ``load()`` once, ``transcribe()`` per utterance, ``close()`` at the end.

    Subclasses list their parameters in ``PARAMS`` (core.params) and take them as keyword
    arguments; the hearing node declares them as ``<backend>.<param>``.
    """

    name = 'asr'
    sample_rate = 16000
    PARAMS = ()
    _t2s = None

    def load(self) -> None:
        """Load the model; raise ASRNotConfigured with a clear message when it cannot."""

    @abc.abstractmethod
    def transcribe(self, audio: np.ndarray, prompt: Optional[str] = None) -> str:
        """Return the text of one utterance (float32 mono at ``sample_rate``); '' if none."""

    def normalize(self, text: str) -> str:
        """Strip and convert to simplified characters (when OpenCC is loaded)."""
        text = (text or '').strip()
        if self._t2s is not None and text:
            text = self._t2s.convert(text)
        return text

    def close(self) -> None:
        """Free the model."""
