"""
LLM reply: chat backends behind :class:`~qwen_voice_ros.llm.base.ChatBackend`.

``create_backend`` picks one by parameter; each backend imports what it needs when built,
so ``import qwen_voice_ros.llm`` works without onnxruntime or a server.
"""
from __future__ import annotations

from qwen_voice_ros.llm.base import (ChatBackend, GenerationOptions, LLMError, LLMNotConfigured,
                                     complete)

BACKENDS = ('onnx', 'openai_http')


def create_backend(backend: str, **params) -> ChatBackend:
    """Build a backend by name; raise LLMNotConfigured with a clear message otherwise."""
    if backend == 'openai_http':
        from qwen_voice_ros.llm.http_backend import OpenAIHTTPBackend
        keys = ('base_url', 'model', 'api_key', 'stream', 'connect_timeout_s', 'check_on_load')
        return OpenAIHTTPBackend(**{k: v for k, v in params.items() if k in keys})
    if backend == 'onnx':
        model_dir = params.get('model_dir', '')
        if not model_dir:
            raise LLMNotConfigured('onnx backend needs model_dir (a qwen-voice-export output '
                                   'directory); see docs/llm_export.md')
        try:
            from qwen_voice_ros.llm.onnx_engine import OnnxChatBackend
        except ImportError as exc:
            raise LLMNotConfigured('onnx backend unavailable: %s' % exc) from None
        keys = ('model_dir', 'provider', 'trt_cache_dir', 'trt_fp16', 'max_context',
                'intra_op_threads')
        return OnnxChatBackend(**{k: v for k, v in params.items() if k in keys and v != ''})
    if not backend or backend == 'none':
        raise LLMNotConfigured('no llm backend configured (set parameter backend: %s)'
                               % ' | '.join(BACKENDS))
    raise LLMNotConfigured('unknown llm backend %r (available: %s)'
                           % (backend, ', '.join(BACKENDS)))


__all__ = ['BACKENDS', 'ChatBackend', 'GenerationOptions', 'LLMError', 'LLMNotConfigured',
           'complete', 'create_backend']
