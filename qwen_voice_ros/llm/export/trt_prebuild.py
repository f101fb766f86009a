"""
Build the TensorRT engine cache of an exported decoder ahead of time.

ONNX Runtime's TensorRT EP compiles its engines on the first session/run, which takes minutes
on a Jetson.  Running this step once on the target device (engines are specific to the GPU
and the TensorRT version) with the *same* provider options as the run-time engine leaves the
serialised engines in the cache directory, so the robot's first reply is not that slow.

Needs what the robot already has (onnxruntime-gpu with TensorRT, numpy, tokenizers): no
torch, no transformers.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict

from . import ExportError, TensorRTUnavailable

TRT_EP = 'TensorrtExecutionProvider'
DEFAULT_MAX_CONTEXT = 4096  # tokens (prompt + reply): the engine's default max_context
DEFAULT_MAX_PROMPT = 1024  # tokens prefilled at once: the engine's default max_prompt
PREFILL_TOKENS = 16  # the warm-up prompt length (any length inside the profile will do)


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


def prebuild(model_dir: Path, cache_dir: Path, fp16: bool = True,
             max_context: int = DEFAULT_MAX_CONTEXT, max_prompt: int = DEFAULT_MAX_PROMPT
             ) -> Dict[str, object]:
    """
    Load ``model_dir`` in the run-time engine with the TensorRT EP and generate a little.

    Going through :class:`~qwen_voice_ros.llm.onnx_engine.OnnxCausalLM` itself guarantees
    the provider options (profile shapes from ``providers.py``, FP16, cache path) are the
    ones the LLM node will use, which is what makes TensorRT reuse the cached engines: pass
    the node's ``max_context`` / ``max_prompt``.
    """
    ort_version = check_tensorrt_available()
    from .quantize import count_ops

    model_dir = Path(model_dir)
    model_path = model_dir / 'model.onnx'
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    ops = count_ops(model_path)
    warnings = []
    if ops.get('MatMulNBits'):
        warnings.append(
            'graph has {} MatMulNBits (INT4/INT8 weight-only) nodes, which TensorRT cannot run: '
            'ONNX Runtime splits the graph into TensorRT engines around CUDA-EP kernels. On '
            'Xavier use an unquantised export with FP16 TensorRT.'.format(ops['MatMulNBits']))
    from qwen_voice_ros.llm.base import GenerationOptions, LLMError
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM

    started = time.monotonic()
    try:
        engine = OnnxCausalLM(model_dir, provider='tensorrt', trt_cache_dir=str(cache_dir),
                              trt_fp16=fp16, max_context=max_context, max_prompt=max_prompt)
    except LLMError as exc:
        raise ExportError('TensorRT prebuild: {}'.format(exc)) from None
    providers = engine.session.get_providers()
    if providers[0] != TRT_EP:
        raise TensorRTUnavailable('onnxruntime did not keep the TensorRT EP for {} '
                                  '(providers in use: {})'.format(model_path, providers))
    created = time.monotonic() - started
    generated = list(engine.generate_ids(list(range(1, PREFILL_TOKENS + 1)),
                                         GenerationOptions(max_new_tokens=2)))
    total = time.monotonic() - started
    files = sorted(p for p in cache_dir.rglob('*') if p.is_file())
    return {
        'onnxruntime': ort_version,
        'cache_dir': str(cache_dir),
        'fp16': fp16,
        'max_context': max_context,
        'max_prompt': max_prompt,
        'session_seconds': round(created, 2),
        'total_seconds': round(total, 2),
        'cache_files': [p.name for p in files],
        'cache_bytes': sum(p.stat().st_size for p in files),
        'warnings': warnings,
        'generated_tokens': len(generated),
    }
