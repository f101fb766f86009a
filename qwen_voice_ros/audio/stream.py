"""
Decode an ``audio_common_msgs`` audio stream into the pipeline's float32 mono samples.

A subscriber holds one :class:`AudioStreamDecoder` per stream.  ``AudioInfo`` messages set
its format (until one arrives the stream is taken as S16LE mono 16 kHz, what ``audio_capture``
with ``format:=wave`` and our own nodes publish); each payload then becomes float32 mono at
the pipeline rate.  What cannot be decoded raises :class:`AudioFormatError` with a message
that says what to change; an empty payload is returned flagged rather than raised, so the
caller can report "empty audio" in its own words.

Two resampling modes: ``streaming=True`` for a continuous stream cut into arbitrary chunks
(microphone), where resampling each chunk on its own would leave a dip at every chunk
boundary; ``streaming=False`` for self-contained chunks (one TTS sentence each).
"""
from __future__ import annotations

import dataclasses
from math import ceil, gcd
from typing import Optional

import numpy as np

from qwen_voice_ros.audio.pcm import (AudioFormat, AudioFormatError, decode_pcm, resample,
                                      resample_poly)

__all__ = ['AudioFormatError', 'AudioStreamDecoder', 'DecodedAudio', 'StreamResampler']


@dataclasses.dataclass
class DecodedAudio:
    """One decoded payload."""

    audio: np.ndarray       # float32 mono at the pipeline rate (may be empty)
    empty: bool             # the payload carried no samples at all
    source_rate: int        # the stream's own rate (before resampling)
    source_samples: int     # samples per channel in the payload

    @property
    def source_duration_s(self) -> float:
        return self.source_samples / float(self.source_rate) if self.source_rate else 0.0


class StreamResampler:
    """
    Polyphase resampling of a stream fed in chunks of any size.

    Gives the same samples as one ``resample_poly`` call over the whole stream (same filter
    as scipy's; the numpy one from ``pcm`` avoids importing scipy.signal on the robot),
    delayed by the filter's half length (about 1 ms at speech rates): output sample ``n``
    is emitted once the input it depends on has arrived.  ``flush()`` returns
    the rest at end of stream.
    """

    def __init__(self, from_rate: int, to_rate: int):
        g = gcd(int(from_rate), int(to_rate))
        self.up, self.down = int(to_rate) // g, int(from_rate) // g
        # resample_poly's default filter: half length 10 * max(up, down) taps at the
        # upsampled rate; its reach in input samples, plus one for rounding.
        self.reach = int(ceil(10.0 * max(self.up, self.down) / self.up)) + 1
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0     # absolute input index of _buf[0]; always a multiple of down
        self._next_out = 0      # absolute index of the next output sample
        self._fed = 0           # input samples received

    def _emit(self, out_end: int) -> np.ndarray:
        if out_end <= self._next_out:
            return np.zeros(0, dtype=np.float32)
        # Start the segment on the input grid (a multiple of down) far enough back that
        # the first wanted output sees its whole filter support.
        first_pos = self._next_out * self.down / float(self.up)
        seg_start = int((first_pos - self.reach) // self.down) * self.down
        seg_start = max(seg_start, self._buf_start)
        segment = self._buf[seg_start - self._buf_start:]
        y = resample_poly(segment, self.up, self.down)
        offset = seg_start * self.up // self.down
        out = y[self._next_out - offset:out_end - offset].astype(np.float32)
        self._next_out = out_end
        # Keep the input the next outputs still need.
        keep_from = int((self._next_out * self.down / float(self.up) - self.reach)
                        // self.down) * self.down - self.down
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from
        return out

    def feed(self, audio: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return np.asarray(audio, dtype=np.float32)
        self._buf = np.concatenate([self._buf, np.asarray(audio, dtype=np.float32)])
        self._fed += len(audio)
        # Output n is final when input index n*down/up + reach has arrived.
        limit = self._fed - self.reach
        out_end = int(limit * self.up // self.down) if limit > 0 else 0
        return self._emit(out_end)

    def flush(self) -> np.ndarray:
        """Return the remaining output (as if the stream ended with zeros)."""
        if self.up == self.down:
            return np.zeros(0, dtype=np.float32)
        out_end = int(ceil(self._fed * self.up / float(self.down)))
        return self._emit(out_end)


class AudioStreamDecoder:
    """Hold a stream's current format and turn payloads into pipeline audio."""

    DEFAULT_FORMAT = AudioFormat(sample_rate=16000, channels=1, sample_format='S16LE',
                                 coding_format='WAVE')

    def __init__(self, pipeline_rate: int = 16000, streaming: bool = False):
        self.pipeline_rate = int(pipeline_rate)
        self.streaming = streaming
        self.format: AudioFormat = self.DEFAULT_FORMAT
        self.format_from_info = False
        self.format_error = ''    # set while the last AudioInfo was rejected
        self._resampler: Optional[StreamResampler] = None

    def set_info(self, channels: int, sample_rate: int, sample_format: str,
                 coding_format: str = 'WAVE') -> AudioFormat:
        """
        Take the fields of an ``AudioInfo``; raise AudioFormatError if unusable.

        After a rejected info every payload is rejected too (it is in that format) until
        a usable info arrives.
        """
        fmt = AudioFormat(sample_rate=int(sample_rate), channels=int(channels),
                          sample_format=(sample_format or 'S16LE').upper(),
                          coding_format=coding_format or 'WAVE')
        return self.set_format(fmt)

    def set_format(self, fmt: AudioFormat) -> AudioFormat:
        try:
            fmt.check()
        except AudioFormatError as exc:
            self.format_error = str(exc)
            raise
        changed = fmt != self.format
        self.format = fmt
        self.format_from_info = True
        self.format_error = ''
        if changed:
            self._resampler = None
        return fmt

    def decode(self, payload: bytes) -> DecodedAudio:
        """Payload bytes -> DecodedAudio; raise AudioFormatError for what cannot be taken."""
        if self.format_error:
            raise AudioFormatError('stream format rejected (%s); waiting for a usable '
                                   'AudioInfo' % self.format_error)
        fmt = self.format
        if not payload:
            return DecodedAudio(np.zeros(0, dtype=np.float32), True, fmt.sample_rate, 0)
        audio = decode_pcm(bytes(payload), fmt)
        n = len(audio)
        if fmt.sample_rate != self.pipeline_rate:
            if self.streaming:
                if self._resampler is None:
                    self._resampler = StreamResampler(fmt.sample_rate, self.pipeline_rate)
                audio = self._resampler.feed(audio)
            else:
                audio = resample(audio, fmt.sample_rate, self.pipeline_rate)
        return DecodedAudio(audio.astype(np.float32, copy=False), False, fmt.sample_rate, n)

    def reset(self) -> None:
        """Forget stream state (resampler history), keep the format."""
        self._resampler = None
