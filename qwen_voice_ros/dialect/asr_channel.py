"""
A character channel learned from real ASR transcripts (build time only).

It makes typed training text noisy the way Whisper-base makes it; never imported at run time
on the robot.

Whisper writes a spoken dialect sentence back as Mandarin characters: 恰饭 -> 夹方, 侬 -> 农,
啥子 -> 傻子.  Measured on the transcripts of ``data/dialect/asr-train.jsonl`` (aligned by edit
distance), about 4 in 10 Han characters change and most changed ones keep their toneless
syllable.  ``AsrChannel`` learns from (typed sentence, transcript) pairs:

* per character, how often it was kept, replaced (by what) or dropped, smoothed towards the
  global rates so a character seen once does not get a rate of 0 or 1;
* which characters Whisper writes, and how often, grouped by folded syllable: a replacement
  never observed for a character is drawn from the characters Whisper writes for the same
  sound (fold level 1), else a near sound (fold level 2, or the same final).

``corrupt`` draws one noisy version of a typed sentence.  The typed rows of the classifier's
training pool get such copies (``training.with_channel_noise``), so the character n-gram
weights learn what survives ASR instead of the exact dialect spelling.
"""
from __future__ import annotations

import random
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .pinyin import fold_syllable, syllables

# Smoothing strength (pseudo-observations) of a character's own rates towards the global ones.
CHAR_PRIOR = 2.0
# Pseudo-observations before a character's observed replacements outweigh the sound pools.
SUB_PRIOR = 2.0
# Global rates when nothing was learned (no pairs): about what Whisper-base does here.
DEFAULT_SUB_RATE = 0.38
DEFAULT_DEL_RATE = 0.04
DEFAULT_HOMOPHONE_SHARE = 0.6


def _is_han(ch: str) -> bool:
    return '\u4e00' <= ch <= '\u9fff'


def _han_only(text: str) -> str:
    return ''.join(ch for ch in text if _is_han(ch))


def align(a: str, b: str) -> List[Tuple[str, str]]:
    """Levenshtein alignment of two strings: pairs (a char or '', b char or '')."""
    n, m = len(a), len(b)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        ai = a[i - 1]
        row, prev = d[i], d[i - 1]
        for j in range(1, m + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ai != b[j - 1]))
    i, j, out = n, m, []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            out.append((a[i - 1], b[j - 1]))
            i -= 1
            j -= 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            out.append((a[i - 1], ''))
            i -= 1
        else:
            out.append(('', b[j - 1]))
            j -= 1
    out.reverse()
    return out


def _syllable(ch: str) -> str:
    return syllables(ch, 0)[0]


def _final(syl: str) -> str:
    for initial in ('zh', 'ch', 'sh'):
        if syl.startswith(initial):
            return syl[2:]
    if syl and syl[0] in 'bpmfdtnlgkhjqxrzcsyw':
        return syl[1:]
    return syl


class AsrChannel(object):
    """Per-character keep / replace / drop model learned from (typed, transcript) pairs."""

    def __init__(self, pairs: Iterable[Tuple[str, ...]], level: int = 1):
        """``pairs``: (typed, transcript) or (typed, transcript, label) tuples."""
        self.level = level
        # Per label: [characters, changed or dropped]; Whisper garbles a Mandarin sentence
        # read as Mandarin far less than a dialect one (its language model fits it).
        self.label_errors: Dict[str, List[int]] = {}
        self.kept: Dict[str, int] = {}
        self.dropped: Dict[str, int] = {}
        self.replaced: Dict[str, Dict[str, int]] = {}
        written: Dict[str, int] = {}
        n_kept = n_sub = n_del = n_homo = 0
        for pair in pairs:
            typed, heard = pair[0], pair[1]
            label_errors = self.label_errors.setdefault(pair[2] if len(pair) > 2 else '', [0, 0])
            heard_han = _han_only(heard)
            for ch in heard_han:
                written[ch] = written.get(ch, 0) + 1
            for src, dst in align(_han_only(typed), heard_han):
                if not src:
                    continue
                label_errors[0] += 1
                label_errors[1] += src != dst
                if not dst:
                    self.dropped[src] = self.dropped.get(src, 0) + 1
                    n_del += 1
                elif src == dst:
                    self.kept[src] = self.kept.get(src, 0) + 1
                    n_kept += 1
                else:
                    subs = self.replaced.setdefault(src, {})
                    subs[dst] = subs.get(dst, 0) + 1
                    n_sub += 1
                    if self._key(src, level) == self._key(dst, level):
                        n_homo += 1
        total = n_kept + n_sub + n_del
        self.error_rate = (n_sub + n_del) / total if total else 0.0
        self.sub_rate = n_sub / total if total else DEFAULT_SUB_RATE
        self.del_rate = n_del / total if total else DEFAULT_DEL_RATE
        self.homophone_share = n_homo / n_sub if n_sub else DEFAULT_HOMOPHONE_SHARE
        # Sound pools: characters Whisper writes, by folded syllable and by final.
        self._pools: Dict[Tuple[str, str], List[Tuple[str, int]]] = {}
        for ch, count in sorted(written.items()):
            syl = _syllable(ch)
            for kind, key in (('l', fold_syllable(syl, level)), ('n', fold_syllable(syl, 2)),
                              ('f', _final(fold_syllable(syl, 2)))):
                self._pools.setdefault((kind, key), []).append((ch, count))
        self._sound: Dict[str, Tuple[str, str, str]] = {}

    @staticmethod
    def _key(ch: str, level: int) -> str:
        return fold_syllable(_syllable(ch), level)

    def _keys(self, ch: str) -> Tuple[str, str, str]:
        hit = self._sound.get(ch)
        if hit is None:
            syl = _syllable(ch)
            hit = (fold_syllable(syl, self.level), fold_syllable(syl, 2),
                   _final(fold_syllable(syl, 2)))
            self._sound[ch] = hit
        return hit

    def rates(self, ch: str) -> Tuple[float, float]:
        """(replace, drop) probability of one character, smoothed towards the global rates."""
        kept = self.kept.get(ch, 0)
        dropped = self.dropped.get(ch, 0)
        subs = sum(self.replaced.get(ch, {}).values())
        n = kept + dropped + subs + CHAR_PRIOR
        return ((subs + CHAR_PRIOR * self.sub_rate) / n,
                (dropped + CHAR_PRIOR * self.del_rate) / n)

    @staticmethod
    def _draw(options: Sequence[Tuple[str, int]], rng: random.Random,
              exclude: str) -> Optional[str]:
        options = [(c, w) for c, w in options if c != exclude]
        total = sum(w for _, w in options)
        if not total:
            return None
        r = rng.random() * total
        for c, w in options:
            r -= w
            if r <= 0:
                return c
        return options[-1][0]

    def replacement(self, ch: str, rng: random.Random) -> str:
        """Draw a character Whisper might write for ``ch`` (``ch`` itself when none is known)."""
        seen = self.replaced.get(ch)
        n_seen = sum(seen.values()) if seen else 0
        if seen and rng.random() < n_seen / (n_seen + SUB_PRIOR):
            return self._draw(list(seen.items()), rng, ch) or ch
        same, near, final = self._keys(ch)
        order = ([('l', same), ('n', near), ('f', final)]
                 if rng.random() < self.homophone_share else
                 [('n', near), ('f', final), ('l', same)])
        for kind, key in order:
            got = self._draw(self._pools.get((kind, key), ()), rng, ch)
            if got is not None:
                return got
        return ch

    def label_scale(self, label: str) -> float:
        """How much more (or less) than average Whisper garbles sentences of ``label``."""
        chars, errors = self.label_errors.get(label, (0, 0))
        if not self.error_rate:
            return 1.0
        rate = (errors + CHAR_PRIOR * 10 * self.error_rate) / (chars + CHAR_PRIOR * 10)
        return rate / self.error_rate

    def corrupt(self, text: str, rng: random.Random, scale: float = 1.0,
                label: str = '') -> str:
        """
        One noisy version of ``text``.

        ``scale`` multiplies the replace/drop rates; with ``label`` they are also scaled by
        ``label_scale(label)``.
        """
        if label:
            scale *= self.label_scale(label)
        out = []
        for ch in text:
            if _is_han(ch):
                sub, drop = self.rates(ch)
                r = rng.random()
                if r < drop * scale:
                    continue
                if r < (drop + sub) * scale:
                    ch = self.replacement(ch, rng)
            out.append(ch)
        return ''.join(out)
