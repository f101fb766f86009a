"""
Dialect identification for transcribed utterances (no rclpy imports).

``load_dialect_classifier(...)`` returns a classifier whose ``classify(text, speaker_id)`` gives a
``DialectResult`` over ``DIALECT_LABELS`` (or ``unknown`` for text without Chinese).
"""
from .classifier import (DialectClassifier, DialectResult, DialectStageError,
                         load_dialect_classifier, UNKNOWN)
from .markers import DIALECT_LABELS

__all__ = ['DIALECT_LABELS', 'DialectClassifier', 'DialectResult', 'DialectStageError',
           'UNKNOWN', 'load_dialect_classifier']
