"""
qwen-voice-dialect-eval: accuracy, macro-F1, per-class P/R, confusion and latency on a JSONL file.

Rows need "text" and "label"; other fields are ignored.  With --json the last printed line is one
JSON object with accuracy, macro_f1, per_class {label: {precision, recall}}, ms_per_sentence, n,
stage and source.  --source picks the fast-stage model: typed (default, what the dialect node
uses by default) or asr (the model for ASR transcripts, the node's text_source auto/asr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Tuple


def _read_rows(path: str, key: str = 'text') -> List[Tuple[str, str]]:
    rows = []
    with open(path, encoding='utf-8') as handle:
        for lineno, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                print('warning: %s:%d is not JSON, skipped' % (path, lineno), file=sys.stderr)
                continue
            if not isinstance(row, dict) or key not in row or 'label' not in row:
                print('warning: %s:%d lacks %s/label, skipped' % (path, lineno, key),
                      file=sys.stderr)
                continue
            rows.append((str(row[key]), str(row['label'])))
    return rows


def _build_scorer(model_dir: str):
    if not model_dir or not os.path.isdir(model_dir):
        raise SystemExit('error: --stage llm/hybrid needs --model-dir DIR (an ONNX Qwen export); '
                         'got %r' % (model_dir,))
    try:
        from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    except ImportError as exc:
        raise SystemExit('error: the Qwen ONNX engine is not available (%s)' % exc)
    try:
        engine = OnnxCausalLM(model_dir)
    except Exception as exc:  # noqa: BLE001 - any load failure is a usage error here
        raise SystemExit('error: cannot load the Qwen ONNX model from %s: %s' % (model_dir, exc))
    if not hasattr(engine, 'score_continuations'):
        raise SystemExit('error: OnnxCausalLM has no score_continuations method')
    return engine


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='qwen-voice-dialect-eval', description=__doc__)
    parser.add_argument('--data', required=True, help='JSONL file with "text" and "label"')
    parser.add_argument('--stage', default='fast', choices=['markers', 'fast', 'llm', 'hybrid'])
    parser.add_argument('--json', action='store_true', help='print a JSON summary last')
    parser.add_argument('--model-path', default='', help='fast-stage .npz (default: shipped)')
    parser.add_argument('--model-dir', default='', help='ONNX Qwen export for llm/hybrid')
    parser.add_argument('--llm-threshold', type=float, default=0.6)
    parser.add_argument('--text-key', default='text',
                        help='field holding the text to classify, e.g. asr_text for the '
                             'transcripts of scripts/make_asr_dialect_data.py')
    parser.add_argument('--source', choices=['typed', 'asr'], default='typed',
                        help='fast-stage model: typed (default, as the node by default) or '
                             'asr (the model for ASR transcripts)')
    parser.add_argument('--asr-model-path', default='',
                        help='fast-stage .npz for --source asr (default: shipped ASR model, or '
                             '--model-path when that is given)')
    parser.add_argument('--asr-like', action='store_true',
                        help='evaluate on an ASR-like version of the text (no punctuation, '
                             'dialect-only characters in Mandarin form)')
    args = parser.parse_args(argv)

    from . import load_dialect_classifier
    source = args.source
    from .metrics import evaluate, format_report

    if not os.path.isfile(args.data):
        print('error: no such file %s' % args.data, file=sys.stderr)
        return 2
    rows = _read_rows(args.data, args.text_key)
    if not rows:
        print('error: no rows with "%s" and "label" in %s' % (args.text_key, args.data),
              file=sys.stderr)
        return 2
    scorer = None
    if args.stage in ('llm', 'hybrid'):
        try:
            scorer = _build_scorer(args.model_dir)
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            return 2
    clf = load_dialect_classifier(stage=args.stage, llm_threshold=args.llm_threshold,
                                  model_path=args.model_path, llm_scorer=scorer,
                                  asr_model_path=args.asr_model_path)
    texts = [text for text, _ in rows]
    if args.asr_like:
        from .asr_like import to_asr_like
        texts = [to_asr_like(text) for text in texts]
    clf.classify('预热')  # first call loads OpenCC; keep it out of the timing
    stages = {}
    preds = []
    start = time.perf_counter()
    for text in texts:
        res = clf.classify(text, source=source)
        preds.append(res.label)
        stages[res.stage] = stages.get(res.stage, 0) + 1
    elapsed = time.perf_counter() - start
    ms = 1000.0 * elapsed / len(rows)
    result = evaluate([label for _, label in rows], preds)
    print('stage=%s  source=%s  rows=%d  decided by %s'
          % (args.stage, source, len(rows), stages))
    print(format_report(result))
    print('ms per sentence: %.4f' % ms)
    if args.json:
        summary = {
            'accuracy': result['accuracy'], 'macro_f1': result['macro_f1'],
            'per_class': {label: {'precision': row['precision'], 'recall': row['recall']}
                          for label, row in result['per_class'].items()},
            'ms_per_sentence': ms, 'n': len(rows), 'stage': args.stage, 'source': source,
        }
        print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
