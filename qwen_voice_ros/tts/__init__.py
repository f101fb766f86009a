"""
Text to speech backends behind :class:`~qwen_voice_ros.tts.base.TTSBackend`.

``REGISTRY`` maps backend names to classes (imported only when used, so onnxruntime and
misaki load only with Kokoro).  Each class declares its ``PARAMS``; the tts node declares them
as ``<backend>.<param>``.
"""
from __future__ import annotations

from qwen_voice_ros.core.params import ParamError, Registry
from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError, TTSNotConfigured

REGISTRY = Registry('tts', {
    'kokoro': 'qwen_voice_ros.tts.kokoro:KokoroTTS',
    'espeak': 'qwen_voice_ros.tts.espeak:EspeakTTS',
    'cosyvoice': 'qwen_voice_ros.tts.http_cosyvoice:CosyVoiceTTS',
    'gpt_sovits': 'qwen_voice_ros.tts.http_gpt_sovits:GPTSoVITSTTS',
    'fish_speech': 'qwen_voice_ros.tts.http_fish:FishSpeechTTS',
})
BACKENDS = REGISTRY.names


def create_tts(backend: str, **params) -> TTSBackend:
    """Build a TTS backend by name from its parameters (unprefixed; defaults fill the rest)."""
    if not backend or backend == 'none':
        raise TTSNotConfigured('no tts backend configured (set parameter backend: %s)'
                               % ' | '.join(REGISTRY.names))
    try:
        return REGISTRY.create(backend, params)
    except KeyError as exc:
        raise TTSNotConfigured(str(exc.args[0])) from None
    except ParamError as exc:
        raise TTSNotConfigured('%s: %s' % (backend, exc)) from None


__all__ = ['BACKENDS', 'REGISTRY', 'Speech', 'TTSBackend', 'TTSError', 'TTSNotConfigured',
           'create_tts']
