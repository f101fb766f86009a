"""AudioStreamDecoder / StreamResampler: formats, resampling, rejections."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from qwen_voice_ros.audio.pcm import encode_s16le
from qwen_voice_ros.audio.stream import AudioFormatError, AudioStreamDecoder, StreamResampler


def tone(freq, seconds, rate, amp=0.5):
    t = np.arange(int(seconds * rate)) / float(rate)
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(audio, rate):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return np.argmax(spectrum) * rate / float(len(audio))


def test_default_format_is_s16le_mono_16k():
    decoder = AudioStreamDecoder()
    audio = tone(440, 0.1, 16000)
    out = decoder.decode(encode_s16le(audio))
    assert not out.empty and out.source_rate == 16000 and out.source_samples == 1600
    assert out.audio.dtype == np.float32
    np.testing.assert_allclose(out.audio, audio, atol=1.0 / 32767)


@pytest.mark.parametrize('rate', [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_to_pipeline_rate(rate):
    decoder = AudioStreamDecoder(pipeline_rate=16000)
    decoder.set_info(1, rate, 'S16LE', 'WAVE')
    out = decoder.decode(encode_s16le(tone(440, 0.5, rate)))
    assert abs(len(out.audio) - 8000) <= 1
    assert dominant_hz(out.audio, 16000) == pytest.approx(440, abs=3)
    assert np.sqrt(np.mean(out.audio[400:-400] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_stereo_s32_and_f32_are_mixed_to_mono():
    decoder = AudioStreamDecoder()
    left = tone(300, 0.1, 16000)
    stereo = np.stack([left, left], axis=1)
    decoder.set_info(2, 16000, 'F32LE', 'WAVE')
    np.testing.assert_allclose(decoder.decode(stereo.astype('<f4').tobytes()).audio, left,
                               atol=1e-6)
    decoder.set_info(2, 16000, 's32le', 'WAVE')  # case-insensitive sample_format
    ints = (stereo * 2 ** 31 * 0.999).astype('<i4').tobytes()
    np.testing.assert_allclose(decoder.decode(ints).audio, left * 0.999, atol=1e-6)


def test_compressed_coding_is_rejected_until_a_usable_info():
    decoder = AudioStreamDecoder()
    with pytest.raises(AudioFormatError, match='compressed.*format:=wave'):
        decoder.set_info(1, 16000, 'S16LE', 'MP3')
    with pytest.raises(AudioFormatError, match='stream format rejected'):
        decoder.decode(b'\xff\xfb\x90\x00')
    decoder.set_info(1, 16000, 'S16LE', 'WAVE')
    assert len(decoder.decode(b'\x00\x00' * 10).audio) == 10


@pytest.mark.parametrize('fields, needle', [
    ((1, 16000, 'S24LE', 'WAVE'), 'sample_format'),
    ((0, 16000, 'S16LE', 'WAVE'), 'channels'),
    ((1, 0, 'S16LE', 'WAVE'), 'sample_rate'),
    ((1, 1000000, 'S16LE', 'WAVE'), 'sample_rate'),
])
def test_unusable_infos_say_what_is_wrong(fields, needle):
    decoder = AudioStreamDecoder()
    with pytest.raises(AudioFormatError, match=needle):
        decoder.set_info(*fields)
    assert decoder.format_error


def test_odd_byte_count_is_rejected_and_the_next_payload_works():
    decoder = AudioStreamDecoder()
    with pytest.raises(AudioFormatError, match='not a whole number'):
        decoder.decode(b'\x00\x01\x02')
    assert len(decoder.decode(b'\x00\x01\x02\x03').audio) == 2


def test_empty_payload_is_flagged_not_raised():
    out = AudioStreamDecoder().decode(b'')
    assert out.empty and out.audio.size == 0 and out.source_duration_s == 0.0


@pytest.mark.parametrize('rates', [(48000, 16000), (44100, 16000), (8000, 16000)])
def test_streaming_resampler_matches_one_shot_resampling(rates):
    """Chunks of random sizes give the samples one resample_poly call over the whole gives."""
    rng = np.random.default_rng(1)
    signal = rng.standard_normal(rates[0]).astype(np.float32)
    resampler = StreamResampler(*rates)
    pieces, i = [], 0
    while i < len(signal):
        n = int(rng.integers(1, 2000))
        pieces.append(resampler.feed(signal[i:i + n]))
        i += n
    pieces.append(resampler.flush())
    streamed = np.concatenate(pieces)
    reference = resample_poly(signal, resampler.up, resampler.down)
    assert len(streamed) == len(reference)
    np.testing.assert_allclose(streamed, reference, atol=1e-5)


def test_streaming_decoder_has_no_dips_at_chunk_boundaries():
    decoder = AudioStreamDecoder(pipeline_rate=16000, streaming=True)
    decoder.set_info(1, 48000, 'S16LE', 'WAVE')
    audio = tone(440, 1.0, 48000)
    out = np.concatenate([decoder.decode(encode_s16le(audio[i:i + 1536])).audio
                          for i in range(0, len(audio), 1536)])
    expected = tone(440, 1.0, 16000)
    # Same zero-phase filter as resample_poly: aligned with the input, only the tail held back.
    err = np.abs(out[200:len(out) - 200] - expected[200:len(out) - 200])
    assert err.max() < 0.01
    # Per-chunk resampling (non-streaming) would dip at every 32 ms boundary.
    chunked = AudioStreamDecoder(pipeline_rate=16000, streaming=False)
    chunked.set_info(1, 48000, 'S16LE', 'WAVE')
    naive = np.concatenate([chunked.decode(encode_s16le(audio[i:i + 1536])).audio
                            for i in range(0, len(audio), 1536)])
    assert np.abs(naive[200:-200] - expected[200:len(naive) - 200]).max() > 0.05
