"""System-prompt warm-up on the offline 0.5B INT8 pack: the first turn hits the prefix cache."""
from __future__ import annotations

import os

import pytest

from qwen_voice_ros.dialogue.warmup import warm_prefix
from qwen_voice_ros.llm.base import GenerationOptions
from qwen_voice_ros.llm.memory import DEFAULT_PERSONA, ConversationMemory

PACK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models',
                    'qwen2.5-coder-0.5b-int8')


@pytest.fixture(scope='module')
def backend():
    if not os.path.isfile(os.path.join(PACK, 'model.onnx')):
        pytest.skip('offline LLM pack not converted (scripts/setup-env)')
    from qwen_voice_ros.llm.onnx_engine import OnnxChatBackend
    chat = OnnxChatBackend(PACK, intra_op_threads=1)
    chat.load()
    yield chat
    chat.close()


def _first_turn(backend, memory):
    memory.set_dialect('sichuanese')
    memory.add_user('今天巴适得很，你想去哪里耍？')
    options = GenerationOptions(max_new_tokens=2, temperature=0.0)
    list(backend.stream_chat(memory.messages(), options))
    return dict(backend.engine.last_stats)


def test_first_turn_reuses_the_prefilled_system_prompt(backend):
    engine = backend.engine
    fresh = ConversationMemory(DEFAULT_PERSONA, 'mandarin', 1536,
                               count_tokens=backend.count_tokens)
    prefix = len(engine.encode_chat(fresh.messages(), add_generation_prompt=False))
    assert prefix > 100  # persona and example turns

    engine.reset()  # a process that just loaded the model
    cold = _first_turn(backend, ConversationMemory(DEFAULT_PERSONA, 'mandarin', 1536,
                                                   count_tokens=backend.count_tokens))
    assert cold['reused_tokens'] == 0

    engine.reset()
    memory = ConversationMemory(DEFAULT_PERSONA, 'mandarin', 1536,
                                count_tokens=backend.count_tokens)
    stats = warm_prefix(backend, memory, GenerationOptions(temperature=0.0))
    assert memory.turns == []                     # the warm-up is not a conversation turn
    assert stats['warm_up_prompt_tokens'] > prefix and stats['warm_up_s'] > 0
    warm = _first_turn(backend, memory)
    # Everything up to the first turn's own instruction came from the cache; only the
    # instruction (Sichuanese, not the probe's Mandarin one) and the user text are new.
    assert warm['reused_tokens'] >= prefix
    assert warm['prompt_tokens'] - warm['reused_tokens'] <= 60
