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


def test_registry_backends_params_and_unusable_settings():
    from qwen_voice_ros.audio.vad import VAD_BACKENDS, VADNotAvailable
    assert set(VAD_BACKENDS.names) == {'energy', 'silero', 'webrtc'}
    assert [p.name for p in VAD_BACKENDS.params('webrtc')] == ['aggressiveness', 'frame_ms']
    with pytest.raises(ValueError, match='unknown vad backend'):
        create_classifier('nope', RATE)
    with pytest.raises(ValueError, match='aggressiveness must be <= 3'):
        create_classifier('webrtc', RATE, aggressiveness=5)
    with pytest.raises(VADNotAvailable, match='frame_ms must be 10, 20 or 30'):
        create_classifier('webrtc', RATE, frame_ms=25)
    with pytest.raises(VADNotAvailable, match='8 or 16 kHz'):
        create_classifier('silero', 44100)
    with pytest.raises(VADNotAvailable, match='does not exist'):
        create_classifier('silero', RATE, model_path='/no/such/silero.onnx')
    assert create_classifier('energy', 8000).frame_samples == 256


def test_silero_state_is_carried_and_reset():
    from qwen_voice_ros.audio.vad import VADNotAvailable
    try:
        vad = create_classifier('silero', RATE)
    except VADNotAvailable as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(2)
    audio, _ = scene([('silence', 0.3), ('speech', 1.0)], rng)
    frames = [audio[i:i + 512] for i in range(0, len(audio) - 511, 512)]
    first = [vad.speech_probability(f) for f in frames]
    vad.reset()
    again = [vad.speech_probability(f) for f in frames]
    assert first == pytest.approx(again, abs=1e-6)   # same state after reset
    # Without the carried state (a reset before every frame) the answers differ.
    fresh = []
    for f in frames:
        vad.reset()
        fresh.append(vad.speech_probability(f))
    assert max(abs(a - b) for a, b in zip(first, fresh)) > 0.01


def test_speech_start_fires_at_onset_before_the_utterance_closes():
    rng = np.random.default_rng(4)
    audio, truth = scene([('silence', 1.0), ('speech', 1.5), ('silence', 1.2)], rng)
    starts, closed_at = [], []
    seg = UtteranceSegmenter(create_classifier('energy', RATE), RATE,
                             on_speech_start=starts.append)
    for i in range(0, len(audio), 512):
        for utt in seg.feed(audio[i:i + 512]):
            closed_at.append((i, utt))
    assert len(starts) == 1 and len(closed_at) == 1
    assert abs(starts[0] - truth[0][0]) <= 0.05
    assert closed_at[0][1].speech_start_s == pytest.approx(starts[0])
    assert abs(closed_at[0][1].speech_end_s - truth[0][1]) <= 0.1


def test_muted_frames_count_as_silence():
    rng = np.random.default_rng(6)
    audio, _ = scene([('silence', 0.5), ('speech', 1.0), ('silence', 1.2)], rng)
    seg = UtteranceSegmenter(create_classifier('energy', RATE), RATE)
    utts = []
    for i in range(0, len(audio), 512):
        utts += seg.feed(audio[i:i + 512], muted=True)
    assert utts == [] and not seg.in_speech


def test_nan_clipping_and_dc_offset_are_conditioned():
    rng = np.random.default_rng(8)
    audio, truth = scene([('silence', 1.0), ('speech', 1.0), ('silence', 1.2)], rng)
    dirty = audio + 0.4                      # DC offset
    dirty[::50] = np.nan                     # NaNs
    dirty[RATE + 100:RATE + 110] = 3.0       # out-of-range samples
    seg = UtteranceSegmenter(create_classifier('energy', RATE), RATE)
    utts = []
    for i in range(0, len(dirty), 512):
        utts += seg.feed(dirty[i:i + 512])
    assert len(utts) == 1
    assert abs(utts[0].speech_start_s - truth[0][0]) <= 0.1
    assert np.all(np.isfinite(utts[0].audio)) and np.abs(utts[0].audio).max() <= 1.5
    assert abs(float(np.mean(utts[0].audio))) < 0.05    # the offset is gone from the audio
    assert seg.stats.nonfinite_samples == int(np.sum(np.isnan(dirty)))
    assert seg.stats.clipped_samples == 10
    assert seg.stats.dc_offset == pytest.approx(0.4, abs=0.05)
    assert seg.feed(np.zeros(0, np.float32)) == []   # zero-length chunks are fine
