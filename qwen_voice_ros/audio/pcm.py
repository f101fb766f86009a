"""
PCM audio as the ``audio_common_msgs`` messages carry it: format checks and conversions.

``AudioInfo`` describes a stream (channels, sample_rate, sample_format e.g. S16LE,
coding_format WAVE).  Everything inside the stack is float32 mono at the pipeline rate
(16 kHz by default); this module converts at the edges and says clearly what it cannot take.
"""
from __future__ import annotations

import dataclasses
from math import gcd

import numpy as np

# sample_format -> (numpy dtype, full-scale value); names follow GStreamer / audio_common.
SAMPLE_FORMATS = {
    'S16LE': ('<i2', 32768.0),
    'S32LE': ('<i4', 2147483648.0),
    'F32LE': ('<f4', 1.0),
    'U8': ('u1', None),
}


class AudioFormatError(ValueError):
    """Audio that the stack cannot take as it is (format, coding, byte count)."""


@dataclasses.dataclass(frozen=True)
class AudioFormat:
    """The fields of ``audio_common_msgs/AudioInfo`` that matter for raw PCM."""

    sample_rate: int = 16000
    channels: int = 1
    sample_format: str = 'S16LE'
    coding_format: str = 'WAVE'

    @property
    def bytes_per_sample(self) -> int:
        return np.dtype(SAMPLE_FORMATS[self.sample_format][0]).itemsize

    @property
    def bitrate(self) -> int:
        return self.sample_rate * self.channels * self.bytes_per_sample * 8

    def check(self) -> None:
        """Raise AudioFormatError unless this is raw PCM the stack can convert."""
        coding = (self.coding_format or 'WAVE').upper()
        if coding not in ('WAVE', 'WAV', 'PCM', 'RAW'):
            raise AudioFormatError(
                'coding_format %r is compressed; the stack takes raw PCM (WAVE). '
                'Run audio_capture with format:=wave' % self.coding_format)
        if self.sample_format not in SAMPLE_FORMATS:
            raise AudioFormatError('sample_format %r not supported (use one of %s)'
                                   % (self.sample_format, ', '.join(SAMPLE_FORMATS)))
        if not 1 <= self.channels <= 32:
            raise AudioFormatError('channels=%d is not a valid channel count' % self.channels)
        if not 4000 <= self.sample_rate <= 192000:
            raise AudioFormatError('sample_rate=%d Hz is outside 4-192 kHz' % self.sample_rate)


def decode_pcm(data: bytes, fmt: AudioFormat) -> np.ndarray:
    """
    Bytes -> float32 mono in [-1, 1] (channels averaged).

    Raises AudioFormatError for a byte count that is not whole frames: a truncated message
    would otherwise shift every later sample by a byte and turn speech into noise.
    """
    fmt.check()
    frame_bytes = fmt.bytes_per_sample * fmt.channels
    if len(data) % frame_bytes:
        raise AudioFormatError('%d bytes is not a whole number of %d-byte frames (%s, %d ch)'
                               % (len(data), frame_bytes, fmt.sample_format, fmt.channels))
    dtype, scale = SAMPLE_FORMATS[fmt.sample_format]
    samples = np.frombuffer(data, dtype=dtype)
    if fmt.sample_format == 'U8':
        audio = (samples.astype(np.float32) - 128.0) / 128.0
    else:
        audio = samples.astype(np.float32) / np.float32(scale)
    if fmt.channels > 1:
        audio = audio.reshape(-1, fmt.channels).mean(axis=1)
    return audio


def encode_s16le(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] -> S16LE bytes (clipped, not wrapped)."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).round().astype('<i2').tobytes()


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Anti-aliased polyphase resampling; identity when the rates match."""
    if from_rate == to_rate or audio.size == 0:
        return np.asarray(audio, dtype=np.float32)
    g = gcd(int(from_rate), int(to_rate))
    return resample_poly(audio, int(to_rate) // g, int(from_rate) // g)


def _kaiser_lowpass(up: int, down: int) -> np.ndarray:
    # The filter scipy.signal.resample_poly designs (Kaiser beta 5, 10 zero crossings of
    # the narrower band), normalised to a DC gain of `up`.
    max_rate = max(up, down)
    half = 10 * max_rate
    n = np.arange(-half, half + 1)
    taps = np.sinc(n / float(max_rate)) * np.kaiser(2 * half + 1, 5.0)
    return taps * (up / taps.sum())


def resample_poly(audio: np.ndarray, up: int, down: int, block: int = 8192) -> np.ndarray:
    """
    Numpy polyphase resampler, same output as ``scipy.signal.resample_poly``.

    Plain numpy on purpose: importing scipy.signal takes seconds on a small CPU, which a
    node would pay on its first turn.
    """
    x = np.asarray(audio, dtype=np.float64)
    h = _kaiser_lowpass(up, down)
    half = (len(h) - 1) // 2
    n_out = -(-len(x) * up // down)
    ntaps = (2 * half) // up + 1
    out = np.empty(n_out, dtype=np.float32)
    for start in range(0, n_out, block):
        m = np.arange(start, min(start + block, n_out))
        pos = m * down + half                   # index into h for input sample k = 0
        ks = (pos // up)[:, None] - np.arange(ntaps)[None, :]
        idx = pos[:, None] - ks * up            # >= 0 by construction
        valid = (ks >= 0) & (ks < len(x)) & (idx <= 2 * half)
        contrib = x[np.clip(ks, 0, len(x) - 1)] * h[np.clip(idx, 0, 2 * half)]
        out[start:start + len(m)] = np.where(valid, contrib, 0.0).sum(axis=1)
    return out


def clipping_ratio(audio: np.ndarray, threshold: float = 0.999) -> float:
    """Fraction of samples at full scale: clipped capture shows up here."""
    if audio.size == 0:
        return 0.0
    return float(np.mean(np.abs(audio) >= threshold))


def rms_dbfs(audio: np.ndarray) -> float:
    if audio.size == 0:
        return float('-inf')
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-10))


def to_pipeline(data: bytes, fmt: AudioFormat, pipeline_rate: int) -> np.ndarray:
    """Decode and resample a message payload to the pipeline's float32 mono stream."""
    return resample(decode_pcm(data, fmt), fmt.sample_rate, pipeline_rate)
