"""
qwen-voice-asr-eval: character error rate and real-time factor of an ASR backend on a manifest.

    qwen-voice-asr-eval --data manifest.jsonl [--backend faster_whisper] [-p beam_size=5] [--json]

Manifest rows (JSONL): ``{"audio": path relative to the manifest, "text": reference,
"label": optional dialect label}``; other keys are ignored.  WAV files at any rate and sample
format (resampled to 16 kHz mono).  CER is computed over the whole set (edit distance / reference
characters) after normalising both sides: OpenCC t2s, no punctuation or spaces, numbers read out
(asr/textnorm.py).  RTF = recognition wall time / audio duration (``cpu_rtf``: CPU seconds of all
threads per audio second, which a loaded machine does not inflate).  With labels, the dialect stage
(the classifier's default fast stage) runs on each transcript and its accuracy and per-class
precision/recall are reported.  With ``--json`` the last line is one JSON object with keys
``cer``, ``rtf`` (and ``dialect_accuracy``, ``dialect_per_class`` when labels are present).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Tuple


def read_manifest(path: str) -> List[Dict[str, object]]:
    """Rows with "audio" and "text" (audio made absolute); bad rows are warned about, skipped."""
    base = os.path.dirname(os.path.abspath(path))
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
            if not isinstance(row, dict) or 'audio' not in row or 'text' not in row:
                print('warning: %s:%d lacks audio/text, skipped' % (path, lineno),
                      file=sys.stderr)
                continue
            row = dict(row)
            row['audio'] = os.path.join(base, str(row['audio']))
            rows.append(row)
    return rows


def load_audio(path: str, rate: int = 16000):
    """float32 mono at ``rate`` from a WAV (any rate, 8/16/24/32-bit or float)."""
    import numpy as np

    from qwen_voice_ros.audio.pcm import resample
    try:
        import soundfile
        audio, source_rate = soundfile.read(path, dtype='float32', always_2d=True)
        audio = audio.mean(axis=1)
    except ImportError:
        from qwen_voice_ros.audio.wavfile import read_wav
        audio, source_rate = read_wav(path)
    return resample(np.asarray(audio, np.float32), int(source_rate), rate)


def _parse_params(items: List[str]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError('-p needs key=value, got %r' % item)
        text = value.strip()
        parsed: object = text
        if text.lower() in ('true', 'false'):
            parsed = text.lower() == 'true'
        else:
            for kind in (int, float):
                try:
                    parsed = kind(text)
                    break
                except ValueError:
                    continue
        out[key.strip()] = parsed
    return out


def _dialect_scores(rows, hyps) -> Tuple[float, Dict[str, Dict[str, float]], Dict]:
    from qwen_voice_ros.dialect import load_dialect_classifier
    from qwen_voice_ros.dialect.metrics import evaluate
    clf = load_dialect_classifier()
    gold = [str(row['label']) for row in rows]
    pred = [clf.classify(text).label for text in hyps]
    result = evaluate(gold, pred)
    present = set(gold) | set(pred)
    per_class = {label: {'precision': round(r['precision'], 4), 'recall': round(r['recall'], 4)}
                 for label, r in result['per_class'].items() if label in present}
    return result['accuracy'], per_class, {'pred': pred, 'result': result}


def main(argv=None) -> int:
    from qwen_voice_ros.asr import ASR_BACKENDS, ASRNotConfigured, create_asr
    from qwen_voice_ros.asr.textnorm import edit_distance, normalize_for_cer

    parser = argparse.ArgumentParser(prog='qwen-voice-asr-eval', description=__doc__.split(
        '\n')[1], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('--data', required=True, help='manifest JSONL (audio, text[, label])')
    parser.add_argument('--backend', default='faster_whisper', choices=ASR_BACKENDS.names)
    parser.add_argument('--model-dir', default=None,
                        help="backend model directory (faster_whisper: '' = offline pack)")
    parser.add_argument('-p', '--param', action='append', default=[], metavar='KEY=VALUE',
                        help='backend parameter, e.g. -p beam_size=5 (repeatable)')
    parser.add_argument('--limit', type=int, default=0, help='first N rows only')
    parser.add_argument('--json', action='store_true', help='print a JSON summary last')
    args = parser.parse_args(argv)

    if not os.path.isfile(args.data):
        print('error: no such file %s' % args.data, file=sys.stderr)
        return 2
    rows = read_manifest(args.data)
    if args.limit:
        rows = rows[:args.limit]
    if not rows:
        print('error: no rows with "audio" and "text" in %s' % args.data, file=sys.stderr)
        return 2
    try:
        params = _parse_params(args.param)
    except ValueError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2
    if args.model_dir is not None:
        params['model_dir'] = args.model_dir
    try:
        asr = create_asr(args.backend, **params)
        asr.load()
    except ASRNotConfigured as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 2

    import numpy as np
    asr.transcribe(np.zeros(8000, np.float32))  # warm-up, outside the timing
    errors = ref_chars = 0
    audio_s = asr_s = cpu_s = 0.0
    hyps, per_row = [], []
    failed = 0
    for row in rows:
        try:
            audio = load_audio(str(row['audio']))
        except Exception as exc:  # unreadable file: counted as a full miss, reported
            print('warning: %s: %s' % (row['audio'], exc), file=sys.stderr)
            audio, failed = None, failed + 1
        text = ''
        if audio is not None and audio.size:
            started, cpu0 = time.perf_counter(), time.process_time()
            text = asr.transcribe(audio)
            asr_s += time.perf_counter() - started
            cpu_s += time.process_time() - cpu0
            audio_s += len(audio) / 16000.0
        ref, hyp = normalize_for_cer(str(row['text'])), normalize_for_cer(text)
        dist = edit_distance(ref, hyp)
        errors += dist
        ref_chars += len(ref)
        hyps.append(text)
        per_row.append(dist / float(max(1, len(ref))))
        print('%.3f  %s\n       ref %s\n       hyp %s' % (per_row[-1], os.path.basename(
            str(row['audio'])), row['text'], text))
    asr.close()
    cer = errors / float(max(1, ref_chars))
    rtf = asr_s / audio_s if audio_s else 0.0
    summary: Dict[str, object] = {
        'cer': round(cer, 4), 'rtf': round(rtf, 4), 'n': len(rows), 'failed': failed,
        'audio_s': round(audio_s, 2), 'asr_s': round(asr_s, 2), 'backend': args.backend,
        # CPU seconds (all threads) per audio second: comparable across loaded machines.
        'cpu_rtf': round(cpu_s / audio_s, 4) if audio_s else 0.0,
        'params': params,
    }
    print('rows=%d  CER=%.4f (%d/%d chars)  RTF=%.3f (%.1f s audio in %.1f s; %.1f CPU s)'
          % (len(rows), cer, errors, ref_chars, rtf, audio_s, asr_s, cpu_s))
    labelled = [i for i, row in enumerate(rows) if row.get('label')]
    if labelled:
        from qwen_voice_ros.dialect.metrics import format_report
        accuracy, per_class, extra = _dialect_scores([rows[i] for i in labelled],
                                                     [hyps[i] for i in labelled])
        print('dialect stage on the transcripts (%d labelled rows):' % len(labelled))
        print(format_report(extra['result']))
        summary['dialect_accuracy'] = round(accuracy, 4)
        summary['dialect_per_class'] = per_class
        summary['dialect_n'] = len(labelled)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
