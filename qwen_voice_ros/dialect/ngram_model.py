"""
Fast stage: a linear (multinomial logistic) model over character n-grams and marker features.

The model file is a small ``.npz`` written by ``scripts/build_dialect_model.py``: the feature
vocabulary (one string, newline-separated), a float16 weight matrix ``[n_features, 8]``, the bias,
a temperature fitted on out-of-fold predictions (so the softmax scores are calibrated) and the
pinyin settings (``pinyin_level`` -1 = no pinyin features).  Run time needs numpy, and pypinyin
when the model has pinyin features.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from .markers import DIALECT_LABELS, MarkerLexicon
from .pinyin import PinyinLexicon, optional_level, pinyin_features

NGRAM_ORDERS = (1, 2, 3)
PINYIN_ORDERS = (1, 2, 3)
DEFAULT_MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                                  'dialect_ngram.npz')
# Model for text that came from ASR (the hearing node's transcripts): same features, tuned on
# real Whisper transcripts (scripts/build_dialect_model.py, docs/dialect.md).
DEFAULT_ASR_MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                                      'dialect_ngram_asr.npz')


def extract_features(text: str, lexicon: MarkerLexicon,
                     orders: Sequence[int] = NGRAM_ORDERS,
                     plex: Optional[PinyinLexicon] = None,
                     pinyin_orders: Sequence[int] = PINYIN_ORDERS) -> Dict[str, float]:
    """
    Feature name -> value for one normalised sentence.

    ``c:`` character n-grams (binary) over the text padded with a boundary space, ``m:`` one
    feature per firing lexicon entry and ``e:`` the summed lexicon evidence per label (so a
    marker never seen in training still counts through its label's evidence feature); with a
    pinyin lexicon also the sound features of ``pinyin.pinyin_features`` (``p:``, ``q:``, ``f:``).
    """
    feats: Dict[str, float] = {}
    padded = ' ' + text + ' '
    length = len(padded)
    for n in orders:
        for i in range(length - n + 1):
            gram = padded[i:i + n]
            if gram != ' ' * n:
                feats['c:' + gram] = 1.0
    totals: Dict[str, float] = {}
    for entry, count in lexicon.matches(text):
        feats['m:' + entry.key] = 1.0
        for label, weight in entry.weights.items():
            totals[label] = totals.get(label, 0.0) + weight * min(count, 3)
    for label, value in totals.items():
        feats['e:' + label] = min(value, 9.0) / 3.0
    if plex is not None:
        feats.update(pinyin_features(text, plex, pinyin_orders))
    return feats


class NgramModel(object):
    """Linear softmax classifier over ``extract_features`` output."""

    def __init__(self, vocab: List[str], weights: np.ndarray, bias: np.ndarray,
                 temperature: float = 1.0, lexicon: Optional[MarkerLexicon] = None,
                 orders: Sequence[int] = NGRAM_ORDERS, pinyin_level: Optional[int] = None,
                 pinyin_orders: Sequence[int] = PINYIN_ORDERS):
        self.vocab = vocab
        self.index = {name: i for i, name in enumerate(vocab)}
        # Character n-grams looked up without the 'c:' prefix (hot path, no string building).
        self.char_index = {name[2:]: i for i, name in enumerate(vocab) if name.startswith('c:')}
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.temperature = float(temperature)
        self.lexicon = lexicon if lexicon is not None else MarkerLexicon()
        self.orders = tuple(orders)
        self.pinyin_level = pinyin_level
        self.pinyin_orders = tuple(pinyin_orders)
        self.plex = (PinyinLexicon(self.lexicon.entries, pinyin_level)
                     if pinyin_level is not None else None)

    @classmethod
    def load(cls, path: str = '', lexicon: Optional[MarkerLexicon] = None) -> 'NgramModel':
        path = path or DEFAULT_MODEL_PATH
        with np.load(path, allow_pickle=False) as data:
            vocab = str(data['vocab']).split('\n')
            labels = str(data['labels']).split('\n')
            if tuple(labels) != DIALECT_LABELS:
                raise ValueError('model %s has labels %s, expected %s' % (path, labels,
                                                                          DIALECT_LABELS))
            orders = tuple(int(v) for v in data['orders'])
            level = optional_level(data['pinyin_level']) if 'pinyin_level' in data else None
            pinyin_orders = (tuple(int(v) for v in data['pinyin_orders'])
                             if 'pinyin_orders' in data else PINYIN_ORDERS)
            return cls(vocab, data['weights'], data['bias'], float(data['temperature']),
                       lexicon, orders, level, pinyin_orders)

    def save(self, path: str) -> None:
        np.savez_compressed(path, vocab=np.array('\n'.join(self.vocab)),
                            labels=np.array('\n'.join(DIALECT_LABELS)),
                            weights=self.weights.astype(np.float16), bias=self.bias,
                            temperature=np.array(self.temperature),
                            orders=np.array(self.orders, dtype=np.int32),
                            pinyin_level=np.array(-1 if self.pinyin_level is None
                                                  else self.pinyin_level, dtype=np.int32),
                            pinyin_orders=np.array(self.pinyin_orders, dtype=np.int32))

    def logits(self, text: str) -> np.ndarray:
        char_index = self.char_index
        padded = ' ' + text + ' '
        length = len(padded)
        grams = set()
        for n in self.orders:
            for i in range(length - n + 1):
                grams.add(padded[i:i + n])
        rows = [char_index[g] for g in grams if g in char_index]
        out = self.bias.copy()
        if rows:
            out += self.weights[rows].sum(axis=0)
        totals: Dict[str, float] = {}
        extra_rows = []
        extra_values = []
        for entry, count in self.lexicon.matches(text):
            idx = self.index.get('m:' + entry.key)
            if idx is not None and idx not in extra_rows:  # duplicate lexicon keys count once
                extra_rows.append(idx)
                extra_values.append(1.0)
            for label, weight in entry.weights.items():
                totals[label] = totals.get(label, 0.0) + weight * min(count, 3)
        for label, value in totals.items():
            idx = self.index.get('e:' + label)
            if idx is not None:
                extra_rows.append(idx)
                extra_values.append(min(value, 9.0) / 3.0)
        if self.plex is not None:
            index = self.index
            for name, value in pinyin_features(text, self.plex, self.pinyin_orders).items():
                idx = index.get(name)
                if idx is not None:
                    extra_rows.append(idx)
                    extra_values.append(value)
        if extra_rows:
            out += np.asarray(extra_values, dtype=np.float32) @ self.weights[extra_rows]
        return out

    def predict_proba(self, text: str) -> np.ndarray:
        z = self.logits(text) / self.temperature
        z = z - z.max()
        e = np.exp(z)
        return e / e.sum()
