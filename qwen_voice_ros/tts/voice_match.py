"""
Voice matching for Kokoro: the blend of shipped voice vectors that sounds most like a clip.

Kokoro conditions on a style vector; blends (weighted sums) of the shipped vectors are voices
too.  :func:`search` looks for the weights that maximise the speaker-embedding cosine between
the reference clip and Kokoro's output, within a budget of ``tries`` syntheses: every single
voice first (the baseline), then blends of the best ones, then random steps around the best
blend with a shrinking step size (weights stay on the simplex: non-negative, sum 1).  The
score is measured, not predicted: each try synthesises the probe text and embeds it with the
same d-vector embedder.

:func:`match_profile` caches the result per profile on disk, keyed by the sha256 of the
reference clip, the voices searched, the probe text and the budget, so a restart or a switch
back to a known profile costs nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

PROBE_TEXT = '今天天气很好，我们一起去公园散步吧。请问有什么可以帮您？'
Weights = Dict[str, float]


@dataclasses.dataclass
class MatchResult:
    """Best blend found, its similarity, and the best single voice (the baseline)."""

    weights: Weights
    similarity: float
    baseline_voice: str
    baseline_similarity: float
    singles: Dict[str, float]
    tries: int
    cached: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _project(weights: Sequence[float], floor: float = 0.0) -> List[float]:
    """Clip to >= ``floor`` and renormalise to sum 1 (degenerate -> uniform)."""
    clipped = [max(floor, w) for w in weights]
    total = sum(clipped)
    if total <= 0.2:
        return [1.0 / len(clipped)] * len(clipped)
    return [w / total for w in clipped]


def search(score: Callable[[Weights], float], names: Sequence[str], tries: int = 24,
           seed: int = 0, floor: float = 0.0
           ) -> Tuple[Weights, float, Dict[str, float], List[Tuple[Weights, float]]]:
    """
    Maximise ``score(weights)`` over blends of ``names`` with at most ``tries`` calls.

    Weights sum to 1 and stay >= ``floor``: 0 keeps blends inside the shipped voices;
    a negative floor lets the search extrapolate away from voices unlike the reference
    (more similar, less clear: see docs/tts.md).

    Returns (best weights, best score, score of each single voice, every (weights, score)).
    """
    names = list(names)
    rng = random.Random(seed)
    history: List[Tuple[Weights, float]] = []

    def evaluate(vector: Sequence[float]) -> float:
        weights = {n: w for n, w in zip(names, _project(vector, floor)) if abs(w) > 1e-4}
        value = float(score(weights))
        history.append((weights, value))
        return value

    singles: Dict[str, float] = {}
    for i, name in enumerate(names):
        if len(history) >= tries:
            break
        singles[name] = evaluate([1.0 if j == i else 0.0 for j in range(len(names))])
    order = sorted(singles, key=singles.get, reverse=True)
    best_vec = [1.0 if n == order[0] else 0.0 for n in names]
    best = singles[order[0]]
    # Blends of the leaders: softmax over single scores, then the top-2 and top-3 mixes.
    seeds: List[List[float]] = []
    if len(order) >= 2 and len(singles) == len(names):
        top = np.array([singles[n] for n in names])
        soft = np.exp((top - top.max()) / 0.03)
        seeds.append(list(soft / soft.sum()))
        seeds.append([0.6 if n == order[0] else 0.4 if n == order[1] else 0.0 for n in names])
    if len(order) >= 3:
        seeds.append([0.5 if n == order[0] else 0.3 if n == order[1] else
                      0.2 if n == order[2] else 0.0 for n in names])
    for vector in seeds:
        if len(history) >= tries:
            break
        value = evaluate(vector)
        if value > best:
            best, best_vec = value, _project(vector, floor)
    step = 0.25
    while len(history) < tries:
        direction = [rng.gauss(0.0, 1.0) for _ in names]
        mean = sum(direction) / len(direction)
        candidate = _project([b + step * (d - mean) for b, d in zip(best_vec, direction)],
                             floor)
        value = evaluate(candidate)
        if value > best:
            best, best_vec = value, candidate
        else:
            step = max(0.04, step * 0.85)
    best_weights = {n: w for n, w in zip(names, _project(best_vec, floor)) if abs(w) > 1e-4}
    return best_weights, best, singles, history


class KokoroScorer:
    """Score a blend: synthesise the probe text with it, cosine to the reference d-vector."""

    def __init__(self, tts, embedder, reference: np.ndarray,
                 texts: Sequence[str] = (PROBE_TEXT,)):
        self.tts, self.embedder, self.texts = tts, embedder, list(texts)
        self.reference = reference

    def audio(self, weights: Weights, text: str):
        from qwen_voice_ros.tts.kokoro import blend
        return self.tts.synthesize(text, style=blend(self.tts.voices, weights))

    def __call__(self, weights: Weights) -> float:
        from qwen_voice_ros.speaker.embedder import cosine
        values = []
        for text in self.texts:
            speech = self.audio(weights, text)
            values.append(cosine(self.reference,
                                 self.embedder.embed(speech.audio, speech.sample_rate)))
        return float(np.mean(values))


def default_cache_dir() -> str:
    root = os.environ.get('QWEN_VOICE_CACHE', '')
    root = root or os.path.join(os.path.expanduser('~'), '.cache', 'qwen_voice_ros')
    return os.path.join(root, 'voices')


def cache_key(digest: str, names: Sequence[str], tries: int, texts: Sequence[str],
              floor: float = 0.0) -> str:
    parts = [digest, sorted(names), int(tries), list(texts)] + ([floor] if floor else [])
    h = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode('utf-8'))
    return h.hexdigest()[:24]


def match_reference(tts, reference: np.ndarray, embedder, names: Optional[Sequence[str]] = None,
                    tries: int = 24, texts: Sequence[str] = (PROBE_TEXT,),
                    seed: int = 0, floor: float = 0.0) -> MatchResult:
    """Search blends of ``names`` (default: all shipped voices) for a reference d-vector."""
    names = sorted(names if names is not None else tts.voices)
    scorer = KokoroScorer(tts, embedder, reference, texts)
    weights, value, singles, history = search(scorer, names, tries=tries, seed=seed,
                                              floor=floor)
    base = max(singles, key=singles.get)
    return MatchResult(weights=weights, similarity=value, baseline_voice=base,
                       baseline_similarity=singles[base], singles=singles, tries=len(history))


def match_profile(tts, profile, tries: int = 24, cache_dir: Optional[str] = None,
                  embedder=None, exclude: Sequence[str] = (),
                  texts: Sequence[str] = (PROBE_TEXT,), floor: float = 0.0) -> MatchResult:
    """Match ``profile`` (a VoiceProfile) once; later calls read the cached result."""
    from qwen_voice_ros.tts.profiles import load_reference
    names = sorted(n for n in tts.voices if n not in set(exclude))
    audio, _ = load_reference(profile)   # ProfileError: short, silent, unreadable
    digest = profile.digest()
    cache_dir = cache_dir or default_cache_dir()
    key = cache_key(digest, names, tries, texts, floor)
    path = os.path.join(cache_dir, 'kokoro-%s.json' % key)
    try:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
        result = MatchResult(**{k: doc[k] for k in ('weights', 'similarity', 'baseline_voice',
                                                    'baseline_similarity', 'singles', 'tries')})
        if set(result.weights) <= set(names):
            result.cached = True
            return result
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if embedder is None:
        from qwen_voice_ros.speaker.embedder import SpeakerEmbedder
        embedder = SpeakerEmbedder()
    result = match_reference(tts, embedder.embed(audio), embedder, names, tries, texts,
                             floor=floor)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        doc = result.to_json()
        doc.update(reference=profile.wav_path, reference_sha256=digest)
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass   # an unwritable cache costs a re-match next time, nothing else
    return result
