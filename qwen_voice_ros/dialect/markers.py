r"""
Hand-written dialect marker lexicon and the marker baseline.

The lexicon lives in ``data/markers.tsv`` (``literal<TAB>weights<TAB>regex``): an entry fires
when ``literal`` occurs in the normalised text and, if a regex is given, the regex matches there;
the regex's look-arounds exclude the standard-Mandarin look-alikes (阿拉伯, 伊朗, 中午, 整理, 金额,
香港, 淘汰 ...).  Weights are rough evidence strengths: 3 = unambiguous dialect word, ~1.5 =
typical but shared or with a standard reading, <1 = weak.  Entries are matched on simplified,
punctuation-free text (``normalize_text``), so ``\s`` or ``$`` stand for a phrase boundary.
"""
from __future__ import annotations

import math
import os
import re
from typing import Dict, List, Optional, Tuple

DIALECT_LABELS = ('mandarin', 'sichuanese', 'cantonese', 'shanghainese', 'northeastern',
                  'henan', 'hunan', 'shaanxi')
LEXICON_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'markers.tsv')


class MarkerEntry(object):
    """One lexicon entry: a literal prefilter, an optional regex and per-label weights."""

    __slots__ = ('literal', 'regex', 'weights', 'key')

    def __init__(self, literal: str, regex: Optional[str], weights: Dict[str, float]):
        self.literal = literal
        self.regex = re.compile(regex) if regex else None
        self.weights = weights
        self.key = literal if regex is None else literal + '~' + regex

    def count(self, text: str) -> int:
        """Occurrences in ``text`` (0 when the entry does not fire)."""
        if self.literal not in text:
            return 0
        if self.regex is None:
            return text.count(self.literal)
        return len(self.regex.findall(text))


def parse_lexicon(spec: Optional[str] = None) -> List[MarkerEntry]:
    """
    Entries of a lexicon in the ``markers.tsv`` format (None: the shipped lexicon).

    Raises ValueError on a malformed line, an unknown label or a repeated (literal, regex) pair
    (a repeated entry would count its evidence twice).
    """
    if spec is None:
        return list(default_entries())
    entries = []
    seen = set()
    for lineno, line in enumerate(spec.splitlines(), 1):
        line = line.rstrip('\r\n')
        if not line.strip() or line.startswith('#'):
            continue
        parts = line.split('\t')
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError('lexicon line %d: want literal<TAB>weights[<TAB>regex], got %r'
                             % (lineno, line))
        weights = {}
        for item in parts[1].split(','):
            label, _, value = item.partition(':')
            if label not in DIALECT_LABELS[1:]:
                raise ValueError('lexicon line %d: unknown label %r' % (lineno, label))
            weights[label] = float(value)
        regex = parts[2] if len(parts) > 2 and parts[2] else None
        entry = MarkerEntry(parts[0], regex, weights)
        if entry.key in seen:
            raise ValueError('lexicon line %d: %r repeats an earlier entry' % (lineno, entry.key))
        seen.add(entry.key)
        entries.append(entry)
    return entries


_DEFAULT_ENTRIES: Optional[List[MarkerEntry]] = None


def default_entries(path: str = LEXICON_PATH) -> List[MarkerEntry]:
    """Entries of the shipped lexicon (parsed once)."""
    global _DEFAULT_ENTRIES
    if path != LEXICON_PATH:
        with open(path, encoding='utf-8') as handle:
            return parse_lexicon(handle.read())
    if _DEFAULT_ENTRIES is None:
        with open(path, encoding='utf-8') as handle:
            _DEFAULT_ENTRIES = parse_lexicon(handle.read())
    return _DEFAULT_ENTRIES


class MarkerLexicon(object):
    """Scores normalised text against the lexicon; also yields the firing entries."""

    def __init__(self, entries: Optional[List[MarkerEntry]] = None):
        self.entries = entries if entries is not None else default_entries()
        # Index entries by first literal character so a sentence only tests plausible entries.
        self._by_char: Dict[str, List[MarkerEntry]] = {}
        for entry in self.entries:
            self._by_char.setdefault(entry.literal[0], []).append(entry)

    def matches(self, text: str) -> List[Tuple[MarkerEntry, int]]:
        """Entries firing in ``text`` with their counts."""
        found = []
        for ch in set(text):
            for entry in self._by_char.get(ch, ()):
                n = entry.count(text)
                if n:
                    found.append((entry, n))
        return found

    def evidence(self, text: str) -> Dict[str, float]:
        """Sum the marker weight per dialect label (counts saturate: 1 + log n)."""
        totals: Dict[str, float] = {}
        for entry, n in self.matches(text):
            scale = 1.0 + math.log(n)
            for label, weight in entry.weights.items():
                totals[label] = totals.get(label, 0.0) + weight * scale
        return totals


def marker_probabilities(evidence: Dict[str, float], mandarin_prior: float = 1.0,
                         sharpness: float = 1.6) -> List[float]:
    """Softmax over labels: mandarin gets a fixed score, each dialect its marker evidence."""
    logits = [mandarin_prior * sharpness]
    for label in DIALECT_LABELS[1:]:
        logits.append(evidence.get(label, 0.0) * sharpness)
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [v / total for v in exps]
