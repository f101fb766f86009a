"""
One loaded model per process: a registry of ONNX engines shared by the nodes of a process.

On a Jetson CPU and GPU share one memory, so the llm node and the dialect node's hybrid
stage must not each load the same Qwen graph.  When both run in one process
(``qwen-voice-dialect-llm``, or ``share_llm:=true`` on the stack), each asks this pool:

    handle = engine_pool.acquire(model_dir, provider='cpu', max_context=2048)
    ...  # handle is an OnnxCausalLM: generate_ids, score_continuations, ...
    engine_pool.release(handle)

The first ``acquire`` of a key loads the graph; later ones get a *fork* of it
(:meth:`OnnxCausalLM.fork`): same session and weights, own KV cache buffers.  Separate
caches are what keep the two users apart: the reply's cache (persona + history, reused
turn after turn) and the dialect prompt's cache (its few-shot prefix) never evict each
other, and a reply cancelled mid-prefill leaves the scoring cache exactly as it was.
Every graph run of the engine and its forks takes the engine's ``run_lock``, so the two
nodes' calls are serialised step by step (a scoring request waits at most one decode step
or prefill chunk of a reply, not the whole reply).  The last ``release`` closes the
session and drops the pool's reference: the weights are freed on the last cleanup.

The key is everything that changes the loaded session: the model directory (resolved),
provider, device, TensorRT cache/precision, threads and graph file -- plus, on TensorRT,
``max_context``/``max_prompt``, which fix the engine's optimisation profile.  Cache sizes
are per handle on the other providers.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Dict, List, Optional, Tuple

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_ENGINES: Dict[Tuple, '_Entry'] = {}


class _Entry(object):
    def __init__(self, key: Tuple, engine) -> None:
        self.key = key
        self.engine = engine       # the loaded base engine (its own cache stays unused)
        self.handles: List = []    # forks handed out and not yet released


def pool_key(model_dir, provider: str = 'cpu', trt_cache_dir: Optional[str] = None,
             trt_fp16: bool = True, max_context: int = 4096,
             intra_op_threads: Optional[int] = None, model_filename: str = 'model.onnx',
             device_id: int = 0, max_prompt: int = 1024, **_per_handle) -> Tuple:
    """Return what identifies one loaded session (see the module docstring)."""
    from qwen_voice_ros.llm.onnx_engine import physical_cores
    # 0/None means "physical cores" in the engine: the same session as that number spelt out.
    threads = int(intra_op_threads or 0) or physical_cores()
    key = (os.path.realpath(os.path.expanduser(str(model_dir))), str(provider),
           int(device_id), os.path.realpath(trt_cache_dir) if trt_cache_dir else None,
           bool(trt_fp16), threads, str(model_filename))
    if provider == 'tensorrt':
        key += (int(max_context), int(max_prompt))
    return key


def acquire(model_dir, **kwargs):
    """
    Return an :class:`OnnxCausalLM` for ``model_dir`` sharing the process's loaded session.

    ``kwargs`` are :class:`OnnxCausalLM`'s.  The returned handle has its own KV cache of
    ``max_context`` tokens; give it back with :func:`release`.
    """
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    key = pool_key(model_dir, **kwargs)
    with _LOCK:  # loading under the lock: a second node waits instead of loading a copy
        entry = _ENGINES.get(key)
        if entry is None:
            twins = [e.key for e in _ENGINES.values() if e.key[0] == key[0]]
            if twins:  # same model, other session settings: a second copy in memory
                _LOG.warning('loading a second copy of %s: settings %s differ from the loaded '
                             '%s (align provider/threads/TensorRT settings to share it)',
                             key[0], key[1:], twins[0][1:])
            entry = _Entry(key, OnnxCausalLM(model_dir, **kwargs))
            entry.engine.drop_cache()  # users get forks with their own caches
            _ENGINES[key] = entry
        handle = entry.engine.fork(max_context=kwargs.get('max_context'),
                                   max_prompt=kwargs.get('max_prompt'),
                                   prefill_chunk=kwargs.get('prefill_chunk'))
        handle.pool_key = key
        entry.handles.append(handle)
        return handle


def release(handle) -> bool:
    """Give a handle back; close the engine when it was the last.  True if it was freed."""
    if handle is None:
        return False
    with _LOCK:
        entry = _ENGINES.get(getattr(handle, 'pool_key', None))
        if entry is None or not any(h is handle for h in entry.handles):
            handle.close()  # not from the pool (or released twice): just drop its buffers
            return False
        entry.handles = [h for h in entry.handles if h is not handle]
        handle.close()
        if entry.handles:
            return False
        del _ENGINES[entry.key]
        entry.engine.close()
        return True


def stats() -> List[Dict[str, object]]:
    """List the loaded engines: model directory, provider and how many handles use each."""
    with _LOCK:
        return [{'model_dir': e.key[0], 'provider': e.key[1], 'users': len(e.handles),
                 'engine_id': id(e.engine)} for e in _ENGINES.values()]


def users_of(handle) -> int:
    """Count the handles sharing ``handle``'s engine (0 when it is not from the pool)."""
    with _LOCK:
        entry = _ENGINES.get(getattr(handle, 'pool_key', None))
        return len(entry.handles) if entry is not None else 0
