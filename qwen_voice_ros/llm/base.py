"""
The one small interface every chat backend implements.

Backends: ``onnx`` (Qwen3 decoder graphs on ONNX Runtime, the default) and ``openai_http``
(any OpenAI-compatible chat-completions server: vLLM, SGLang, llama.cpp server).  The LLM
node and the tools only talk to :class:`ChatBackend`; a backend imports its heavy
dependencies inside ``load()`` so the package imports on a robot lacking optional extras.
"""
from __future__ import annotations

import abc
import dataclasses
import threading
from typing import Dict, Iterator, List, Optional


class LLMError(RuntimeError):
    """A backend could not produce a reply (unreachable, timed out, bad model, ...)."""


class LLMNotConfigured(LLMError):
    """The backend's model or server is not configured; raised from ``load()``."""


@dataclasses.dataclass
class GenerationOptions:
    """Sampling and stopping options shared by every backend."""

    max_new_tokens: int = 256
    temperature: float = 0.0          # 0 -> greedy
    top_p: float = 1.0
    top_k: int = 0                    # 0 -> off
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: Optional[int] = None
    enable_thinking: bool = False
    timeout_s: float = 30.0           # whole-reply deadline (HTTP backends); engine: wall clock
    # Reply-quality guards (engine backend): the reply may not repeat any token n-gram of the
    # last user message (transformers' encoder_no_repeat_ngram_size applied to the request;
    # 0 -> off), and it ends after this many sentences (0 -> no limit).
    request_ngram_block: int = 2
    max_sentences: int = 2

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


Message = Dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class ChatBackend(abc.ABC):
    """Generate an assistant reply for a chat, streamed as text deltas."""

    name = 'base'

    def load(self) -> None:
        """Load models / check the server.  Raise LLMNotConfigured or LLMError."""

    def close(self) -> None:
        """Free models and connections (lifecycle cleanup)."""

    @abc.abstractmethod
    def stream_chat(self, messages: List[Message], options: GenerationOptions,
                    cancel: Optional[threading.Event] = None) -> Iterator[str]:
        """
        Yield text deltas of the reply, raw (a ``<think>`` block may be included).

        Stops promptly (within one decode step / one network read) once ``cancel`` is set.
        """

    def count_tokens(self, text: str) -> int:
        """Approximate token count for the memory budget (backends with a tokenizer override)."""
        # CJK text is roughly one token per 1-1.5 characters for Qwen's BPE; err on the high side.
        return max(1, len(text))


def complete(backend: ChatBackend, messages: List[Message],
             options: Optional[GenerationOptions] = None) -> str:
    """Return the whole reply (convenience over ``stream_chat``)."""
    return ''.join(backend.stream_chat(messages, options or GenerationOptions()))
