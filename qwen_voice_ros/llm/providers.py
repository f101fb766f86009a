"""
ONNX Runtime execution providers for the decoder graph: CPU, CUDA, TensorRT.

The TensorRT EP builds one engine per optimisation profile; a decoder has dynamic inputs
(``input_ids`` [batch, seq], ``attention_mask`` [batch, past+seq], ``position_ids``
[batch, seq] and every ``past_key_values.N.key/value`` [batch, kv_heads, past, head_dim]).
:func:`trt_profile_shapes` derives min/opt/max shapes for all of them from the graph's
declared inputs, so one engine serves both prefill (seq up to ``max_prompt``) and decode
(seq 1, past up to ``max_context - 1``).  Everything here is plain Python and tested
without a GPU.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from qwen_voice_ros.llm.base import LLMNotConfigured

PROVIDERS = ('cpu', 'cuda', 'tensorrt')
ORT_PROVIDER_NAMES = {
    'cpu': 'CPUExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'tensorrt': 'TensorrtExecutionProvider',
}
_PAST_RE = re.compile(r'^past_key_values\.(\d+)\.(key|value)$')
_PRESENT_RE = re.compile(r'^present\.(\d+)\.(key|value)$')
Dim = Union[int, str, None]


@dataclasses.dataclass
class InputSpec:
    """One graph input: name, declared shape (ints static, str/None dynamic), ONNX type."""

    name: str
    shape: List[Dim]
    type: str = 'tensor(float)'


@dataclasses.dataclass
class DecoderLayout:
    """What the engine needs to know about a decoder graph's cache inputs."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    has_position_ids: bool
    kv_type: str  # 'tensor(float)' or 'tensor(float16)'


def describe_decoder(inputs: Sequence[InputSpec], num_kv_heads: Optional[int] = None,
                     head_dim: Optional[int] = None) -> DecoderLayout:
    """
    Check ``inputs`` are a KV-cache decoder's and return its layout.

    Raises :class:`LLMNotConfigured` naming any unexpected or missing input, or cache shapes
    that disagree with config.json's ``num_key_value_heads`` / ``head_dim``.
    """
    names = [spec.name for spec in inputs]
    layers = {}
    unexpected = []
    for spec in inputs:
        match = _PAST_RE.match(spec.name)
        if match:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = spec
        elif spec.name not in ('input_ids', 'attention_mask', 'position_ids'):
            unexpected.append(spec.name)
    missing = [n for n in ('input_ids', 'attention_mask') if n not in names]
    num_layers = (max(layers) + 1) if layers else 0
    for layer in range(num_layers):
        for kind in ('key', 'value'):
            if kind not in layers.get(layer, {}):
                missing.append('past_key_values.%d.%s' % (layer, kind))
    if not layers:
        missing.append('past_key_values.N.key/value (graph exported without KV cache?)')
    if unexpected or missing:
        raise LLMNotConfigured(
            'decoder graph has unexpected inputs %s / lacks %s; expected input_ids, '
            'attention_mask, position_ids and past_key_values.N.key/value (optimum '
            'text-generation-with-past export)' % (unexpected or '[]', missing or '[]'))
    first = layers[0]['key']
    if len(first.shape) != 4:
        raise LLMNotConfigured('past_key_values.0.key has rank %d, expected 4 '
                               '[batch, kv_heads, past, head_dim]' % len(first.shape))
    graph_kv, graph_hd = first.shape[1], first.shape[3]
    kv = graph_kv if isinstance(graph_kv, int) else num_kv_heads
    hd = graph_hd if isinstance(graph_hd, int) else head_dim
    if kv is None or hd is None:
        raise LLMNotConfigured('cannot tell kv heads / head_dim from graph or config.json')
    if num_kv_heads is not None and kv != num_kv_heads:
        raise LLMNotConfigured('graph has %d KV heads but config.json says %d'
                               % (kv, num_kv_heads))
    if head_dim is not None and hd != head_dim:
        raise LLMNotConfigured('graph has head_dim %d but config.json says %d' % (hd, head_dim))
    types = {spec.type for by_kind in layers.values() for spec in by_kind.values()}
    if len(types) != 1 or not types <= {'tensor(float)', 'tensor(float16)'}:
        raise LLMNotConfigured('unsupported KV cache types %s' % sorted(types))
    return DecoderLayout(num_layers=num_layers, num_kv_heads=int(kv), head_dim=int(hd),
                         has_position_ids='position_ids' in names, kv_type=types.pop())


def read_graph_inputs(model_path) -> Optional[List[InputSpec]]:
    """Read the inputs an ONNX file declares (weights not loaded); None if onnx is missing."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends
        raise LLMNotConfigured('corrupt ONNX graph %s: %s' % (model_path, exc)) from exc
    specs = []
    for value in model.graph.input:
        tensor = value.type.tensor_type
        dims: List[Dim] = []
        for dim in tensor.shape.dim:
            if dim.HasField('dim_value'):
                dims.append(int(dim.dim_value))
            else:
                dims.append(dim.dim_param or None)
        specs.append(InputSpec(value.name, dims, _ONNX_TYPES.get(tensor.elem_type, '?')))
    return specs


_ONNX_TYPES = {1: 'tensor(float)', 10: 'tensor(float16)', 7: 'tensor(int64)',
               6: 'tensor(int32)', 16: 'tensor(bfloat16)'}


def inputs_from_session(session) -> List[InputSpec]:
    """Return the InputSpecs of a live ``onnxruntime.InferenceSession``."""
    return [InputSpec(i.name, [d if isinstance(d, int) else (d or None) for d in i.shape],
                      i.type) for i in session.get_inputs()]


def _shape_str(shape: Sequence[int]) -> str:
    return 'x'.join(str(int(d)) for d in shape)


def trt_profile_shapes(inputs: Sequence[InputSpec], max_context: int, max_prompt: int,
                       opt_context: Optional[int] = None, batch: int = 1,
                       num_kv_heads: Optional[int] = None,
                       head_dim: Optional[int] = None) -> Dict[str, str]:
    """
    Build TensorRT EP profile strings covering every dynamic decoder input.

    min: one new token, empty cache.  opt: one new token with ``opt_context`` (default half
    the context) already cached — decode is the hot path.  max: ``max_prompt`` new tokens and
    a cache of ``max_context - 1`` (attention_mask max ``max_context + max_prompt - 1``
    never happens in practice but keeps the profile self-consistent).
    """
    if max_prompt < 1 or max_context < 2 or max_prompt > max_context:
        raise ValueError('need 1 <= max_prompt <= max_context, got %d/%d'
                         % (max_prompt, max_context))
    layout = describe_decoder(inputs, num_kv_heads, head_dim)
    opt_past = opt_context if opt_context is not None else max_context // 2
    opt_past = max(0, min(opt_past, max_context - 1))
    # (seq, past) for each profile point.
    points = {'min': (1, 0), 'opt': (1, opt_past), 'max': (max_prompt, max_context - 1)}
    out = {}
    for point, (seq, past) in points.items():
        parts = []
        for spec in inputs:
            if spec.name in ('input_ids', 'position_ids'):
                shape = [batch, seq]
            elif spec.name == 'attention_mask':
                shape = [batch, past + seq]
            else:
                shape = [batch, layout.num_kv_heads, past, layout.head_dim]
            parts.append('%s:%s' % (spec.name, _shape_str(shape)))
        out[point] = ','.join(parts)
    return {'trt_profile_min_shapes': out['min'], 'trt_profile_opt_shapes': out['opt'],
            'trt_profile_max_shapes': out['max']}


def tensorrt_options(inputs: Sequence[InputSpec], max_context: int, max_prompt: int,
                     cache_dir: Optional[str] = None, fp16: bool = True, device_id: int = 0,
                     workspace_bytes: int = 2 << 30, opt_context: Optional[int] = None,
                     num_kv_heads: Optional[int] = None,
                     head_dim: Optional[int] = None) -> Dict[str, str]:
    """Full TensorRT EP option dict (values are strings, as ORT's Python API accepts)."""
    options = {
        'device_id': str(device_id),
        'trt_fp16_enable': '1' if fp16 else '0',
        # RMSNorm's Pow/ReduceMean overflow in fp16; keep them in fp32.
        'trt_layer_norm_fp32_fallback': '1' if fp16 else '0',
        'trt_max_workspace_size': str(int(workspace_bytes)),
    }
    if cache_dir:
        options.update({
            'trt_engine_cache_enable': '1',
            'trt_engine_cache_path': str(cache_dir),
            'trt_timing_cache_enable': '1',
        })
    else:
        options['trt_engine_cache_enable'] = '0'
    options.update(trt_profile_shapes(inputs, max_context=max_context, max_prompt=max_prompt,
                                      opt_context=opt_context, num_kv_heads=num_kv_heads,
                                      head_dim=head_dim))
    return options


def cuda_options(device_id: int = 0) -> Dict[str, str]:
    """CUDA EP options: no arena growth surprises, heuristic conv search (no convs anyway)."""
    return {'device_id': str(device_id), 'arena_extend_strategy': 'kSameAsRequested',
            'cudnn_conv_algo_search': 'HEURISTIC', 'do_copy_in_default_stream': '1'}


def session_providers(provider: str, inputs: Optional[Sequence[InputSpec]] = None,
                      max_context: int = 4096, max_prompt: int = 1024,
                      trt_cache_dir: Optional[str] = None, trt_fp16: bool = True,
                      device_id: int = 0, num_kv_heads: Optional[int] = None,
                      head_dim: Optional[int] = None,
                      available: Optional[Sequence[str]] = None) -> List[Tuple[str, Dict]]:
    """
    ORT ``providers=`` list for ``provider`` ('cpu' | 'cuda' | 'tensorrt').

    TensorRT falls back to CUDA then CPU for nodes TensorRT cannot take (MatMulNBits in
    INT4/INT8 graphs runs on the CUDA EP).  ``available`` (default: what the installed
    onnxruntime offers) is checked so a CPU-only wheel gives a clear error, not a silent
    CPU run.
    """
    if provider not in PROVIDERS:
        raise LLMNotConfigured('provider must be one of %s, got %r' % (PROVIDERS, provider))
    if available is None:
        import onnxruntime
        available = onnxruntime.get_available_providers()
    wanted = ORT_PROVIDER_NAMES[provider]
    if wanted not in available:
        raise LLMNotConfigured('%s is not available in this onnxruntime (has %s); install '
                               'onnxruntime-gpu built for this CUDA/TensorRT'
                               % (wanted, list(available)))
    cpu = ('CPUExecutionProvider', {})
    if provider == 'cpu':
        return [cpu]
    cuda = ('CUDAExecutionProvider', cuda_options(device_id))
    if provider == 'cuda':
        return [cuda, cpu]
    if inputs is None:
        raise LLMNotConfigured('TensorRT needs the graph inputs to build profiles')
    if trt_cache_dir:
        os.makedirs(str(trt_cache_dir), exist_ok=True)
    trt = ('TensorrtExecutionProvider',
           tensorrt_options(inputs, max_context=max_context, max_prompt=max_prompt,
                            cache_dir=trt_cache_dir, fp16=trt_fp16, device_id=device_id,
                            num_kv_heads=num_kv_heads, head_dim=head_dim))
    return [trt, cuda, cpu]


def check_active_provider(provider: str, active: Sequence[str]) -> None:
    """
    Raise LLMNotConfigured when the session did not get the provider that was asked for.

    onnxruntime lists TensorRT/CUDA as available whenever the wheel was built with them, but
    falls back to the next provider, with only a log line, when their libraries (libnvinfer,
    libcudnn, ...) fail to load.  Seen on an H100 with onnxruntime-gpu 1.31 and no TensorRT
    installed: a 'tensorrt' session ran on CUDA.  A robot configured for TensorRT must say so
    at configure, not run at a fraction of the expected speed.
    """
    wanted = ORT_PROVIDER_NAMES[provider]
    if not active or active[0] != wanted:
        raise LLMNotConfigured('%s was requested but the session runs on %s: its libraries did '
                               'not load (for TensorRT: libnvinfer; for CUDA: libcudart/'
                               'libcudnn on LD_LIBRARY_PATH); install them or choose provider %s'
                               % (wanted, list(active),
                                  'cuda' if provider == 'tensorrt' else 'cpu'))


def expected_inputs_from_config(config_path) -> List[InputSpec]:
    """Predict the optimum export's inputs from config.json (used when onnx is absent)."""
    with open(str(config_path), encoding='utf-8') as handle:
        config = json.load(handle)
    layers = int(config['num_hidden_layers'])
    kv = int(config.get('num_key_value_heads') or config['num_attention_heads'])
    hd = int(config.get('head_dim') or config['hidden_size'] // config['num_attention_heads'])
    specs = [InputSpec('input_ids', ['batch_size', 'sequence_length'], 'tensor(int64)'),
             InputSpec('attention_mask', ['batch_size', 'total_sequence_length'],
                       'tensor(int64)'),
             InputSpec('position_ids', ['batch_size', 'sequence_length'], 'tensor(int64)')]
    for layer in range(layers):
        for kind in ('key', 'value'):
            specs.append(InputSpec('past_key_values.%d.%s' % (layer, kind),
                                   ['batch_size', kv, 'past_sequence_length', hd]))
    return specs


def present_output_name(past_name: str) -> str:
    """``past_key_values.3.key`` -> ``present.3.key``."""
    match = _PAST_RE.match(past_name)
    if not match:
        raise ValueError(past_name)
    return 'present.%s.%s' % (match.group(1), match.group(2))


def check_outputs(names: Sequence[str], num_layers: int) -> None:
    """Raise LLMNotConfigured unless logits and every present.N.key/value are outputs."""
    missing = [] if 'logits' in names else ['logits']
    for layer in range(num_layers):
        for kind in ('key', 'value'):
            if 'present.%d.%s' % (layer, kind) not in names:
                missing.append('present.%d.%s' % (layer, kind))
    if missing:
        raise LLMNotConfigured('decoder graph lacks outputs %s' % missing)


def model_file(model_dir, name: Optional[str] = None) -> Path:
    """Path of the decoder graph in ``model_dir`` (``model.onnx`` unless named)."""
    path = Path(model_dir) / (name or 'model.onnx')
    if not path.is_file():
        raise LLMNotConfigured('no ONNX graph %s (export one with qwen-voice-export)' % path)
    return path
