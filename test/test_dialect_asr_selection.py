"""Choosing the dialect models on out-of-fold predictions, and the transcript training data."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from qwen_voice_ros.dialect import training as T

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script(name):
    path = os.path.join(REPO, 'scripts', name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sound_retention_counts_homophones_and_drops_hallucinations():
    pytest.importorskip('pypinyin')
    assert T.sound_retention('啥子好耍', '傻子好耍') == pytest.approx(1.0)  # same sounds
    assert T.sound_retention('今儿个干活干得真得劲儿', '请按赞及分享') < 0.2  # hallucination
    half = T.sound_retention('我们明天一起去', '我们明天')
    assert 0.5 < half < 0.6  # 4 of 7 syllables, in order
    assert T.sound_retention('', '你好') == 0.0


def test_asr_examples_down_weight_dialect_transcripts_that_kept_little(tmp_path):
    pytest.importorskip('pypinyin')
    rows = [{'id': 'a', 'text': '你在爪子嘛', 'asr_text': '你在抓子吗', 'label': 'sichuanese'},
            {'id': 'b', 'text': '今儿个干活干得真得劲儿', 'asr_text': '请按赞及分享',
             'label': 'northeastern'},
            {'id': 'c', 'text': '我想去公园', 'asr_text': '请按赞及分享', 'label': 'mandarin'}]
    path = tmp_path / 'asr.jsonl'
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows),
                    encoding='utf-8')
    plain = T.asr_examples(str(path), 3.0)
    assert [ex.weight for ex in plain] == [3.0, 3.0, 3.0]
    scaled = T.asr_examples(str(path), 3.0, min_retention=0.6)
    assert scaled[0].weight == pytest.approx(3.0)      # kept the sounds
    assert scaled[1].weight < 0.5                        # kept nothing of the dialect sentence
    assert scaled[2].weight == pytest.approx(3.0)      # Mandarin label is right regardless
    assert [ex.origin for ex in scaled] == [r['text'] for r in rows]


def test_typed_model_choice_keeps_typed_accuracy_and_mandarin_recall(capsys):
    build = _load_script('build_dialect_model')
    labels = list(build.DIALECT_LABELS)
    rng = np.random.RandomState(1)
    gold_dev = [labels[i % 8] for i in range(400)]
    gold_probes = [labels[i % 8] for i in range(200)]
    yd = np.array([labels.index(g) for g in gold_dev])
    yp = np.array([labels.index(g) for g in gold_probes])

    def logits(y, strength, mandarin_bias):
        z = strength * np.eye(8)[y] + rng.normal(0, 1, (len(y), 8))
        z[:, 0] += mandarin_bias
        return z
    # the noisy model hears transcripts better, but costs typed accuracy and Mandarin recall
    parts = {'noisy': {'plain': logits(yd, 3.0, -0.8), 'probes': logits(yp, 1.6, -1.0)},
             'clean': {'plain': logits(yd, 4.5, 0.0), 'probes': logits(yp, 0.8, 0.0)}}
    shares, offsets = build.TYPED_SHARES, build.MANDARIN_OFFSETS
    share, offset = build._choose_typed(parts, gold_dev, gold_probes, shares, offsets)

    def score(s, o):
        out = []
        for name, y in (('plain', yd), ('probes', yp)):
            z = s * parts['noisy'][name] + (1 - s) * parts['clean'][name]
            z[:, 0] += o
            pred = z.argmax(axis=1)
            out.append(((pred == y).mean(), (pred[y == 0] == 0).mean()))
        return out
    (typed, _), (heard, recall) = score(share, offset)
    assert typed >= build.TYPED_ACCURACY and recall >= build.MANDARIN_RECALL
    for s in shares:
        for o in offsets:
            (t2, _), (h2, r2) = score(s, o)
            if t2 >= build.TYPED_ACCURACY and r2 >= build.MANDARIN_RECALL:
                assert h2 <= heard + 1e-12
    # a fixed setting is taken as given
    assert build._choose_typed(parts, gold_dev, gold_probes, (0.3,), (0.5,)) == (0.3, 0.5)
    capsys.readouterr()


def test_from_logits_refuses_logits_of_other_data(tmp_path, capsys):
    build = _load_script('build_dialect_model')
    dev = [T.Example('今天天气很好', 'mandarin'), T.Example('侬好伐', 'shanghainese')]
    path = str(tmp_path / 'oof.npz')
    np.savez(path, gold_dev=['mandarin', 'shanghainese'], gold_probes=[],
             clean_plain=np.zeros((2, 8)), noisy_plain=np.ones((2, 8)))
    parts = build._load_logits(path, dev, [])
    assert set(parts) == {'noisy', 'clean'} and parts['noisy']['plain'].shape == (2, 8)
    with pytest.raises(SystemExit):
        build._load_logits(path, dev[::-1], [])
    capsys.readouterr()


def test_train_set_refuses_held_out_sentences(tmp_path):
    sys.path.insert(0, os.path.join(REPO, 'scripts'))
    try:
        gen = _load_script('make_asr_dialect_data')
    finally:
        sys.path.pop(0)
    held = tmp_path / 'heldout.txt'
    held.write_text('# test\nsichuanese\t今天巴适得很，我们去耍一哈\n', encoding='utf-8')
    ok = {'mandarin': [('dev:0', '我们明天一起去爬山', 'mandarin')]}
    gen._refuse_heldout(ok, str(held))
    leak = {'sichuanese': [('dev:1', '今天巴适得很，我们去耍一哈！', 'sichuanese')]}
    with pytest.raises(ValueError):
        gen._refuse_heldout(leak, str(held))
    # the shipped train set passes the check against the shipped held-out file
    rows = gen.train_sentences(1000)
    ids = {row_id for row_id, _, _ in rows}
    assert not any(i.startswith('heldout') for i in ids)
