"""asr capability (no rclpy imports): recogniser backends behind :class:`ASRBackend`."""
from __future__ import annotations

from qwen_voice_ros.asr.base import ASRBackend, ASRNotConfigured

__all__ = ['ASRBackend', 'ASRNotConfigured', 'create_asr', 'BACKENDS']

BACKENDS = ('faster_whisper',)


def create_asr(backend: str, **params) -> ASRBackend:
    """Build (not load) a backend by name; unknown names raise ASRNotConfigured."""
    if backend == 'faster_whisper':
        from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR
        return FasterWhisperASR(**params)
    raise ASRNotConfigured('unknown ASR backend %r (available: %s)'
                           % (backend, ', '.join(BACKENDS)))
