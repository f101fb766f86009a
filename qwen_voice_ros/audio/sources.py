"""
Where captured audio comes from: a sound device (PortAudio via sounddevice) or a WAV file.

A source calls ``on_chunk(float32 mono at its own rate)`` from its own thread, chunk by
chunk, until stopped.  ``create_source`` picks one by parameter.
"""
from __future__ import annotations

import abc
import queue
import threading
import time
from typing import Callable, Optional

import numpy as np

ChunkCallback = Callable[[np.ndarray], None]


class AudioSourceError(RuntimeError):
    """The source could not open or read its device / file."""


class AudioSource(abc.ABC):
    """Produces float32 mono chunks at ``sample_rate``."""

    sample_rate: int = 16000

    @abc.abstractmethod
    def start(self, on_chunk: ChunkCallback) -> None:
        """Begin delivering chunks (non-blocking)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering chunks and release the device/file."""

    @property
    def finished(self) -> bool:
        """Tell whether a finite source (a file) has delivered everything."""
        return False

    @property
    def error(self) -> str:
        """Say why the source stopped delivering (device gone, stalled); '' while fine."""
        return ''


class SoundDeviceSource(AudioSource):
    """Capture from a PortAudio input device (ALSA, PulseAudio, JACK via sounddevice)."""

    def __init__(self, device: Optional[str] = None, sample_rate: int = 16000,
                 chunk_ms: int = 32, channels: int = 1):
        self.device = device if device not in ('', 'default') else None
        self.sample_rate = int(sample_rate)
        self.blocksize = int(sample_rate * chunk_ms / 1000)
        self.channels = int(channels)
        self._stream = None
        self._queue: 'queue.Queue[Optional[np.ndarray]]' = queue.Queue(maxsize=256)
        self._thread: Optional[threading.Thread] = None
        self.overflows = 0
        self.stall_s = 2.0
        self._last_callback = time.monotonic()

    def start(self, on_chunk: ChunkCallback) -> None:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as exc:  # OSError: libportaudio missing
            raise AudioSourceError('sounddevice/PortAudio unavailable: %s' % exc) from None
        device = int(self.device) if self.device and self.device.isdigit() else self.device

        def callback(indata, frames, time_info, status):
            # PortAudio's thread: copy and hand off; never block here.
            self._last_callback = time.monotonic()
            if status.input_overflow:
                self.overflows += 1
            try:
                self._queue.put_nowait(indata.mean(axis=1).astype(np.float32))
            except queue.Full:
                self.overflows += 1

        try:
            self._stream = sd.InputStream(device=device, channels=self.channels,
                                          samplerate=self.sample_rate, dtype='float32',
                                          blocksize=self.blocksize, callback=callback)
            self._last_callback = time.monotonic()
            self._stream.start()
        except Exception as exc:  # sounddevice raises PortAudioError / ValueError
            raise AudioSourceError('cannot open input device %r at %d Hz: %s'
                                   % (self.device or 'default', self.sample_rate, exc)) from None

        def pump():
            while True:
                chunk = self._queue.get()
                if chunk is None:
                    return
                on_chunk(chunk)

        self._thread = threading.Thread(target=pump, name='audio-capture', daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        """Tell whether the device stream ended by itself (device unplugged, server gone)."""
        stream = self._stream
        return stream is not None and not stream.active and not stream.stopped

    @property
    def error(self) -> str:
        if self._stream is None:
            return ''
        if self.finished:
            return ('input device %r stopped delivering audio (unplugged, or its sound server '
                    'went away); reconfigure the capture node once it is back'
                    % (self.device or 'default'))
        silent = time.monotonic() - self._last_callback
        if silent > self.stall_s:
            return 'no audio from input device %r for %.1f s (stalled)' % (
                self.device or 'default', silent)
        return ''

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception:  # a vanished device may fail to stop; it is released anyway
                pass
            self._stream = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=2.0)
            self._thread = None


class WavFileSource(AudioSource):
    """Play a WAV file into the pipeline in real time (or faster), optionally looping."""

    def __init__(self, path: str, sample_rate: int = 16000, chunk_ms: int = 32,
                 realtime: bool = True, loop: bool = False, lead_silence_s: float = 0.0):
        from qwen_voice_ros.audio.wavfile import read_wav
        from qwen_voice_ros.audio.pcm import resample
        audio, rate = read_wav(path)
        self.sample_rate = int(sample_rate)
        pad = np.zeros(int(lead_silence_s * self.sample_rate), dtype=np.float32)
        self.audio = np.concatenate([pad, resample(audio, rate, self.sample_rate)])
        self.chunk = int(self.sample_rate * chunk_ms / 1000)
        self.realtime = realtime
        self.loop = loop
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self, on_chunk: ChunkCallback) -> None:
        def run():
            period = self.chunk / self.sample_rate
            next_t = time.monotonic()
            while not self._stop.is_set():
                for i in range(0, len(self.audio), self.chunk):
                    if self._stop.is_set():
                        break
                    on_chunk(self.audio[i:i + self.chunk])
                    if self.realtime:
                        next_t += period
                        self._stop.wait(max(0.0, next_t - time.monotonic()))
                if not self.loop:
                    break
            self._done.set()

        self._thread = threading.Thread(target=run, name='wav-source', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    @property
    def finished(self) -> bool:
        return self._done.is_set()


def create_source(backend: str, device: str = '', wav_path: str = '', sample_rate: int = 16000,
                  chunk_ms: int = 32, loop: bool = False) -> AudioSource:
    """Pick a source by parameter: ``sounddevice`` or ``wav``."""
    if backend == 'sounddevice':
        return SoundDeviceSource(device=device, sample_rate=sample_rate, chunk_ms=chunk_ms)
    if backend == 'wav':
        if not wav_path:
            raise AudioSourceError('source "wav" needs the parameter wav_path')
        try:
            return WavFileSource(wav_path, sample_rate=sample_rate, chunk_ms=chunk_ms, loop=loop)
        except (OSError, ValueError) as exc:
            raise AudioSourceError('cannot read WAV %r: %s' % (wav_path, exc)) from None
    raise AudioSourceError('unknown capture backend %r (use sounddevice or wav)' % backend)
