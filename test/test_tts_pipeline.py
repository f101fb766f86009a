"""The tts stage without ROS: streaming order, cancel/supersede, chunking, fallback, bad text."""
import threading

import numpy as np
import pytest

from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError
from qwen_voice_ros.tts.pipeline import Job, TTSPipeline


class FakeTTS(TTSBackend):
    """Records what it was asked; fails on text containing ``fail_on``; can block."""

    def __init__(self, name='fake', fail_on=None, dialects=None, gate=None):
        self.name, self.fail_on, self.dialects, self.gate = name, fail_on, dialects, gate
        self.calls = []

    def synthesize(self, text, dialect=None):
        self.calls.append((text, dialect))
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail_on and self.fail_on in text:
            raise TTSError('%s cannot say %r' % (self.name, text))
        return Speech(np.full(160 * len(text), 0.1, np.float32), 16000)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(primary, fallback=None, **kw):
    audio, errors = [], []
    pipe = TTSPipeline(primary, fallback, audio.append,
                       lambda job, msg, fb: errors.append((job.turn_id, msg, fb)),
                       clock=Clock(), **kw)
    return pipe, audio, errors


def drain(pipe):
    while pipe.run_once(timeout=0):
        pass


def test_sentences_are_spoken_in_order_with_normalised_text():
    tts = FakeTTS()
    pipe, audio, errors = make(tts)
    pipe.submit(Job('t1', 1000.0, '今天是2024年3月5日。', 0))
    pipe.submit(Job('t1', 1000.0, '气温25℃。', 1))
    drain(pipe)
    assert [p.job.seq for p in audio] == [0, 1]
    assert tts.calls[0][0] == '今天是二零二四年三月五日。'
    assert tts.calls[1][0] == '气温二十五摄氏度。'
    assert errors == []


def test_first_sentence_is_published_before_the_next_is_synthesised():
    gate = threading.Event()
    tts = FakeTTS(gate=gate)
    pipe, audio, _ = make(tts)
    gate.set()
    pipe.submit(Job('t1', 1000.0, '第一句。', 0))
    assert pipe.run_once(timeout=0)
    assert len(audio) == 1          # out before the second sentence even arrived
    gate.clear()
    pipe.submit(Job('t1', 1000.0, '第二句。', 1))
    worker = threading.Thread(target=pipe.run_once, kwargs={'timeout': 1.0})
    worker.start()
    assert len(audio) == 1
    gate.set()
    worker.join(2)
    assert len(audio) == 2


def test_cancelled_turn_is_dropped_pending_and_mid_sentence():
    tts = FakeTTS()
    pipe, audio, _ = make(tts, max_chars=20)
    pipe.submit(Job('t1', 1000.0, '这句会被取消。', 0))
    pipe.cancel('t1')
    drain(pipe)
    assert audio == [] and tts.calls == []
    # cancelled between the pieces of a long sentence: no later piece is published
    long = '很长的一句话，' * 10
    pipe.on_audio = lambda piece: (audio.append(piece), pipe.cancel('t2'))
    pipe.submit(Job('t2', 1001.0, long, 0))
    drain(pipe)
    assert len(audio) == 1 and pipe.counters['dropped'] >= 1


def test_newer_turn_supersedes_pending_sentences():
    tts = FakeTTS()
    pipe, audio, _ = make(tts)
    pipe.submit(Job('old', 1000.0, '旧的回答。', 0))
    pipe.observe_turn('new', 1005.0)
    pipe.submit(Job('new', 1005.0, '新的回答。', 0))
    drain(pipe)
    assert [p.job.turn_id for p in audio] == ['new']


def test_long_text_is_chunked():
    tts = FakeTTS()
    pipe, audio, _ = make(tts, max_chars=30)
    pipe.submit(Job('t1', 1000.0, '这是一个非常长的句子，用来测试分段。' * 12, 0))
    drain(pipe)
    assert len(audio) > 4
    assert all(len(p.text) <= 30 for p in audio)
    assert {p.parts for p in audio} == {len(audio)}


@pytest.mark.parametrize('text', ['。。。！？', '😀👍', '   ', '……'])
def test_nothing_to_speak_is_an_error_and_the_next_sentence_works(text):
    tts = FakeTTS()
    pipe, audio, errors = make(tts)
    pipe.submit(Job('t1', 1000.0, text, 0))
    pipe.submit(Job('t1', 1000.0, '好的。', 1))
    drain(pipe)
    assert len(errors) == 1 and 'nothing to speak' in errors[0][1]
    assert [p.text for p in audio] == ['好的。']
    assert tts.calls == [('好的。', None)]


def test_failing_primary_reports_and_the_fallback_speaks():
    primary, fallback = FakeTTS('kokoro', fail_on='坏'), FakeTTS('espeak')
    pipe, audio, errors = make(primary, fallback)
    pipe.submit(Job('t1', 1000.0, '这句是坏的。', 0))
    drain(pipe)
    pipe.submit(Job('t2', 1001.0, '这句是好的。', 0))
    drain(pipe)
    assert errors[0][0] == 't1' and 'kokoro failed' in errors[0][1] and errors[0][2] == 'espeak'
    assert [(p.job.turn_id, p.backend) for p in audio] == [('t1', 'espeak'), ('t2', 'kokoro')]


def test_failing_without_fallback_is_an_error_not_a_crash():
    pipe, audio, errors = make(FakeTTS('kokoro', fail_on='坏'))
    pipe.submit(Job('t1', 1000.0, '坏。', 0))
    pipe.submit(Job('t1', 1000.0, '好。', 1))
    drain(pipe)
    assert len(errors) == 1 and errors[0][2] is None and len(audio) == 1


def test_backend_bug_is_reported():
    class Broken(FakeTTS):
        def synthesize(self, text, dialect=None):
            raise ZeroDivisionError('bug')
    pipe, audio, errors = make(Broken())
    pipe.submit(Job('t1', 1000.0, '你好。', 0))
    drain(pipe)
    assert 'ZeroDivisionError' in errors[0][1]


def test_cantonese_goes_to_the_fallback():
    primary = FakeTTS('kokoro', dialects=('mandarin',))
    fallback = FakeTTS('espeak')
    pipe, audio, errors = make(primary, fallback)
    pipe.set_dialect('t1', 'cantonese')
    pipe.submit(Job('t1', 1000.0, '你食咗饭未呀？', 0))
    drain(pipe)
    pipe.submit(Job('t2', 1001.0, '你吃饭了吗？', 0))
    drain(pipe)
    assert [p.backend for p in audio] == ['espeak', 'kokoro']
    assert fallback.calls == [('你食咗饭未呀？', 'cantonese')]
    assert errors == []


def test_stop_ends_the_loop():
    pipe, _, _ = make(FakeTTS())
    pipe.stop()
    worker = threading.Thread(target=pipe.loop)
    worker.start()
    worker.join(2)
    assert not worker.is_alive()


def test_events_drive_dialect_supersede_and_cancel_with_abort():
    class Aborting(FakeTTS):
        aborted = 0

        def abort(self):
            self.aborted += 1
            return 1
    tts = Aborting('cosyvoice', dialects=('mandarin',))
    fallback = FakeTTS('espeak')
    pipe, audio, errors = make(tts, fallback)
    pipe.on_event({'stage': 'dialect', 'turn_id': 't1', 'dialect': {'label': 'cantonese'}})
    pipe.submit(Job('t1', 990.0, '你好。', 0))
    drain(pipe)
    assert audio[-1].backend == 'espeak'
    # cancel while t2 is being synthesised: the backend's request is aborted, nothing published
    pipe.on_audio = audio.append
    tts.synthesize = lambda text, dialect=None: (pipe.on_event(
        {'stage': 'cancelled', 'turn_id': 't2'}), FakeTTS.synthesize(tts, text, dialect))[1]
    pipe.submit(Job('t2', 991.0, '这句被打断。', 0))
    drain(pipe)
    assert tts.aborted == 1 and audio[-1].job.turn_id == 't1' and errors == []
    pipe.on_event({'stage': 'transcript', 'turn_id': 't3', 'stamp': 995.0,
                   'turn_stamp': 995.0})
    pipe.submit(Job('t2b', 993.0, '旧的。', 0))
    drain(pipe)
    assert audio[-1].job.turn_id == 't1'
