"""
How well the project's ASR understands Kokoro: text -> TTS -> Whisper-base -> CER.

Used three ways: ``bench/tts_round_trip.py`` measures every shipped voice x speed on
``data/tts/round_trip_zh.txt``; ``test/test_tts_kokoro.py`` asserts the default voice's CER;
voice matching (:mod:`.voice_match`) rejects a matched voice whose CER on a few sentences is
worse than the best single voice's by more than a margin (the intelligibility constraint).

The recogniser is the hearing node's own backend with its defaults (``FasterWhisperASR()``:
offline Whisper-base pack, int8, beam 1, temperature fallback), so a figure here is what the
robot's own ears would make of the robot's voice.  CER = edit distance / reference characters
after ``asr.textnorm.normalize_for_cer`` on both sides (the same as ``qwen-voice-asr-eval``).
The text is normalised with ``tts.text_norm.normalize`` before synthesis, as the tts node does,
and the reference is that spoken text (see :func:`row`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import List, Optional, Sequence

import numpy as np

DATA_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'data', 'tts', 'round_trip_zh.txt')


def read_texts(path: str = '') -> List[str]:
    """Non-empty, non-comment lines of a UTF-8 text file (default: the round-trip set)."""
    with open(path or DATA_FILE, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


@dataclasses.dataclass
class Row:
    text: str
    heard: str
    errors: float     # an int, or the mean over seeded decodes (RoundTrip.hear)
    chars: int


@dataclasses.dataclass
class Score:
    """Character errors over a set of sentences (CER = errors / chars)."""

    rows: List[Row]

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rows)

    @property
    def chars(self) -> int:
        return sum(r.chars for r in self.rows)

    @property
    def cer(self) -> float:
        return self.errors / max(1, self.chars)


# Whisper writes a clock time it heard as 十点三十分 as "10.30分" or "10:30"; read as a time,
# not as the decimal 十点三零 (which would count two errors the voice did not make).
_HEARD_TIME = re.compile(r'(\d{1,2})[.:：](\d{2})(?=分)|(\d{1,2})[:：](\d{2})(?!\d)')


def _heard_time(match) -> str:
    if match.group(1):
        return '%s点%s' % (match.group(1), match.group(2))
    return '%s点%s分' % (match.group(3), match.group(4))


def row(text: str, heard: str, normalize_text: bool = True) -> Row:
    """
    Score one sentence: the reference is what the TTS was asked to say.

    With ``normalize_text`` that is ``tts.text_norm.normalize(text)`` (2.5km -> 二点五公里),
    as the tts node speaks it; scoring against the raw text would count the unit words the
    voice said correctly as errors.  Both sides then go through ``normalize_for_cer``.
    """
    from qwen_voice_ros.asr.textnorm import edit_distance, normalize_for_cer
    from qwen_voice_ros.tts.text_norm import normalize
    ref = normalize_for_cer(normalize(text) if normalize_text else text)
    hyp = normalize_for_cer(_HEARD_TIME.sub(_heard_time, heard or ''))
    return Row(text=text, heard=heard, errors=edit_distance(ref, hyp), chars=len(ref))


class SpeechCache:
    """
    Synthesised 16 kHz audio on disk, keyed by everything that changes it.

    The key is the sha256 of the phoneme ids the model is fed (so G2P options are in it), the
    style array, the speed, the synthesis options (``clause_split``...) and the model file's
    name and size.  Synthesis is about half of a round trip's CPU time; with the cache an
    ASR-side experiment (beam, prompt) or a re-score costs only recognition.
    """

    def __init__(self, directory: str):
        self.directory = os.path.expanduser(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def key(self, tts, spoken: str, style: np.ndarray, speed: float) -> str:
        h = hashlib.sha256()
        h.update(np.asarray(tts.token_ids(tts.phonemes(spoken)), np.int64).tobytes())
        h.update(np.ascontiguousarray(style, np.float32).tobytes())
        h.update(('%.4f|%s|%s' % (speed, sorted(tts.synthesis_options().items()),
                                  tts.model_id())).encode('utf-8'))
        return h.hexdigest()[:32]

    def get(self, key: str) -> Optional[np.ndarray]:
        path = os.path.join(self.directory, key + '.npy')
        try:
            audio = np.load(path)
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return audio.astype(np.float32) / 32767.0

    def put(self, key: str, audio: np.ndarray) -> np.ndarray:
        """Store ``audio`` as int16 and return what a later :meth:`get` will return."""
        path = os.path.join(self.directory, key + '.npy')
        tmp = path + '.%d.tmp' % os.getpid()
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        with open(tmp, 'wb') as f:   # int16: half the disk (and what the robot's mic gives)
            np.save(f, pcm)
        os.replace(tmp, path)
        # the int16 copy, not the float original: Whisper is not robust to that difference
        # (jf_nezumi on the eval file: 0.129 float, 0.166 int16), so a cache hit and a miss
        # must score the same audio
        return pcm.astype(np.float32) / 32767.0


class RoundTrip:
    """Synthesise with a Kokoro backend, transcribe with the project's ASR, count errors."""

    def __init__(self, tts, asr=None, normalize_text: bool = True, cache_dir: str = ''):
        self.tts = tts
        self.asr = asr
        self.normalize_text = normalize_text
        self.cache = SpeechCache(cache_dir) if cache_dir else None

    def load(self) -> 'RoundTrip':
        if self.asr is None:
            from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR
            self.asr = FasterWhisperASR()
        if getattr(self.asr, 'model', True) is None:
            self.asr.load()
        return self

    def hear(self, text: str, style: Optional[np.ndarray] = None,
             speed: Optional[float] = None, seeds: int = 0) -> Row:
        """
        Synthesise and transcribe one sentence.

        ``seeds`` > 0: transcribe the same audio that many times with CTranslate2's random
        seed set to 0, 1, ... and count the mean errors.  Whisper's temperature fallback samples,
        so one unseeded decode of a clip can cost 2 errors one run and 16 (a loop) the next;
        seeded decodes make a comparison of two voices depend on the voices only.
        """
        from qwen_voice_ros.tts.text_norm import normalize
        spoken = normalize(text) if self.normalize_text else text
        audio = self.speech16k(spoken, style, speed)
        if seeds <= 0:
            return row(text, self.asr.transcribe(audio), self.normalize_text)
        import ctranslate2
        rows = []
        for seed in range(seeds):
            ctranslate2.set_random_seed(seed)
            rows.append(row(text, self.asr.transcribe(audio), self.normalize_text))
        mean = sum(r.errors for r in rows) / float(seeds)
        return Row(text=text, heard=' | '.join(r.heard for r in rows), errors=mean,
                   chars=rows[0].chars)

    def speech16k(self, spoken: str, style: Optional[np.ndarray] = None,
                  speed: Optional[float] = None) -> np.ndarray:
        """Return the backend's audio for ``spoken`` at 16 kHz (from the cache when it has it)."""
        from qwen_voice_ros.audio.pcm import resample
        key = None
        if self.cache is not None:
            key = self.cache.key(self.tts, spoken, self.tts.style if style is None else style,
                                 self.tts.speed if speed is None else float(speed))
            audio = self.cache.get(key)
            if audio is not None:
                return audio
        speech = self.tts.synthesize(spoken, style=style, speed=speed)
        audio = resample(speech.audio, speech.sample_rate, 16000)
        if key is not None:
            audio = self.cache.put(key, audio)
        return audio

    def score(self, texts: Sequence[str], style: Optional[np.ndarray] = None,
              speed: Optional[float] = None, progress=None, seeds: int = 0) -> Score:
        rows = []
        for text in texts:
            rows.append(self.hear(text, style=style, speed=speed, seeds=seeds))
            if progress is not None:
                progress(rows[-1])
        return Score(rows)


__all__ = ['DATA_FILE', 'RoundTrip', 'Row', 'Score', 'SpeechCache', 'read_texts', 'row']
