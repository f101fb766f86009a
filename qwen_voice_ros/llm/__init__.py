"""
LLM reply: chat backends behind :class:`~qwen_voice_ros.llm.base.ChatBackend`.

``REGISTRY`` (a :class:`~qwen_voice_ros.core.params.Registry`) names the backends; each
backend class declares its parameters in ``PARAMS`` and the llm node declares them as
``<backend>.<param>``.  A backend imports what it needs when built, so
``import qwen_voice_ros.llm`` works without onnxruntime or a server.
"""
from __future__ import annotations

from qwen_voice_ros.core.params import ParamError, Registry
from qwen_voice_ros.llm.base import (ChatBackend, GenerationOptions, LLMError, LLMNotConfigured,
                                     complete)

REGISTRY = Registry('llm', {
    'onnx': 'qwen_voice_ros.llm.onnx_engine:OnnxChatBackend',
    'openai_http': 'qwen_voice_ros.llm.http_backend:OpenAIHTTPBackend',
})
BACKENDS = REGISTRY.names


def create_backend(backend: str, **params) -> ChatBackend:
    """
    Build a backend by name from its parameters (unknown keys are ignored).

    Raises LLMNotConfigured with a clear message for an unknown backend, a missing or
    invalid parameter (checked against the backend's ``PARAMS``) or a missing dependency.
    """
    if not backend or backend == 'none':
        raise LLMNotConfigured('no llm backend configured (set parameter backend: %s)'
                               % ' | '.join(BACKENDS))
    try:
        declared = REGISTRY.params(backend)
    except KeyError as exc:
        raise LLMNotConfigured(str(exc.args[0])) from None
    except ImportError as exc:
        raise LLMNotConfigured('%s backend unavailable: %s' % (backend, exc)) from None
    names = {p.name for p in declared}
    values = {k: v for k, v in params.items() if k in names}
    try:
        return REGISTRY.create(backend, values)
    except ParamError as exc:
        raise LLMNotConfigured('%s backend: %s' % (backend, exc)) from None


__all__ = ['BACKENDS', 'REGISTRY', 'ChatBackend', 'GenerationOptions', 'LLMError',
           'LLMNotConfigured', 'complete', 'create_backend']
