"""
Shared parts of the HTTP zero-shot voice-cloning backends (CosyVoice, GPT-SoVITS, Fish-Speech).

- :class:`ReferenceClip`: the voice to clone (WAV + transcript), validated once: too short,
  too long, silent or below ``min_rate`` Hz is a clear :class:`TTSError`; other rates are
  resampled to what the server wants.
- :class:`PCMDecoder`: raw S16LE or (streamed) WAV bytes -> float32 blocks as they arrive; a
  streamed WAV header with a zero / 0xFFFFFFFF data size (what GPT-SoVITS and Fish-Speech send
  when streaming) is read as "PCM until the end of the body".
- :class:`HTTPCloneTTS`: the request loop on ``core.http`` (one deadline for connect, headers
  and every body read; redirects only to the same origin; a size cap), server errors turned
  into one-line :class:`TTSError`s, text checks, voice profiles and dialect routing.

Standard library + numpy only, Python 3.8.
"""
from __future__ import annotations

import io
import json
import os
import struct
import threading
import time
import unicodedata
import uuid
import wave
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError, TTSNotConfigured

# A clip quieter than this (dBFS of its loudest 100 ms) is silence, not a voice.
SILENT_DBFS = -45.0
# Audio this quiet everywhere in a reply means the server returned silence.
REPLY_SILENT_PEAK = 1e-3
# Dialect labels -> spoken names; the CosyVoice instruct table lives in a data file.
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
INSTRUCT_TABLE = os.path.join(DATA_DIR, 'cosyvoice_dialect_instruct.json')


def speakable(text: str) -> bool:
    """Whether ``text`` has anything to say (a letter or a digit, not only punctuation/emoji)."""
    return any(unicodedata.category(ch)[0] in 'LN' for ch in text)


def looks_like_text(data: bytes) -> bool:
    """
    Whether the start of a "raw PCM" body is really a JSON / HTML / XML document.

    Raw S16LE can begin with any byte, so one ``{`` proves nothing: the first 64 bytes
    must also all be printable UTF-8 text (speech samples near zero have 0x00/0xFF bytes).
    """
    head = data[:64]
    starts = (b'{"', b'{ ', b'{\n', b'[{', b'<!', b'<h', b'<H', b'<?')
    if len(head) < 8 or head[:2] not in starts:
        return False
    text = head.decode('utf-8', errors='replace')
    if len(head) == 64:
        text = text[:-2]   # a multi-byte character may be cut at the end
    return all((ch.isprintable() and ch != '\ufffd') or ch in '\r\n\t' for ch in text)


def _read_wav_any(path: str) -> Tuple[np.ndarray, int]:
    """Read a WAV (PCM 8/16/24/32-bit or float32) as float32 mono; raise TTSError."""
    try:
        with open(path, 'rb') as fh:
            data = fh.read(64 * 1024 * 1024 + 1)
    except OSError as exc:
        raise TTSError('reference clip %s: %s' % (path, exc.strerror or exc)) from None
    if len(data) > 64 * 1024 * 1024:
        raise TTSError('reference clip %s is larger than 64 MiB' % path)
    dec = PCMDecoder(wav=True)
    try:
        audio = dec.feed(data)
        audio = np.concatenate([audio, dec.finish()])
    except TTSError as exc:
        raise TTSError('reference clip %s: %s' % (path, exc)) from None
    return audio, int(dec.sample_rate)


class ReferenceClip:
    """A reference voice: audio (float32 mono), its rate, transcript and language label."""

    def __init__(self, audio: np.ndarray, sample_rate: int, text: str = '', path: str = '',
                 language: str = ''):
        self.audio = np.asarray(audio, dtype=np.float32)
        self.sample_rate = int(sample_rate)
        self.text = text
        self.path = path
        self.language = language
        self._wav_cache: Dict[int, bytes] = {}

    @property
    def duration_s(self) -> float:
        return len(self.audio) / float(self.sample_rate) if self.sample_rate else 0.0

    @classmethod
    def load(cls, path: str, text: str = '', language: str = '', min_s: float = 3.0,
             max_s: float = 30.0, min_rate: int = 16000) -> 'ReferenceClip':
        """Read and validate a reference WAV; raise TTSError saying what is wrong."""
        if not path:
            raise TTSError('no reference clip configured (set ref_audio_path or a profile)')
        audio, rate = _read_wav_any(os.path.expanduser(path))
        clip = cls(audio, rate, text=text, path=path, language=language)
        clip.validate(min_s=min_s, max_s=max_s, min_rate=min_rate)
        return clip

    def validate(self, min_s: float = 3.0, max_s: float = 30.0, min_rate: int = 16000) -> None:
        """Raise TTSError if the clip is too short, too long, silent or too low a rate."""
        name = self.path or 'reference clip'
        if self.sample_rate < min_rate:
            raise TTSError('%s is %d Hz; at least %d Hz is needed (resampling cannot add the '
                           'missing band; record it again)' % (name, self.sample_rate, min_rate))
        if self.duration_s < min_s:
            raise TTSError('%s is %.2f s long; at least %.1f s of speech is needed'
                           % (name, self.duration_s, min_s))
        sound = sounding_s(self.audio, self.sample_rate)
        if 0 < sound < min_s:
            raise TTSError('%s has only %.2f s of sound in %.2f s (the rest is silence); at '
                           'least %.1f s of speech is needed' % (name, sound, self.duration_s,
                                                                 min_s))
        if self.duration_s > max_s:
            raise TTSError('%s is %.1f s long; at most %.1f s is accepted (cut it)'
                           % (name, self.duration_s, max_s))
        if loudest_dbfs(self.audio, self.sample_rate) < SILENT_DBFS:
            raise TTSError('%s is silent (loudest 100 ms at %.0f dBFS < %.0f dBFS)'
                           % (name, loudest_dbfs(self.audio, self.sample_rate), SILENT_DBFS))

    def at_rate(self, rate: int) -> np.ndarray:
        """Return the clip resampled to ``rate`` (itself when equal)."""
        from qwen_voice_ros.audio.pcm import resample
        return resample(self.audio, self.sample_rate, int(rate))

    def wav_bytes(self, rate: Optional[int] = None) -> bytes:
        """Return the clip as a 16-bit mono WAV file at ``rate`` (default: its own); cached."""
        from qwen_voice_ros.audio.pcm import encode_s16le
        rate = int(rate or self.sample_rate)
        if rate in self._wav_cache:
            return self._wav_cache[rate]
        buf = io.BytesIO()
        with wave.open(buf, 'wb') as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(encode_s16le(self.at_rate(rate)))
        self._wav_cache[rate] = buf.getvalue()
        return self._wav_cache[rate]


def loudest_dbfs(audio: np.ndarray, rate: int, window_s: float = 0.1) -> float:
    """RMS level in dBFS of the loudest ``window_s`` window (floor -200)."""
    if audio.size == 0:
        return -200.0
    n = max(1, int(rate * window_s))
    x = np.asarray(audio, dtype=np.float64)
    if len(x) >= n:
        x = x[:len(x) // n * n].reshape(-1, n)
    else:
        x = x.reshape(1, -1)
    rms = float(np.sqrt((x ** 2).mean(axis=1)).max())
    return float(20.0 * np.log10(max(rms, 1e-10)))


def sounding_s(audio: np.ndarray, rate: int, frame_s: float = 0.02) -> float:
    """
    Seconds from the first to the last frame with sound in it (0 if none).

    A frame sounds when its RMS is above -45 dBFS and within 40 dB of the loudest frame, so
    leading and trailing silence (or room tone) do not count towards a clip's length.
    """
    n = max(1, int(rate * frame_s))
    frames = len(audio) // n
    if frames == 0:
        return 0.0
    x = np.asarray(audio[:frames * n], dtype=np.float64).reshape(frames, n)
    db = 10.0 * np.log10(np.maximum((x ** 2).mean(axis=1), 1e-20))
    active = np.flatnonzero(db > max(SILENT_DBFS, db.max() - 40.0))
    if active.size == 0:
        return 0.0
    return (active[-1] - active[0] + 1) * n / float(rate)


class PCMDecoder:
    """
    Incremental decoder: raw S16LE (``wav=False``) or a WAV file/stream (``wav=True``).

    ``feed`` returns the float32 samples completed by the new bytes (an odd trailing byte
    waits for the next chunk).  A WAV header is parsed as it arrives; a data size of 0 or
    0xFFFFFFFF (streamed) means "until the end"; a plausible size is honoured.
    """

    FORMATS = {(1, 8): ('u1', 128.0), (1, 16): ('<i2', 32768.0), (1, 24): ('i24', 8388608.0),
               (1, 32): ('<i4', 2147483648.0), (3, 32): ('<f4', 1.0)}

    def __init__(self, wav: bool, sample_rate: int = 0):
        self.wav = wav
        self.sample_rate = sample_rate
        self.channels = 1
        self._buf = b''
        self._header_done = not wav
        self._dtype, self._scale, self._width = '<i2', 32768.0, 2
        self._remaining: Optional[int] = None  # data bytes left (None: until the end)

    def feed(self, data: bytes) -> np.ndarray:
        self._buf += data
        if not self._header_done:
            if not self._parse_header():
                return np.zeros(0, dtype=np.float32)
        return self._take(final=False)

    def finish(self) -> np.ndarray:
        """Return the samples still buffered at the end; raise TTSError for a cut header."""
        if not self._header_done:
            if self._buf:
                raise TTSError('the audio ends inside its WAV header (%d bytes)'
                               % len(self._buf))
            raise TTSError('no audio in the response')
        return self._take(final=True)

    def _take(self, final: bool) -> np.ndarray:
        frame = self._width * self.channels
        data = self._buf
        if self._remaining is not None:
            data = data[:self._remaining]
        usable = len(data) // frame * frame
        chunk, self._buf = data[:usable], self._buf[usable:]
        if self._remaining is not None:
            self._remaining -= usable
            if self._remaining <= 0:
                self._buf = b''
        if final:
            self._buf = b''  # a trailing partial frame of a cut stream is dropped
        if not chunk:
            return np.zeros(0, dtype=np.float32)
        if self._dtype == 'i24':
            raw = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
            audio = ints.astype(np.float32) / np.float32(self._scale)
        elif self._dtype == 'u1':
            audio = (np.frombuffer(chunk, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        else:
            audio = np.frombuffer(chunk, dtype=self._dtype).astype(np.float32)
            if self._scale != 1.0:
                audio = audio / np.float32(self._scale)
        if self.channels > 1:
            audio = audio.reshape(-1, self.channels).mean(axis=1)
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def _parse_header(self) -> bool:
        buf = self._buf
        if len(buf) < 12:
            if buf and not b'RIFF'.startswith(buf[:4]):
                raise TTSError('not a WAV stream (starts with %r)' % buf[:16])
            return False
        if buf[:4] != b'RIFF' or buf[8:12] != b'WAVE':
            raise TTSError('not a WAV stream (starts with %r)' % buf[:16])
        pos, fmt = 12, None
        while True:
            if len(buf) < pos + 8:
                return False
            cid, size = buf[pos:pos + 4], struct.unpack('<I', buf[pos + 4:pos + 8])[0]
            if cid == b'data':
                if fmt is None:
                    raise TTSError('WAV data chunk before its fmt chunk')
                self._buf = buf[pos + 8:]
                streamed = size in (0, 0xFFFFFFFF)
                self._remaining = None if streamed else size
                self._header_done = True
                return True
            if size > 1 << 20:
                raise TTSError('WAV chunk %r of %d bytes before the audio' % (cid, size))
            if len(buf) < pos + 8 + size:
                return False
            if cid == b'fmt ':
                fmt = buf[pos + 8:pos + 8 + size]
                self._set_format(fmt)
            pos += 8 + size + (size & 1)

    def _set_format(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise TTSError('WAV fmt chunk too short (%d bytes)' % len(fmt))
        tag, channels, rate, _, _, bits = struct.unpack('<HHIIHH', fmt[:16])
        if tag == 0xFFFE and len(fmt) >= 26:
            tag = struct.unpack('<H', fmt[24:26])[0]  # WAVE_FORMAT_EXTENSIBLE sub-format
        spec = self.FORMATS.get((tag, bits))
        if spec is None:
            raise TTSError('WAV format tag %d with %d-bit samples is not supported' % (tag, bits))
        if not 1 <= channels <= 32 or not 4000 <= rate <= 192000:
            raise TTSError('WAV header says %d channels at %d Hz' % (channels, rate))
        self._dtype, self._scale = spec
        self._width = bits // 8
        self.channels = channels
        self.sample_rate = rate


def multipart(fields: Sequence[Tuple[str, str]],
              files: Sequence[Tuple[str, str, bytes, str]]) -> Tuple[bytes, str]:
    """Encode form fields and files as multipart/form-data; return (body, content type)."""
    boundary = 'qvr-' + uuid.uuid4().hex
    parts: List[bytes] = []
    for name, value in fields:
        parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n'
                      % (boundary, name)).encode('utf-8') + value.encode('utf-8') + b'\r\n')
    for name, filename, data, ctype in files:
        parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                      'Content-Type: %s\r\n\r\n' % (boundary, name, filename, ctype))
                     .encode('utf-8') + data + b'\r\n')
    parts.append(('--%s--\r\n' % boundary).encode('ascii'))
    return b''.join(parts), 'multipart/form-data; boundary=%s' % boundary


def error_detail(body: str) -> str:
    """Return the server's own words from an error body (JSON message/detail or text)."""
    text = (body or '').strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return ' '.join(text.split())[:300] or '(no body)'
    if isinstance(doc, dict):
        bits = []
        for key in ('message', 'detail', 'error', 'Exception', 'msg'):
            if key in doc:
                value = doc[key]
                if isinstance(value, list):  # FastAPI validation errors
                    value = '; '.join('%s: %s' % ('.'.join(str(x) for x in v.get('loc', ())),
                                                  v.get('msg', ''))
                                      if isinstance(v, dict) else str(v) for v in value)
                bits.append(str(value))
        if bits:
            return ' - '.join(bits)[:300]
    return json.dumps(doc, ensure_ascii=False)[:300]


def load_instruct_table(path: str = INSTRUCT_TABLE) -> Dict[str, Dict[str, str]]:
    """Read the CosyVoice instruct table: model version -> dialect label -> instruct text."""
    try:
        with open(path, 'r', encoding='utf-8') as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise TTSNotConfigured('cannot read the dialect instruct table %s: %s'
                               % (path, exc)) from None
    return {k: dict(v) for k, v in doc.items() if not k.startswith('_')}


def profile_fields(profile) -> Tuple[str, str, str]:
    """Return (wav path, transcript, language/dialect) of a voice profile object or dict."""
    def pick(*names):
        for name in names:
            if isinstance(profile, dict):
                value = profile.get(name)
            else:
                value = getattr(profile, name, None)
            if value:
                return str(value)
        return ''
    return (pick('wav_path', 'reference_wav', 'ref_audio_path', 'audio_path', 'wav', 'path'),
            pick('transcript', 'text', 'prompt_text', 'reference_text'),
            pick('dialect', 'language', 'lang'))


def common_params(base_url: str, timeout_s: float = 30.0,
                  max_ref_s: float = 30.0) -> Tuple[Param, ...]:
    """Parameters every HTTP cloning backend has."""
    return (
        Param('base_url', base_url, 'server URL (scheme://host:port); nothing else is contacted'),
        Param('timeout_s', timeout_s, 'seconds one sentence may take in all (connect, wait and '
              'every read of the streamed audio)', min=0.5, max=600.0),
        Param('connect_timeout_s', 3.0, 'seconds to connect to the server', min=0.1, max=60.0),
        Param('ref_audio_path', '', 'reference clip (WAV, >= 16 kHz) of the voice to clone'),
        Param('prompt_text', '', 'transcript of the reference clip'),
        Param('min_ref_s', 3.0, 'shortest accepted reference clip (s)', min=0.5, max=60.0),
        Param('max_ref_s', max_ref_s, 'longest accepted reference clip (s)', min=1.0, max=600.0),
        Param('max_chars', 300, 'longest sentence sent to the server (characters)',
              min=1, max=100000),
        Param('max_audio_mb', 64, 'largest response accepted (MiB)', min=1, max=1024),
        Param('dialects', '', 'comma-separated dialect labels this server speaks (empty: the '
              "backend's default)"),
    )


class HTTPCloneTTS(TTSBackend):
    """Base of the HTTP cloning backends: reference clip, request, streamed decoding."""

    name = 'http-clone'
    default_dialects: Tuple[str, ...] = ('mandarin',)
    # Rate the reference clip is uploaded at (None: its own rate).
    upload_rate: Optional[int] = 16000
    # Whether the backend needs a readable reference clip on this machine.
    needs_local_clip = True

    def __init__(self, base_url: str = '', timeout_s: float = 30.0,
                 connect_timeout_s: float = 3.0, ref_audio_path: str = '',
                 prompt_text: str = '', min_ref_s: float = 3.0, max_ref_s: float = 30.0,
                 max_chars: int = 300, max_audio_mb: int = 64, dialects: str = ''):
        self.base_url = base_url.rstrip('/')
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.ref_audio_path = ref_audio_path
        self.prompt_text = prompt_text
        self.min_ref_s = float(min_ref_s)
        self.max_ref_s = float(max_ref_s)
        self.max_chars = int(max_chars)
        self.max_bytes = int(max_audio_mb) * 1024 * 1024
        labels = tuple(d.strip() for d in dialects.split(',') if d.strip())
        self.dialects = labels or self.default_dialects
        self.clip: Optional[ReferenceClip] = None
        self.language = ''
        self._lock = threading.Lock()
        self._inflight: Set[threading.Event] = set()

    # -- configuration ------------------------------------------------------------------
    def load(self) -> None:
        from qwen_voice_ros.core.http import HTTPError, origin
        try:
            origin(self.base_url)
        except HTTPError as exc:
            raise TTSNotConfigured('%s: base_url: %s' % (self.name, exc)) from None
        if self.clip is None and (self.ref_audio_path or self.needs_local_clip):
            try:
                self.clip = self._load_clip(self.ref_audio_path, self.prompt_text, '')
            except TTSError as exc:
                raise TTSNotConfigured('%s: %s' % (self.name, exc)) from None

    def _load_clip(self, path: str, text: str, language: str) -> ReferenceClip:
        return ReferenceClip.load(path, text=text, language=language, min_s=self.min_ref_s,
                                  max_s=self.max_ref_s)

    def set_profile(self, profile) -> str:
        """Clone ``profile``'s voice from now on (None: back to the configured clip)."""
        if profile is None:
            path, text, language = self.ref_audio_path, self.prompt_text, ''
        else:
            path, text, language = profile_fields(profile)
        clip = self._load_clip(path, text, language)  # TTSError: the old voice stays
        with self._lock:
            self.clip, self.language = clip, language
        return '%s clones %s (%.1f s, %d Hz%s)' % (
            self.name, path, clip.duration_s, clip.sample_rate,
            ', %s' % language if language else '')

    # -- synthesis ----------------------------------------------------------------------
    def check_text(self, text: str) -> str:
        text = ' '.join((text or '').split())
        if not speakable(text):
            raise TTSError('nothing to speak in %r (only punctuation, symbols or emoji)'
                           % text[:40])
        if len(text) > self.max_chars:
            raise TTSError('sentence of %d characters is longer than max_chars=%d'
                           % (len(text), self.max_chars))
        return text

    def synthesize(self, text: str, dialect: Optional[str] = None) -> Speech:
        blocks, rate = [], 0
        for speech in self.synthesize_stream(text, dialect):
            blocks.append(speech.audio)
            rate = speech.sample_rate
        audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
        return Speech(audio=audio, sample_rate=rate)

    def synthesize_stream(self, text: str, dialect: Optional[str] = None,
                          cancel: Optional[threading.Event] = None,
                          min_block_s: float = 0.1) -> Iterator[Speech]:
        """
        Yield the sentence's audio in blocks as the server streams it (first block early).

        Every block is float32 mono at the server's rate.  Raises TTSError for anything that
        is not speech: server down, too slow (one ``timeout_s`` deadline), HTTP or JSON
        error, non-audio, empty or silent audio, a redirect to another host; and
        ``TTSError('... cancelled')`` when ``cancel`` is set or :meth:`abort` is called.
        """
        event = cancel if cancel is not None else threading.Event()
        with self._lock:
            self._inflight.add(event)
        try:
            for block in self._stream(text, dialect, event, min_block_s):
                yield block
        finally:
            with self._lock:
                self._inflight.discard(event)

    def abort(self) -> int:
        """Cancel every request in flight (barge-in); return how many there were."""
        with self._lock:
            events = list(self._inflight)
        for event in events:
            event.set()
        return len(events)

    def _stream(self, text: str, dialect: Optional[str], cancel: threading.Event,
                min_block_s: float) -> Iterator[Speech]:
        from qwen_voice_ros.core import http
        text = self.check_text(text)
        with self._lock:
            clip, language = self.clip, self.language
        method, url, body, headers, decoder = self.build_request(text, dialect, clip, language)
        started = time.monotonic()
        got, peak, pending = 0, 0.0, []
        try:
            resp = http.request(method, url, body=body, headers=headers,
                                timeout_s=self.timeout_s,
                                connect_timeout_s=self.connect_timeout_s, cancel=cancel,
                                max_bytes=self.max_bytes)
        except http.HTTPCancelled:
            raise TTSError('%s: cancelled' % self.name) from None
        except http.HTTPTimeout:
            raise TTSError('%s: no answer from %s within %.1f s'
                           % (self.name, self.base_url, self.timeout_s)) from None
        except http.RedirectRefused as exc:
            raise TTSError('%s: %s' % (self.name, exc)) from None
        except http.HTTPError as exc:
            if exc.status is not None:
                raise TTSError('%s: server error HTTP %d: %s'
                               % (self.name, exc.status, error_detail(exc.body))) from None
            raise TTSError('%s: server %s unreachable (%s)'
                           % (self.name, self.base_url, str(exc).split(': ', 1)[-1])) from None
        with resp:
            ctype = resp.content_type
            if ctype.startswith(('application/json', 'text/')):
                detail = ''
                try:
                    detail = resp.read_chunk(4000).decode('utf-8', errors='replace')
                except http.HTTPError:
                    pass
                raise TTSError('%s: server answered %s instead of audio: %s'
                               % (self.name, ctype, error_detail(detail)))
            try:
                while True:
                    data = resp.read_chunk()
                    if not data:
                        break
                    if got == 0 and not decoder.wav and looks_like_text(data):
                        raise TTSError('%s: server sent text, not audio: %s'
                                       % (self.name, error_detail(
                                           data[:300].decode('utf-8', 'replace'))))
                    audio = decoder.feed(data)
                    if audio.size:
                        got += audio.size
                        peak = max(peak, float(np.abs(audio).max()))
                        pending.append(audio)
                        if sum(len(a) for a in pending) >= min_block_s * decoder.sample_rate:
                            yield Speech(np.concatenate(pending), decoder.sample_rate)
                            pending = []
                tail = decoder.finish()
            except http.HTTPCancelled:
                raise TTSError('%s: cancelled' % self.name) from None
            except http.HTTPTimeout:
                raise TTSError('%s: audio from %s stalled; deadline of %.1f s passed after %.2f '
                               's of audio' % (self.name, self.base_url, self.timeout_s,
                                               got / float(decoder.sample_rate or 1))) from None
            except http.HTTPError as exc:
                raise TTSError('%s: %s' % (self.name, exc)) from None
            except TTSError as exc:
                if str(exc).startswith(self.name):
                    raise
                raise TTSError('%s: bad audio from server: %s' % (self.name, exc)) from None
        if tail.size:
            got += tail.size
            peak = max(peak, float(np.abs(tail).max()))
            pending.append(tail)
        if got == 0:
            raise TTSError('%s: server returned no audio for %r (%.2f s)'
                           % (self.name, text[:40], time.monotonic() - started))
        if peak < REPLY_SILENT_PEAK:
            raise TTSError('%s: server returned %.2f s of silence for %r'
                           % (self.name, got / float(decoder.sample_rate), text[:40]))
        if pending:
            yield Speech(np.concatenate(pending), decoder.sample_rate)

    def build_request(self, text: str, dialect: Optional[str], clip: Optional[ReferenceClip],
                      language: str):
        """Return (method, url, body, headers, PCMDecoder) for one sentence."""
        raise NotImplementedError
