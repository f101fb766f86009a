"""Speaker embeddings (d-vectors) for voice matching and speaker similarity."""
from __future__ import annotations

from qwen_voice_ros.speaker.embedder import SpeakerEmbedder, cosine

__all__ = ['SpeakerEmbedder', 'cosine']
