"""The dialogue core driven with a fake clock, in milliseconds, without ROS."""
from __future__ import annotations

import pytest

from qwen_voice_ros.core.events import TurnIdFactory
from qwen_voice_ros.core.turns import TextTurnMatcher, TurnTracker
from qwen_voice_ros.dialogue import (CANCELLED, COMPLETED, ERROR, HalfDuplexGate, PlaybackQueue,
                                     ReplySession, TurnLifecycle)
from qwen_voice_ros.llm.memory import ConversationMemory


@pytest.fixture
def session(clock):
    return ReplySession(clock, ConversationMemory('persona'), dialect_wait_s=0.3)


def _outcomes(step, kind=None):
    return [o for o in step.outcomes if kind is None or o.kind == kind]


def _run(session, turn, sentences):
    """Worker side: begin, publish sentences; returns the seqs published."""
    assert session.begin(turn) is not None
    seqs = []
    for s in sentences:
        session.add_sentence(turn, s, seqs.append)
    return seqs


# ---- reply session ---------------------------------------------------------------------------
def test_dialect_wait_starts_on_the_label(session, clock):
    assert session.on_transcript('a', clock(), '你好').outcomes == []
    assert session.next_turn(timeout=0) is None          # waits for its dialect
    session.on_dialect('a', 'sichuanese')
    turn = session.next_turn(timeout=0)
    assert turn.turn_id == 'a' and turn.dialect == 'sichuanese'
    messages = session.begin(turn)
    assert messages[-2]['role'] == 'system' and '四川话' in messages[-2]['content']
    assert messages[-1] == {'role': 'user', 'content': '你好'}


def test_dialect_wait_runs_out_and_the_turn_starts_without_a_label(session, clock):
    session.on_transcript('a', clock(), '你好')
    clock.advance(0.299)
    session.poll()
    assert session.next_turn(timeout=0) is None
    clock.advance(0.002)
    session.poll()
    turn = session.next_turn(timeout=0)
    assert turn.turn_id == 'a' and turn.dialect is None


def test_dialect_before_transcript_is_kept(session, clock):
    session.on_dialect('a', 'cantonese')
    session.on_transcript('a', clock(), '食咗饭未')
    assert session.next_turn(timeout=0).dialect == 'cantonese'


def test_completed_turn_has_one_outcome(session, clock):
    session.on_transcript('a', clock(), '你好')
    session.on_dialect('a', 'mandarin')
    turn = session.next_turn(timeout=0)
    assert _run(session, turn, ['你好。', '我是机器人。']) == [0, 1]
    outcome = session.complete(turn, '你好。我是机器人。')
    assert outcome.kind == COMPLETED and outcome.detail['sentences'] == 2
    assert session.complete(turn, 'again') is None and session.fail(turn, 'x') is None
    assert session.memory.turns[-1] == {'role': 'assistant', 'content': '你好。我是机器人。'}
    # A newer turn after completion: no second outcome for the finished turn.
    clock.advance(4)
    assert _outcomes(session.on_transcript('b', clock(), '再见')) == []


def test_barge_in_cancels_generation_at_once_and_memory_keeps_only_the_spoken_part(
        session, clock):
    session.on_transcript('a', clock(), '讲个故事')
    session.on_dialect('a', 'mandarin')
    turn = session.next_turn(timeout=0)
    _run(session, turn, ['从前有座山。', '山里有座庙。', '庙里有个和尚。'])
    session.on_playback('a', 0)                       # only the first sentence was spoken
    clock.advance(0.010)
    step = session.on_transcript('b', clock(), '停一下')
    [cancel] = _outcomes(step)
    assert cancel.kind == CANCELLED and cancel.turn_id == 'a'
    assert cancel.detail['superseded_by'] == 'b' and cancel.text == '从前有座山。'
    assert turn.cancel.is_set()                       # the backend stops at its next step
    assert not session.add_sentence(turn, '和尚说。', lambda seq: pytest.fail('published'))
    assert session.complete(turn, 'whole story') is None  # the worker finishing is silent
    assert [t['content'] for t in session.memory.turns] == ['讲个故事', '从前有座山。']
    clock.advance(0.050)                              # the backend returned 50 ms later
    session.stopped(turn)
    assert session.values()['stop_latency_max_ms'] == 50


def test_cancel_without_playback_keeps_what_was_published(session, clock):
    session.on_transcript('a', clock(), '讲个故事')
    session.on_dialect('a', None)
    turn = session.next_turn(timeout=0)
    _run(session, turn, ['从前有座山。', '山里有座庙。'])
    [cancel] = _outcomes(session.on_user_turn('b', clock() + 0.001))
    assert cancel.text == '从前有座山。山里有座庙。'


def test_supersede_a_waiting_turn_and_a_late_older_transcript(session, clock):
    session.on_transcript('a', clock(), '第一句')
    clock.advance(0.1)
    [cancel] = _outcomes(session.on_transcript('b', clock(), '第二句'))
    assert (cancel.turn_id, cancel.detail['state'], cancel.text) == ('a', 'waiting', '')
    # An older turn whose transcript arrives late never starts: cancelled by the newer one.
    [late] = _outcomes(session.on_transcript('z', clock() - 5, '更早的话'))
    assert late.kind == CANCELLED and late.detail['superseded_by'] == 'b'
    session.on_dialect('b', 'mandarin')
    assert session.next_turn(timeout=0).turn_id == 'b'
    assert session.memory.turns == []


def test_reply_cut_during_playback_is_revised_to_what_was_spoken(session, clock):
    session.on_transcript('a', clock(), '讲个故事')
    session.on_dialect('a', None)
    turn = session.next_turn(timeout=0)
    _run(session, turn, ['一。', '二。', '三。'])
    session.complete(turn, '一。二。三。')
    session.on_playback('a', 0)
    clock.advance(1)
    assert _outcomes(session.on_transcript('b', clock(), '停')) == []
    assert session.memory.turns[-1]['content'] == '一。'
    assert session.counters['revised_after_playback'] == 1


def test_errors_end_the_turn_once(session, clock):
    [empty] = _outcomes(session.on_transcript('e', clock(), '   '))
    assert empty.kind == ERROR and 'empty transcript' in empty.error
    session.on_transcript('a', clock(), '你好')
    session.on_dialect('a', None)
    turn = session.next_turn(timeout=0)
    _run(session, turn, ['半句。'])
    failed = session.fail(turn, 'HTTP 500')
    assert failed.kind == ERROR and failed.error == 'HTTP 500' and failed.text == '半句。'
    assert session.fail(turn, 'again') is None
    # Nothing left open, and the next turn works.
    assert session.lifecycle.open_turns == []
    session.on_transcript('b', clock() + 1, '再来')
    session.on_dialect('b', None)
    assert session.next_turn(timeout=0).turn_id == 'b'


def test_late_event_renames_the_turn(session, clock):
    session.on_transcript('t-local-0001', clock(), '你好')
    session.rename('t-local-0001', 't-dialect-0001')
    session.on_dialect('t-dialect-0001', 'mandarin')
    turn = session.next_turn(timeout=0)
    assert turn.turn_id == 't-dialect-0001'
    assert session.lifecycle.open_turns == ['t-dialect-0001']


def test_closed_session_releases_the_worker_and_stops_generation(session, clock):
    session.on_transcript('a', clock(), '你好')
    session.on_dialect('a', None)
    turn = session.next_turn(timeout=0)
    session.begin(turn)
    session.close()
    assert turn.cancel.is_set() and session.closed
    assert session.next_turn(timeout=5) is None


# ---- lifecycle -----------------------------------------------------------------------------
def test_lifecycle_one_outcome_per_turn_and_bounded():
    life = TurnLifecycle('tts', max_open=2)
    assert life.start('a', 1.0) == [] and life.start('b', 2.0) == []
    [evicted] = life.start('c', 3.0)
    assert evicted.turn_id == 'a' and evicted.kind == ERROR and 'evicted' in str(evicted.detail)
    assert life.finish('a', COMPLETED) is None
    done = life.finish('b', CANCELLED, superseded_by='c')
    assert done.event_stage == 'cancelled' and done.turn_stamp == 2.0
    assert life.finish('b', ERROR) is None
    assert life.counts == {COMPLETED: 0, CANCELLED: 1, ERROR: 1}
    with pytest.raises(ValueError):
        life.finish('c', 'maybe')


# ---- playback queue ------------------------------------------------------------------------
def test_playback_supersede_cuts_the_playing_chunk_and_drops_the_rest(clock):
    q = PlaybackQueue(clock)
    q.on_new_turn('a', clock())
    for i in range(3):
        q.push('a', 'a%d' % i, 0.5)
    chunk = q.next()
    assert chunk.turn_id == 'a' and chunk.seq == 0 and q.next() is None
    clock.advance(0.2)
    cut = q.on_new_turn('b', clock())
    assert cut.stop_sink
    [outcome] = cut.outcomes
    assert outcome.kind == CANCELLED and outcome.detail['superseded_by'] == 'b'
    assert outcome.detail['dropped_chunks'] == 2 and outcome.detail['cut_off']
    assert q.done(chunk, completed=False) is None
    assert q.push('a', 'a3', 0.5) == (None, [])       # stale: dropped on arrival
    b0, _ = q.push('b', 'b0', 0.5)
    assert q.next() == b0
    assert q.expect('b', 1) is None                   # not played yet
    done = q.done(b0, completed=True, played_s=0.5)
    assert done.kind == COMPLETED and done.detail['played_chunks'] == 1
    assert q.values()['dropped_stale'] == 3 and q.values()['interrupted'] == 1


def test_playback_speech_start_stops_at_once(clock):
    q = PlaybackQueue(clock)
    q.push('a', 'a0', 1.0)
    q.push('a', 'a1', 1.0)
    q.next()
    cut = q.on_speech_start()
    assert cut.stop_sink and [o.turn_id for o in cut.outcomes] == ['a']
    assert cut.outcomes[0].detail['reason'] == 'user started speaking'
    assert q.pending == 0 and q.on_speech_start().outcomes == []


def test_playback_queue_is_bounded_drop_oldest(clock):
    q = PlaybackQueue(clock, max_pending=2)
    for i in range(3):
        q.push('a', i, 0.1)
    assert q.pending == 2 and q.values()['dropped_overflow'] == 1
    assert q.next().audio == 1


def test_foreign_stamp_cannot_make_later_turns_stale(clock):
    q = PlaybackQueue(clock)
    q.on_new_turn('evil', 1e12)
    clock.advance(0.5)
    q.on_new_turn('b', clock())
    assert not q.is_stale('b') and q.is_stale('evil')
    tracker = TurnTracker(clock)
    tracker.observe('x', float('inf'))
    clock.advance(0.01)
    assert tracker.observe('y', clock())


# ---- half-duplex gate ----------------------------------------------------------------------
def _ev(stage, **kw):
    kw.update(stage=stage, node='/playback')
    return kw


def test_gate_mutes_while_speaking_and_releases_after_the_tail(clock):
    gate = HalfDuplexGate(mode='mute', tail_s=0.3, clock=clock)
    assert not gate.muted()
    gate.on_playback_event(_ev('playback_start', duration_s=1.0))
    clock.advance(0.5)
    assert gate.muted()
    clock.advance(0.5)
    gate.on_playback_event(_ev('playback', seq=0))
    clock.advance(0.299)
    assert gate.muted()
    clock.advance(0.002)
    assert not gate.muted()


def test_gate_raise_mode_and_missed_done_event(clock):
    gate = HalfDuplexGate(mode='raise', tail_s=0.2, raised_threshold=0.9)
    gate.on_speaking(True, now=0.0, duration_s=0.5)
    assert gate.vad_threshold(0.1, 0.5) == 0.9 and not gate.muted(0.1)
    # No done event (lost): the chunk's own length ends it, then the tail.
    assert gate.vad_threshold(0.69, 0.5) == 0.9
    assert gate.vad_threshold(0.71, 0.5) == 0.5


def test_gate_cancel_releases_and_off_mode(clock):
    gate = HalfDuplexGate(mode='mute', tail_s=0.1, clock=clock)
    gate.on_playback_event(_ev('playback_start', duration_s=5.0))
    clock.advance(1)
    gate.on_playback_event(_ev('cancelled'))
    clock.advance(0.11)
    assert not gate.muted()
    off = HalfDuplexGate(mode='off')
    off.on_speaking(True, now=0.0)
    assert not off.muted(0.1) and off.vad_threshold(0.1, 0.4) == 0.4
    with pytest.raises(ValueError):
        HalfDuplexGate(mode='sometimes')


# ---- text turns under load -----------------------------------------------------------------
def _event(turn_id, text, stamp=1000.0):
    return {'stage': 'transcript', 'turn_id': turn_id, 'text': text, 'stamp': stamp,
            'node': '/dialect'}


def test_grace_grows_once_the_stage_is_announced_so_a_slow_announcer_splits_nothing(clock):
    m = TextTurnMatcher('transcript', clock, grace_s=0.5, announced_grace_s=3.0,
                        id_factory=TurnIdFactory('x'))
    assert m.grace_s == 0.5
    assert m.on_text('一') == []
    assert m.on_event(_event('t-d-1', '一'))[0].turn_id == 't-d-1'
    assert m.grace_s == 3.5  # announced_grace_s on top of grace_s: the order is kept
    m.on_text('二')
    clock.advance(2.5)                                 # the announcer is slow under load
    assert m.poll() == []
    [late] = m.on_event(_event('t-d-2', '二'))
    assert late.turn_id == 't-d-2' and late.replaces == ''


def test_announced_grace_keeps_the_first_announcer_ahead(clock):
    # dialect (0.25 s) and llm (0.5 s) both saw a foreign announcement: the dialect node
    # must still mint first, so the llm takes its id instead of minting a second one.
    first = TextTurnMatcher('transcript', clock, grace_s=0.25, announced_grace_s=3.0,
                            id_factory=TurnIdFactory('d'))
    second = TextTurnMatcher('transcript', clock, grace_s=0.5, announced_grace_s=3.0,
                             id_factory=TurnIdFactory('l'))
    for m in (first, second):
        m.on_event(_event('t-evil-1', '别理我'))
        m.on_text('帮我拿水')
    clock.advance(3.3)
    [minted] = first.poll()
    assert second.poll() == []
    [taken] = second.on_event(_event(minted.turn_id, '帮我拿水'))
    assert taken.turn_id == minted.turn_id and taken.replaces == ''


def test_late_event_after_minting_reattributes_instead_of_a_second_turn(clock):
    m = TextTurnMatcher('transcript', clock, grace_s=0.25, announced_grace_s=0.25,
                        id_factory=TurnIdFactory('x'))
    m.on_text('你好')
    clock.advance(0.3)
    [minted] = m.poll()
    assert minted.event is None
    clock.advance(1.0)
    [again] = m.on_event(_event('t-d-1', '你好'))
    assert again.turn_id == 't-d-1' and again.replaces == minted.turn_id
    assert m.reattributed == 1
