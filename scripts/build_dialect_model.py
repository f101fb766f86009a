#!/usr/bin/env python3
"""Build the dialect fast-stage model shipped in qwen_voice_ros/dialect/data/ (reproducible).

Training data: data/dialect/dev.jsonl (the labelled set), data/dialect/written.txt (sentences
written for this project) and Cantonese sentences bundled with pycantonese (install
requirements/extra-dialect.txt).  Every row is also added in ASR-like form at half weight.
The softmax temperature is fitted on 5-fold out-of-fold predictions on dev.

    python scripts/build_dialect_model.py            # writes the model
    python scripts/build_dialect_model.py --cv-only  # prints the 5-fold CV report only
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from qwen_voice_ros.dialect import training as T  # noqa: E402
from qwen_voice_ros.dialect.asr_like import to_asr_like  # noqa: E402
from qwen_voice_ros.dialect.markers import DIALECT_LABELS  # noqa: E402
from qwen_voice_ros.dialect.metrics import evaluate, format_report  # noqa: E402
from qwen_voice_ros.dialect.ngram_model import DEFAULT_MODEL_PATH  # noqa: E402

PYCANTONESE_ROWS = 300
PYCANTONESE_WEIGHT = 0.1
L2 = 1.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dev', default=os.path.join(ROOT, 'data', 'dialect', 'dev.jsonl'))
    parser.add_argument('--written', default=os.path.join(ROOT, 'data', 'dialect', 'written.txt'))
    parser.add_argument('--out', default=DEFAULT_MODEL_PATH)
    parser.add_argument('--cv-only', action='store_true', help='report CV, write no model')
    parser.add_argument('--report-json', default='', help='write the CV metrics here')
    args = parser.parse_args(argv)

    dev = T.dev_examples(args.dev)
    extra = T.written_examples(args.written)
    extra += T.pycantonese_examples(PYCANTONESE_ROWS, weight=PYCANTONESE_WEIGHT)
    print('dev rows: %d, extra rows: %d' % (len(dev), len(extra)))

    t0 = time.time()
    logits, _ = T.cross_validate(dev, extra, k=5, l2=L2, log=print,
                                 variants={'plain': lambda s: s, 'asr_like': to_asr_like})
    y = np.array([T.LABEL_INDEX[ex.label] for ex in dev])
    gold = [ex.label for ex in dev]
    report = {}
    for name, lg in logits.items():
        pred = [DIALECT_LABELS[i] for i in lg.argmax(axis=1)]
        res = evaluate(gold, pred)
        report[name] = res
        print('\n== 5-fold CV on dev, %s text ==' % name)
        print(format_report(res))
    drop = report['plain']['accuracy'] - report['asr_like']['accuracy']
    print('\nASR-like accuracy drop: %.4f' % drop)
    temperature = T.fit_temperature(logits['plain'], y)
    print('fitted temperature %.3f (CV %.0f s)' % (temperature, time.time() - t0))
    if args.report_json:
        with open(args.report_json, 'w', encoding='utf-8') as handle:
            json.dump({k: {kk: vv for kk, vv in v.items()} for k, v in report.items()},
                      handle, ensure_ascii=False, indent=1)
    if args.cv_only:
        return 0
    pool = T.with_asr_augmentation(dev + extra, 0.5)
    model = T.train(pool, l2=L2)
    model.temperature = temperature
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    model.save(args.out)
    size_kib = os.path.getsize(args.out) / 1024
    print('wrote %s: %d features, %.0f KiB' % (args.out, len(model.vocab), size_kib))
    return 0


if __name__ == '__main__':
    sys.exit(main())
