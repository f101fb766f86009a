"""
Where played audio goes: a sound device (PortAudio via sounddevice), WAV files, or nowhere.

Every sink plays one chunk at a time from its own thread.  ``play(audio, sample_rate,
on_done, tag)`` returns at once; chunks handed over while one plays wait in the sink's FIFO.
``on_done(completed, played_s)`` runs on the sink's thread when a chunk finished playing
(``completed=True``) or was cut off by ``stop()`` (``completed=False``).  ``stop()``
interrupts the current chunk at once and discards the queued ones (barge-in).

Backends: ``sounddevice`` (a PortAudio output stream kept open, so the first sample of a
chunk is not delayed by opening the device), ``wav`` (writes what was played of each chunk to
``<dir>/<tag>.wav``, for headless runs and tests), ``null`` (discards the audio but takes as
long as playing it would, so the rest of the stack sees real timing).
"""
from __future__ import annotations

import abc
import collections
import os
import threading
import time
from typing import Callable, Deque, Optional, Tuple

import numpy as np

from qwen_voice_ros.audio.pcm import resample

DoneCallback = Callable[[bool, float], None]
_Item = Tuple[np.ndarray, int, Optional[DoneCallback], str]


class AudioSinkError(RuntimeError):
    """The sink could not open its device or directory."""


class AudioSink(abc.ABC):
    """Plays float32 mono chunks one after another; see the module docstring."""

    name = 'sink'

    def __init__(self):
        self._queue: Deque[_Item] = collections.deque()
        self._cond = threading.Condition()
        self._interrupt = threading.Event()
        self._closed = False
        self._playing = False
        self._thread = threading.Thread(target=self._run, name='audio-sink-%s' % self.name,
                                        daemon=True)
        self._started = False

    # ---- public API -----------------------------------------------------------------------
    def open(self) -> None:
        """Open the device / directory; raise AudioSinkError if it cannot be used."""
        self._open()
        if not self._started:
            self._started = True
            self._thread.start()

    def play(self, audio: np.ndarray, sample_rate: int,
             on_done: Optional[DoneCallback] = None, tag: str = '') -> None:
        """Queue a chunk; returns immediately."""
        if not self._started:
            self.open()
        with self._cond:
            self._queue.append((np.asarray(audio, dtype=np.float32), int(sample_rate),
                                on_done, tag))
            self._cond.notify()

    def stop(self) -> None:
        """Cut off the chunk playing now and drop the queued ones."""
        with self._cond:
            dropped = list(self._queue)
            self._queue.clear()
            if self._playing:
                self._interrupt.set()
        for _audio, _rate, on_done, _tag in dropped:
            if on_done is not None:
                on_done(False, 0.0)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._playing or bool(self._queue)

    def close(self) -> None:
        self.stop()
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._started:
            self._thread.join(timeout=2.0)
        self._close()

    # ---- backend hooks --------------------------------------------------------------------
    def _open(self) -> None:
        """Acquire resources."""

    def _close(self) -> None:
        """Release resources."""

    @abc.abstractmethod
    def _play_blocking(self, audio: np.ndarray, sample_rate: int, tag: str) -> float:
        """
        Play one chunk; return once done or once ``self._interrupt`` is set.

        Returns the seconds actually played.
        """

    # ---- worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                audio, rate, on_done, tag = self._queue.popleft()
                self._interrupt.clear()
                self._playing = True
            played = 0.0
            try:
                played = self._play_blocking(audio, rate, tag)
            except Exception as exc:  # one bad chunk must not kill the sink thread (issue 8)
                self.errors = getattr(self, 'errors', 0) + 1
                self.last_error = repr(exc)[:300]
                self._interrupt.set()  # reported as not completed
            finally:
                with self._cond:
                    self._playing = False
                    completed = not self._interrupt.is_set()
                    self._interrupt.clear()
            if on_done is not None:
                on_done(completed, played)


class _TimedSink(AudioSink):
    """Takes as long as the audio lasts (interruptible), then hands it to ``_consume``."""

    def __init__(self, realtime: bool = True):
        self.realtime = realtime
        super().__init__()

    def _play_blocking(self, audio, sample_rate, tag):
        duration = len(audio) / float(sample_rate)
        started = time.monotonic()
        if self.realtime:
            self._interrupt.wait(duration)
        played = min(duration, time.monotonic() - started) if self._interrupt.is_set() \
            else duration
        self._consume(audio[:int(round(played * sample_rate))], sample_rate, tag)
        return played

    def _consume(self, audio: np.ndarray, sample_rate: int, tag: str) -> None:
        """Do something with what was played."""


class NullSink(_TimedSink):
    """Discards audio, keeps its timing."""

    name = 'null'


class WavSink(_TimedSink):
    """Writes what was played of each chunk to ``<directory>/<tag>.wav``."""

    name = 'wav'

    def __init__(self, directory: str, realtime: bool = True):
        self.directory = directory
        self._count = 0
        super().__init__(realtime=realtime)

    def _open(self):
        if not self.directory:
            raise AudioSinkError('sink "wav" needs a directory (parameter wav_dir)')
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise AudioSinkError('cannot create wav_dir %r: %s' % (self.directory, exc)) from None
        if not os.access(self.directory, os.W_OK):
            raise AudioSinkError('wav_dir %r is not writable' % self.directory)

    def _consume(self, audio, sample_rate, tag):
        from qwen_voice_ros.audio.wavfile import write_wav
        self._count += 1
        name = ''.join(c if (c.isascii() and c.isalnum()) or c in '-_.' else '_'
                       for c in tag[:120]) or \
            'chunk_%06d' % self._count
        path = os.path.join(self.directory, name + '.wav')
        tmp = path + '.part'
        write_wav(tmp, audio, sample_rate)
        os.replace(tmp, path)  # readers never see a half-written file


class SoundDeviceSink(AudioSink):
    """A PortAudio output stream, open for the sink's lifetime, fed from a callback."""

    name = 'sounddevice'

    def __init__(self, device: str = '', sample_rate: int = 16000, blocksize_ms: int = 40,
                 latency='high'):
        self.device = device if device not in ('', 'default') else None
        # 'high': fewer underruns on a loaded CPU; a stop() still takes effect within it.
        self.latency = latency
        self.sample_rate = int(sample_rate)
        self.blocksize = max(1, int(self.sample_rate * blocksize_ms / 1000))
        self._stream = None
        self._lock = threading.Lock()
        self._current: Optional[np.ndarray] = None
        self._pos = 0
        self._finished = threading.Event()
        self.underflows = 0
        super().__init__()

    def _open(self):
        if self._stream is not None:
            return
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:  # OSError: libportaudio missing
            raise AudioSinkError('sounddevice/PortAudio unavailable: %s' % exc) from None
        device = int(self.device) if self.device and self.device.isdigit() else self.device

        def callback(outdata, frames, time_info, status):
            # PortAudio's thread: copy what is due, zeros otherwise; never block.
            if status.output_underflow:
                self.underflows += 1
            with self._lock:
                chunk = self._current
                n = 0
                if chunk is not None:
                    n = min(frames, len(chunk) - self._pos)
                    outdata[:n, 0] = chunk[self._pos:self._pos + n]
                    self._pos += n
                    if self._pos >= len(chunk):
                        self._current = None
                        self._finished.set()
            outdata[n:, 0] = 0.0

        try:
            self._stream = sd.OutputStream(device=device, channels=1, dtype='float32',
                                           samplerate=self.sample_rate,
                                           blocksize=self.blocksize, latency=self.latency,
                                           callback=callback)
            self._stream.start()
        except Exception as exc:  # PortAudioError / ValueError for a bad device
            self._stream = None
            raise AudioSinkError('cannot open output device %r at %d Hz: %s'
                                 % (self.device or 'default', self.sample_rate, exc)) from None

    def _close(self):
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def _play_blocking(self, audio, sample_rate, tag):
        audio = resample(audio, sample_rate, self.sample_rate)
        if not len(audio):
            return 0.0
        self._finished.clear()
        with self._lock:
            self._current = audio
            self._pos = 0
        # Wait for the callback to take the last sample, then for the device latency
        # (the samples still in PortAudio's buffers), unless interrupted.
        duration = len(audio) / float(self.sample_rate)
        deadline = time.monotonic() + duration + 2.0
        while not self._finished.wait(0.01):
            if self._interrupt.is_set() or time.monotonic() > deadline:
                break
        if not self._interrupt.is_set():
            latency = float(self._stream.latency) if self._stream is not None else 0.0
            self._interrupt.wait(latency)
        with self._lock:
            played = self._pos
            self._current = None
            self._pos = 0
        if self._finished.is_set():
            played = len(audio)
        return played / float(self.sample_rate)


def create_sink(backend: str, device: str = '', wav_dir: str = '', sample_rate: int = 16000,
                realtime: bool = True) -> AudioSink:
    """Pick a sink by parameter: ``sounddevice``, ``wav`` or ``null``; opened, ready to play."""
    if backend == 'sounddevice':
        sink: AudioSink = SoundDeviceSink(device=device, sample_rate=sample_rate)
    elif backend == 'wav':
        sink = WavSink(wav_dir, realtime=realtime)
    elif backend == 'null':
        sink = NullSink(realtime=realtime)
    else:
        raise AudioSinkError('unknown playback sink %r (use sounddevice, wav or null)' % backend)
    sink.open()
    return sink
