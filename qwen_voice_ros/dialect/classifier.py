"""The dialect classifier the node calls: stages, context prior and per-speaker smoothing."""
from __future__ import annotations

import dataclasses
import threading
from typing import Dict, List, Optional, Union

from .markers import DIALECT_LABELS, MarkerLexicon, marker_probabilities
from .normalize import han_count, normalize_text

STAGES = ('markers', 'fast', 'llm', 'hybrid')
# Where the text came from: typed/replayed text, or ASR (speech).  The fast stage has one model
# per source: ASR garbles dialect words into Mandarin-looking homophones, so the ASR model is
# trained mostly on noisy text with its own Mandarin prior (docs/dialect.md).
SOURCES = ('typed', 'asr')
UNKNOWN = 'unknown'
# Multiplier a label-string context prior gives its label ("the speaker is from Chengdu").
CONTEXT_PRIOR_BOOST = 3.0
# Regional hint for the LLM prompt when a label-string prior is given.
_REGION_HINT = {'sichuanese': '四川（成都、重庆）', 'cantonese': '广东、香港', 'shanghainese': '上海',
                'northeastern': '东北', 'henan': '河南', 'hunan': '湖南（长沙）', 'shaanxi': '陕西（西安）'}


class DialectStageError(RuntimeError):
    """A classification stage failed (e.g. the LLM engine); the message names the stage."""


@dataclasses.dataclass
class DialectResult:
    """One classification: label (or ``unknown``), 8 calibrated scores, confidence, stage."""

    label: str
    scores: Dict[str, float]
    confidence: float
    stage: str

    def to_dict(self) -> Dict[str, object]:
        return {'label': self.label, 'scores': dict(self.scores),
                'confidence': self.confidence, 'stage': self.stage}


def source_of_event(event) -> str:
    """
    'asr' for a ``transcript`` event of an ASR stage, else 'typed'.

    The hearing node's transcript events carry ``detail.backend`` (the ASR backend name, a
    non-empty str) and ``detail.asr_s`` (the decode time, a number); replayed text bags and
    text turns announced by a downstream node carry neither.  Anything else (no event, another
    stage, wrong types) is 'typed': the typed model is the one that keeps typed accuracy.
    """
    if not isinstance(event, dict) or event.get('stage') != 'transcript':
        return 'typed'
    detail = event.get('detail')
    if not isinstance(detail, dict):
        return 'typed'
    backend, asr_s = detail.get('backend'), detail.get('asr_s')
    if (isinstance(backend, str) and backend.strip() and isinstance(asr_s, (int, float))
            and not isinstance(asr_s, bool) and asr_s >= 0):
        return 'asr'
    return 'typed'


def _normalise_prior(context_prior) -> Optional[List[float]]:
    if context_prior is None or context_prior == '' or context_prior == {}:
        return None
    if isinstance(context_prior, str):
        if context_prior not in DIALECT_LABELS:
            raise ValueError('context_prior %r is not one of %s'
                             % (context_prior, DIALECT_LABELS))
        return [CONTEXT_PRIOR_BOOST if label == context_prior else 1.0
                for label in DIALECT_LABELS]
    if isinstance(context_prior, dict):
        for key, value in context_prior.items():
            if key not in DIALECT_LABELS:
                raise ValueError('context_prior key %r is not one of %s' % (key, DIALECT_LABELS))
            if not float(value) > 0:
                raise ValueError('context_prior weights must be > 0 (got %r)' % (value,))
        return [float(context_prior.get(label, 1.0)) for label in DIALECT_LABELS]
    raise ValueError('context_prior must be None, a label or a dict label->weight')


def _renorm(values: List[float]) -> List[float]:
    total = sum(values)
    if not total > 0:
        return [1.0 / len(values)] * len(values)
    return [v / total for v in values]


class DialectClassifier(object):
    """Classify one utterance's text; see ``load_dialect_classifier`` for the parameters."""

    def __init__(self, stage: str = 'fast', llm_threshold: float = 0.6,
                 context_prior: Union[None, str, Dict[str, float]] = None,
                 speaker_smoothing: float = 0.0, model_path: str = '', llm_scorer=None,
                 asr_model_path: str = ''):
        if stage not in STAGES:
            raise ValueError('stage must be one of %s (got %r)' % (STAGES, stage))
        if not 0.0 <= float(speaker_smoothing) < 1.0:
            raise ValueError('speaker_smoothing must be in [0, 1) (got %r)' % (speaker_smoothing,))
        if not 0.0 <= float(llm_threshold) <= 1.0:
            raise ValueError('llm_threshold must be in [0, 1] (got %r)' % (llm_threshold,))
        self.stage = stage
        self.llm_threshold = float(llm_threshold)
        self.speaker_smoothing = float(speaker_smoothing)
        self.prior = _normalise_prior(context_prior)
        self.context_hint = (_REGION_HINT.get(context_prior)
                             if isinstance(context_prior, str) else None)
        self.lexicon = MarkerLexicon()
        self.model = self.asr_model = None
        if stage in ('fast', 'hybrid'):
            from .ngram_model import DEFAULT_ASR_MODEL_PATH, NgramModel
            self.model = NgramModel.load(model_path, self.lexicon)
            # '' = the shipped ASR model beside the shipped typed model; with a custom
            # model_path and no asr_model_path, ASR text uses that same custom model.
            if asr_model_path:
                self.asr_model = NgramModel.load(asr_model_path, self.lexicon)
            elif not model_path:
                self.asr_model = NgramModel.load(DEFAULT_ASR_MODEL_PATH, self.lexicon)
            else:
                self.asr_model = self.model
        self.llm = None
        if stage in ('llm', 'hybrid'):
            if llm_scorer is None:
                raise ValueError("stage %r needs llm_scorer: an object with "
                                 "score_continuations(messages, continuations), e.g. the "
                                 "project's Qwen engine" % stage)
            from .llm_stage import LLMStage
            self.llm = LLMStage(llm_scorer)
        self._state: Dict[str, List[float]] = {}
        self._lock = threading.Lock()

    # -- stages --------------------------------------------------------------------------
    def _fast_scores(self, text: str, source: str = 'typed') -> List[float]:
        model = self.asr_model if source == 'asr' else self.model
        if model is None:
            return marker_probabilities(self.lexicon.evidence(text))
        return [float(v) for v in model.predict_proba(text)]

    def _scores(self, norm: str, raw: str, source: str = 'typed'):
        if self.stage == 'markers':
            return marker_probabilities(self.lexicon.evidence(norm)), 'markers'
        if self.stage == 'llm':
            return self.llm.probabilities(raw, self.context_hint), 'llm'
        fast = self._fast_scores(norm, source)
        if self.stage == 'fast':
            return fast, 'fast'
        if max(self._apply_prior(fast)) >= self.llm_threshold:
            return fast, 'fast'
        try:
            llm = self.llm.probabilities(raw, self.context_hint)
        except Exception as exc:  # noqa: BLE001 - re-raised with the stage named
            raise DialectStageError('dialect LLM stage failed: %s: %s'
                                    % (type(exc).__name__, exc)) from exc
        # Product of the two distributions: both stages' evidence counts.
        return _renorm([f * m for f, m in zip(fast, llm)]), 'llm'

    def _apply_prior(self, scores: List[float]) -> List[float]:
        if self.prior is None:
            return scores
        return _renorm([s * p for s, p in zip(scores, self.prior)])

    # -- public API ----------------------------------------------------------------------
    def classify(self, text, speaker_id: Optional[str] = None,
                 source: str = 'typed') -> DialectResult:
        """
        Classify ``text``: any str or non-str input gives a result (no Chinese -> ``unknown``).

        ``source`` ('typed' or 'asr', see ``SOURCES``/``source_of_event``) picks the fast-stage
        model; anything else is a ValueError (a caller bug, not an input to tolerate).

        A failing stage (the LLM engine, a broken model) raises ``DialectStageError`` or the
        underlying error; nothing is swallowed, so the caller can report it.
        """
        if source not in SOURCES:
            raise ValueError('source must be one of %s (got %r)' % (SOURCES, source))
        raw = text if isinstance(text, str) else ''
        norm = normalize_text(raw)
        if han_count(norm) == 0:
            uniform = {label: 1.0 / len(DIALECT_LABELS) for label in DIALECT_LABELS}
            stage = 'markers' if self.stage == 'markers' else (
                'llm' if self.stage == 'llm' else 'fast')
            return DialectResult(UNKNOWN, uniform, 0.0, stage)
        scores, stage = self._scores(norm, raw[:len(norm) * 2 + 50], source)
        scores = self._apply_prior(list(scores))
        scores = self._smooth(speaker_id, scores)
        best = max(range(len(scores)), key=lambda i: scores[i])
        return DialectResult(DIALECT_LABELS[best],
                             {label: float(s) for label, s in zip(DIALECT_LABELS, scores)},
                             float(min(1.0, max(0.0, scores[best]))), stage)

    def _smooth(self, speaker_id: Optional[str], scores: List[float]) -> List[float]:
        if self.speaker_smoothing <= 0.0:
            return scores
        key = '' if speaker_id is None else str(speaker_id)
        alpha = self.speaker_smoothing
        with self._lock:
            previous = self._state.get(key)
            if previous is not None:
                scores = _renorm([alpha * p + (1.0 - alpha) * s
                                  for p, s in zip(previous, scores)])
            self._state[key] = scores
        return scores

    def reset_speaker(self, speaker_id: Optional[str] = None) -> None:
        """Forget smoothing state for one speaker, or for all speakers when None."""
        with self._lock:
            if speaker_id is None:
                self._state.clear()
            else:
                self._state.pop(str(speaker_id), None)


def load_dialect_classifier(stage: str = 'fast', llm_threshold: float = 0.6,
                            context_prior: Union[None, str, Dict[str, float]] = None,
                            speaker_smoothing: float = 0.0, model_path: str = '',
                            llm_scorer=None, asr_model_path: str = '') -> DialectClassifier:
    """
    Build a classifier.

    stage: 'markers' (lexicon only), 'fast' (n-gram model), 'llm' (Qwen label scoring only) or
    'hybrid' (fast; the LLM is asked when the fast confidence is below ``llm_threshold``).
    context_prior: None, a label ("speaker is from there") or a dict label -> weight.
    speaker_smoothing: exponential smoothing factor of scores across a speaker's turns.
    model_path: fast-stage model (.npz); '' uses the model shipped with the package.
    llm_scorer: object with ``score_continuations``; required for 'llm' and 'hybrid'.
    asr_model_path: fast-stage model for ``classify(..., source='asr')``; '' uses the shipped
    ASR model when model_path is '' too, else the model_path model.
    """
    return DialectClassifier(stage, llm_threshold, context_prior, speaker_smoothing,
                             model_path, llm_scorer, asr_model_path)
