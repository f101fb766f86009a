"""Sampler against transformers' logits processors; conversation memory."""
from __future__ import annotations

import numpy as np
import pytest

from qwen_voice_ros.llm.memory import ConversationMemory, dialect_instruction, \
    MANDARIN_INSTRUCTION
from qwen_voice_ros.llm.sampling import apply_repetition_penalty, Sampler


def test_greedy_and_repetition_penalty():
    logits = np.array([1.0, 3.0, -2.0, 2.9], dtype=np.float32)
    assert Sampler()(logits) == 1
    # Token 1 seen: 3.0 / 1.5 = 2.0 < 2.9, so token 3 wins; negative logits are multiplied.
    assert Sampler(repetition_penalty=1.5)(logits, [1, 2]) == 3
    out = apply_repetition_penalty(logits, [1, 2, 99], 2.0)
    np.testing.assert_allclose(out, [1.0, 1.5, -4.0, 2.9], rtol=1e-6)


def test_sampling_support_matches_transformers_filters():
    torch = pytest.importorskip('torch')
    transformers = pytest.importorskip('transformers')
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, size=300).astype(np.float32)
    settings = dict(temperature=0.7, top_k=40, top_p=0.8, min_p=0.1)
    procs = transformers.LogitsProcessorList([
        transformers.TemperatureLogitsWarper(settings['temperature']),
        transformers.TopKLogitsWarper(settings['top_k']),
        transformers.TopPLogitsWarper(settings['top_p']),
        transformers.MinPLogitsWarper(settings['min_p']),
    ])
    scores = procs(torch.zeros(1, 1, dtype=torch.long), torch.tensor(logits[None]))
    allowed = set(torch.nonzero(torch.isfinite(scores[0])).flatten().tolist())
    sampler = Sampler(seed=1, **settings)
    drawn = {sampler(logits) for _ in range(3000)}
    assert drawn <= allowed
    assert len(drawn) >= len(allowed) - 1  # nearly all allowed tokens get drawn
    assert len(allowed) > 2


def test_seed_reproducible_and_top_p_exact_on_large_vocab():
    logits = np.random.default_rng(3).normal(0, 1, size=151936).astype(np.float32)
    a = [Sampler(temperature=1.0, top_p=0.9, seed=5)(logits) for _ in range(3)]
    b = [Sampler(temperature=1.0, top_p=0.9, seed=5)(logits) for _ in range(3)]
    assert a == b
    with pytest.raises(ValueError):
        Sampler(top_p=0.0)


def test_dialect_instructions():
    # Mandarin replies name the user's dialect so its words are understood.
    assert dialect_instruction('mandarin', 'yue').endswith('普通话回答。')
    assert '粤语' in dialect_instruction('mandarin', 'yue')
    assert dialect_instruction('mandarin', None) == MANDARIN_INSTRUCTION
    assert '粤语' in dialect_instruction('dialect', 'yue')
    assert '四川话' in dialect_instruction('dialect', 'sichuanese')
    assert dialect_instruction('dialect', 'mandarin') == MANDARIN_INSTRUCTION
    assert dialect_instruction('dialect', None) == MANDARIN_INSTRUCTION
    with pytest.raises(ValueError):
        dialect_instruction('klingon', None)


def test_memory_budget_trims_oldest_turns_and_keeps_system():
    memory = ConversationMemory(persona='你是机器人。', reply_style='dialect', token_budget=300,
                                trim_ratio=1.0)
    memory.set_dialect('yue')
    for i in range(10):
        memory.add_user('问题%d：今天天气好吗' % i)
        memory.commit_assistant('回答%d：天气很好。' % i)
    memory.add_user('最后的问题')
    messages = memory.messages()
    assert messages[0]['role'] == 'system'
    assert messages[0] == {'role': 'system', 'content': '你是机器人。'}
    assert messages[-1] == {'role': 'user', 'content': '最后的问题'}
    assert messages[-2]['role'] == 'system' and '粤语' in messages[-2]['content']
    assert messages[2]['role'] == 'user'  # never starts with an orphan assistant reply
    assert '问题0' not in str(messages) and '问题9' in str(messages)
    total = sum(len(m['content']) + 5 for m in messages)
    assert total <= 300
    assert len(memory.messages(reserve_tokens=60)) < len(messages)


def test_interrupted_reply_enters_history_as_spoken():
    memory = ConversationMemory(token_budget=4096)
    memory.add_user('讲个故事')
    # Generated "从前有座山。山里有座庙。庙里有个老和尚。" but barge-in came after sentence two.
    memory.commit_assistant('<think>\n\n</think>\n\n从前有座山。山里有座庙。')
    memory.add_user('停')
    memory.commit_assistant('')  # interrupted before the first sentence: nothing recorded
    turns = memory.turns
    assert turns == [{'role': 'user', 'content': '讲个故事'},
                     {'role': 'assistant', 'content': '从前有座山。山里有座庙。'},
                     {'role': 'user', 'content': '停'}]


def test_ngram_blocker_bans_request_continuations():
    from qwen_voice_ros.llm.sampling import NgramBlocker
    blocker = NgramBlocker([5, 6, 7, 5, 8, 2], 2, exempt=[2])
    assert blocker.banned([]) == []
    assert blocker.banned([9, 5]) == [6, 8]
    assert blocker.banned([7]) == [5]
    assert blocker.banned([8]) == []        # 8 -> 2 is exempt (a stop token)
    assert NgramBlocker([5, 6, 7], 3).banned([5, 6]) == [7]
    assert NgramBlocker([5, 6], 1).banned([1]) == [5, 6]
    sampler = Sampler()                    # greedy: the best token unless banned
    logits = np.array([0.0, 3.0, 2.0, 1.0])
    assert sampler(logits) == 1 and sampler(logits, banned_ids=[1]) == 2
    assert sampler(logits, banned_ids=[0, 1, 2, 3]) == 1   # never bans everything
    hot = Sampler(temperature=1.0, seed=0)
    assert all(hot(logits, banned_ids=[1, 2]) in (0, 3) for _ in range(20))


def test_sentence_limit_cuts_after_n_sentences():
    from qwen_voice_ros.llm.sentences import SentenceLimit
    limit = SentenceLimit(2)
    kept = [limit.feed(d) for d in ['你好。', '今天“很', '好。”', '明天', '呢？']]
    assert kept == ['你好。', '今天“很', '好。”', '', ''] and limit.done
    limit = SentenceLimit(1)
    assert limit.feed('一！！二') == '一！！' and limit.done
    limit = SentenceLimit(0)
    assert limit.feed('一。二。三。') == '一。二。三。' and not limit.done


def test_echo_metric_and_sentence_count():
    from qwen_voice_ros.llm.reply_quality import count_sentences, echo_ratio, is_echo, \
        lcs_length, summarise
    assert lcs_length('abcde', 'ace') == 3 and lcs_length('', 'a') == 0
    assert is_echo('中不中？咱一块儿去逛街。', '中不中？咱一块儿去逛街。')
    assert echo_ratio('几点了。', '现在几点了？') == 1.0
    assert not is_echo('现在是下午三点十分，该喝水了。', '现在几点了？')
    assert abs(echo_ratio('一公里是一千米。', '一公里等于多少米？') - 4 / 7) < 1e-9
    assert not is_echo('', '你好') and echo_ratio('。', '你好') == 0.0
    assert count_sentences('好的。电视关了！') == 2 and count_sentences('好的') == 1
    assert count_sentences('') == 0 and count_sentences('一。。二？！三') == 3
    summary = summarise([{'reply': '几点了。', 'request': '现在几点了？'},
                         {'reply': '下午三点。', 'request': '现在几点了？'},
                         {'reply': '', 'request': '你好'}])
    assert summary['echo_count'] == 1 and summary['empty_rate'] == round(1 / 3, 4)
    assert summary['one_or_two_sentence_rate'] == round(2 / 3, 4)


def test_default_persona_brings_example_turns():
    from qwen_voice_ros.llm.memory import DEFAULT_EXAMPLES, DEFAULT_PERSONA
    memory = ConversationMemory(token_budget=4096)
    memory.add_user('现在几点了？')
    messages = memory.messages()
    assert messages[0]['role'] == 'system' and DEFAULT_PERSONA in messages[0]['content']
    shots = messages[1:1 + 2 * len(DEFAULT_EXAMPLES)]
    assert [m['role'] for m in shots] == ['user', 'assistant'] * len(DEFAULT_EXAMPLES)
    assert messages[-1] == {'role': 'user', 'content': '现在几点了？'}
    assert memory.turns == [{'role': 'user', 'content': '现在几点了？'}]  # not history
    custom = ConversationMemory(persona='你是机器人。')
    custom.add_user('你好')
    assert len(custom.messages()) == 3  # system, the turn's instruction, the user turn
    tight = ConversationMemory(token_budget=420, trim_ratio=1.0)  # examples count too
    for i in range(6):
        tight.add_user('问题%d' % i)
        tight.commit_assistant('回答%d' % i)
    tight.add_user('最后')
    kept = tight.messages()
    assert sum(len(m['content']) + 5 for m in kept) <= 420 and kept[-1]['content'] == '最后'
    assert '问题0' not in str(kept) and '问题5' in str(kept)
