"""
Next-token selection on a logits row (numpy only).

Processing order follows transformers' ``generate``: repetition penalty, then temperature,
top-k, top-p, min-p, then a draw from a seeded ``numpy.random.Generator``.  Greedy is the
arg-max after the repetition penalty, so it matches ``generate(do_sample=False)``.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np


class Sampler:
    """Pick tokens for one generation according to ``GenerationOptions``-like settings."""

    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                 min_p: float = 0.0, repetition_penalty: float = 1.0,
                 seed: Optional[int] = None) -> None:
        if temperature < 0.0 or not 0.0 < top_p <= 1.0 or top_k < 0 or not 0.0 <= min_p < 1.0:
            raise ValueError('bad sampling settings: temperature=%r top_p=%r top_k=%r min_p=%r'
                             % (temperature, top_p, top_k, min_p))
        if repetition_penalty <= 0.0:
            raise ValueError('repetition_penalty must be > 0')
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = int(top_k)
        self.min_p = float(min_p)
        self.repetition_penalty = float(repetition_penalty)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_options(cls, options) -> 'Sampler':
        return cls(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k,
                   min_p=options.min_p, repetition_penalty=options.repetition_penalty,
                   seed=options.seed)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def __call__(self, logits: np.ndarray, seen_ids: Iterable[int] = (),
                 banned_ids: Sequence[int] = ()) -> int:
        """
        Return the next token id for a 1-D ``logits`` row; ``seen_ids``: prompt+output.

        ``banned_ids`` (e.g. from :class:`NgramBlocker`) get -inf before anything else is
        decided, unless that would ban every token.
        """
        logits = np.asarray(logits, dtype=np.float32).reshape(-1)
        if len(banned_ids):
            logits = ban_tokens(logits, banned_ids)
        if self.repetition_penalty != 1.0:
            logits = apply_repetition_penalty(logits, seen_ids, self.repetition_penalty)
        if self.greedy:
            return int(np.argmax(logits))
        return self._sample(logits / self.temperature)

    def _sample(self, scores: np.ndarray) -> int:
        vocab = scores.shape[0]
        # Work on a candidate subset: top-k if set, else grow until it covers top-p.
        k = self.top_k if 0 < self.top_k < vocab else vocab
        if k < vocab:
            cand = np.argpartition(-scores, k - 1)[:k]
        else:
            cand = None
        if cand is None and self.top_p < 1.0:
            cand = _nucleus_candidates(scores, self.top_p)
        if cand is None:
            cand = np.arange(vocab)
        cand_scores = scores[cand].astype(np.float64)
        order = np.argsort(-cand_scores, kind='stable')
        cand, cand_scores = cand[order], cand_scores[order]
        # Normalise over the full vocabulary so top-p/min-p see the true probabilities.
        full_max = float(np.max(scores))
        full_z = float(np.sum(np.exp(scores.astype(np.float64) - full_max)))
        if self.top_k > 0:
            # transformers applies top-k first: later filters see the renormalised top-k.
            full_z = float(np.sum(np.exp(cand_scores - full_max)))
        probs = np.exp(cand_scores - full_max) / full_z
        keep = np.ones(len(cand), dtype=bool)
        if self.top_p < 1.0:
            cum = np.cumsum(probs)
            # Keep the smallest prefix whose mass reaches top_p (always at least one token).
            cut = int(np.searchsorted(cum, self.top_p, side='left')) + 1
            keep[cut:] = False
        if self.min_p > 0.0:
            keep &= probs >= self.min_p * probs[0]
        keep[0] = True
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum()
        return int(cand[int(self.rng.choice(len(cand), p=probs))])


class NgramBlocker:
    """
    Forbid the output to repeat any ``n``-gram of a source token sequence (the request).

    Like transformers' ``encoder_no_repeat_ngram_size``: when the last ``n - 1`` generated
    tokens equal ``n - 1`` consecutive source tokens, the source token that followed them
    is banned next.  ``n == 1`` bans every source token.  Stop and control tokens in
    ``exempt`` are never banned.
    """

    def __init__(self, source_ids: Sequence[int], n: int,
                 exempt: Iterable[int] = ()) -> None:
        if n < 1:
            raise ValueError('n-gram size must be >= 1')
        self.n = int(n)
        skip = set(int(i) for i in exempt)
        source = [int(i) for i in source_ids]
        self._next: Dict[Tuple[int, ...], Set[int]] = {}
        for start in range(len(source) - self.n + 1):
            gram = source[start:start + self.n]
            if gram[-1] in skip:
                continue
            self._next.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def banned(self, generated: Sequence[int]) -> List[int]:
        """Token ids that may not follow ``generated`` (the reply so far)."""
        k = self.n - 1
        if k == 0:
            return sorted(self._next.get((), ()))
        if len(generated) < k:
            return []
        return sorted(self._next.get(tuple(int(i) for i in generated[-k:]), ()))


def ban_tokens(logits: np.ndarray, banned_ids: Sequence[int]) -> np.ndarray:
    """``logits`` with ``banned_ids`` set to -inf (a copy); unchanged if all would go."""
    ids = np.asarray(list(banned_ids), dtype=np.int64)
    ids = ids[(ids >= 0) & (ids < logits.shape[0])]
    if ids.size == 0 or ids.size >= logits.shape[0]:
        return logits
    out = logits.copy()
    out[ids] = -np.inf
    return out


def apply_repetition_penalty(logits: np.ndarray, seen_ids: Iterable[int],
                             penalty: float) -> np.ndarray:
    """CTRL-style penalty as in transformers: divide positive, multiply negative logits."""
    ids = np.unique(np.fromiter((int(i) for i in seen_ids), dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < logits.shape[0])]
    if ids.size == 0:
        return logits
    out = logits.copy()
    picked = out[ids]
    out[ids] = np.where(picked > 0, picked / penalty, picked * penalty)
    return out


def _nucleus_candidates(scores: np.ndarray, top_p: float) -> Optional[np.ndarray]:
    """Smallest top-k set (k doubling) whose probability mass reaches ``top_p``."""
    vocab = scores.shape[0]
    shifted = np.exp(scores.astype(np.float64) - float(np.max(scores)))
    total = float(shifted.sum())
    k = 64
    while k < vocab:
        cand = np.argpartition(-scores, k - 1)[:k]
        if float(shifted[cand].sum()) / total >= top_p:
            return cand
        k *= 4
    return None


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
