"""Training round trip on a tiny set: train, save, load, same predictions; CV never leaks."""
import numpy as np

from qwen_voice_ros.dialect import load_dialect_classifier
from qwen_voice_ros.dialect import training as T
from qwen_voice_ros.dialect.ngram_model import NgramModel
from qwen_voice_ros.dialect.normalize import normalize_text

TINY = [('mandarin', '今天天气很好'), ('mandarin', '我想去公园'), ('cantonese', '佢去咗边度'),
        ('cantonese', '我哋食饭啦'), ('shanghainese', '侬好伐'), ('shanghainese', '阿拉一道去'),
        ('sichuanese', '你在爪子嘛'), ('northeastern', '你嘎哈呢'), ('henan', '中不中嘞'),
        ('hunan', '你恰饭哒冇'), ('shaanxi', '额要咥饭咧')]


def test_train_save_load_roundtrip(tmp_path):
    examples = [T.Example(text, label) for label, text in TINY]
    model = T.train(examples, l2=0.1, max_iter=100)
    path = str(tmp_path / 'tiny.npz')
    model.save(path)
    loaded = NgramModel.load(path)
    for _, text in TINY:
        norm = normalize_text(text)
        assert np.allclose(model.predict_proba(norm), loaded.predict_proba(norm), atol=1e-2)
    correct = sum(loaded.predict_proba(normalize_text(t)).argmax() == T.LABEL_INDEX[lab]
                  for lab, t in TINY)
    assert correct >= len(TINY) - 1
    clf = load_dialect_classifier(model_path=path)
    assert clf.classify('佢去咗边度').label == 'cantonese'


def test_folds_keep_groups_and_dedup_drops_held_out():
    examples = [T.Example('句子%d' % i, 'mandarin', group='g%d' % (i // 3)) for i in range(30)]
    folds = T.stratified_group_folds(examples, k=5)
    for i in range(0, 30, 3):
        assert len({folds[i], folds[i + 1], folds[i + 2]}) == 1
    held = [T.Example('侬今朝去阿里搭白相', 'shanghainese')]
    extra = [T.Example('侬今朝去阿里搭白相？', 'shanghainese'),
             T.Example('我们明天一起去爬山', 'mandarin')]
    kept = T.drop_near_duplicates(extra, held)
    assert [ex.text for ex in kept] == ['我们明天一起去爬山']
