"""
Dialect identification for transcribed utterances (no rclpy imports).

``load_dialect_classifier(...)`` returns a classifier whose ``classify(text, speaker_id, source)``
gives a ``DialectResult`` over ``DIALECT_LABELS`` (or ``unknown`` for text without Chinese);
``source`` is 'typed' or 'asr' (``source_of_event`` tells it from a transcript event).
"""
from .classifier import (SOURCES, DialectClassifier, DialectResult, DialectStageError,
                         load_dialect_classifier, source_of_event, UNKNOWN)
from .markers import DIALECT_LABELS

__all__ = ['DIALECT_LABELS', 'SOURCES', 'DialectClassifier', 'DialectResult',
           'DialectStageError', 'UNKNOWN', 'load_dialect_classifier', 'source_of_event']
