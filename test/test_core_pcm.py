"""PCM conversions and resampling at the stack's edges."""
import numpy as np
import pytest

from qwen_voice_ros.audio.pcm import (AudioFormat, AudioFormatError, clipping_ratio, decode_pcm,
                                      encode_s16le, resample, resample_poly)


@pytest.mark.parametrize('up,down', [(320, 441), (1, 3), (3, 1), (2, 3), (160, 147)])
def test_resample_poly_matches_scipy(up, down):
    from scipy.signal import resample_poly as reference
    x = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    ours = resample_poly(x, up, down)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference(x, up, down), atol=1e-5)


def test_resample_keeps_a_tone_and_its_frequency():
    t = np.arange(48000) / 48000.0
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = resample(tone, 48000, 16000)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 440) < 2
    assert abs(np.sqrt(np.mean(out[100:-100] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_s16le_round_trip_and_clipping():
    audio = np.array([0.0, 0.5, -0.5, 1.5, -2.0], dtype=np.float32)
    data = encode_s16le(audio)
    back = decode_pcm(data, AudioFormat())
    np.testing.assert_allclose(back, [0, 0.5, -0.5, 1.0, -1.0], atol=1e-4)
    assert clipping_ratio(back) == pytest.approx(0.4)


def test_decode_rejects_what_it_cannot_take():
    with pytest.raises(AudioFormatError, match='whole number'):
        decode_pcm(b'\x00\x01\x02', AudioFormat())
    with pytest.raises(AudioFormatError, match='compressed'):
        decode_pcm(b'\x00\x00', AudioFormat(coding_format='MP3'))
    with pytest.raises(AudioFormatError, match='sample_format'):
        decode_pcm(b'\x00\x00', AudioFormat(sample_format='S24BE'))


def test_stereo_is_mixed_to_mono():
    stereo = np.array([[0.5, -0.5], [0.25, 0.25]], dtype='<f4').tobytes()
    mono = decode_pcm(stereo, AudioFormat(channels=2, sample_format='F32LE'))
    np.testing.assert_allclose(mono, [0.0, 0.25])
