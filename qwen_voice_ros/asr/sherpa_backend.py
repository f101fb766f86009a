"""
sherpa-onnx offline recognisers: the dialect-capable model families for the robot.

``model_dir`` is a model directory as the sherpa-onnx releases unpack it; ``model_type``
says which family it is (``auto`` recognises it by its files / name).  Files expected:

=============  ==============================================================================
model_type     files in ``model_dir``
=============  ==============================================================================
sense_voice    ``model.int8.onnx`` (or ``model.onnx``) + ``tokens.txt``; e.g.
               ``sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17`` (Mandarin, Cantonese,
               English, Japanese, Korean; ``language`` = auto|zh|yue|en|ja|ko)
paraformer     ``model.int8.onnx`` (or ``model.onnx``) + ``tokens.txt``; e.g.
               ``sherpa-onnx-paraformer-zh-2024-03-09`` (Mandarin + some dialect accents)
fire_red_asr   ``encoder.int8.onnx`` + ``decoder.int8.onnx`` (or without ``.int8``) +
               ``tokens.txt``; e.g. ``sherpa-onnx-fire-red-asr-large-zh_en-2025-02-16``
               (Mandarin, Chinese dialects, English)
qwen3_asr      ``conv_frontend.onnx`` + ``encoder.onnx`` + ``decoder.onnx`` (``.int8`` variants
               taken first) + the tokenizer files (``vocab.json``, ``merges.txt``,
               ``tokenizer_config.json``) in ``model_dir`` or ``model_dir/tokenizer``
=============  ==============================================================================

Auto-detection: ``conv_frontend*.onnx`` -> qwen3_asr; ``encoder*.onnx`` + ``decoder*.onnx`` ->
fire_red_asr; ``model*.onnx`` -> sense_voice or paraformer by the directory name (set
``model_type`` when the name says neither).  The package is ``sherpa-onnx`` from PyPI
(``requirements/extra-asr-sherpa.txt``, optional).  Output is normalised to simplified
characters with OpenCC like the Whisper backend's; SenseVoice's tags (``<|zh|>`` ...) are removed.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Optional

import numpy as np

from qwen_voice_ros.asr.base import ASRBackend, ASRNotConfigured, make_t2s
from qwen_voice_ros.core.params import Param

MODEL_TYPES = ('auto', 'sense_voice', 'paraformer', 'fire_red_asr', 'qwen3_asr')
_TAG = re.compile(r'<\|[^|>]*\|>')


def _pick(model_dir: str, stem: str) -> str:
    """``stem.int8.onnx`` if present, else ``stem.onnx``, else ''."""
    for name in (stem + '.int8.onnx', stem + '.onnx'):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    return ''


def detect_model_type(model_dir: str) -> str:
    """Return the model family of a sherpa-onnx model directory (ASRNotConfigured if unclear)."""
    if _pick(model_dir, 'conv_frontend'):
        return 'qwen3_asr'
    if _pick(model_dir, 'encoder') and _pick(model_dir, 'decoder'):
        return 'fire_red_asr'
    if _pick(model_dir, 'model'):
        name = os.path.basename(os.path.normpath(model_dir)).lower()
        if 'sense' in name:
            return 'sense_voice'
        if 'paraformer' in name:
            return 'paraformer'
        raise ASRNotConfigured('sherpa_onnx: %s has model.onnx but its name says neither '
                               'SenseVoice nor Paraformer; set sherpa_onnx.model_type'
                               % model_dir)
    raise ASRNotConfigured('sherpa_onnx: %s holds no known model files (see the '
                           'asr/sherpa_backend.py docstring for each model_type)' % model_dir)


def model_files(model_dir: str, model_type: str) -> Dict[str, str]:
    """Keyword arguments for the sherpa-onnx factory; ASRNotConfigured naming a missing file."""
    tokens = os.path.join(model_dir, 'tokens.txt')
    if model_type in ('sense_voice', 'paraformer'):
        files = {'model': _pick(model_dir, 'model'), 'tokens': tokens}
        if model_type == 'paraformer':
            files = {'paraformer': files['model'], 'tokens': tokens}
    elif model_type == 'fire_red_asr':
        files = {'encoder': _pick(model_dir, 'encoder'), 'decoder': _pick(model_dir, 'decoder'),
                 'tokens': tokens}
    elif model_type == 'qwen3_asr':
        tok_dir = os.path.join(model_dir, 'tokenizer')
        if not os.path.isfile(os.path.join(tok_dir, 'vocab.json')):
            tok_dir = model_dir
        files = {'conv_frontend': _pick(model_dir, 'conv_frontend'),
                 'encoder': _pick(model_dir, 'encoder'), 'decoder': _pick(model_dir, 'decoder'),
                 'tokenizer': tok_dir}
        for needed in ('vocab.json', 'merges.txt'):
            if not os.path.isfile(os.path.join(tok_dir, needed)):
                raise ASRNotConfigured('sherpa_onnx qwen3_asr: no %s in %s' % (needed, tok_dir))
        return _checked(files, model_type, model_dir)
    else:
        raise ASRNotConfigured('sherpa_onnx: unknown model_type %r (one of %s)'
                               % (model_type, ', '.join(MODEL_TYPES)))
    if not os.path.isfile(tokens):
        raise ASRNotConfigured('sherpa_onnx %s: no tokens.txt in %s' % (model_type, model_dir))
    return _checked(files, model_type, model_dir)


def _checked(files: Dict[str, str], model_type: str, model_dir: str) -> Dict[str, str]:
    for key, path in files.items():
        if not path:
            raise ASRNotConfigured('sherpa_onnx %s: no %s(.int8).onnx in %s'
                                   % (model_type, key, model_dir))
    return files


class SherpaOnnxASR(ASRBackend):
    name = 'sherpa_onnx'
    PARAMS = (
        Param('model_dir', '', 'sherpa-onnx model directory (SenseVoice, Paraformer, '
              'FireRedASR or Qwen3-ASR; see docs/audio.md)'),
        Param('model_type', 'auto', 'model family', choices=MODEL_TYPES),
        Param('language', 'auto', 'sense_voice: auto | zh | yue | en | ja | ko'),
        Param('num_threads', 2, 'CPU threads', min=1, max=64),
        Param('provider', 'cpu', 'onnxruntime provider', choices=('cpu', 'cuda')),
        Param('use_itn', True, 'sense_voice: inverse text normalisation (numbers, punctuation)'),
        Param('hotwords', '', 'qwen3_asr: comma-separated hotwords'),
        Param('to_simplified', True, 'convert the output to simplified characters (OpenCC)'),
    )

    def __init__(self, model_dir: str = '', model_type: str = 'auto', language: str = 'auto',
                 num_threads: int = 2, provider: str = 'cpu', use_itn: bool = True,
                 hotwords: str = '', to_simplified: bool = True):
        self.model_dir = model_dir
        self.model_type = model_type
        self.language = language
        self.num_threads = int(num_threads)
        self.provider = provider
        self.use_itn = bool(use_itn)
        self.hotwords = hotwords
        self.to_simplified = to_simplified
        self.recognizer = None

    def factory_args(self):
        """Return (factory method, keyword arguments) for ``sherpa_onnx.OfflineRecognizer``."""
        if not self.model_dir:
            raise ASRNotConfigured('ASR not configured: set sherpa_onnx.model_dir to a '
                                   'sherpa-onnx model directory (see docs/audio.md)')
        if not os.path.isdir(self.model_dir):
            raise ASRNotConfigured('ASR not configured: model_dir %r does not exist'
                                   % self.model_dir)
        kind = self.model_type
        if kind == 'auto':
            kind = detect_model_type(self.model_dir)
        kwargs = dict(model_files(self.model_dir, kind))
        kwargs.update(num_threads=self.num_threads, provider=self.provider)
        if kind == 'sense_voice':
            kwargs.update(language='' if self.language == 'auto' else self.language,
                          use_itn=self.use_itn)
        if kind == 'qwen3_asr' and self.hotwords:
            kwargs['hotwords'] = self.hotwords.replace('，', ',')
        return 'from_' + kind, kwargs

    def load(self) -> None:
        method, kwargs = self.factory_args()
        try:
            import sherpa_onnx
        except ImportError:
            raise ASRNotConfigured('ASR not configured: the sherpa-onnx package is not '
                                   'installed (pip install -r '
                                   'requirements/extra-asr-sherpa.txt)') from None
        factory = getattr(sherpa_onnx.OfflineRecognizer, method, None)
        if factory is None:
            raise ASRNotConfigured('sherpa-onnx %s has no OfflineRecognizer.%s; upgrade it'
                                   % (getattr(sherpa_onnx, '__version__', '?'), method))
        try:
            self.recognizer = factory(**kwargs)
        except Exception as exc:  # bad model files: configure fails with the reason
            raise ASRNotConfigured('sherpa_onnx: cannot load %s: %s'
                                   % (self.model_dir, exc)) from None
        self._t2s = make_t2s() if self.to_simplified else None

    def transcribe(self, audio: np.ndarray, prompt: Optional[str] = None) -> str:
        if self.recognizer is None:
            raise ASRNotConfigured('ASR backend used before load()')
        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32))
        if audio.size == 0:
            return ''
        stream = self.recognizer.create_stream()
        stream.accept_waveform(self.sample_rate, audio)
        self.recognizer.decode_stream(stream)
        return self.normalize(_TAG.sub('', stream.result.text))

    def close(self) -> None:
        self.recognizer = None
