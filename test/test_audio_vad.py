"""Energy VAD + UtteranceSegmenter on speech-like bursts: count and boundaries of utterances."""
from __future__ import annotations

import numpy as np
import pytest

from qwen_voice_ros.audio.vad import UtteranceSegmenter, create_classifier

RATE = 16000


def syllables(seconds, rng, gap_s=0.08, syllable_s=0.18, amp=0.3):
    """Voiced 'syllables' (harmonics of a wobbling pitch, enveloped) with short gaps."""
    out = []
    total = 0.0
    while total < seconds:
        n = int(syllable_s * RATE)
        t = np.arange(n) / RATE
        f0 = 140 + 40 * rng.random()
        voice = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
        env = np.sin(np.pi * np.arange(n) / n) ** 0.5
        out.append(amp * env * voice / 2.0)
        out.append(np.zeros(int(gap_s * RATE)))
        total += syllable_s + gap_s
    return np.concatenate(out)


def scene(parts, rng, noise_db=-60.0):
    """parts: list of ('speech'|'silence', seconds) -> audio, [(start_s, end_s) of speech]."""
    pieces, truth, t = [], [], 0.0
    for kind, seconds in parts:
        if kind == 'speech':
            seg = syllables(seconds, rng)
            truth.append((t, t + len(seg) / RATE))
        else:
            seg = np.zeros(int(seconds * RATE))
        pieces.append(seg)
        t += len(seg) / RATE
    audio = np.concatenate(pieces)
    audio = audio + rng.standard_normal(len(audio)) * 10 ** (noise_db / 20.0)
    return audio.astype(np.float32), truth


def segment(audio, chunk=512, **kwargs):
    seg = UtteranceSegmenter(create_classifier('energy', RATE), sample_rate=RATE, **kwargs)
    utts = []
    for i in range(0, len(audio), chunk):
        utts += seg.feed(audio[i:i + chunk])
    tail = seg.flush()
    return utts + ([tail] if tail is not None else [])


@pytest.mark.parametrize('chunk', [160, 512, 4000])
def test_bursts_separated_by_silence_give_one_utterance_each(chunk):
    rng = np.random.default_rng(7)
    audio, truth = scene([('silence', 0.8), ('speech', 1.2), ('silence', 1.0),
                          ('speech', 0.6), ('silence', 1.2), ('speech', 2.0),
                          ('silence', 1.0)], rng)
    utts = segment(audio, chunk=chunk)
    assert len(utts) == len(truth)  # syllable gaps (80 ms) must not split an utterance
    for utt, (start, end) in zip(utts, truth):
        assert not utt.forced
        # Boundaries: within pad (200 ms) + a frame of the truth, never cutting speech off.
        assert start - 0.3 <= utt.start_s <= start + 0.05
        assert end - 0.05 <= utt.end_s <= end + 0.3
        assert len(utt.audio) == pytest.approx(utt.duration_s * RATE, abs=1)
        # The audio is the stream's audio at that place.
        i = int(round(utt.start_s * RATE))
        np.testing.assert_array_equal(utt.audio, audio[i:i + len(utt.audio)])


def test_silence_and_a_click_give_nothing():
    rng = np.random.default_rng(3)
    audio, _ = scene([('silence', 2.0)], rng)
    audio[RATE:RATE + 400] += 0.8  # 25 ms click: shorter than min_speech_ms
    assert segment(audio) == []


def test_long_speech_is_force_closed_at_max_utterance():
    rng = np.random.default_rng(5)
    audio, _ = scene([('silence', 0.5), ('speech', 5.0), ('silence', 1.0)], rng)
    utts = segment(audio, max_utterance_s=2.0)
    assert len(utts) >= 3
    assert utts[0].forced and utts[0].duration_s == pytest.approx(2.0, abs=0.05)
    assert sum(u.duration_s for u in utts) == pytest.approx(5.0, abs=0.6)


@pytest.mark.parametrize('noise_db', [-50.0, -45.0])
def test_quiet_background_gives_exactly_the_speech(noise_db):
    rng = np.random.default_rng(9)
    audio, truth = scene([('silence', 1.5), ('speech', 1.0), ('silence', 1.0)], rng,
                         noise_db=noise_db)
    utts = segment(audio)
    assert len(utts) == 1
    assert truth[0][0] - 0.3 <= utts[0].start_s <= truth[0][0]


def test_noise_floor_adapts_to_loud_steady_background():
    """-35 dBFS of steady noise: after the floor has adapted, speech is still found.

    (Known limit of the energy VAD: the first ~2 s of a loud background read as speech.)
    """
    rng = np.random.default_rng(9)
    audio, truth = scene([('silence', 4.0), ('speech', 1.0), ('silence', 1.0)], rng,
                         noise_db=-35.0)
    utts = segment(audio)
    late = [u for u in utts if u.start_s > 2.5]
    assert len(late) == 1
    assert truth[0][0] - 0.3 <= late[0].start_s <= truth[0][0]
    assert truth[0][1] <= late[0].end_s <= truth[0][1] + 0.3
