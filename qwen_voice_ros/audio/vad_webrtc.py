"""WebRTC VAD (``webrtcvad-wheels``, GMM, no weights): 10/20/30 ms frames of 16-bit PCM."""
from __future__ import annotations

import numpy as np

from qwen_voice_ros.audio.vad import FrameClassifier, VADNotAvailable
from qwen_voice_ros.core.params import Param


class WebRTCClassifier(FrameClassifier):
    """WebRTC VAD frame classifier; its decision is 0 or 1."""

    name = 'webrtc'
    PARAMS = (
        Param('aggressiveness', 2, '0 (least) .. 3 (most aggressive at rejecting non-speech)',
              min=0, max=3),
        Param('frame_ms', 30, 'frame length: 10, 20 or 30 ms', min=10, max=30),
    )

    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30):
        self.aggressiveness = int(aggressiveness)
        self.frame_ms = int(frame_ms)
        self.vad = None

    def prepare(self, sample_rate: int) -> None:
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise VADNotAvailable('webrtc VAD runs at 8, 16, 32 or 48 kHz, not %d Hz'
                                  % sample_rate)
        if self.frame_ms not in (10, 20, 30):
            raise VADNotAvailable('webrtc.frame_ms must be 10, 20 or 30, got %d'
                                  % self.frame_ms)
        try:
            import webrtcvad
        except ImportError:
            raise VADNotAvailable('webrtc VAD needs webrtcvad (pip install '
                                  'webrtcvad-wheels)') from None
        self.rate = int(sample_rate)
        self.frame_samples = self.rate * self.frame_ms // 1000
        self.vad = webrtcvad.Vad(self.aggressiveness)

    def speech_probability(self, frame: np.ndarray) -> float:
        if self.vad is None:
            raise VADNotAvailable('webrtc VAD used before prepare()')
        pcm = (np.clip(frame, -1.0, 1.0) * 32767.0).astype('<i2').tobytes()
        return 1.0 if self.vad.is_speech(pcm, self.rate) else 0.0
