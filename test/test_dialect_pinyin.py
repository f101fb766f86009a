"""Toneless pinyin features: homophones ASR writes for dialect words still count."""
import numpy as np
import pytest

from qwen_voice_ros.dialect import load_dialect_classifier
from qwen_voice_ros.dialect import training as T
from qwen_voice_ros.dialect.markers import MarkerLexicon
from qwen_voice_ros.dialect.ngram_model import NgramModel, extract_features
from qwen_voice_ros.dialect.normalize import normalize_text
from qwen_voice_ros.dialect.pinyin import (PinyinLexicon, fold_syllable, pinyin_features,
                                           syllables)

pytest.importorskip('pypinyin')


def test_homophones_share_syllables():
    assert syllables('额') == syllables('俄') == ('e',)
    assert syllables('恁') == syllables('嫩') == ('nen',)
    assert syllables('啥') == syllables('杀') == ('sha',)
    assert syllables('啥子 好耍') == ('sha', 'zi', ' ', 'hao', 'shua')
    assert syllables('@中') == ('?', 'zhong')


def test_fold_levels():
    assert fold_syllable('shuang', 0) == 'shuang'
    assert fold_syllable('shuang', 1) == 'suan'
    assert fold_syllable('lan', 1) == 'nan'
    assert fold_syllable('qia', 1) == 'qia' and fold_syllable('qia', 2) == 'jia'
    assert fold_syllable('chi', 2) == 'zi'


def test_pinyin_lexicon_fires_on_asr_homophones():
    lex = MarkerLexicon()
    plex = PinyinLexicon(lex.entries, 0)
    keys = [entry.literal for entry in plex.matches(syllables('你在做傻子嘛'))]
    assert '啥子' in keys  # 傻子 sha zi = 啥子
    assert not lex.evidence('你在做傻子嘛').get('sichuanese')  # characters alone miss it
    feats = pinyin_features('你在做傻子嘛', plex, (1, 2))
    assert feats['f:sichuanese'] > 0 and 'p:sha_zi' in feats and 'q:啥子' in feats
    assert not any(k.startswith('q:') for k in pinyin_features('今天天气很好', plex, (1,)))
    # Characters present: the character matcher and its regex decide (阿拉伯 is not 阿拉).
    assert not any(k.startswith('q:') for k in pinyin_features('阿拉伯数字', plex, (1,)))
    assert not any(k.startswith('q:') for k in pinyin_features('你做啥子', plex, (1,)))


def test_pinyin_model_roundtrip_and_homophone_generalisation(tmp_path):
    rows = [('mandarin', '今天天气很好'), ('mandarin', '我想去公园'),
            ('mandarin', '帮我开灯'), ('shaanxi', '额要吃饭'), ('shaanxi', '额想回去'),
            ('henan', '恁弄啥嘞'), ('henan', '恁去哪'), ('sichuanese', '你做啥子'),
            ('cantonese', '佢去咗边度'), ('shanghainese', '侬好伐'),
            ('northeastern', '你嘎哈呢'), ('hunan', '你恰饭哒冇')]
    examples = [T.Example(text, label) for label, text in rows]
    model = T.train(examples, l2=0.1, max_iter=200, pinyin_level=0, pinyin_min_count=1)
    assert any(name.startswith('p:') for name in model.vocab)
    path = str(tmp_path / 'py.npz')
    model.save(path)
    loaded = NgramModel.load(path)
    assert loaded.pinyin_level == 0
    for text in ('俄要吃饭', '嫩去哪', '今天天气很好'):
        norm = normalize_text(text)
        assert np.allclose(model.predict_proba(norm), loaded.predict_proba(norm), atol=1e-2)
        assert set(extract_features(norm, MarkerLexicon(), model.orders, model.plex)) >= {
            'p:' + s for s in syllables(norm, 0) if s != ' '}
    # 俄 (a homophone of 额 the transcript writes) was never seen: the sound carries it.
    clf = load_dialect_classifier(model_path=path)
    assert clf.classify('俄要吃饭').label == 'shaanxi'
    assert clf.classify('嫩去哪').label == 'henan'


def test_character_only_model_file_still_loads(tmp_path):
    examples = [T.Example('今天天气很好', 'mandarin'), T.Example('侬好伐', 'shanghainese')]
    model = T.train(examples, l2=0.1, max_iter=50)
    path = str(tmp_path / 'chars.npz')
    model.save(path)
    assert NgramModel.load(path).plex is None
