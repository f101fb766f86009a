"""Accuracy, macro-F1, per-class precision/recall and the confusion matrix, as text or a dict."""
from __future__ import annotations

from typing import Dict, List, Sequence

from .markers import DIALECT_LABELS


def evaluate(gold: Sequence[str], pred: Sequence[str],
             labels: Sequence[str] = DIALECT_LABELS) -> Dict[str, object]:
    """Metrics over ``labels``; predictions outside them (``unknown``) count as errors."""
    n = len(gold)
    correct = sum(1 for g, p in zip(gold, pred) if g == p)
    cols = list(labels) + (['unknown'] if any(p not in labels for p in pred) else [])
    confusion = {g: {p: 0 for p in cols} for g in labels}
    for g, p in zip(gold, pred):
        if g in confusion:
            confusion[g][p if p in cols else 'unknown'] += 1
    per_class: Dict[str, Dict[str, float]] = {}
    f1s: List[float] = []
    for label in labels:
        tp = confusion[label][label]
        support = sum(confusion[label].values())
        predicted = sum(confusion[g][label] for g in labels)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {'precision': precision, 'recall': recall, 'f1': f1,
                            'support': support}
        if support:
            f1s.append(f1)
    return {'n': n, 'accuracy': correct / n if n else 0.0,
            'macro_f1': sum(f1s) / len(f1s) if f1s else 0.0,
            'per_class': per_class, 'confusion': confusion, 'confusion_columns': cols}


def format_report(result: Dict[str, object]) -> str:
    """Human-readable report: summary line, per-class table, confusion matrix."""
    lines = ['n=%d  accuracy=%.4f  macro-F1=%.4f' % (result['n'], result['accuracy'],
                                                     result['macro_f1'])]
    lines.append('%-13s %9s %7s %7s %7s' % ('label', 'precision', 'recall', 'f1', 'support'))
    for label, row in result['per_class'].items():
        lines.append('%-13s %9.3f %7.3f %7.3f %7d' % (label, row['precision'], row['recall'],
                                                      row['f1'], row['support']))
    cols = result['confusion_columns']
    short = [c[:5] for c in cols]
    lines.append('confusion (rows gold, columns predicted):')
    lines.append('%-13s ' % '' + ' '.join('%5s' % s for s in short))
    for label, row in result['confusion'].items():
        lines.append('%-13s ' % label + ' '.join('%5d' % row[c] for c in cols))
    return '\n'.join(lines)
