"""
System-prompt warm-up: prefill the fixed prompt prefix once, when the llm node configures.

Every prompt starts with the same persona and example turns (~190 tokens with the default
persona); the onnx engine keeps the keys/values of the last prompt and reuses the longest
shared prefix (llm/onnx_engine.py).  From the second request on, only the new tail is
prefilled; the first request of a process prefilled all of it (~1.4 CPU s on the 0.5B INT8
pack, docs/latency.md: turn 1 was 1.4 s slower than the others).  :func:`warm_prefix` runs
that first prefill at configure, on a prompt shaped like a real first turn (persona,
examples, the default reply instruction, a short user text), and generates one token, so the
first user turn reuses everything up to its own instruction.  Plain Python, no rclpy.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict

PROBE_TEXT = '你好'


def warm_prefix(backend, memory, options, probe_text: str = PROBE_TEXT) -> Dict[str, Any]:
    """
    Prefill ``memory``'s fixed prefix on ``backend``; return what it cost.

    ``memory`` is the node's ``ConversationMemory`` before any turn (it is not changed);
    ``options`` the node's ``GenerationOptions`` (one new token is asked for).  Returns
    ``warm_up_s`` and, for a backend with a local engine, ``warm_up_prompt_tokens``.
    """
    messages = memory.messages() + [{'role': 'system', 'content': memory.instruction()},
                                    {'role': 'user', 'content': probe_text}]
    started = time.monotonic()
    for _delta in backend.stream_chat(messages, dataclasses.replace(options, max_new_tokens=1)):
        pass
    out: Dict[str, Any] = {'warm_up_s': round(time.monotonic() - started, 3)}
    stats = getattr(getattr(backend, 'engine', None), 'last_stats', None) or {}
    if 'prompt_tokens' in stats:
        out['warm_up_prompt_tokens'] = stats['prompt_tokens']
    return out
