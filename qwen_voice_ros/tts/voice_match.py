"""
Voice matching for Kokoro: the blend of shipped voice vectors that sounds most like a clip.

Kokoro conditions on a style vector; blends (weighted sums) of the shipped vectors are voices
too.  The score is measured, not predicted: each try synthesises the probe text and embeds it
with the same d-vector embedder (cosine to the reference's).

:func:`search` (one blend for the whole vector) tries every single voice first (the
baseline), then blends of the best ones, then random steps around the best blend with a
shrinking step.  :func:`search_split` (what :func:`match_reference` uses) searches the two
halves of the style separately: ``[:128]`` conditions Kokoro's decoder (timbre, most of what
the speaker embedder hears) and may extrapolate down to ``floor`` (negative weights, still
summing to 1); ``[128:]`` conditions the prosody predictor (durations and pitch: the tones
Whisper needs) and stays a blend inside the shipped voices.  It is a (1+1) evolution strategy
with a success-adapted step after the singles and a few seeded blends.

Intelligibility constraint: extrapolated voices score higher and can become hard to
understand (docs/tts.md).  With a ``check`` (CER of a style through the project's ASR on a few
sentences, :mod:`.intelligibility`), the most similar candidates are checked in order and the
first whose CER is at most the best single voice's CER + ``cer_margin`` wins; when none
passes, the best single voice is kept.  Without a check (no ASR here) the search does not
extrapolate.

:func:`match_profile` caches the result per profile on disk, keyed by the sha256 of the
reference clip, the voices searched, the probe text, the budget and the search settings, so a
restart or a switch back to a known profile costs nothing.
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
# Sentences the intelligibility check speaks (not the probe, not clone-eval's texts).
CHECK_TEXTS = (
    '请沿着这条走廊一直往前走，电梯在左手边。',
    '冰箱里还有三个鸡蛋和一瓶牛奶。',
    '图书馆每天早上八点开门，晚上九点关门。',
    '外面风很大，请把窗户关上。',
)
CANDIDATES_CHECKED = 3    # most similar candidates tried before falling back to the best single
SEARCH_VERSION = 2        # part of the cache key: results of the old whole-vector search differ
Weights = Dict[str, float]
Split = Tuple[Weights, Weights]     # (timbre blend, prosody blend)


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
    prosody: Optional[Weights] = None     # prosody-half blend; None = same as weights
    cer: Optional[float] = None           # matched voice's CER on CHECK_TEXTS (None: unchecked)
    baseline_cer: Optional[float] = None  # best single voice's CER on the same sentences
    check: str = 'unchecked'              # what the intelligibility check decided

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


def search_split(score: Callable[[Weights, Weights], float], names: Sequence[str],
                 tries: int = 32, seed: int = 0, floor: float = 0.0
                 ) -> Tuple[Split, float, Dict[str, float], List[Tuple[Split, float]]]:
    """
    Maximise ``score(timbre, prosody)`` with at most ``tries`` calls.

    Both are blends of ``names`` summing to 1; timbre weights stay >= ``floor`` (< 0
    extrapolates), prosody weights >= 0.  Returns ((timbre, prosody), best score, score of
    each single voice, every ((timbre, prosody), score)).
    """
    names = list(names)
    n = len(names)
    rng = random.Random(seed)
    history: List[Tuple[Split, float]] = []

    def split(vector: Sequence[float]) -> Tuple[List[float], List[float]]:
        return _project(vector[:n], floor), _project(vector[n:], 0.0)

    def as_weights(part: Sequence[float]) -> Weights:
        return {k: w for k, w in zip(names, part) if abs(w) > 1e-4}

    def evaluate(vector: Sequence[float]) -> float:
        timbre, prosody = split(vector)
        pair = (as_weights(timbre), as_weights(prosody))
        value = float(score(*pair))
        history.append((pair, value))
        return value

    def one_hot(name: str) -> List[float]:
        return [1.0 if k == name else 0.0 for k in names]

    singles: Dict[str, float] = {}
    for name in names:
        if len(history) >= tries:
            break
        singles[name] = evaluate(one_hot(name) * 2)
    order = sorted(singles, key=singles.get, reverse=True)
    best_vec = one_hot(order[0]) * 2
    best = singles[order[0]]
    seeds: List[List[float]] = []
    if len(order) >= 2 and len(singles) == n:
        top = np.array([singles[k] for k in names])
        soft = np.exp((top - top.max()) / 0.03)
        soft = list(soft / soft.sum())
        # the leaders' timbre with the best voice's prosody, then both halves blended
        seeds.append(soft + one_hot(order[0]))
        seeds.append([0.6 * a + 0.4 * b for a, b in zip(one_hot(order[0]), one_hot(order[1]))]
                     + one_hot(order[0]))
        # away from the least similar voice (only reachable with a negative floor)
        if floor < 0:
            push = min(-floor, 0.3)
            seeds.append([(1 + push) * a - push * b for a, b in
                          zip(one_hot(order[0]), one_hot(order[-1]))] + one_hot(order[0]))
    for vector in seeds:
        if len(history) >= tries:
            break
        value = evaluate(vector)
        if value > best:
            best, best_vec = value, list(vector)
    step = 0.2
    while len(history) < tries:
        direction = [rng.gauss(0.0, 1.0) for _ in range(2 * n)]
        mean_t, mean_p = sum(direction[:n]) / n, sum(direction[n:]) / n
        # prosody moves at half the step: pitch and timing matter less to the embedder
        candidate = ([b + step * (d - mean_t) for b, d in zip(best_vec[:n], direction[:n])]
                     + [b + 0.5 * step * (d - mean_p)
                        for b, d in zip(best_vec[n:], direction[n:])])
        timbre, prosody = split(candidate)
        candidate = timbre + prosody
        value = evaluate(candidate)
        if value > best:
            best, best_vec = value, candidate
            step = min(0.5, step * 1.3)
        else:
            step = max(0.03, step * 0.87)
    timbre, prosody = split(best_vec)
    return (as_weights(timbre), as_weights(prosody)), best, singles, history


class KokoroScorer:
    """Score a blend: synthesise the probe text with it, cosine to the reference d-vector."""

    def __init__(self, tts, embedder, reference: np.ndarray,
                 texts: Sequence[str] = (PROBE_TEXT,)):
        self.tts, self.embedder, self.texts = tts, embedder, list(texts)
        self.reference = reference

    def audio(self, weights: Weights, text: str, prosody: Optional[Weights] = None):
        from qwen_voice_ros.tts.kokoro import blend
        return self.tts.synthesize(text, style=blend(self.tts.voices, weights, prosody))

    def __call__(self, weights: Weights, prosody: Optional[Weights] = None) -> float:
        from qwen_voice_ros.speaker.embedder import cosine
        values = []
        for text in self.texts:
            speech = self.audio(weights, text, prosody)
            values.append(cosine(self.reference,
                                 self.embedder.embed(speech.audio, speech.sample_rate)))
        return float(np.mean(values))


def asr_check(tts, texts: Sequence[str] = CHECK_TEXTS) -> Callable[[np.ndarray], float]:
    """CER of a style through the project's ASR (raises ASRNotConfigured without the pack)."""
    from qwen_voice_ros.tts.intelligibility import RoundTrip
    trip = RoundTrip(tts).load()
    return lambda style: trip.score(texts, style=style).cer


def default_cache_dir() -> str:
    root = os.environ.get('QWEN_VOICE_CACHE', '')
    root = root or os.path.join(os.path.expanduser('~'), '.cache', 'qwen_voice_ros')
    return os.path.join(root, 'voices')


def cache_key(digest: str, names: Sequence[str], tries: int, texts: Sequence[str],
              floor: float = 0.0, cer_margin: Optional[float] = None) -> str:
    parts = [digest, sorted(names), int(tries), list(texts), SEARCH_VERSION, floor, cer_margin]
    h = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode('utf-8'))
    return h.hexdigest()[:24]


def _same(a: Weights, b: Weights) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def match_reference(tts, reference: np.ndarray, embedder, names: Optional[Sequence[str]] = None,
                    tries: int = 32, texts: Sequence[str] = (PROBE_TEXT,),
                    seed: int = 0, floor: float = 0.0,
                    check: Optional[Callable[[np.ndarray], float]] = None,
                    cer_margin: float = 0.05) -> MatchResult:
    """
    Search blends of ``names`` (default: all shipped voices) for a reference d-vector.

    ``check(style) -> CER`` is the intelligibility constraint (module docstring); without
    one, ``floor`` is raised to 0 (no extrapolation without a way to tell it is still clear).
    """
    from qwen_voice_ros.tts.kokoro import blend
    names = sorted(names if names is not None else tts.voices)
    if check is None:
        floor = max(0.0, floor)
    scorer = KokoroScorer(tts, embedder, reference, texts)
    (weights, prosody), value, singles, history = search_split(
        scorer, names, tries=tries, seed=seed, floor=floor)
    base = max(singles, key=singles.get)
    result = MatchResult(weights=weights, similarity=value, baseline_voice=base,
                         baseline_similarity=singles[base], singles=singles,
                         tries=len(history), prosody=prosody)
    if check is None:
        result.check = 'unchecked (no ASR): blends inside the shipped voices only'
        return result
    base_cer = float(check(tts.voices[base]))
    result.baseline_cer = base_cer
    ranked = sorted(history, key=lambda item: -item[1])
    tried: List[str] = []
    for (timbre, pros), similarity in ranked:
        if len(tried) >= CANDIDATES_CHECKED or similarity <= singles[base]:
            break
        if _same(timbre, {base: 1.0}) and _same(pros, {base: 1.0}):
            break
        cer = float(check(blend(tts.voices, timbre, pros)))
        tried.append('%.3f' % cer)
        if cer <= base_cer + cer_margin:
            result.weights, result.prosody, result.similarity = timbre, pros, similarity
            result.cer = cer
            result.check = ('CER %.3f <= best single %.3f + %.2f (candidate %d)'
                            % (cer, base_cer, cer_margin, len(tried)))
            return result
    result.weights, result.prosody, result.similarity = {base: 1.0}, None, singles[base]
    result.cer = base_cer
    result.check = ('no candidate within CER %.3f + %.2f (%s): best single voice kept'
                    % (base_cer, cer_margin, ', '.join(tried) or 'none better'))
    return result


def match_profile(tts, profile, tries: int = 32, cache_dir: Optional[str] = None,
                  embedder=None, exclude: Sequence[str] = (),
                  texts: Sequence[str] = (PROBE_TEXT,), floor: float = 0.0,
                  check: Optional[Callable[[np.ndarray], float]] = None,
                  cer_margin: float = 0.05, use_asr: bool = True) -> MatchResult:
    """
    Match ``profile`` (a VoiceProfile) once; later calls read the cached result.

    ``use_asr``: without an explicit ``check``, build one from the project's ASR
    (:func:`asr_check`) when it can load; when it cannot, the search stays inside the
    shipped voices (``floor`` 0) and the result says so.
    """
    from qwen_voice_ros.tts.profiles import load_reference
    names = sorted(n for n in tts.voices if n not in set(exclude))
    audio, _ = load_reference(profile)   # ProfileError: short, silent, unreadable
    digest = profile.digest()
    cache_dir = cache_dir or default_cache_dir()
    checked = check is not None or use_asr
    key = cache_key(digest, names, tries, texts, floor, cer_margin if checked else None)
    path = os.path.join(cache_dir, 'kokoro-%s.json' % key)
    try:
        with open(path, encoding='utf-8') as f:
            doc = json.load(f)
        fields = [f.name for f in dataclasses.fields(MatchResult) if f.name != 'cached']
        result = MatchResult(**{k: doc[k] for k in fields})
        if set(result.weights) | set(result.prosody or {}) <= set(names):
            result.cached = True
            return result
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if embedder is None:
        from qwen_voice_ros.speaker.embedder import SpeakerEmbedder
        embedder = SpeakerEmbedder()
    note = ''
    if check is None and use_asr:
        try:
            check = asr_check(tts)
        except Exception as exc:   # no ASR pack / faster-whisper here: no extrapolation
            note = ' (ASR unavailable: %s)' % exc
    result = match_reference(tts, embedder.embed(audio), embedder, names, tries, texts,
                             floor=floor, check=check, cer_margin=cer_margin)
    result.check += note
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
