"""Speculative ASR during the VAD hangover: fake clock, energy VAD, fake recogniser (no rclpy)."""
from __future__ import annotations

import numpy as np

from qwen_voice_ros.asr.speculative import SpeculativeASR
from qwen_voice_ros.audio.vad import EnergyClassifier, UtteranceSegmenter

RATE = 16000
CHUNK = 320  # 20 ms messages


def _tone(seconds, freq=220.0, amp=0.3):
    t = np.arange(int(seconds * RATE)) / float(RATE)
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _silence(seconds, seed=0):
    rng = np.random.default_rng(seed)
    return (0.0005 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _replay(stream, spec, clock, asr_cost_s=0.5, run_jobs=True):
    """
    Feed 20 ms chunks as a live stream would arrive; return what happened.

    A started job runs "on a worker" that finishes ``asr_cost_s`` later on the fake clock
    (the job is run at once and its finish time moved); a job made stale before it ran is
    skipped, as the hearing node's worker does.
    """
    seg = UtteranceSegmenter(EnergyClassifier(), sample_rate=RATE, min_speech_ms=100,
                             min_silence_ms=1000, pad_ms=200)
    calls = []
    pending = []   # (due time, job)
    closed = []    # (close time, utterance, claimed job)

    def transcribe(audio):
        calls.append(len(audio))
        return 'text of %d samples' % len(audio)

    for i in range(0, len(stream), CHUNK):
        clock.t += CHUNK / float(RATE)
        for due, job in list(pending):
            if clock.t >= due:
                pending.remove((due, job))
                if run_jobs and job.run(transcribe, clock=lambda: due):
                    spec.finished(job)  # the hearing node's worker: announce if still open
        for utt in seg.feed(stream[i:i + CHUNK]):
            closed.append((clock.t, utt, spec.claim(utt)))
        job = spec.update(seg)
        if job is not None:
            pending.append((clock.t + asr_cost_s, job))
    return seg, calls, closed


def test_speculative_result_is_used_and_ready_before_the_hangover_ends():
    clock = FakeClock()
    spec = SpeculativeASR(after_silence_s=0.3, clock=clock)
    stream = np.concatenate([_silence(0.5), _tone(1.5), _silence(1.5, 1)])
    _, calls, closed = _replay(stream, spec, clock, asr_cost_s=0.5)
    assert len(closed) == 1
    close_t, utt, job = closed[0]
    assert job is not None and not job.stale and job.done
    # Exactly the audio the utterance carries was transcribed, once.
    assert np.array_equal(job.audio, utt.audio) and calls == [len(utt.audio)]
    assert job.text == 'text of %d samples' % len(utt.audio)
    # Started ~0.3 s after the end of speech, done before the 1 s hangover closed the turn:
    # the transcript is there when the utterance closes instead of 0.5 s later.
    speech_end_t = 1000.0 + utt.speech_end_s
    assert 0.25 <= job.created_s - speech_end_t <= 0.4
    assert job.finished_s <= close_t
    assert spec.started == 1 and spec.used == 1 and spec.discarded == 0


def test_speech_resuming_after_a_comma_pause_discards_and_keeps_one_utterance():
    clock = FakeClock()
    spec = SpeculativeASR(after_silence_s=0.3, clock=clock)
    # "request part one, <0.6 s pause> part two" then the real end.
    stream = np.concatenate([_silence(0.5), _tone(1.0), _silence(0.6, 2), _tone(0.8, 330.0),
                             _silence(1.5, 3)])
    _, calls, closed = _replay(stream, spec, clock, asr_cost_s=0.5)
    assert len(closed) == 1  # one utterance for the comma-paused request
    _, utt, job = closed[0]
    assert spec.started == 2 and spec.discarded == 1 and spec.used == 1
    assert job is not None and np.array_equal(job.audio, utt.audio)
    # The first job went stale before its worker got to it: it never ran Whisper.
    assert calls == [len(utt.audio)]
    assert utt.duration_s > 2.2  # both parts are in it


def test_a_running_stale_job_is_not_used():
    clock = FakeClock()
    spec = SpeculativeASR(after_silence_s=0.3, clock=clock)
    seg = UtteranceSegmenter(EnergyClassifier(), sample_rate=RATE, min_speech_ms=100,
                             min_silence_ms=1000, pad_ms=200)
    jobs = []
    stream = np.concatenate([_silence(0.5), _tone(1.0), _silence(0.5, 4), _tone(0.5),
                             _silence(1.5, 5)])
    closed = []
    for i in range(0, len(stream), CHUNK):
        clock.t += 0.02
        for utt in seg.feed(stream[i:i + CHUNK]):
            closed.append((utt, spec.claim(utt)))
        job = spec.update(seg)
        if job is not None:
            jobs.append(job)
            job.run(lambda audio: 'partial')  # ran at once, before speech resumed
    assert len(closed) == 1 and len(jobs) == 2
    assert jobs[0].stale and jobs[0].text == 'partial'
    assert closed[0][1] is jobs[1] and not jobs[1].stale
    assert len(jobs[0].audio) < len(closed[0][0].audio)


def test_disabled_and_reset():
    clock = FakeClock()
    spec = SpeculativeASR(after_silence_s=0.0, clock=clock)
    stream = np.concatenate([_silence(0.5), _tone(1.0), _silence(1.5, 6)])
    _, calls, closed = _replay(stream, spec, clock)
    assert len(closed) == 1 and closed[0][2] is None and calls == [] and spec.started == 0

    spec = SpeculativeASR(after_silence_s=0.3, clock=clock)
    seg = UtteranceSegmenter(EnergyClassifier(), sample_rate=RATE, min_speech_ms=100)
    seg.feed(np.concatenate([_silence(0.5), _tone(1.0), _silence(0.5, 7)]))
    job = spec.update(seg)
    assert job is not None and spec.update(seg) is None  # same speech end: no second job
    spec.reset()
    assert job.stale and spec.job is None
    assert not job.run(lambda audio: 'x') and job.done and job.text is None


class Calls:
    """What the hearing node would publish: announced and withdrawn speculative turns."""

    def __init__(self):
        self.log = []
        self.turn = 0

    def announce(self, job):
        self.log.append(('announce', job.turn_id, job.text))

    def withdraw(self, job, reason):
        self.log.append(('withdraw', job.turn_id, reason))


def _announcing(clock, calls, after_silence_s=0.3):
    spec = SpeculativeASR(after_silence_s=after_silence_s, clock=clock, announce=True,
                          on_announce=calls.announce, on_withdraw=calls.withdraw)
    real_update = spec.update

    def update(seg):
        job = real_update(seg)
        if job is not None:
            calls.turn += 1
            job.turn_id = 't%d' % calls.turn
        return job
    spec.update = update
    return spec


def test_announced_before_the_close_and_confirmed_by_it():
    clock, calls = FakeClock(), Calls()
    spec = _announcing(clock, calls)
    stream = np.concatenate([_silence(0.5), _tone(1.5), _silence(1.5, 1)])
    _, _, closed = _replay(stream, spec, clock, asr_cost_s=0.2)
    close_t, utt, job = closed[0]
    assert calls.log == [('announce', 't1', 'text of %d samples' % len(utt.audio))]
    assert job.announced and not job.withdrawn and job.finished_s < close_t
    assert (spec.announced, spec.confirmed, spec.withdrawn) == (1, 1, 0)


def test_speech_resuming_in_the_hangover_withdraws_the_announced_turn():
    clock, calls = FakeClock(), Calls()
    spec = _announcing(clock, calls)
    # A 0.6 s pause: the job starts at 0.3 s, is announced at 0.5 s, speech resumes at 0.6 s.
    stream = np.concatenate([_silence(0.5), _tone(1.0), _silence(0.6, 1), _tone(1.0, 330.0),
                             _silence(1.5, 2)])
    _, _, closed = _replay(stream, spec, clock, asr_cost_s=0.2)
    assert len(closed) == 1
    _, utt, job = closed[0]
    assert [c[:2] for c in calls.log] == [('announce', 't1'), ('withdraw', 't1'),
                                          ('announce', 't2')]
    assert 'speech resumed' in calls.log[1][2]
    # The closed utterance is the whole request, confirmed under the second turn.
    assert job is not None and job.turn_id == 't2' and np.array_equal(job.audio, utt.audio)
    assert (spec.announced, spec.confirmed, spec.withdrawn) == (2, 1, 1)


def test_a_job_finishing_after_the_close_is_not_announced():
    clock, calls = FakeClock(), Calls()
    spec = _announcing(clock, calls)
    stream = np.concatenate([_silence(0.5), _tone(1.5), _silence(1.5, 1)])
    _, _, closed = _replay(stream, spec, clock, asr_cost_s=0.9)  # done after the 1 s close
    _, _, job = closed[0]
    assert job is not None and not job.announced and calls.log == []


def test_claim_of_different_audio_withdraws_and_reset_can_stay_quiet():
    clock, calls = FakeClock(), Calls()
    spec = _announcing(clock, calls)
    seg = UtteranceSegmenter(EnergyClassifier(), sample_rate=RATE, min_speech_ms=100,
                             min_silence_ms=1000, pad_ms=200)
    stream = np.concatenate([_silence(0.5), _tone(1.5), _silence(0.4, 1)])
    job = None
    for i in range(0, len(stream), CHUNK):
        seg.feed(stream[i:i + CHUNK])
        job = spec.update(seg) or job
    assert job.run(lambda audio: '你好') and spec.finished(job)
    forced = seg.flush()
    forced.audio = np.zeros(10, dtype=np.float32)  # not the audio the job transcribed
    assert spec.claim(forced) is None
    assert calls.log[-1][0] == 'withdraw' and 'differs' in calls.log[-1][2]
    # A stream restart that its caller reports itself: no second outcome.
    for i in range(0, len(stream), CHUNK):
        seg.feed(stream[i:i + CHUNK])
        job = spec.update(seg) or job
    assert job.run(lambda audio: '你好') and spec.finished(job)
    spec.reset(withdraw=False)
    assert [c[0] for c in calls.log] == ['announce', 'withdraw', 'announce']


def test_not_announced_when_off():
    clock, calls = FakeClock(), Calls()
    spec = SpeculativeASR(after_silence_s=0.3, clock=clock, announce=False,
                          on_announce=calls.announce, on_withdraw=calls.withdraw)
    stream = np.concatenate([_silence(0.5), _tone(1.5), _silence(1.5, 1)])
    _, _, closed = _replay(stream, spec, clock, asr_cost_s=0.2)
    assert closed[0][2] is not None and calls.log == [] and spec.announced == 0
