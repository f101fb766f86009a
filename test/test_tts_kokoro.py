"""Kokoro on the offline pack: G2P into the vocabulary, voices, and the ASR round trip.

The round trip (Kokoro Mandarin -> the project's faster-whisper on the offline Whisper-base
pack) must stay at the level measured in docs/tts.md.  Skips with the reason when a pack is
not installed.
"""
import numpy as np
import pytest

from qwen_voice_ros.tts.kokoro import (STYLE_SPLIT, blend, format_voice, parse_voice,
                                       parse_voice_spec, split_ids)

ROUND_TRIP = [
    '今天天气很好，我们一起去公园散步吧。',
    '请把桌子上的红色杯子递给我。',
    '会议定在2024年3月5日下午3点开始。',
    '前方五十米右转，就到地铁站了。',
]
ROUND_TRIP_N = 8    # sentences of data/tts/round_trip_zh.txt the test speaks (~25 s CPU)


def _kokoro_reason():
    try:
        from qwen_voice_ros.tts.kokoro import pack_model_path
        pack_model_path()
        import misaki.zh  # noqa: F401
    except Exception as exc:
        return str(exc)
    return ''


@pytest.fixture(scope='module')
def kokoro():
    reason = _kokoro_reason()
    if reason:
        pytest.skip('Kokoro pack not available: %s' % reason)
    from qwen_voice_ros.tts.kokoro import KokoroTTS
    tts = KokoroTTS()
    tts.load()
    return tts


def test_parse_voice():
    names = ['a', 'b']
    assert parse_voice('a', names) == {'a': 1.0}
    assert parse_voice('a:3,b:1', names) == {'a': 0.75, 'b': 0.25}
    assert parse_voice('a:1.5,b:-0.5', names) == {'a': 1.5, 'b': -0.5}
    for bad in ('c', 'a:x', 'a:-1', '', 'a:1,b:-1', 'a:20'):
        with pytest.raises(ValueError):
            parse_voice(bad, names)


def test_voice_spec_with_a_separate_prosody_blend():
    names = ['a', 'b']
    voices = {'a': np.ones((3, 1, 256), np.float32), 'b': np.full((3, 1, 256), 3.0, np.float32)}
    timbre, prosody = parse_voice_spec('a:1.5,b:-0.5|b', names)
    assert timbre == {'a': 1.5, 'b': -0.5} and prosody == {'b': 1.0}
    assert parse_voice_spec('a', names) == ({'a': 1.0}, None)
    style = blend(voices, timbre, prosody)
    assert np.allclose(style[..., :STYLE_SPLIT], 0.0) and np.allclose(style[..., STYLE_SPLIT:], 3)
    assert np.allclose(blend(voices, {'a': 0.5, 'b': 0.5}), 2.0)
    assert format_voice(timbre, prosody) == 'a:1.500,b:-0.500|b:1.000'
    assert parse_voice_spec(format_voice(timbre, prosody), names) == (timbre, prosody)


def _misaki_reason():
    try:
        import misaki.zh  # noqa: F401
    except Exception as exc:
        return str(exc)
    return ''


@pytest.mark.skipif(bool(_misaki_reason()), reason='misaki[zh] not installed')
def test_tone_sandhi_and_pinyin_overrides():
    from qwen_voice_ros.tts.kokoro import MandarinG2P, load_overrides
    legacy, sandhi = MandarinG2P(sandhi=False), MandarinG2P(sandhi=True)
    assert load_overrides()['调到'] == ['tiao2', 'dao4']
    # 空调调到: legacy reads the second 调 diao4 (tjau↘); the override gives tiao2
    assert legacy('空调调到') == 'kʰʊ→ŋtʰjau↗ tjau↘ tau↘'
    assert sandhi('空调调到') == 'kʰʊ→ŋtʰjau↗ tʰjau↗ tau↘'
    assert legacy('可以') == 'kʰɤ↓i↓' and sandhi('可以') == 'kʰɤ↗i↓'        # 3-3 -> 2-3
    assert legacy('不贵') == 'pu↘ kwei↘' and sandhi('不贵') == 'pu↗kwei↘'    # bu2 before 4
    assert legacy('一瓶') == 'i→pʰi↗ŋ' and sandhi('一瓶') == 'i↘pʰi↗ŋ'        # yi4 before 2
    # punctuation, English and digits take the same path as the legacy call
    for text in ('你好，我是机器人。', '请打开GPS和Wi-Fi。', '共3个'):
        assert sandhi(text).count(',') == legacy(text).count(',')
        assert sandhi(text).count('.') == legacy(text).count('.')


def test_round_trip_scores_against_the_spoken_text():
    from qwen_voice_ros.tts.intelligibility import row
    # the voice said 二点五公里 / 十点三十分 correctly: no errors for units or clock times
    assert row('还有2.5km，开车要十分钟。', '还有2.5公里开车要10分钟').errors == 0
    assert row('现在是上午10:30。', '现在是上午10.30分').errors == 0
    assert row('下午4:15起飞', '下午4:15起飞').errors == 0
    assert row('只要¥199。', '只要199元').errors == 0
    # a misheard syllable still counts; a decimal stays a decimal
    assert row('会议定在下午3点。', '回忆定在下午3点').errors == 2
    assert row('重3.6kg', '重3.6千克').errors == 0 and row('重3.6kg', '重3.7千克').errors == 1
    assert row('还有2.5km', '还有2.5km', normalize_text=False).errors == 0


def test_split_ids_prefers_punctuation():
    ids = [1] * 300 + [4] + [1] * 300
    chunks = split_ids(ids, 500, {4})
    assert [len(c) for c in chunks] == [301, 300]
    assert sum(len(c) for c in split_ids([1] * 1200, 500, {4})) == 1200


def test_mandarin_and_english_phonemes_are_in_the_vocabulary(kokoro):
    ps = kokoro.phonemes('你好，我是机器人。')
    assert ps and all(ch in kokoro._vocab for ch in ps)
    assert '↓' in ps  # tones survive
    en = kokoro.phonemes('请打开GPS')
    import shutil
    if shutil.which('espeak-ng'):
        assert all(ch in kokoro._vocab for ch in en) and 'G' not in en


def test_synthesize_and_blend(kokoro):
    speech = kokoro.synthesize('你好。')
    assert speech.sample_rate == 24000 and speech.audio.dtype == np.float32
    assert 0.3 < speech.duration_s < 3.0 and np.isfinite(speech.audio).all()
    blend = kokoro.synthesize('你好。', style=0.5 * (kokoro.voices['jf_alpha']
                                                  + kokoro.voices['jm_kumo']))
    assert blend.duration_s > 0.3
    from qwen_voice_ros.tts.base import TTSError
    with pytest.raises(TTSError, match='nothing speakable'):
        kokoro.synthesize('。。。')
    with pytest.raises(TTSError, match='no cantonese voice'):
        kokoro.synthesize('你好', dialect='cantonese')


def test_round_trip_through_the_project_asr(kokoro):
    """The clear voice (zh_clear at 0.9), first ROUND_TRIP_N sentences of the data file.

    The file is the set docs/tts.md measures every voice x speed on; the first eight cover
    plain requests, a date and time, distances, a temperature and a clock time.
    """
    from qwen_voice_ros.asr.offline_pack import parts_installed
    if not parts_installed():
        pytest.skip('offline Whisper-base pack not installed (requirements/'
                    'offline-speech-pack.txt)')
    from qwen_voice_ros.tts.intelligibility import RoundTrip, read_texts
    texts = read_texts()[:ROUND_TRIP_N]
    assert texts[:4] == ROUND_TRIP
    # 3 seeded decodes per clip, errors averaged: Whisper's temperature fallback samples, and
    # one unseeded decode of a clip moved by up to 14 errors between runs (docs/tts.md)
    from qwen_voice_ros.tts.kokoro import CLEAR_SPEED, CLEAR_VOICE, KokoroTTS
    clear = KokoroTTS(voice=CLEAR_VOICE, speed=CLEAR_SPEED)
    clear.load()
    score = RoundTrip(clear).load().score(texts, seeds=3)
    clear.close()
    for row in score.rows:
        print('%g %s -> %s' % (row.errors, row.text, row.heard))
    assert clear.voice == 'zh_clear' and clear.speed == 0.9
    assert (kokoro.voice, kokoro.speed) == ('jf_nezumi', 1.0)  # the default: natural pace
    assert score.chars > 120
    # Measured on these 8 (143 characters, 3 seeded decodes, docs/tts.md): zh_clear
    # (jf_gongitsune@301) at 0.9 11 errors = 0.077; at 1.0 14 = 0.098; jf_nezumi@1.0 (the old
    # default) 18 = 0.126.  The bound (13 errors) fails the earlier levels, a broken G2P, text
    # norm, named voice, style row or speed; the whole eval file measured 0.091.
    assert score.cer <= 0.095, 'CER %.3f (%g/%d)' % (score.cer, score.errors, score.chars)


def test_split_clauses_cuts_after_punctuation():
    from qwen_voice_ros.tts.kokoro import split_clauses
    # 9 = comma, 0 = space: no clause starts with the space, a lone comma joins its clause
    assert split_clauses([1, 2, 9, 0, 3, 4, 9, 9, 0], {9}, {0}) == [[1, 2, 9], [3, 4, 9, 9]]
    assert split_clauses([1, 2, 3], {9}, {0}) == [[1, 2, 3]]
    assert split_clauses([9, 1, 2], {9}, {0}) == [[9], [1, 2]]


def test_named_voice_profiles(tmp_path):
    from qwen_voice_ros.tts.kokoro import named_voices
    path = tmp_path / 'voices.txt'
    path.write_text('# comment\nclear  a:0.7,b:0.3|b   # why\n\n', encoding='utf-8')
    assert named_voices(str(path)) == {'clear': 'a:0.7,b:0.3|b'}
    assert named_voices(str(tmp_path / 'missing.txt')) == {}
    path.write_text('broken a b\n', encoding='utf-8')
    with pytest.raises(ValueError):
        named_voices(str(path))
    # every shipped profile parses against the shipped voice names
    shipped = named_voices()
    names = ['jf_alpha', 'jf_gongitsune', 'jf_nezumi', 'jf_tebukuro', 'jm_kumo']
    assert shipped, 'data/tts/kokoro_voices.txt has no profile'
    for name, spec in shipped.items():
        assert name not in names
        assert parse_voice_spec(name, names) == parse_voice_spec(spec, names)


def test_training_sentences_are_disjoint_from_the_eval_set():
    import os
    from qwen_voice_ros.tts.intelligibility import read_texts
    from qwen_voice_ros.tts.voice_match import CHECK_TEXTS, PROBE_TEXT
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    train = read_texts(os.path.join(root, 'data', 'tts', 'intelligibility_train_zh.txt'))
    others = set(read_texts()) | set(CHECK_TEXTS) | {PROBE_TEXT} | set(read_texts(
        os.path.join(root, 'data', 'tts', 'clone_eval_texts.txt')))
    assert len(train) >= 30 and len(set(train)) == len(train)
    assert not set(train) & others


def test_speech_cache_and_clause_split(kokoro, tmp_path):
    """The cache returns the audio it stored, and keys on style and synthesis options."""
    from qwen_voice_ros.tts.intelligibility import RoundTrip
    trip = RoundTrip(kokoro, cache_dir=str(tmp_path))   # speech16k needs no ASR
    text = '你好，我是机器人。'
    first = trip.speech16k(text)
    again = trip.speech16k(text)
    assert trip.cache.misses == 1 and trip.cache.hits == 1
    assert again.shape == first.shape and np.array_equal(again, first)   # same audio scored
    other = kokoro.voices['jm_kumo']
    trip.speech16k(text, style=other)
    assert trip.cache.misses == 2
    kokoro.clause_split = True
    try:
        split = trip.speech16k(text)
        assert trip.cache.misses == 3
        # two clauses, each trimmed, joined by a 0.2 s pause: speech, then a silent gap
        assert np.isfinite(split).all() and abs(len(split) - len(first)) < 16000
        quiet = np.convolve(np.abs(split) > 0.01, np.ones(1600), 'valid') == 0
        assert quiet.any(), 'no pause between the clauses'
    finally:
        kokoro.clause_split = False


def test_style_row_suffix():
    from qwen_voice_ros.tts.kokoro import split_row, voice_style
    rng = np.random.default_rng(0)
    voices = {'a': rng.random((510, 1, 256), np.float32),
              'b': rng.random((510, 1, 256), np.float32)}
    assert split_row('a:0.5,b:0.5|b@151') == ('a:0.5,b:0.5|b', 151)
    assert split_row('a') == ('a', None)
    with pytest.raises(ValueError):
        split_row('a@0')
    fixed = voice_style(voices, 'a@151')      # row of length 151 = index 150, for every length
    assert np.array_equal(fixed[0], voices['a'][150]) and np.array_equal(fixed[509],
                                                                         voices['a'][150])
    assert np.array_equal(voice_style(voices, 'a'), voices['a'])
    split = voice_style(voices, 'a|b@20')
    assert np.allclose(split[3, 0, :STYLE_SPLIT], voices['a'][19, 0, :STYLE_SPLIT])
    assert np.allclose(split[3, 0, STYLE_SPLIT:], voices['b'][19, 0, STYLE_SPLIT:])
    assert parse_voice_spec('a|b@20', ['a', 'b']) == ({'a': 1.0}, {'b': 1.0})
