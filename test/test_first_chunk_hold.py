"""FirstChunkHold: the llm's decode waits for the first chunk's audio, never without a tts."""
import threading
import time

from qwen_voice_ros.dialogue.first_chunk import FirstChunkHold


def test_no_hold_before_a_tts_was_seen():
    hold = FirstChunkHold(1.0)
    hold.arm('t1')
    assert hold.wait('t1', threading.Event()) == 0.0
    assert hold.values()['first_chunk_hold_timeouts'] == 0


def test_released_by_the_turns_first_tts_audio():
    hold = FirstChunkHold(5.0)
    hold.on_tts_audio('t0')  # the graph has a tts
    hold.arm('t1')
    threading.Timer(0.1, hold.on_tts_audio, args=('t1',)).start()
    start = time.monotonic()
    waited = hold.wait('t1', threading.Event())
    assert 0.05 <= waited < 2.0 and time.monotonic() - start < 2.0
    assert hold.values()['first_chunk_holds'] == 1
    assert hold.wait('t1', threading.Event()) == 0.0  # once per turn


def test_other_turns_audio_does_not_release_and_the_hold_times_out():
    hold = FirstChunkHold(0.2)
    hold.on_tts_audio('t0')
    hold.arm('t1')
    threading.Timer(0.05, hold.on_tts_audio, args=('t0',)).start()
    waited = hold.wait('t1', threading.Event())
    assert waited >= 0.2
    assert hold.values()['first_chunk_hold_timeouts'] == 1


def test_cancel_ends_the_hold_at_once():
    hold = FirstChunkHold(5.0)
    hold.on_tts_audio('t0')
    hold.arm('t1')
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    assert hold.wait('t1', cancel) < 1.0
    assert hold.values()['first_chunk_hold_timeouts'] == 0


def test_off_and_rename():
    off = FirstChunkHold(0.0)
    off.on_tts_audio('t0')
    off.arm('t1')
    assert off.wait('t1', threading.Event()) == 0.0
    hold = FirstChunkHold(5.0)
    hold.on_tts_audio('t0')
    hold.arm('old')
    hold.rename('old', 'new')
    hold.on_tts_audio('new')
    assert hold.wait('new', threading.Event()) < 1.0
    assert hold.values()['first_chunk_holds'] == 1
