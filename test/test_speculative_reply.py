"""Speculative reply in the dialogue core: fake clock, no ROS (docs/latency.md).

A turn opened from a speculative transcript generates at once, but publishes nothing (no
sentence, no outcome) until the confirming transcript of the same id; withdrawn, superseded
or never confirmed, it ends with one ``cancelled`` outcome and the memory is as before it.
"""
from __future__ import annotations

import pytest

from qwen_voice_ros.dialogue import CANCELLED, COMPLETED, ERROR, ReplySession
from qwen_voice_ros.llm.memory import ConversationMemory


@pytest.fixture
def session(clock):
    return ReplySession(clock, ConversationMemory('persona'), dialect_wait_s=0.3,
                        confirm_timeout_s=10.0)


def _kinds(step):
    return [(o.turn_id, o.kind) for o in step.outcomes]


def _start(session, clock, turn_id='s', text='今天天气怎么样', dialect='mandarin'):
    """Open a speculative turn, give it its label, and let the worker begin it."""
    assert session.on_speculative(turn_id, clock(), text).outcomes == []
    session.on_dialect(turn_id, dialect)
    turn = session.next_turn(timeout=0)
    assert turn is not None and turn.turn_id == turn_id
    assert session.begin(turn) is not None
    return turn


def test_held_until_confirmed_then_published_in_order_with_its_outcome(session, clock):
    published = []
    turn = _start(session, clock)
    assert session.is_unconfirmed('s')
    for sentence in ('今天晴，', '适合出门。'):
        assert session.add_sentence(turn, sentence, lambda seq, s=sentence:
                                    published.append((seq, s)))
    assert session.complete(turn, '今天晴，适合出门。') is None   # held too
    assert published == [] and session.memory.turns[-1]['role'] == 'user'
    clock.advance(0.3)  # the hangover closes the utterance: the same id, the same text
    step = session.on_transcript('s', clock(), '今天天气怎么样')
    assert published == [(0, '今天晴，'), (1, '适合出门。')]
    assert _kinds(step) == [('s', COMPLETED)]
    detail = step.outcomes[0].detail
    assert detail['speculative'] is True and detail['confirm_wait_s'] == pytest.approx(0.3)
    assert detail['first_sentence_held_s'] == pytest.approx(0.3)
    assert session.memory.turns[-2:] == [{'role': 'user', 'content': '今天天气怎么样'},
                                         {'role': 'assistant', 'content': '今天晴，适合出门。'}]
    assert not session.is_unconfirmed('s')
    # The text arriving again (the matcher's copy of the same transcript) changes nothing.
    assert session.on_transcript('s', clock(), '今天天气怎么样').outcomes == []
    assert session.values()['speculative_confirmed'] == 1


def test_after_confirmation_sentences_go_out_at_once(session, clock):
    published = []
    turn = _start(session, clock)
    session.add_sentence(turn, '一', published.append)
    session.on_transcript('s', clock(), '今天天气怎么样')
    session.add_sentence(turn, '二', published.append)
    assert published == [0, 1]
    assert _kinds_of(session.complete(turn, '一二')) == ('s', COMPLETED)


def _kinds_of(outcome):
    return (outcome.turn_id, outcome.kind)


def test_withdrawn_turn_publishes_nothing_and_memory_goes_back(session, clock):
    session.memory.add_user('上一句')
    session.memory.commit_assistant('上一个回答。')
    before = session.memory.turns
    published = []
    turn = _start(session, clock, text='今天天气')
    session.add_sentence(turn, '今天', published.append)
    step = session.withdraw('s', '/hearing: speech resumed before the hangover ended')
    assert _kinds(step) == [('s', CANCELLED)]
    outcome = step.outcomes[0]
    assert outcome.detail['speculative'] is True and outcome.detail['state'] == 'running'
    assert 'speech resumed' in outcome.detail['reason']
    assert turn.cancel.is_set()
    # The worker notices late: nothing it adds or completes is published or remembered.
    assert not session.add_sentence(turn, '天气', published.append)
    assert session.complete(turn, '今天天气') is None
    assert published == [] and session.memory.turns == before
    # The whole utterance, a new turn, answers normally.
    session.on_transcript('n', clock(), '今天天气怎么样')
    session.on_dialect('n', 'mandarin')
    turn = session.next_turn(timeout=0)
    assert turn.turn_id == 'n'
    assert session.begin(turn)[-1] == {'role': 'user', 'content': '今天天气怎么样'}
    # A second withdraw, or one for a confirmed turn, does nothing.
    assert session.withdraw('s', 'again').outcomes == []
    assert session.withdraw('n', 'not speculative').outcomes == []


def test_a_newer_turn_cancels_an_unconfirmed_one_without_a_reply_in_memory(session, clock):
    before = session.memory.turns
    turn = _start(session, clock, text='今天天气')
    session.add_sentence(turn, '今天', lambda seq: pytest.fail('published unconfirmed'))
    step = session.on_transcript('n', clock() + 0.5, '今天天气怎么样')
    assert _kinds(step) == [('s', CANCELLED)]
    assert step.outcomes[0].detail['superseded_by'] == 'n'
    assert session.memory.turns == before


def test_unconfirmed_turn_waits_for_its_label_without_deadline_until_confirmed(session, clock):
    session.on_speculative('s', clock(), '你好')
    clock.advance(5.0)
    session.poll()
    assert session.next_turn(timeout=0) is None       # no label yet, still unconfirmed
    session.on_transcript('s', clock(), '你好')        # confirmed: the usual wait starts
    clock.advance(0.31)
    session.poll()
    turn = session.next_turn(timeout=0)
    assert turn.turn_id == 's' and turn.dialect is None


def test_label_before_the_speculative_transcript_is_kept(session, clock):
    session.on_dialect('s', 'sichuanese')
    session.on_speculative('s', clock(), '巴适得很')
    assert session.next_turn(timeout=0).dialect == 'sichuanese'


def test_never_confirmed_is_withdrawn_after_the_timeout(session, clock):
    before = session.memory.turns
    _start(session, clock)
    clock.advance(9.9)
    assert session.poll().outcomes == []
    clock.advance(0.2)
    step = session.poll()
    assert _kinds(step) == [('s', CANCELLED)]
    assert 'not confirmed within 10.0 s' in step.outcomes[0].detail['reason']
    assert session.memory.turns == before


def test_confirmed_with_other_text_is_cancelled_not_answered(session, clock):
    turn = _start(session, clock, text='今天天气')
    session.add_sentence(turn, '今天', lambda seq: pytest.fail('published unconfirmed'))
    step = session.on_transcript('s', clock(), '今天天气怎么样')
    assert _kinds(step) == [('s', CANCELLED)]
    assert 'differs' in step.outcomes[0].detail['reason']


def test_a_failure_before_confirmation_is_stated_after_it(session, clock):
    turn = _start(session, clock)
    assert session.fail(turn, 'reply failed: boom', '抱歉。') is None
    step = session.on_transcript('s', clock(), '今天天气怎么样')
    assert _kinds(step) == [('s', ERROR)]
    assert session.memory.turns[-1] == {'role': 'assistant', 'content': '抱歉。'}


def test_speculative_transcript_after_a_newer_turn_is_cancelled_at_once(session, clock):
    session.on_transcript('n', clock(), '新的')
    step = session.on_speculative('old', clock() - 5.0, '旧的')
    assert _kinds(step) == [('old', CANCELLED)]
    assert not session.is_unconfirmed('old')
