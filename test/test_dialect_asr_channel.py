"""The learned ASR channel: alignment, rates, replacements and training-pool noise."""
import random

from qwen_voice_ros.dialect import training as T
from qwen_voice_ros.dialect.asr_channel import AsrChannel, align


def test_align_marks_substitutions_deletions_insertions():
    assert align('恰饭了', '夹方了') == [('恰', '夹'), ('饭', '方'), ('了', '了')]
    assert align('你吃饭', '你饭') == [('你', '你'), ('吃', ''), ('饭', '饭')]
    assert align('好', '好啊') == [('好', '好'), ('', '啊')]


PAIRS = [('侬好伐', '农好发', 'shanghainese'), ('侬来伐', '农来罚', 'shanghainese'),
         ('今天很好', '今天很好', 'mandarin'), ('我们回家', '我们回家', 'mandarin'),
         ('侬吃伐', '农吃发', 'shanghainese')]


def test_learned_replacement_and_label_rates():
    ch = AsrChannel(PAIRS)
    rng = random.Random(0)
    # 侬 was always written 农: a forced replacement follows what was observed.
    assert {ch.replacement('侬', rng) for _ in range(20)} == {'农'}
    sub, drop = ch.rates('侬')
    assert sub > 0.6 and drop < 0.1
    # 今 was always kept: its replace rate is shrunk towards, and stays below, the global rate.
    assert ch.rates('今')[0] < ch.sub_rate
    # Whisper garbled the Shanghainese rows, not the Mandarin ones.
    assert ch.label_scale('mandarin') < 1.0 < ch.label_scale('shanghainese')


def test_unseen_character_gets_a_homophone_whisper_writes():
    ch = AsrChannel(PAIRS)
    rng = random.Random(1)
    # 罚 and 发 (fa) are what Whisper wrote; 乏 (fa) was never seen: its sound pool answers.
    assert {ch.replacement('乏', rng) for _ in range(30)} <= {'发', '罚'}


def test_corrupt_is_seeded_and_scale_zero_keeps_text():
    ch = AsrChannel(PAIRS)
    text = '侬今朝吃啥伐？'
    assert ch.corrupt(text, random.Random(3)) == ch.corrupt(text, random.Random(3))
    assert ch.corrupt(text, random.Random(3), scale=0.0) == text
    noisy = {ch.corrupt(text, random.Random(s), scale=2.0) for s in range(10)}
    assert len(noisy) > 1 and all(t.endswith('？') for t in noisy)


def test_with_channel_noise_adds_copies_of_typed_rows_only():
    typed = [T.Example('侬好伐', 'shanghainese'), T.Example('今天很好', 'mandarin'),
             T.Example('佢去咗边度', 'cantonese', 0.1, source='pycantonese:x')]
    asr = [T.Example(heard, label, 3.0, source='asr:%d' % i, origin=said)
           for i, (said, heard, label) in enumerate(PAIRS)]
    pool = T.with_channel_noise(typed + asr, copies=2, weight=0.5)
    added = pool[len(typed + asr):]
    assert len(added) == 4  # two typed rows x 2; no copies of transcripts or pycantonese
    assert all(ex.source.endswith('+channel') and ex.weight == 0.5 for ex in added)
    assert [ex.label for ex in added] == ['shanghainese'] * 2 + ['mandarin'] * 2
    # Without transcripts there is nothing to learn the channel from: the pool is unchanged.
    assert len(T.with_channel_noise(typed, copies=2)) == len(typed)


def test_blended_model_logits_are_the_blend(tmp_path):
    from qwen_voice_ros.dialect.ngram_model import NgramModel
    from qwen_voice_ros.dialect.normalize import normalize_text

    clean = [T.Example(t, label) for label, t in (
        ('mandarin', '今天天气很好'), ('shanghainese', '侬好伐'), ('cantonese', '佢去咗边度'))]
    a = T.train(T.with_channel_noise(clean + [
        T.Example(h, lab, 1.0, source='asr:%d' % i, origin=s)
        for i, (s, h, lab) in enumerate(PAIRS)], copies=2), l2=0.1, max_iter=50)
    b = T.train(clean, l2=0.1, max_iter=50)
    m = T.blend_models(a, b, 0.3)
    path = str(tmp_path / 'blend.npz')
    m.save(path)
    loaded = NgramModel.load(path)
    for text in ('农好发', '今天很好', '佢食咗饭'):
        norm = normalize_text(text)
        want = 0.3 * a.logits(norm) + 0.7 * b.logits(norm)
        assert abs(loaded.logits(norm) - want).max() < 0.02  # float16 weights on disk
