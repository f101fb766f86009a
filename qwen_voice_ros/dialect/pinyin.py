"""
Toneless pinyin features: what survives when ASR writes a dialect word as a homophone.

Whisper hears a dialect word and writes a Mandarin word that sounds the same (额 -> 俄/饿,
恁 -> 嫩, 啥子 -> 傻子): the characters change, the sound does not.  ``syllables`` turns
normalised text into one toneless pinyin syllable per Han character (pypinyin, imported lazily),
optionally folded so near-homophones meet (``FOLD_LEVELS``).  ``PinyinLexicon`` matches the marker
lexicon's multi-character literals on those syllables, so 傻子 fires the 啥子 entry.
"""
from __future__ import annotations

import threading
from typing import Dict, List, Optional, Sequence, Tuple

from .markers import MarkerEntry

# 0: toneless pinyin.  1: + merges a southern accent or a homophone guess makes (zh/z, ch/c,
# sh/s, l/n, -ng/-n).  2: + aspiration (p/b, t/d, k/g, q/j, c/z, ch/zh).
FOLD_LEVELS = (0, 1, 2)
BOUNDARY = ' '

_lock = threading.Lock()
_lazy_pinyin = None
_cache: Dict[Tuple[str, int], Tuple[str, ...]] = {}
_CACHE_MAX = 20000


def _load():
    global _lazy_pinyin
    if _lazy_pinyin is None:
        with _lock:
            if _lazy_pinyin is None:
                try:
                    from pypinyin import Style, lazy_pinyin
                except ImportError as exc:
                    raise ImportError(
                        'the dialect model uses pinyin features and needs the pypinyin '
                        'package (pip install pypinyin): %s' % exc) from None

                def convert(text):
                    return lazy_pinyin(text, style=Style.NORMAL,
                                       errors=lambda run: ['?'] * len(run))
                _lazy_pinyin = convert
    return _lazy_pinyin


def fold_syllable(syl: str, level: int) -> str:
    """Fold one toneless syllable (``level`` as in ``FOLD_LEVELS``)."""
    if level <= 0 or not syl or not syl.isalpha():
        return syl
    if level >= 2:
        for src, dst in (('ch', 'z'), ('zh', 'z'), ('p', 'b'), ('t', 'd'), ('k', 'g'),
                         ('q', 'j'), ('c', 'z')):
            if syl.startswith(src):
                syl = dst + syl[len(src):]
                break
    for src, dst in (('zh', 'z'), ('ch', 'c'), ('sh', 's'), ('l', 'n')):
        if syl.startswith(src):
            syl = dst + syl[len(src):]
            break
    if syl.endswith('ng') and len(syl) > 2:
        syl = syl[:-1]
    return syl


def syllables(text: str, level: int = 0) -> Tuple[str, ...]:
    """
    One folded toneless syllable per Han character of normalised ``text``.

    A space (phrase boundary) becomes ``BOUNDARY``; any other non-Han character ``?``.
    """
    key = (text, level)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    convert = _load()
    out: List[str] = []
    for i, phrase in enumerate(text.split(' ')):
        if i:
            out.append(BOUNDARY)
        if phrase:
            out.extend(fold_syllable(s, level) for s in convert(phrase))
    result = tuple(out)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key] = result
    return result


def syllable_ngrams(syls: Sequence[str], orders: Sequence[int]) -> set:
    """Syllable n-grams (joined with '_') over the sequence padded with boundaries."""
    padded = (BOUNDARY,) + tuple(syls) + (BOUNDARY,)
    grams = set()
    for n in orders:
        for i in range(len(padded) - n + 1):
            piece = padded[i:i + n]
            if n > 1 or piece[0] != BOUNDARY:
                grams.add('_'.join(piece))
    return grams


class PinyinLexicon(object):
    """Marker entries with >= 2 characters, matched on folded syllables."""

    def __init__(self, entries: Sequence[MarkerEntry], level: int = 0):
        self.level = level
        self._by_first: Dict[str, List[Tuple[MarkerEntry, Tuple[str, ...]]]] = {}
        self.size = 0
        for entry in entries:
            if len(entry.literal) < 2:
                continue
            syls = syllables(entry.literal, level)
            if '?' in syls or BOUNDARY in syls:
                continue
            self._by_first.setdefault(syls[0], []).append((entry, syls))
            self.size += 1

    def matches(self, syls: Sequence[str]) -> List[MarkerEntry]:
        """Entries whose syllables occur in ``syls`` (each entry once)."""
        found = []
        seen = set()
        n = len(syls)
        for i, syl in enumerate(syls):
            for entry, pattern in self._by_first.get(syl, ()):
                if entry.key in seen:
                    continue
                m = len(pattern)
                if i + m <= n and tuple(syls[i:i + m]) == pattern:
                    seen.add(entry.key)
                    found.append(entry)
        return found


def pinyin_features(text: str, plex: PinyinLexicon, orders: Sequence[int],
                    regex_scale: float = 0.5) -> Dict[str, float]:
    """
    ``p:`` syllable n-grams, ``q:`` firing pinyin markers and ``f:`` their evidence per label.

    A pinyin marker counts only where its characters are absent (a homophone was written).

    An entry with a regex (a context condition on the characters) counts ``regex_scale`` of its
    weight, since its condition cannot be checked on sound alone.
    """
    syls = syllables(text, plex.level)
    feats: Dict[str, float] = {'p:' + g: 1.0 for g in syllable_ngrams(syls, orders)}
    totals: Dict[str, float] = {}
    for entry in plex.matches(syls):
        if entry.literal in text:
            # The characters are there: the character matcher (and its regex, which knows
            # 阿拉伯 is not 阿拉) has decided; sound only stands in for changed characters.
            continue
        feats['q:' + entry.key] = 1.0
        scale = regex_scale if entry.regex is not None else 1.0
        for label, weight in entry.weights.items():
            totals[label] = totals.get(label, 0.0) + weight * scale
    for label, value in totals.items():
        feats['f:' + label] = min(value, 9.0) / 3.0
    return feats


def optional_level(value) -> Optional[int]:
    """Model-file value -> fold level, or None when the model has no pinyin features."""
    level = int(value)
    return None if level < 0 else level
