"""
Voice profiles: the voice to speak with, given as a reference clip and what it says.

A profile is a reference WAV, its transcript and its language/dialect.  The ``voice_profile``
parameter of the tts node names either a WAV file (its transcript, if any, in a ``.txt`` next
to it) or a YAML/JSON file::

    name: guide
    wav: guide.wav            # relative to this file
    transcript: 欢迎来到展厅，我是今天的讲解员。
    language: zh
    dialect: mandarin         # or cantonese, sichuanese, ... (picks the backend/voice)

:func:`load_reference` reads and checks the clip: a clip that is too short, silent or not a
readable PCM WAV is refused with the reason; another sample rate is resampled (16 kHz for the
speaker embedder), never refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional, Tuple

import numpy as np

from qwen_voice_ros.tts.base import TTSError

MIN_REFERENCE_S = 1.0     # the d-vector needs ~0.8 s (one 80-frame window); ask for more
MAX_REFERENCE_S = 120.0
SILENT_DBFS = -50.0       # loudest 100 ms window below this: no voice in the clip


class ProfileError(TTSError):
    """The voice profile or its reference clip cannot be used (the old voice stays)."""


@dataclasses.dataclass(frozen=True)
class VoiceProfile:
    """Reference clip + transcript + language/dialect (field names the HTTP backends read)."""

    wav_path: str
    transcript: str = ''
    language: str = 'zh'
    dialect: str = 'mandarin'
    name: str = ''

    def digest(self) -> str:
        """sha256 of the reference clip's bytes (the cache key of a matched voice)."""
        h = hashlib.sha256()
        try:
            with open(self.wav_path, 'rb') as f:
                for block in iter(lambda: f.read(1 << 20), b''):
                    h.update(block)
        except OSError as exc:
            raise ProfileError('reference clip %s: %s' % (self.wav_path, exc.strerror or exc)) \
                from None
        return h.hexdigest()


def load_profile(path: str) -> Optional[VoiceProfile]:
    """Read ``path`` (a .wav, .yaml/.yml or .json profile); '' means no profile (None)."""
    path = (path or '').strip()
    if not path:
        return None
    if not os.path.isfile(path):
        raise ProfileError('voice profile %s not found' % path)
    ext = os.path.splitext(path)[1].lower()
    if ext == '.wav':
        transcript = ''
        sidecar = os.path.splitext(path)[0] + '.txt'
        if os.path.isfile(sidecar):
            with open(sidecar, encoding='utf-8') as f:
                transcript = f.read().strip()
        return VoiceProfile(wav_path=os.path.abspath(path), transcript=transcript,
                            name=os.path.splitext(os.path.basename(path))[0])
    try:
        with open(path, encoding='utf-8') as f:
            if ext == '.json':
                doc = json.load(f)
            elif ext in ('.yaml', '.yml'):
                import yaml
                doc = yaml.safe_load(f)
            else:
                raise ProfileError('voice profile %s: use a .wav, .yaml or .json file' % path)
    except (ValueError, OSError) as exc:
        raise ProfileError('voice profile %s: %s' % (path, exc)) from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise ProfileError('voice profile %s: %s' % (path, exc)) from None
    if not isinstance(doc, dict):
        raise ProfileError('voice profile %s: expected a mapping with wav, transcript, '
                           'language, dialect' % path)
    wav = str(doc.get('wav') or doc.get('wav_path') or doc.get('reference') or '')
    if not wav:
        raise ProfileError('voice profile %s: no "wav" (reference clip) given' % path)
    if not os.path.isabs(wav):
        wav = os.path.join(os.path.dirname(os.path.abspath(path)), wav)
    return VoiceProfile(wav_path=wav, transcript=str(doc.get('transcript') or ''),
                        language=str(doc.get('language') or 'zh'),
                        dialect=str(doc.get('dialect') or 'mandarin'),
                        name=str(doc.get('name') or os.path.splitext(os.path.basename(path))[0]))


def loudest_dbfs(audio: np.ndarray, rate: int, window_s: float = 0.1) -> float:
    """Level of the loudest ``window_s`` window in dBFS (-inf for digital silence)."""
    n = max(1, int(rate * window_s))
    if len(audio) < n:
        n = len(audio)
    if n == 0:
        return float('-inf')
    usable = audio[:len(audio) // n * n].astype(np.float64).reshape(-1, n)
    rms = float(np.sqrt((usable ** 2).mean(axis=1)).max())
    return 20.0 * np.log10(rms) if rms > 0 else float('-inf')


def check_reference(audio: np.ndarray, rate: int, name: str = 'reference clip',
                    min_s: float = MIN_REFERENCE_S, max_s: float = MAX_REFERENCE_S) -> None:
    """Raise ProfileError if the clip is too short, too long, silent or not finite."""
    duration = len(audio) / float(rate) if rate else 0.0
    if duration < min_s:
        raise ProfileError('%s is too short: %.2f s (need >= %.1f s of speech)'
                           % (name, duration, min_s))
    if duration > max_s:
        raise ProfileError('%s is too long: %.1f s (at most %.0f s; cut a clean part)'
                           % (name, duration, max_s))
    if not np.all(np.isfinite(audio)):
        raise ProfileError('%s has NaN/inf samples' % name)
    level = loudest_dbfs(audio, rate)
    if level < SILENT_DBFS:
        raise ProfileError('%s is silent (loudest 100 ms at %.0f dBFS)' % (name, level))


def load_reference(profile: VoiceProfile, rate: int = 16000,
                   min_s: float = MIN_REFERENCE_S) -> Tuple[np.ndarray, int]:
    """Return (float32 mono at ``rate``, the file's own rate), checked; raise ProfileError."""
    from qwen_voice_ros.audio.pcm import resample
    from qwen_voice_ros.audio.wavfile import read_wav
    name = 'reference clip %s' % os.path.basename(profile.wav_path)
    try:
        audio, file_rate = read_wav(profile.wav_path)
    except FileNotFoundError:
        raise ProfileError('%s not found' % name) from None
    except Exception as exc:  # wave.Error, EOFError, AudioFormatError, ...
        raise ProfileError('%s is not a readable PCM WAV: %s' % (name, exc)) from None
    if not 4000 <= file_rate <= 192000:
        raise ProfileError('%s has an unusable sample rate %d Hz' % (name, file_rate))
    check_reference(audio, file_rate, name, min_s=min_s)
    return resample(audio, file_rate, rate).astype(np.float32), file_rate


def check_profile(path: str) -> Tuple[Optional[VoiceProfile], str]:
    """Load and check the profile at ``path``: (profile or None, '' or why it is refused)."""
    try:
        profile = load_profile(path)
        if profile is not None:
            load_reference(profile)
        return profile, ''
    except ProfileError as exc:
        return None, str(exc)
