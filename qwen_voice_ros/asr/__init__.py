"""asr capability (no rclpy imports): recogniser backends behind :class:`ASRBackend`."""
from __future__ import annotations

from qwen_voice_ros.asr.base import ASRBackend, ASRNotConfigured
from qwen_voice_ros.core.params import ParamError, Registry

__all__ = ['ASRBackend', 'ASRNotConfigured', 'ASR_BACKENDS', 'BACKENDS', 'create_asr']

ASR_BACKENDS = Registry('asr', {
    'faster_whisper': 'qwen_voice_ros.asr.faster_whisper_backend:FasterWhisperASR',
    'sherpa_onnx': 'qwen_voice_ros.asr.sherpa_backend:SherpaOnnxASR',
})
BACKENDS = ASR_BACKENDS.names


def create_asr(backend: str, **params) -> ASRBackend:
    """Build (not load) a backend by name; unknown names / bad values raise ASRNotConfigured."""
    try:
        return ASR_BACKENDS.create(backend, params)
    except KeyError:
        raise ASRNotConfigured('unknown ASR backend %r (available: %s)'
                               % (backend, ', '.join(BACKENDS))) from None
    except ParamError as exc:
        raise ASRNotConfigured('ASR backend %s: %s' % (backend, exc)) from None
