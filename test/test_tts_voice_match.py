"""Voice matching: the blend search, the per-profile cache, reference clip checks."""
import numpy as np
import pytest

from qwen_voice_ros.tts.base import Speech
from qwen_voice_ros.tts.profiles import ProfileError, load_profile, load_reference
from qwen_voice_ros.tts.voice_match import match_profile, match_reference, search, search_split


def test_search_beats_the_best_single_voice_on_a_blend_optimum():
    names = ['a', 'b', 'c', 'd', 'e']
    target = np.array([0.45, 0.35, 0.0, 0.2, 0.0])

    def score(weights):
        w = np.array([weights.get(n, 0.0) for n in names])
        return 1.0 - float(np.sum((w - target) ** 2))
    best, value, singles, history = search(score, names, tries=24)
    assert len(history) == 24 and set(singles) == set(names)
    assert value >= max(singles.values()) + 0.1
    assert abs(sum(best.values()) - 1) < 1e-9 and min(best.values()) >= 0


def test_search_with_a_negative_floor_extrapolates():
    names = ['a', 'b', 'c']
    target = np.array([1.3, 0.0, -0.3])

    def score(weights):
        w = np.array([weights.get(n, 0.0) for n in names])
        return 1.0 - float(np.sum((w - target) ** 2))
    inside, inside_value, _, _ = search(score, names, tries=30)
    outside, outside_value, _, _ = search(score, names, tries=30, floor=-0.5)
    assert min(inside.values()) >= 0 and min(outside.values()) >= -0.5
    assert outside_value > inside_value + 0.05
    assert abs(sum(outside.values()) - 1) < 1e-9


def test_search_respects_a_tiny_budget():
    _, _, singles, history = search(lambda w: 0.5, ['a', 'b', 'c'], tries=2)
    assert len(history) == 2 and len(singles) == 2


def _wav(path, seconds, rate=16000, amplitude=0.3):
    from qwen_voice_ros.audio.wavfile import write_wav
    t = np.arange(int(seconds * rate)) / rate
    write_wav(str(path), (amplitude * np.sin(2 * np.pi * 150 * t)).astype(np.float32), rate)
    return str(path)


class FakeKokoro:
    """Kokoro stand-in: the 'voice' is the style's mean, carried into the audio."""

    def __init__(self):
        self.voices = {n: np.full((510, 1, 256), v, np.float32)
                       for n, v in (('v1', 0.1), ('v2', 0.5), ('v3', 0.9))}
        self.calls = 0

    def synthesize(self, text, dialect=None, style=None):
        self.calls += 1
        return Speech(np.full(1600, float(style.mean()), np.float32), 16000)


class FakeEmbedder:
    """Embeds a clip as a 2-d direction; the reference's direction corresponds to 0.62."""

    def embed(self, audio, rate=16000):
        level = float(np.mean(audio)) if len(audio) == 1600 else 0.62
        return np.array([np.cos(level), np.sin(level)], np.float32)


def test_match_profile_caches_per_reference(tmp_path):
    from qwen_voice_ros.tts.profiles import VoiceProfile
    ref = _wav(tmp_path / 'ref.wav', 2.0)
    tts, embedder = FakeKokoro(), FakeEmbedder()
    first = match_profile(tts, VoiceProfile(ref), tries=12, cache_dir=str(tmp_path),
                          embedder=embedder, use_asr=False)
    assert not first.cached and first.tries == 12 and tts.calls == 12
    assert first.similarity > first.baseline_similarity
    assert first.baseline_voice == 'v2'
    again = match_profile(tts, VoiceProfile(ref), tries=12, cache_dir=str(tmp_path),
                          embedder=embedder, use_asr=False)
    assert again.cached and tts.calls == 12 and again.weights == pytest.approx(first.weights)
    held_out = match_profile(tts, VoiceProfile(ref), tries=6, cache_dir=str(tmp_path),
                             embedder=embedder, exclude=['v2'], use_asr=False)
    assert not held_out.cached and 'v2' not in held_out.singles
    # without an intelligibility check the search never extrapolates
    unchecked = match_profile(tts, VoiceProfile(ref), tries=12, cache_dir=str(tmp_path),
                              embedder=embedder, floor=-0.5, use_asr=False)
    assert min(unchecked.weights.values()) >= 0 and unchecked.check.startswith('unchecked')


def _toy(names, timbre_target, prosody_target):
    def score(timbre, prosody):
        t = np.array([timbre.get(n, 0.0) for n in names])
        p = np.array([prosody.get(n, 0.0) for n in names])
        return (1.0 - float(np.sum((t - timbre_target) ** 2))
                - 0.3 * float(np.sum((p - prosody_target) ** 2)))
    return score


def test_split_search_extrapolates_the_timbre_only():
    names = ['a', 'b', 'c', 'd', 'e']
    score = _toy(names, np.array([1.3, 0.2, 0.0, -0.2, -0.3]), np.array([0, 0, 1.0, 0, 0]))
    (inside_t, inside_p), inside, singles, history = search_split(score, names, tries=32)
    (t, p), value, _, _ = search_split(score, names, tries=32, floor=-0.5)
    assert len(history) == 32 and set(singles) == set(names)
    assert min(inside_t.values()) >= 0 and min(t.values()) >= -0.5 - 1e-9
    assert min(t.values()) < 0 and min(p.values()) >= 0          # prosody never extrapolates
    assert abs(sum(t.values()) - 1) < 1e-9 and abs(sum(p.values()) - 1) < 1e-9
    assert value > inside + 0.1 and inside > max(singles.values())


class SplitKokoro(FakeKokoro):
    """Output level = timbre-half mean; 'clarity' falls with the prosody half's distance."""

    def __init__(self):
        self.voices = {n: np.full((510, 1, 256), v, np.float32)
                       for n, v in (('v1', 0.1), ('v2', 0.5), ('v3', 0.9))}
        self.calls = 0

    def synthesize(self, text, dialect=None, style=None, speed=None):
        self.calls += 1
        return Speech(np.full(1600, float(style[..., :128].mean()), np.float32), 16000)


def test_intelligibility_constraint_rejects_unclear_candidates():
    tts, embedder = SplitKokoro(), FakeEmbedder()
    reference = embedder.embed(np.zeros(10))     # direction of level 0.62: between v2 and v3

    def cer_of(style):
        # extrapolated timbre (level outside the voices' 0.1..0.9) "sounds unclear"
        level = float(style[..., :128].mean())
        return 0.05 if 0.1 <= level <= 0.9 else 0.5
    free = match_reference(tts, reference, embedder, tries=16, floor=-0.5,
                           check=lambda style: 0.05)
    strict = match_reference(tts, reference, embedder, tries=16, floor=-0.5, check=cer_of,
                             cer_margin=0.05)
    assert free.cer == 0.05 and free.similarity > free.baseline_similarity
    assert strict.baseline_cer == 0.05 and strict.cer <= 0.10
    assert strict.similarity >= strict.baseline_similarity
    # a check that fails every candidate keeps the best single voice, and says so
    never = match_reference(tts, reference, embedder, tries=16, floor=-0.5,
                            check=lambda style: 0.05 if style.std() == 0 else 0.9)
    assert never.weights == {never.baseline_voice: 1.0} and never.prosody is None
    assert never.similarity == never.baseline_similarity and 'kept' in never.check


def test_reference_checks(tmp_path):
    from qwen_voice_ros.tts.profiles import VoiceProfile
    with pytest.raises(ProfileError, match='too short'):
        load_reference(VoiceProfile(_wav(tmp_path / 's.wav', 0.3)))
    with pytest.raises(ProfileError, match='silent'):
        load_reference(VoiceProfile(_wav(tmp_path / 'z.wav', 2.0, amplitude=0.0)))
    with pytest.raises(ProfileError, match='not found'):
        load_reference(VoiceProfile(str(tmp_path / 'missing.wav')))
    bad = tmp_path / 'bad.wav'
    bad.write_bytes(b'RIFF1234WAVEjunk')
    with pytest.raises(ProfileError, match='not a readable PCM WAV'):
        load_reference(VoiceProfile(str(bad)))
    audio, rate = load_reference(VoiceProfile(_wav(tmp_path / 'hi.wav', 2.0, rate=44100)))
    assert rate == 44100 and len(audio) == 32000


def test_load_profile_forms(tmp_path):
    wav = _wav(tmp_path / 'guide.wav', 2.0)
    (tmp_path / 'guide.txt').write_text('欢迎光临。', encoding='utf-8')
    profile = load_profile(wav)
    assert profile.transcript == '欢迎光临。' and profile.name == 'guide'
    (tmp_path / 'p.yaml').write_text('wav: guide.wav\ntranscript: 你好\ndialect: cantonese\n',
                                     encoding='utf-8')
    profile = load_profile(str(tmp_path / 'p.yaml'))
    assert profile.wav_path == wav and profile.dialect == 'cantonese'
    (tmp_path / 'p.json').write_text('{"transcript": "x"}', encoding='utf-8')
    with pytest.raises(ProfileError, match='no "wav"'):
        load_profile(str(tmp_path / 'p.json'))
    assert load_profile('') is None
