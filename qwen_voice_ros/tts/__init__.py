"""Text to speech backends behind :class:`~qwen_voice_ros.tts.base.TTSBackend`."""
from __future__ import annotations

from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError, TTSNotConfigured

BACKENDS = ('espeak',)


def create_tts(backend: str, **params) -> TTSBackend:
    """Pick a TTS backend by parameter; heavy imports happen inside the backend."""
    if backend == 'espeak':
        from qwen_voice_ros.tts.espeak import EspeakTTS
        return EspeakTTS(**params)
    if not backend or backend == 'none':
        raise TTSNotConfigured('no tts backend configured (set parameter backend: %s)'
                               % ' | '.join(BACKENDS))
    raise TTSNotConfigured('unknown tts backend %r (available: %s)'
                           % (backend, ', '.join(BACKENDS)))


__all__ = ['BACKENDS', 'Speech', 'TTSBackend', 'TTSError', 'TTSNotConfigured', 'create_tts']
