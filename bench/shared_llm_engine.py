#!/usr/bin/env python3
"""
Peak memory of the dialect (llm stage) + llm nodes in one process: one shared engine vs two.

Each mode runs in a fresh child process that starts the real lifecycle nodes
(``DialectNode`` with backend ``llm``, ``LLMNode`` with the onnx backend) on one
MultiThreadedExecutor, lets them configure, then makes both use the model: one reply from
the llm node's backend and one 8-label scoring from the dialect node's classifier.  It
reports the child's peak RSS (``ru_maxrss``), the engines loaded in the process, the
dialect scores, and VmRSS after both nodes' cleanup.

Modes: ``shared`` (dialect ``llm_share_engine: true``: one session, two KV caches),
``separate`` (``llm_share_engine: false``: the dialect node loads its own copy, as before)
and ``llm_only`` (the llm node alone: the floor).  The shared mode also checks that its
scores equal a standalone :class:`OnnxCausalLM`'s (computed after the peak was taken).

    python bench/shared_llm_engine.py --model-dir models/qwen2.5-coder-0.5b-int4-fused --json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = '你在搞啥子嘛，快点过来。'
REQUEST = '今天天气怎么样？'
MODES = ('llm_only', 'separate', 'shared')


def _vm_rss_mb():
    with open('/proc/self/status') as handle:
        for line in handle:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return None


def child(mode, model_dir, threads, domain):
    import yaml
    params = {
        '/**/dialect': {'ros__parameters': {
            'backend': 'llm', 'llm_model_dir': model_dir, 'llm_provider': 'cpu',
            'llm_max_context': 2048, 'llm_share_engine': mode == 'shared',
            'llm_intra_op_threads': threads}},
        '/**/llm': {'ros__parameters': {
            'onnx.model_dir': model_dir, 'onnx.provider': 'cpu',
            'onnx.intra_op_threads': threads, 'onnx.max_context': 2048}},
    }
    handle = tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False)
    yaml.safe_dump(params, handle)
    handle.close()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from qwen_voice_ros.llm import engine_pool
    from qwen_voice_ros.llm.base import GenerationOptions, complete
    from qwen_voice_ros.nodes.dialect_node import DialectNode
    from qwen_voice_ros.nodes.llm_node import LLMNode
    rss_start = _vm_rss_mb()
    rclpy.init(args=['--ros-args', '--params-file', handle.name])
    classes = (LLMNode,) if mode == 'llm_only' else (DialectNode, LLMNode)
    nodes = [cls() for cls in classes]
    executor = MultiThreadedExecutor(num_threads=4)
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 600
    while not all(getattr(n, 'active', False) for n in nodes):
        if time.monotonic() > deadline:
            raise SystemExit('nodes did not activate')
        time.sleep(0.1)
    out = {'mode': mode, 'rss_start_mb': round(rss_start, 1)}
    llm = nodes[-1]
    started = time.perf_counter()
    reply = complete(llm.backend, [{'role': 'user', 'content': REQUEST}],
                     GenerationOptions(max_new_tokens=32))
    out['reply'] = reply
    out['reply_s'] = round(time.perf_counter() - started, 3)
    if mode != 'llm_only':
        started = time.perf_counter()
        result = nodes[0].classifier.classify(TEXT)
        out['scoring_s'] = round(time.perf_counter() - started, 3)
        out['label'] = result.label
        out['scores'] = result.scores
    out['engines_loaded'] = len(engine_pool.stats()) + (
        1 if mode == 'separate' else 0)  # the unshared copy is outside the pool
    out['pool'] = engine_pool.stats()
    out['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    out['rss_loaded_mb'] = round(_vm_rss_mb(), 1)
    executor.shutdown()
    for node in reversed(nodes):
        node._teardown()
        node.destroy_node()
    import gc
    gc.collect()
    out['pool_after_cleanup'] = engine_pool.stats()
    out['rss_after_cleanup_mb'] = round(_vm_rss_mb(), 1)
    if mode == 'shared':
        from qwen_voice_ros.dialect import load_dialect_classifier
        from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
        alone = load_dialect_classifier(stage='llm', llm_scorer=OnnxCausalLM(
            model_dir, max_context=2048)).classify(TEXT)
        out['scores_equal_standalone'] = all(
            abs(alone.scores[k] - v) <= 1e-6 for k, v in out['scores'].items())
    rclpy.shutdown()
    os.unlink(handle.name)
    print(json.dumps(out, ensure_ascii=False))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model-dir', default=os.path.join(
        REPO, 'models', 'qwen2.5-coder-0.5b-int4-fused'))
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--domain', type=int, default=int(os.environ.get('ROS_DOMAIN_ID', 213)))
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--json', action='store_true', help='last line: one JSON summary')
    parser.add_argument('--child', choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model_dir = os.path.abspath(args.model_dir)
    if args.child:
        child(args.child, model_dir, args.threads, args.domain)
        return 0
    results = {}
    for mode in args.modes.split(','):
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', mode,
                               '--model-dir', model_dir, '--threads', str(args.threads),
                               '--domain', str(args.domain)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit('mode %s failed (rc %d)' % (mode, proc.returncode))
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[mode]
        print('%-9s peak RSS %7.1f MB  loaded %7.1f MB  after cleanup %7.1f MB  engines %d  %s'
              % (mode, r['peak_rss_mb'], r['rss_loaded_mb'], r['rss_after_cleanup_mb'],
                 r['engines_loaded'], r.get('label', '')))
    summary = {'model_dir': model_dir, 'load_avg': os.getloadavg(), 'modes': results}
    if 'shared' in results and 'llm_only' in results:
        base = results['llm_only']['peak_rss_mb']
        summary['shared_over_llm_only'] = round(results['shared']['peak_rss_mb'] / base, 3)
        if 'separate' in results:
            summary['separate_over_llm_only'] = round(
                results['separate']['peak_rss_mb'] / base, 3)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
