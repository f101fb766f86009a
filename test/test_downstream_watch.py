"""
Every reply's turn ends in a stated outcome even if tts or playback dies (issue 8).

On a fake clock: :class:`DownstreamWatch` (run by the llm node) ends a turn with ``error``
"playback did not report" when its audio is overdue and playback said nothing (the
playback process was killed mid-turn), or "tts did not report" when its sentences were
never voiced (tts killed); :meth:`PlaybackQueue.drop_stale` gives a turn whose first chunk
arrives after a newer turn its one ``cancelled`` outcome.
"""
from __future__ import annotations

import pytest

from qwen_voice_ros.dialogue import CANCELLED, ERROR, PlaybackQueue
from qwen_voice_ros.dialogue.downstream import PLAYBACK_REASON as REASON
from qwen_voice_ros.dialogue.downstream import TTS_REASON, DownstreamWatch


@pytest.fixture
def watch(clock):
    w = DownstreamWatch(clock, margin_s=2.0)
    w.on_playback_start('earlier')  # the graph has a playback stage
    return w


def test_playback_killed_mid_turn_ends_the_turn_with_an_error(clock, watch):
    watch.on_tts_audio('t1', 999.5, 0, 1.0)
    watch.on_tts_audio('t1', 999.5, 0, 1.5)      # queued behind the first: due at +2.5 s
    watch.on_playback_start('t1')
    clock.advance(1.0)
    watch.on_playback('t1', final=False)      # then the process dies: nothing more
    clock.advance(3.4)                        # 1.5 s left + 2.0 s margin not yet passed
    assert watch.poll() == []
    clock.advance(0.2)
    [outcome] = watch.poll()
    assert outcome.kind == ERROR and outcome.event_stage == 'error'
    assert outcome.turn_id == 't1' and outcome.turn_stamp == 999.5
    assert outcome.detail == {'stage': 'playback', 'reason': REASON,
                              'unreported_chunks': 1, 'chunks': 2}
    assert REASON in outcome.error
    assert watch.poll() == [] and watch.values()['playback_unreported'] == 1
    assert watch.values()['tts_unreported'] == 0
    watch.on_playback('t1', final=True)       # a late report does not reopen it
    watch.on_tts_audio('t1', 999.5, 0, 1.0)
    clock.advance(10)
    assert watch.poll() == [] and watch.watched == 0


def test_dead_before_the_first_chunk_started(clock, watch):
    watch.on_tts_audio('t1', None, 0, 0.5)
    clock.advance(2.4)
    assert watch.poll() == []
    clock.advance(0.2)
    assert [o.turn_id for o in watch.poll()] == ['t1']


def test_progress_moves_the_deadline(clock, watch):
    """A slow but living playback is not reported: each start/played moves the estimate."""
    for _ in range(3):
        watch.on_tts_audio('t1', None, 0, 1.0)
    clock.advance(4.0)                        # started late (busy with an earlier turn)
    watch.on_playback_start('t1')             # 3 s of audio left from now
    clock.advance(4.9)
    assert watch.poll() == []
    watch.on_playback('t1', final=False)
    watch.on_playback_start('t1')
    clock.advance(3.9)
    assert watch.poll() == []
    clock.advance(0.2)
    [outcome] = watch.poll()
    assert outcome.detail['unreported_chunks'] == 2


@pytest.mark.parametrize('end', ['final', 'cancelled', 'error'])
def test_a_stated_outcome_ends_the_watch(clock, watch, end):
    watch.on_tts_audio('t1', None, 0, 1.0)
    watch.on_tts_audio('t1', None, 0, 1.0)
    if end == 'final':
        watch.on_playback('t1', final=False)
        watch.on_playback('t1', final=True)
    else:
        watch.on_outcome('t1')                # cancelled/error from any stage
    clock.advance(60)
    assert watch.poll() == [] and watch.watched == 0


def test_all_chunks_played_without_final_is_not_a_playback_fault(clock, watch):
    """No audio outstanding: playback reported all it got (the tts owns the rest)."""
    watch.on_tts_audio('t1', None, 0, 1.0)
    watch.on_playback_start('t1')
    clock.advance(1.0)
    watch.on_playback('t1', final=False)
    clock.advance(60)
    assert watch.poll() == []


def test_without_a_playback_stage_nothing_is_owed(clock):
    watch = DownstreamWatch(clock, margin_s=2.0)
    watch.on_tts_audio('t1', None, 0, 1.0)
    clock.advance(60)
    assert watch.poll() == []                 # no playback event ever: not armed
    watch.on_playback('other', final=True)    # now a playback stage is in the graph
    assert [o.turn_id for o in watch.poll()] == ['t1']


def test_margin_zero_turns_the_watch_off(clock):
    watch = DownstreamWatch(clock, margin_s=0.0)
    watch.on_playback_start('x')
    watch.on_tts_audio('t1', None, 0, 1.0)
    clock.advance(60)
    assert watch.poll() == [] and watch.watched == 0


def test_tts_killed_before_voicing_ends_the_turn_with_an_error(clock):
    watch = DownstreamWatch(clock, margin_s=2.0, tts_wait_s=6.0)
    watch.on_tts_audio('earlier', None, 0, 1.0)   # the graph has a tts stage
    watch.on_outcome('earlier')
    watch.on_sentence('t1', 999.0, 0)
    clock.advance(1.0)
    watch.on_sentence('t1', 999.0, 1)
    clock.advance(3.0)
    watch.on_tts_audio('t1', 999.0, 0, 2.0)       # sentence 0 voiced (progress)
    watch.on_tts_audio('t1', 999.0, 0, 1.0)       # a second piece of the same sentence
    watch.on_playback_start('t1')
    clock.advance(3.0)
    watch.on_playback('t1', final=False)
    watch.on_playback('t1', final=False)          # all audio so far played; then tts dies
    clock.advance(2.9)
    assert watch.poll() == []
    clock.advance(0.2)
    [outcome] = watch.poll()
    assert outcome.kind == ERROR and TTS_REASON in outcome.error
    assert outcome.detail == {'stage': 'tts', 'reason': TTS_REASON,
                              'unvoiced_sentences': 1, 'sentences': 2}
    assert watch.values()['tts_unreported'] == 1 and watch.watched == 0


def test_tts_check_waits_for_a_tts_stage(clock):
    watch = DownstreamWatch(clock, margin_s=2.0, tts_wait_s=6.0)
    watch.on_sentence('t1', None, 0)
    clock.advance(60)
    assert watch.poll() == []                     # no tts in the graph (yet)
    watch.on_tts_audio('other', None, 0, 1.0)
    assert [o.detail['stage'] for o in watch.poll()] == ['tts']


def test_bounded(clock):
    watch = DownstreamWatch(clock, margin_s=2.0, max_turns=4)
    watch.on_playback_start('x')
    for i in range(10):
        watch.on_tts_audio('t%d' % i, None, 0, 1.0)
        watch.on_outcome('old%d' % i)
    assert watch.watched == 4 and watch.values()['watch_dropped'] == 6
    assert len(watch._ended) <= 16
    clock.advance(60)
    assert [o.turn_id for o in watch.poll()] == ['t6', 't7', 't8', 't9']
    assert watch.watched == 0


def test_rename_follows_the_turn(clock, watch):
    watch.on_tts_audio('local-1', None, 0, 1.0)
    watch.rename('local-1', 'prod-1')
    clock.advance(60)
    assert [o.turn_id for o in watch.poll()] == ['prod-1']


# ---- playback side: a turn stale on arrival is cancelled once ------------------------------
def test_chunk_of_a_superseded_turn_arriving_late_is_cancelled_once(clock):
    q = PlaybackQueue(clock)
    q.note_stamp('a', clock())
    q.on_new_turn('a', clock())
    clock.advance(0.5)
    assert q.on_new_turn('b', clock()).outcomes == []   # 'a' had no audio here yet
    chunk, [outcome] = q.push('a', 'a0', 0.5)           # its first chunk comes late
    assert chunk is None and outcome.kind == CANCELLED
    assert outcome.detail['superseded_by'] == 'b'
    assert outcome.detail['reason'] == 'stale on arrival' and outcome.turn_stamp == 1000.0
    assert q.drop_stale('a') is None                    # once per turn
    assert q.push('a', 'a1', 0.5) == (None, [])
    assert q.values()['dropped_stale'] == 3 and q.values()['stale_turns'] == 1
