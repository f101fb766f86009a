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
    """The default voice (no voice argument), first ROUND_TRIP_N sentences of the data file.

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
    score = RoundTrip(kokoro).load().score(texts)
    for row in score.rows:
        print('%d %s -> %s' % (row.errors, row.text, row.heard))
    assert kokoro.voice == 'jf_nezumi' and kokoro.speed == 1.0
    assert score.chars > 120
    # Measured on these 8 (docs/tts.md): jf_nezumi 0.126, jf_gongitsune 0.119, jm_kumo ~0.14,
    # jf_alpha 0.21.  The 10 % is NOT met on them by any shipped voice; this bound
    # guards the level reached (a broken G2P, text norm or default voice fails it), with room
    # for Whisper's sampled temperature fallback.
    assert score.cer <= 0.16, 'CER %.3f (%d/%d)' % (score.cer, score.errors, score.chars)
