"""The first TTS chunk is capped at ``first_max_chars`` even without punctuation."""
from __future__ import annotations

from qwen_voice_ros.llm.sentences import SentenceSplitter, split_stream


def _chunks(text, per_char=True, **kwargs):
    kwargs.setdefault('first_min_chars', 4)
    return list(split_stream(list(text) if per_char else [text], **kwargs))


def test_no_cap_by_default_keeps_the_old_behaviour():
    assert _chunks('我是小安很高兴见到你今天天气不错。') == ['我是小安很高兴见到你今天天气不错。']
    assert _chunks('你好，我是小安。') == ['你好，我是小安。']


def test_first_chunk_without_punctuation_is_cut_near_a_phrase_boundary():
    for per_char in (True, False):
        assert _chunks('我是小安很高兴见到你今天天气不错。', per_char, first_max_chars=8) == \
            ['我是小安', '很高兴见到你今天天气不错。']
        assert _chunks('今天的天气非常好适合出去玩。', per_char, first_max_chars=8) == \
            ['今天的天气非常好', '适合出去玩。']
    # No good boundary: cut at the cap, the rest follows unchanged.
    chunks = _chunks('北京市海淀区中关村大街一号楼。', first_max_chars=6)
    assert chunks == ['北京市海淀区', '中关村大街一号楼。']
    # Only the first chunk is capped.
    chunks = _chunks('好的我这就帮你把灯打开然后关上窗户再拉上窗帘。', first_max_chars=6)
    assert chunks[0] == '好的我这就帮' and len(chunks) == 2 and ''.join(chunks) == \
        '好的我这就帮你把灯打开然后关上窗户再拉上窗帘。'


def test_punctuation_within_the_cap_still_wins():
    assert _chunks('今天的天气非常好。真的', first_max_chars=8) == ['今天的天气非常好。', '真的']
    assert _chunks('你好，我是小安很高兴见到你。', first_max_chars=8) == ['你好，我是小安', '很高兴见到你。']
    assert _chunks('好的，马上办。', first_max_chars=8) == ['好的，马上办。']
    assert _chunks('你好', first_max_chars=8) == ['你好']


def test_latin_text_is_cut_at_a_space_never_inside_a_word():
    chunks = _chunks('Hello there my friend how are you today.', first_max_chars=8)
    assert chunks == ['Hello there my friend', 'how are you today.']
    splitter = SentenceSplitter(first_min_chars=4, first_max_chars=2)
    assert splitter.feed('Supercalifragilistic') == []  # still inside the word
    assert splitter.feed(' is') == ['Supercalifragilistic'] and splitter.flush() == ['is']
