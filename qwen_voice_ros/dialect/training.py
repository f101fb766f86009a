"""
Build-time training of the fast stage (numpy + scipy; never imported at run time on the robot).

Used by ``scripts/build_dialect_model.py`` for the shipped model and for cross-validation.
"""
from __future__ import annotations

import json
import os
import random
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .asr_like import to_asr_like
from .markers import DIALECT_LABELS, MarkerLexicon
from .ngram_model import NGRAM_ORDERS, PINYIN_ORDERS, NgramModel, extract_features
from .normalize import normalize_text
from .pinyin import PinyinLexicon

LABEL_INDEX = {label: i for i, label in enumerate(DIALECT_LABELS)}


class Example(object):
    """One training sentence."""

    __slots__ = ('text', 'label', 'weight', 'group', 'source', 'origin')

    def __init__(self, text: str, label: str, weight: float = 1.0, group: str = '',
                 source: str = '', origin: str = ''):
        self.text = text
        self.label = label
        self.weight = weight
        self.group = group or text
        self.source = source
        # The typed sentence this row was made from (an ASR transcript's reference text).
        self.origin = origin or text


def read_jsonl(path: str) -> List[dict]:
    rows = []
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def dev_examples(path: str) -> List[Example]:
    """Rows of the labelled dev file; Tatoeba parallel triples share one CV group."""
    out = []
    for row in read_jsonl(path):
        source = row.get('source', '')
        match = re.match(r'tatoeba:\w+:(\d+)', source)
        group = 'tatoeba:' + match.group(1) if match else row.get('id', row['text'])
        out.append(Example(row['text'], row['label'], 1.0, group, source))
    return out


def written_examples(path: str) -> List[Example]:
    out = []
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            line = line.rstrip('\n')
            if not line or line.startswith('#'):
                continue
            label, text = line.split('\t', 1)
            if label not in LABEL_INDEX:
                raise ValueError('bad label %r in %s' % (label, path))
            out.append(Example(text, label, 1.0, '', 'written'))
    return out


def asr_examples(path: str, weight: float = 1.0, min_retention: float = 0.0) -> List[Example]:
    """
    ASR transcripts of voiced sentences (``scripts/make_asr_dialect_data.py`` output).

    ``text`` is the transcript, ``origin`` the typed sentence it was voiced from (CV keeps the
    transcripts of held-out sentences out of training through it).  ``min_retention`` > 0
    scales the weight of a dialect transcript by ``min(1, r / min_retention)``, r its
    ``sound_retention``: a transcript that kept little of what was said (a hallucination, or
    unrelated Mandarin words) teaches "plain Mandarin text is dialect", which costs Mandarin
    recall and teaches nothing about how ASR writes dialect words.  Mandarin rows keep their
    weight (their label is right whatever ASR wrote).
    """
    out = []
    for row in read_jsonl(path):
        if row['label'] not in LABEL_INDEX:
            raise ValueError('bad label %r in %s' % (row['label'], path))
        w = weight
        if min_retention > 0 and row['label'] != 'mandarin':
            w *= min(1.0, sound_retention(row['text'], row['asr_text']) / min_retention)
        out.append(Example(row['asr_text'], row['label'], w, '', 'asr:' + row['id'],
                           origin=row['text']))
    return out


def sound_retention(typed: str, heard: str, level: int = 1) -> float:
    """
    Share of the typed sentence's toneless syllables the transcript kept, in order (LCS).

    Homophones count as kept (ASR writing 傻子 for 啥子 kept the sound); 0 for a hallucination.
    """
    from .pinyin import BOUNDARY, syllables

    a = [s for s in syllables(normalize_text(typed), level) if s != BOUNDARY]
    b = [s for s in syllables(normalize_text(heard), level) if s != BOUNDARY]
    if not a:
        return 0.0
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b):
            cur = row[j + 1]
            row[j + 1] = prev + 1 if x == y else max(row[j + 1], row[j])
            prev = cur
    return row[len(b)] / float(len(a))


_CANTONESE_CUES = re.compile('[佢哋咗嘅喺啲嘢睇嚟揾搵畀瞓攰谂啱嗰噉㗎喎啩啫咁冇唔係系乜咩]')


def pycantonese_examples(limit: int = 900, seed: int = 13,
                         weight: float = 0.3) -> List[Example]:
    """
    Cantonese sentences from the corpora bundled with pycantonese (build-time dependency).

    HKCanCor (CC BY 4.0), Common Voice yue sentences, CTCPC Cantonese side (CC0).  Only sentences
    of 6-40 characters with at least one written-Cantonese character are kept, so neutral lines
    ("(掌声)") are not labelled Cantonese.
    """
    import pycantonese  # noqa: F401 - build-time only
    base = os.path.join(os.path.dirname(pycantonese.__file__), 'data')
    pools: Dict[str, List[str]] = {}
    with open(os.path.join(base, 'common_voice', 'sents.json'), encoding='utf-8') as handle:
        pools['pycantonese:common_voice_yue'] = json.load(handle)
    with open(os.path.join(base, 'ctcpc', 'sents.json'), encoding='utf-8') as handle:
        pools['pycantonese:ctcpc'] = json.load(handle)
    corpus = pycantonese.hkcancor()
    utterances = []
    for utt in corpus.utterances():
        words = [tok.word for tok in utt.tokens]
        utterances.append(''.join(words))
    pools['pycantonese:hkcancor'] = utterances
    rng = random.Random(seed)
    out = []
    per_pool = limit // len(pools)
    for source in sorted(pools):
        cands = []
        seen = set()
        for sent in pools[source]:
            if not isinstance(sent, str):
                continue
            sent = sent.strip()
            norm = normalize_text(sent)
            han = len(re.findall('[\u4e00-\u9fff]', norm))
            if not 6 <= han <= 40 or '@' in norm or not _CANTONESE_CUES.search(norm):
                continue
            if norm in seen:
                continue
            seen.add(norm)
            cands.append(sent)
        rng.shuffle(cands)
        for sent in cands[:per_pool]:
            out.append(Example(sent, 'cantonese', weight, '', source))
    return out


def _grams(text: str, n: int = 3) -> set:
    text = normalize_text(text).replace(' ', '')
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


def drop_near_duplicates(extra: List[Example], reference: Sequence[Example],
                         threshold: float = 0.5) -> List[Example]:
    """
    Drop extra rows equal or close (character-3-gram Jaccard) to any reference row.

    Keeps held-out dev sentences (and their sources' originals) out of the training pool.
    Rows are compared by ``origin`` (the typed sentence an ASR transcript was made from).
    """
    ref_grams = [_grams(ex.origin) for ex in reference]
    index: Dict[str, List[int]] = {}
    for i, grams in enumerate(ref_grams):
        for gram in grams:
            index.setdefault(gram, []).append(i)
    kept = []
    for ex in extra:
        grams = _grams(ex.origin)
        counts: Dict[int, int] = {}
        for gram in grams:
            for i in index.get(gram, ()):
                counts[i] = counts.get(i, 0) + 1
        close = False
        for i, inter in counts.items():
            union = len(grams) + len(ref_grams[i]) - inter
            if union and inter / union > threshold:
                close = True
                break
        if not close:
            kept.append(ex)
    return kept


def with_asr_augmentation(examples: Iterable[Example], weight: float = 0.5) -> List[Example]:
    """Each example plus its ASR-like form (when different) at a lower weight."""
    out = []
    for ex in examples:
        out.append(ex)
        if ex.source.startswith('asr:'):
            continue  # already a real transcript
        asr = to_asr_like(ex.text)
        if normalize_text(asr).replace(' ', '') != normalize_text(ex.text).replace(' ', ''):
            out.append(Example(asr, ex.label, ex.weight * weight, ex.group, ex.source + '+asr'))
    return out


def with_channel_noise(examples: Sequence[Example], copies: int = 3, weight: float = 1.0,
                       scale: float = 1.0, seed: int = 0) -> List[Example]:
    """
    ``examples`` plus ``copies`` noisy versions of each typed row (weight x ``weight``).

    The noise is an ``asr_channel.AsrChannel`` fitted on the real transcripts among
    ``examples`` (rows with an ``asr:`` source, paired with their ``origin``), so in
    cross-validation it only knows the fold's training transcripts.  Transcripts, their
    ASR-like copies and pycantonese rows (written Cantonese nobody voiced) get no copies.
    """
    from .asr_channel import AsrChannel

    pairs = [(ex.origin, ex.text, ex.label) for ex in examples if ex.source.startswith('asr:')]
    if not copies or not pairs:
        return list(examples)
    channel = AsrChannel(pairs)
    rng = random.Random(seed)
    out = list(examples)
    for ex in examples:
        if (ex.source.startswith('asr:') or ex.source.startswith('pycantonese')
                or ex.source.endswith('+asr')):
            continue
        for _ in range(copies):
            out.append(Example(channel.corrupt(ex.text, rng, scale, ex.label), ex.label,
                               ex.weight * weight, ex.group, ex.source + '+channel'))
    return out


def blend_models(a: NgramModel, b: NgramModel, alpha: float) -> NgramModel:
    """
    One linear model whose logits are ``alpha * a + (1 - alpha) * b`` (temperature 1).

    Both must use the same lexicon, n-gram orders and pinyin settings; a feature missing from
    one model has weight 0 there.
    """
    if (a.orders, a.pinyin_level, a.pinyin_orders) != (b.orders, b.pinyin_level,
                                                       b.pinyin_orders):
        raise ValueError('models with different feature settings cannot be blended')
    vocab = sorted(set(a.vocab) | set(b.vocab))
    index = {name: i for i, name in enumerate(vocab)}
    weights = np.zeros((len(vocab), len(DIALECT_LABELS)), dtype=np.float64)
    for model, share in ((a, alpha), (b, 1.0 - alpha)):
        rows = [index[name] for name in model.vocab]
        weights[rows] += share * model.weights.astype(np.float64)
    bias = alpha * a.bias.astype(np.float64) + (1.0 - alpha) * b.bias.astype(np.float64)
    return NgramModel(vocab, weights.astype(np.float32), bias.astype(np.float32), 1.0,
                      a.lexicon, a.orders, a.pinyin_level, a.pinyin_orders)


def _balanced_weights(examples: Sequence[Example]) -> np.ndarray:
    """Sample weights so every label carries the same total weight."""
    raw = np.array([ex.weight for ex in examples], dtype=np.float64)
    labels = np.array([LABEL_INDEX[ex.label] for ex in examples])
    out = raw.copy()
    target = raw.sum() / len(DIALECT_LABELS)
    for k in range(len(DIALECT_LABELS)):
        mask = labels == k
        if mask.any():
            out[mask] *= target / raw[mask].sum()
    return out * (len(examples) / out.sum())


def train(examples: Sequence[Example], l2: float = 1.0, lexicon: Optional[MarkerLexicon] = None,
          orders: Sequence[int] = NGRAM_ORDERS, max_iter: int = 300,
          min_count: int = 1, pinyin_level: Optional[int] = None,
          pinyin_orders: Sequence[int] = PINYIN_ORDERS,
          pinyin_min_count: int = 2) -> NgramModel:
    """
    Fit the multinomial logistic model (L-BFGS, L2 penalty, class-balanced weights).

    ``pinyin_level`` (None = characters only) adds the toneless-pinyin features of
    ``pinyin.pinyin_features``; syllable n-grams seen fewer than ``pinyin_min_count`` times are
    dropped (smaller file).
    """
    from scipy import optimize, sparse

    lexicon = lexicon if lexicon is not None else MarkerLexicon()
    plex = (PinyinLexicon(lexicon.entries, pinyin_level) if pinyin_level is not None
            else None)
    feats = [extract_features(normalize_text(ex.text), lexicon, orders, plex, pinyin_orders)
             for ex in examples]
    counts: Dict[str, int] = {}
    for f in feats:
        for name in f:
            counts[name] = counts.get(name, 0) + 1

    def keep_name(name, c):
        if name.startswith('c:'):
            return c >= min_count
        if name.startswith('p:'):
            return c >= pinyin_min_count
        return True
    vocab = sorted(name for name, c in counts.items() if keep_name(name, c))
    index = {name: i for i, name in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for r, f in enumerate(feats):
        for name, value in f.items():
            c = index.get(name)
            if c is not None:
                rows.append(r)
                cols.append(c)
                vals.append(value)
    x = sparse.csr_matrix((vals, (rows, cols)), shape=(len(examples), len(vocab)))
    xt = x.T.tocsr()
    y = np.array([LABEL_INDEX[ex.label] for ex in examples])
    sw = _balanced_weights(examples)
    n_cls = len(DIALECT_LABELS)
    onehot = np.zeros((len(examples), n_cls))
    onehot[np.arange(len(examples)), y] = 1.0
    n_feat = len(vocab)

    def objective(theta):
        w = theta[:n_feat * n_cls].reshape(n_feat, n_cls)
        b = theta[n_feat * n_cls:]
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -(sw * (logp * onehot).sum(axis=1)).sum() + 0.5 * l2 * (w * w).sum()
        g = (np.exp(logp) - onehot) * sw[:, None]
        gw = xt @ g + l2 * w
        gb = g.sum(axis=0)
        return loss, np.concatenate([gw.ravel(), gb])

    theta0 = np.zeros(n_feat * n_cls + n_cls)
    res = optimize.minimize(objective, theta0, jac=True, method='L-BFGS-B',
                            options={'maxiter': max_iter})
    w = res.x[:n_feat * n_cls].reshape(n_feat, n_cls)
    b = res.x[n_feat * n_cls:]
    # Prune features whose weights are all tiny: smaller file, same predictions.
    keep = np.abs(w).max(axis=1) >= 1e-3
    vocab = [name for name, k in zip(vocab, keep) if k]
    return NgramModel(vocab, w[keep].astype(np.float32), b.astype(np.float32), 1.0, lexicon,
                      orders, pinyin_level, pinyin_orders)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of out-of-fold logits."""
    best_t, best_nll = 1.0, float('inf')
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 81)):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(len(y)), y].mean()
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def stratified_group_folds(examples: Sequence[Example], k: int = 5,
                           seed: int = 0) -> List[int]:
    """Fold id per example: stratified by label, groups (Tatoeba triples) never split."""
    rng = random.Random(seed)
    groups: Dict[str, List[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.group, []).append(i)
    group_list = list(groups.values())
    rng.shuffle(group_list)
    group_list.sort(key=lambda g: -len(g))
    fold_counts = [[0] * len(DIALECT_LABELS) for _ in range(k)]
    assign = [0] * len(examples)
    for members in group_list:
        labels = [LABEL_INDEX[examples[i].label] for i in members]
        best = min(range(k), key=lambda f: (sum(fold_counts[f][c] for c in labels),
                                            sum(fold_counts[f]), rng.random()))
        for i, c in zip(members, labels):
            assign[i] = best
            fold_counts[best][c] += 1
    return assign


def cross_validate(dev: Sequence[Example], extra: Sequence[Example], k: int = 5,
                   l2: float = 1.0, asr_weight: float = 0.5, seed: int = 0, variants=None,
                   log=None, probes: Sequence[Example] = (), augment=None,
                   **train_kwargs) -> Tuple[Dict[str, np.ndarray], List[int]]:
    """
    Out-of-fold logits for every dev row, per text variant (``{'plain': identity}`` default).

    The fold's held-out rows are never in training, and extra rows close to them (by origin:
    an ASR transcript of a held-out sentence is dropped too) are dropped.  ``probes`` (e.g. ASR
    transcripts of dev sentences) are scored by the model of the fold their ``origin`` is held
    out in; their logits are returned under the key ``'probes'`` (rows whose origin is not a
    dev sentence stay zero).  ``augment`` (pool -> pool, e.g. ``with_channel_noise``) runs on
    each fold's training pool.
    """
    variants = variants or {'plain': lambda text: text}
    folds = stratified_group_folds(dev, k, seed)
    logits = {name: np.zeros((len(dev), len(DIALECT_LABELS))) for name in variants}
    logits['probes'] = np.zeros((len(probes), len(DIALECT_LABELS)))
    fold_of_text = {ex.text: f for ex, f in zip(dev, folds)}
    lexicon = MarkerLexicon()
    for fold in range(k):
        train_dev = [ex for ex, f in zip(dev, folds) if f != fold]
        held = [ex for ex, f in zip(dev, folds) if f == fold]
        clean_extra = drop_near_duplicates(list(extra), held)
        pool = with_asr_augmentation(train_dev + clean_extra, asr_weight)
        if augment is not None:
            pool = augment(pool)
        model = train(pool, l2=l2, lexicon=lexicon, **train_kwargs)
        for i, (ex, f) in enumerate(zip(dev, folds)):
            if f == fold:
                for name, fn in variants.items():
                    logits[name][i] = model.logits(normalize_text(fn(ex.text)))
        for i, ex in enumerate(probes):
            if fold_of_text.get(ex.origin) == fold:
                logits['probes'][i] = model.logits(normalize_text(ex.text))
        if log:
            log('fold %d: trained on %d rows (%d extra kept), %d features' % (
                fold, len(pool), len(clean_extra), len(model.vocab)))
    return logits, folds
