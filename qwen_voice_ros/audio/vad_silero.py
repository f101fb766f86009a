"""
Silero VAD (v5/v6 ONNX) run with onnxruntime directly: no torch, no silero_vad import.

The model file ships inside the ``silero-vad`` wheel (``silero_vad/data/silero_vad.onnx``,
MIT); it is found through the import system without importing the package (which would pull
torch).  Per call the model takes ``context + frame`` samples (64 + 512 at 16 kHz, 32 + 256 at
8 kHz), the recurrent state ``[2, 1, 128]`` and the rate, and returns P(speech) and the next
state; both state and context are carried from frame to frame, as the reference wrapper does.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from qwen_voice_ros.audio.vad import FrameClassifier, VADNotAvailable
from qwen_voice_ros.core.params import Param


def wheel_model_path() -> str:
    """Path of ``silero_vad.onnx`` inside the installed silero-vad wheel, or ''."""
    try:
        spec = importlib.util.find_spec('silero_vad')
    except (ImportError, ValueError):
        spec = None
    for location in (list(spec.submodule_search_locations or []) if spec else []):
        path = os.path.join(location, 'data', 'silero_vad.onnx')
        if os.path.isfile(path):
            return path
    return ''


class SileroClassifier(FrameClassifier):
    """Silero VAD frame classifier (ONNX)."""

    name = 'silero'
    PARAMS = (
        Param('model_path', '', "silero_vad.onnx; '' = the file inside the silero-vad wheel"),
        Param('threads', 1, 'onnxruntime intra-op threads', min=1, max=16),
    )

    def __init__(self, model_path: str = '', threads: int = 1):
        self.model_path = model_path
        self.threads = int(threads)
        self.session = None
        self.frame_samples = 512
        self.context_samples = 64
        self.rate = 16000

    def prepare(self, sample_rate: int) -> None:
        if sample_rate not in (8000, 16000):
            raise VADNotAvailable('silero VAD runs at 8 or 16 kHz, not %d Hz (set '
                                  'sample_rate:=16000)' % sample_rate)
        self.rate = int(sample_rate)
        self.frame_samples = 512 if sample_rate == 16000 else 256
        self.context_samples = 64 if sample_rate == 16000 else 32
        path = self.model_path or wheel_model_path()
        if not path:
            raise VADNotAvailable('silero VAD: no model; install the silero-vad wheel '
                                  '(pip install --no-deps silero-vad) or set silero.model_path')
        if not os.path.isfile(path):
            raise VADNotAvailable('silero VAD: model_path %r does not exist' % path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise VADNotAvailable('silero VAD needs onnxruntime (pip install onnxruntime)') \
                from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=options,
                                            providers=['CPUExecutionProvider'])
        self._sr = np.array(self.rate, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, self.context_samples), dtype=np.float32)

    def speech_probability(self, frame: np.ndarray) -> float:
        if self.session is None:
            raise VADNotAvailable('silero VAD used before prepare()')
        x = np.asarray(frame, dtype=np.float32).reshape(1, -1)
        x = np.concatenate([self._context, x], axis=1)
        prob, self._state = self.session.run(None, {'input': x, 'state': self._state,
                                                    'sr': self._sr})
        self._context = x[:, -self.context_samples:]
        return float(prob[0, 0])
