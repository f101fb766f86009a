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
                if run_jobs:
                    job.run(transcribe, clock=lambda: due)
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
