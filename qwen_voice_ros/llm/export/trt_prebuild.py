"""Build the TensorRT engine cache of an exported decoder ahead of time.

ONNX Runtime's TensorRT EP compiles its engines on the first session/run, which takes minutes
on a Jetson.  Running this step once on the target device (engines are specific to the GPU
and the TensorRT version) with the *same* provider options as the run-time engine leaves the
serialised engines in the cache directory, so the robot's first reply is not that slow.

Needs only onnxruntime (the GPU build with TensorRT) and numpy: no torch, no transformers.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import TensorRTUnavailable

TRT_EP = 'TensorrtExecutionProvider'
DEFAULT_MAX_CONTEXT = 1024  # tokens (prompt + reply) the engine profile covers
PREFILL_TOKENS = 16  # the warm-up prompt length (any length inside the profile will do)


def graph_kv_inputs(model_path: Path) -> List[Tuple[str, List[object]]]:
    """``(name, shape)`` of the ``past_key_values.*`` inputs (dims: int or symbolic name)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    result = []
    for arg in graph.input:
        if arg.name.startswith('past_key_values.'):
            dims = [d.dim_value if d.HasField('dim_value') else d.dim_param
                    for d in arg.type.tensor_type.shape.dim]
            result.append((arg.name, dims))
    return result


def fallback_trt_options(model_path: Path, cache_dir: Path, fp16: bool = True,
                         max_context: int = DEFAULT_MAX_CONTEXT) -> Dict[str, str]:
    """Derive TensorRT EP options from the graph inputs (used when providers.py is absent).

    One optimisation profile covers prefill (many tokens, empty past) and decode (one token,
    long past): batch 1, 1..max_context new tokens, 0..max_context-1 cached tokens.
    """
    def shape(name: str, dims: List[object], past: int) -> str:
        concrete = [1 if i == 0 else past if i == 2 else d for i, d in enumerate(dims)]
        return '{}:{}'.format(name, 'x'.join(str(d) for d in concrete))

    kv = graph_kv_inputs(model_path)

    def profile(seq: int, past: int) -> str:
        parts = ['input_ids:1x{}'.format(seq), 'position_ids:1x{}'.format(seq),
                 'attention_mask:1x{}'.format(seq + past)]
        parts += [shape(name, dims, past) for name, dims in kv]
        return ','.join(parts)

    return {
        'trt_engine_cache_enable': 'True',
        'trt_engine_cache_path': str(cache_dir),
        'trt_timing_cache_enable': 'True',
        'trt_fp16_enable': 'True' if fp16 else 'False',
        'trt_max_workspace_size': str(2 * 1024 ** 3),
        'trt_profile_min_shapes': profile(1, 0),
        'trt_profile_opt_shapes': profile(1, max_context // 2),
        'trt_profile_max_shapes': profile(max_context, max_context - 1),
    }


def engine_trt_options(model_path: Path, cache_dir: Path, fp16: bool = True,
                       max_context: int = DEFAULT_MAX_CONTEXT) -> Tuple[Dict[str, str], str]:
    """Return the provider options the run-time engine will use, and where they came from.

    The engine cache is only reused when the options (profile shapes, precision) match, so
    the run-time engine's own ``providers`` module is preferred when it is installed.
    """
    try:
        from qwen_voice_ros.llm import providers  # the run-time engine (issue 4, part a)
    except ImportError:
        providers = None
    builder = getattr(providers, 'tensorrt_provider_options', None) if providers else None
    if builder is not None:
        options = builder(str(model_path), cache_dir=str(cache_dir), fp16=fp16,
                          max_context=max_context)
        return {str(k): str(v) for k, v in dict(options).items()}, 'qwen_voice_ros.llm.providers'
    return fallback_trt_options(model_path, cache_dir, fp16, max_context), 'export fallback'


def check_tensorrt_available() -> str:
    """Return onnxruntime's version, or raise :class:`TensorRTUnavailable` with the reason."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise TensorRTUnavailable('onnxruntime is not installed: {}'.format(exc)) from None
    available = ort.get_available_providers()
    if TRT_EP not in available:
        raise TensorRTUnavailable(
            'TensorRT prebuild skipped: onnxruntime {} here offers {} but not {}. Run this step '
            'on the target device (engines are tied to its GPU and TensorRT version) with an '
            'onnxruntime-gpu build that includes TensorRT (on JetPack 5: the Jetson Zoo '
            'onnxruntime_gpu wheel for TensorRT 8.5).'.format(
                ort.__version__, ', '.join(available), TRT_EP))
    return ort.__version__


def prebuild(model_path: Path, cache_dir: Path, fp16: bool = True,
             max_context: int = DEFAULT_MAX_CONTEXT,
             log: Optional[object] = None) -> Dict[str, object]:
    """Create a TensorRT-EP session and run a prefill and a decode step to fill the cache."""
    import numpy as np

    ort_version = check_tensorrt_available()
    from .quantize import count_ops
    from .validate import DecoderSession

    model_path = Path(model_path)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    ops = count_ops(model_path)
    warnings = []
    if ops.get('MatMulNBits'):
        warnings.append(
            'graph has {} MatMulNBits (INT4/INT8 weight-only) nodes, which TensorRT cannot run: '
            'ONNX Runtime splits the graph into TensorRT engines around CUDA-EP kernels. On '
            'Xavier use an unquantised export with FP16 TensorRT.'.format(ops['MatMulNBits']))
    options, origin = engine_trt_options(model_path, cache_dir, fp16, max_context)
    started = time.monotonic()
    session = DecoderSession(model_path, providers=[
        (TRT_EP, options), 'CUDAExecutionProvider', 'CPUExecutionProvider'])
    if session.session.get_providers()[0] != TRT_EP:
        raise TensorRTUnavailable('onnxruntime did not keep the TensorRT EP for {} '
                                  '(providers in use: {})'.format(
                                      model_path, session.session.get_providers()))
    created = time.monotonic() - started
    prompt = list(range(1, PREFILL_TOKENS + 1))
    logits, past = session.forward(prompt)
    step, _ = session.forward([int(np.argmax(logits[-1]))], past=past, past_len=len(prompt))
    total = time.monotonic() - started
    files = sorted(p for p in cache_dir.rglob('*') if p.is_file())
    return {
        'onnxruntime': ort_version,
        'cache_dir': str(cache_dir),
        'options_from': origin,
        'fp16': fp16,
        'max_context': max_context,
        'session_seconds': round(created, 2),
        'total_seconds': round(total, 2),
        'cache_files': [p.name for p in files],
        'cache_bytes': sum(p.stat().st_size for p in files),
        'warnings': warnings,
        'finite': bool(np.isfinite(step).all()),
    }
