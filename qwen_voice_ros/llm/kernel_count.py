"""
Kernels one decode step runs: ONNX Runtime's profiler on a single-token step.

A fresh CPU session with profiling on runs one warm-up step and then one decode step (one new
token after ``past`` cached positions, zero-filled cache); the profile's ``Node`` kernel events
inside the last ``model_run`` are counted.  After ORT's own graph optimisations this is the
number of kernels the execution provider launches per generated token -- the figure that
sets the per-step scheduling overhead (optimum's plain export of Qwen2.5-0.5B: ~2,500).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np

_NP = {'tensor(float)': np.float32, 'tensor(float16)': np.float16,
       'tensor(int64)': np.int64, 'tensor(int32)': np.int32}


def _cache_shape(model_path: Path):
    """(kv_heads, head_dim) from config.json beside the graph, or None."""
    config = Path(model_path).parent / 'config.json'
    if not config.is_file():
        return None
    with open(str(config), encoding='utf-8') as handle:
        data = json.load(handle)
    heads = int(data['num_attention_heads'])
    return (int(data.get('num_key_value_heads') or heads),
            int(data.get('head_dim') or int(data['hidden_size']) // heads))


def _feeds(session, past: int, cache_shape=None) -> Dict[str, np.ndarray]:
    feeds = {}
    for meta in session.get_inputs():
        dtype = _NP.get(meta.type, np.float32)
        if meta.name == 'input_ids':
            feeds[meta.name] = np.full((1, 1), 3, dtype=dtype)
        elif meta.name == 'attention_mask':
            feeds[meta.name] = np.ones((1, past + 1), dtype=dtype)
        elif meta.name == 'position_ids':
            feeds[meta.name] = np.array([[past]], dtype=dtype)
        elif meta.name.startswith('past_key_values'):
            _, kv, _, head_dim = meta.shape
            if cache_shape is not None:
                kv, head_dim = cache_shape
            if not isinstance(kv, int) or not isinstance(head_dim, int):
                raise ValueError('cache input %s has no static kv/head_dim: %s'
                                 % (meta.name, meta.shape))
            feeds[meta.name] = np.zeros((1, kv, past, head_dim), dtype=dtype)
        else:
            raise ValueError('unexpected decoder input %s' % meta.name)
    return feeds


def kernels_per_decode_step(model_path, past: int = 32,
                            threads: Optional[int] = None) -> Dict[str, object]:
    """
    Profile one decode step of ``model_path`` (a model.onnx) on the CPU provider.

    Returns ``{'kernels': n, 'by_op': {op_type: count}}``.
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix='qwen_voice_prof_') as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or 1)
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, 'step')
        session = ort.InferenceSession(str(model_path), sess_options=options,
                                       providers=['CPUExecutionProvider'])
        feeds = _feeds(session, past, _cache_shape(Path(model_path)))
        session.run(None, feeds)
        session.run(None, feeds)
        profile = session.end_profiling()
        with open(str(Path(profile)), encoding='utf-8') as handle:
            events = json.load(handle)
    runs = [e for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run']
    if not runs:
        raise RuntimeError('no model_run in the ORT profile')
    last = runs[-1]
    start, end = last['ts'], last['ts'] + last['dur']
    by_op: Dict[str, int] = {}
    for event in events:
        if event.get('cat') != 'Node' or not str(event.get('name', '')).endswith('_kernel_time'):
            continue
        if start <= event['ts'] <= end:
            op = str(event.get('args', {}).get('op_name', '?'))
            by_op[op] = by_op.get(op, 0) + 1
    return {'kernels': sum(by_op.values()), 'by_op': dict(sorted(by_op.items()))}


def decode_step_profile(model_path, past: int = 64, steps: int = 20,
                        threads: Optional[int] = None, top: int = 5) -> Dict[str, object]:
    """
    Where a decode step's kernel time goes: ORT profiler over ``steps`` single-token runs.

    Same setup as :func:`kernels_per_decode_step` (zero-filled cache of ``past`` positions,
    CPU provider, ``threads`` intra-op threads; the first run is a warm-up).  Returns the mean
    ``model_run`` and kernel time per step (us), per-op-type time and share, and the ``top``
    most expensive nodes -- to tell GEMV (MatMulNBits) time from attention, norms and
    scheduling gaps (model_run minus kernel time).
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix='qwen_voice_prof_') as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, 'steps')
        session = ort.InferenceSession(str(model_path), sess_options=options,
                                       providers=['CPUExecutionProvider'])
        feeds = _feeds(session, past, _cache_shape(Path(model_path)))
        for _ in range(steps + 1):
            session.run(None, feeds)
        with open(str(Path(session.end_profiling())), encoding='utf-8') as handle:
            events = json.load(handle)
    runs = [e for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run']
    runs = runs[-steps:]
    if not runs:
        raise RuntimeError('no model_run in the ORT profile')
    start, end = runs[0]['ts'], runs[-1]['ts'] + runs[-1]['dur']
    by_op: Dict[str, float] = {}
    by_node: Dict[str, float] = {}
    for event in events:
        if event.get('cat') != 'Node' or not str(event.get('name', '')).endswith('_kernel_time'):
            continue
        if start <= event['ts'] <= end:
            op = str(event.get('args', {}).get('op_name', '?'))
            by_op[op] = by_op.get(op, 0.0) + event['dur']
            by_node[event['name']] = by_node.get(event['name'], 0.0) + event['dur']
    kernel_us = sum(by_op.values()) / len(runs)
    return {
        'steps': len(runs), 'past': past, 'threads': int(threads or 1),
        'model_run_us': round(sum(r['dur'] for r in runs) / len(runs), 1),
        'kernel_us': round(kernel_us, 1),
        'by_op_us': {k: round(v / len(runs), 1)
                     for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        'by_op_share': {k: round(v / len(runs) / kernel_us, 4)
                        for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        'top_nodes_us': {k[:-len('_kernel_time')]: round(v / len(runs), 1)
                         for k, v in sorted(by_node.items(), key=lambda kv: -kv[1])[:top]},
    }


def process_peak_rss_mb() -> float:
    """
    Peak resident memory of this process in MB (``VmHWM``).

    Not ``ru_maxrss``: on Linux that survives ``exec``, so a worker started by a big parent
    would report the parent's peak.
    """
    try:
        with open('/proc/self/status', encoding='ascii') as handle:
            for line in handle:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    """``python -m qwen_voice_ros.llm.kernel_count MODEL_DIR [--profile] [--json]``."""
    import argparse

    parser = argparse.ArgumentParser(description='kernels per decode step of a decoder graph '
                                     '(ORT profiler); --profile: time per op type')
    parser.add_argument('model_dir', help='directory with model.onnx (or the .onnx file)')
    parser.add_argument('--profile', action='store_true', help='time per op type and node')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--past', type=int, default=64, help='cached positions (default 64)')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--json', action='store_true', help='one JSON object as the last line')
    args = parser.parse_args(argv)
    path = Path(args.model_dir)
    path = path / 'model.onnx' if path.is_dir() else path
    result = kernels_per_decode_step(path, past=args.past, threads=args.threads)
    print('%d kernels per decode step: %s' % (result['kernels'], ', '.join(
        '%s %d' % kv for kv in result['by_op'].items())))
    if args.profile:
        prof = decode_step_profile(path, past=args.past, steps=args.steps,
                                   threads=args.threads)
        result['profile'] = prof
        print('model_run %.0f us/step, kernels %.0f us/step'
              % (prof['model_run_us'], prof['kernel_us']))
        for op, us in prof['by_op_us'].items():
            print('  %-34s %9.1f us  %5.1f %%' % (op, us, 100 * prof['by_op_share'][op]))
        for node, us in prof['top_nodes_us'].items():
            print('  node %-60s %9.1f us' % (node, us))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
