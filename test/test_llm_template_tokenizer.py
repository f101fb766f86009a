"""Qwen3 chat template vs transformers' apply_chat_template; tokenizer; incremental decode."""
from __future__ import annotations

import pytest

from qwen_voice_ros.llm import chat_template
from qwen_voice_ros.llm.chat_template import render_chat, split_thinking, strip_thinking

CONVERSATIONS = [
    [{'role': 'user', 'content': '你好'}],
    [{'role': 'system', 'content': '你是机器人。'}, {'role': 'user', 'content': '你好'}],
    [{'role': 'system', 'content': '你是机器人。'}, {'role': 'user', 'content': '你好'},
     {'role': 'assistant', 'content': '<think>\n想一想\n</think>\n\n你好！'},
     {'role': 'user', 'content': '今天天气怎么样？'}],
    [{'role': 'user', 'content': '1+1?'}, {'role': 'assistant', 'content': '2'},
     {'role': 'user', 'content': '再加一'},
     {'role': 'assistant', 'content': '<think>\nreasoning\n</think>\n\n3'}],
    [{'role': 'user', 'content': 'a'}, {'role': 'assistant', 'content': 'b'},
     {'role': 'system', 'content': 'late system'}, {'role': 'user', 'content': 'c'}],
]


def test_non_thinking_prompt_hand_checked():
    text = render_chat([{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': '你好'}],
                       enable_thinking=False)
    assert text == ('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n'
                    '<|im_start|>assistant\n<think>\n\n</think>\n\n')
    thinking = render_chat([{'role': 'user', 'content': '你好'}], enable_thinking=True)
    assert thinking == '<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n'
    history = render_chat(CONVERSATIONS[2], enable_thinking=False)
    # Reasoning of earlier turns is dropped from the history, as Qwen3 was trained.
    assert '想一想' not in history and '<|im_start|>assistant\n你好！<|im_end|>' in history


@pytest.mark.parametrize('messages', CONVERSATIONS)
@pytest.mark.parametrize('enable_thinking', [False, True])
@pytest.mark.parametrize('add_generation_prompt', [True, False])
def test_render_equals_transformers_jinja(messages, enable_thinking, add_generation_prompt):
    transformers = pytest.importorskip('transformers')
    pytest.importorskip('jinja2')
    from qwen_voice_ros.llm import tiny_models
    hf_dir = tiny_models.build_tiny_hf_model(None, arch='qwen3')
    tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    expected = tok.apply_chat_template(messages, tokenize=False,
                                       add_generation_prompt=add_generation_prompt,
                                       enable_thinking=enable_thinking,
                                       chat_template=chat_template.QWEN3_JINJA_TEMPLATE)
    assert render_chat(messages, add_generation_prompt=add_generation_prompt,
                       enable_thinking=enable_thinking) == expected


def test_chatml_flavor_and_bad_roles():
    assert render_chat([{'role': 'user', 'content': 'hi'}], flavor='chatml') == \
        '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n'
    with pytest.raises(ValueError):
        render_chat([{'role': 'robot', 'content': 'x'}])
    with pytest.raises(ValueError):
        render_chat([])
    assert chat_template.flavor_for_model_type('qwen3') == 'qwen3'
    assert chat_template.flavor_for_model_type('qwen2') == 'chatml'


def test_think_helpers():
    assert split_thinking('<think>\nA\n</think>\n\nB') == ('A', 'B')
    assert split_thinking('B') == ('', 'B')
    assert strip_thinking('<think>\n\n</think>\n\n你好') == '你好'
    assert strip_thinking('<think>还在想') == ''
    assert strip_thinking('你好') == '你好'


@pytest.fixture(scope='module')
def tokenizer():
    pytest.importorskip('tokenizers')
    pytest.importorskip('transformers')
    from qwen_voice_ros.llm import tiny_models
    from qwen_voice_ros.llm.tokenizer import QwenTokenizer
    return QwenTokenizer(tiny_models.build_tiny_hf_model(None, arch='qwen3'))


def test_special_tokens_are_single_ids(tokenizer):
    ids = tokenizer.encode('<|im_start|>user\n你好<|im_end|>\n<think>\n\n</think>\n\n')
    assert ids[0] == tokenizer.im_start_id
    assert tokenizer.im_end_id in ids
    assert tokenizer.think_open_id in ids and tokenizer.think_close_id in ids
    assert set(tokenizer.stop_ids()) == {tokenizer.im_end_id, tokenizer.endoftext_id}
    text = tokenizer.decode(ids, skip_special_tokens=True)
    # <think> is an added, not special, token: kept for the think filter downstream.
    assert '<|im_start|>' not in text and '<think>' in text


def test_incremental_decoder_never_splits_cjk(tokenizer):
    from qwen_voice_ros.llm.tokenizer import IncrementalDecoder
    text = '机器人正在充电，电量百分之八十。Hello 世界！龘靐齉'  # rare chars: byte pieces
    ids = tokenizer.encode(text)
    assert len(ids) > len(text) // 2
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert ''.join(pieces) == text
    assert all('\ufffd' not in p for p in pieces)
    # At least one rare character spans several byte-level tokens: a delta was held back.
    assert '' in pieces[:-1]
