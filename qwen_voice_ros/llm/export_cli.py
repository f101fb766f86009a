"""
``qwen-voice-export``: Hugging Face model -> ONNX decoder directory for the ONNX engine.

    qwen-voice-export --model Qwen/Qwen3-1.7B --out models/qwen3-1.7b-int4 --quantize int4
    qwen-voice-export --offline-pack qwen2.5-coder-0.5b --out models/qwen2.5-coder-0.5b-int4 \
        --quantize int4
    qwen-voice-export --out models/qwen3-1.7b --trt-prebuild      # on the robot, after copying

Progress goes to stderr as numbered steps; stdout gets a summary (``--json``: one JSON line,
the last one).  Exit codes: 0 ok, 1 export error, 2 bad arguments or model not found,
3 validation over tolerance, 4 TensorRT prebuild not possible here (earlier steps kept),
5 offline pack failed its sha256 check.  See docs/llm_export.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

from qwen_voice_ros.llm.export import (ExportError, ModelNotFound, TensorRTUnavailable,
                                       ValidationFailed)
from qwen_voice_ros.llm.export.progress import Progress

UPSTREAM_EXAMPLE = ('qwen-voice-export --model Qwen/Qwen3-1.7B --out models/qwen3-1.7b-int4 '
                    '--quantize int4')


def build_parser() -> argparse.ArgumentParser:
    from qwen_voice_ros.llm.export.offline_pack import PACKS

    parser = argparse.ArgumentParser(
        prog='qwen-voice-export',
        description='Export a Qwen causal LM to an ONNX decoder directory (optimum, opset 17, '
                    'text-generation-with-past), optionally quantise its weights (INT8/INT4 '
                    'MatMulNBits), validate it against transformers and prebuild the TensorRT '
                    'engine cache.',
        epilog='Upstream default: ' + UPSTREAM_EXAMPLE)
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--model', metavar='HF_DIR_OR_ID',
                        help='Hugging Face model directory, or hub id (needs internet)')
    source.add_argument('--offline-pack', choices=sorted(PACKS),
                        help='convert a sha256-pinned model shipped in pip packages '
                             '(offline demo convenience; see docs/llm_export.md)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='output directory (model.onnx, config, tokenizer, export_info.json)')
    parser.add_argument('--quantize', choices=('none', 'int8', 'int4'), default='none',
                        help='weight-only quantisation of MatMul weights (default: none)')
    parser.add_argument('--block-size', type=int, default=None,
                        help='quantisation block size along the input dimension (default 32; '
                             '128 for a --fused INT4 graph, see docs/llm.md)')
    parser.add_argument('--symmetric', action='store_true',
                        help='symmetric quantisation (no zero points)')
    parser.add_argument('--accuracy-level', type=int, choices=(0, 1, 2, 3, 4), default=4,
                        help='MatMulNBits compute type on CPU: 4 (default) = int8 activations, '
                             '3.5x (int4) / 50x (int8) faster decode here than 0 = float')
    parser.add_argument('--validate', dest='validate', action='store_true', default=True,
                        help='compare logits with transformers on a few prompts (default)')
    parser.add_argument('--no-validate', dest='validate', action='store_false',
                        help='skip the comparison with transformers')
    parser.add_argument('--atol', type=float, default=1e-3,
                        help='unquantised graph must match within atol * max(1, max |logit|) '
                             '(default 1e-3)')
    parser.add_argument('--trt-prebuild', action='store_true',
                        help='build the TensorRT engine cache now (run on the target device); '
                             'without --model/--offline-pack, use the model.onnx already in --out')
    parser.add_argument('--trt-cache', metavar='DIR',
                        help='TensorRT engine cache directory (default: OUT/trt_cache)')
    parser.add_argument('--trt-max-context', type=int, default=4096,
                        help="TensorRT profile: prompt+reply tokens (use the LLM node's "
                             'max_context; default 4096, the engine default)')
    parser.add_argument('--trt-max-prompt', type=int, default=1024,
                        help="TensorRT profile: tokens prefilled at once (the LLM node's "
                             'max_prompt; default 1024)')
    parser.add_argument('--trt-fp32', action='store_true',
                        help='build FP32 TensorRT engines (default FP16)')
    parser.add_argument('--last-logits-only', dest='last_logits_only', action='store_true',
                        default=True,
                        help='LM head on the last position only (the engine\'s faster graph; '
                             'default)')
    parser.add_argument('--all-logits', dest='last_logits_only', action='store_false',
                        help='keep logits for every position (optimum\'s graph as exported)')
    parser.add_argument('--fused', action='store_true',
                        help='fused decode graph for the cpu/cuda providers (GroupQueryAttention, '
                             'SkipSimplifiedLayerNorm, INT4 tied embedding) built by '
                             'onnxruntime-genai instead of the optimum export; not for TensorRT')
    parser.add_argument('--fused-provider', choices=('cpu', 'cuda'), default='cpu',
                        help='provider the fused graph is built for (default cpu)')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset (default 17, the TensorRT 8.5 ceiling)')
    parser.add_argument('--keep-intermediate', action='store_true',
                        help='keep OUT/.work (fp32 graph before quantisation, pack HF dir)')
    parser.add_argument('--trust-remote-code', action='store_true',
                        help='pass trust_remote_code to transformers/optimum')
    parser.add_argument('--verbose', action='store_true',
                        help="show optimum/torch exporter warnings")
    parser.add_argument('--json', action='store_true',
                        help='print the summary as one JSON line (the last line of stdout)')
    return parser


def _sizes(out_dir: Path) -> Dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}


def _print_validation(progress: Progress, label: str, result: Dict[str, object]) -> None:
    progress.info('{}: max abs logit diff {:.3g} (largest |logit| {:.3g}), KV-step diff {:.3g}, '
                  'argmax agreement {:.1%} over {} positions'.format(
                      label, result['max_abs_diff'], result['max_abs_logit'],
                      result['kv_step_max_abs_diff'], result['argmax_agreement'],
                      result['positions']))


def run(args: argparse.Namespace, summary: Dict[str, object]) -> int:
    """Run the requested steps, filling ``summary``; return the exit code."""
    from qwen_voice_ros.llm.export import onnx_export
    from qwen_voice_ros.llm.export.onnx_export import EXTERNAL_DATA_FILE, MODEL_FILE

    out_dir = Path(args.out).expanduser()
    prebuild_only = args.model is None and args.offline_pack is None
    if prebuild_only and not (args.trt_prebuild and (out_dir / MODEL_FILE).is_file()):
        raise ModelNotFound('pass --model HF_DIR_OR_ID or --offline-pack NAME (or --trt-prebuild '
                            'with an --out that already holds model.onnx)')
    work_dir = out_dir / '.work'
    quantize = args.quantize != 'none'
    local_dir: Optional[Path] = None
    source = ''
    if args.model is not None:
        source, local_dir = onnx_export.resolve_model(args.model)  # fails fast, exit 2
        summary['model'] = args.model
    total = 0 if prebuild_only else (1 if args.fused else 2 + bool(args.validate))
    total += 2 * bool(args.offline_pack) + bool(args.trt_prebuild)
    progress = Progress(total)
    summary['out_dir'] = str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if args.offline_pack:
        from qwen_voice_ros.llm.export import offline_pack

        pack = offline_pack.get_pack(args.offline_pack)
        with progress.step('pack_assemble', 'reassembling and verifying ' + pack.gguf_file):
            gguf = offline_pack.assemble(offline_pack.locate_parts(pack),
                                         work_dir / 'pack' / pack.gguf_file, pack.sha256)
            progress.info('sha256 {} OK ({} bytes)'.format(pack.sha256, gguf.stat().st_size))
        with progress.step('pack_to_hf', 'dequantising the GGUF into a Hugging Face directory'):
            hf_dir = offline_pack.gguf_to_hf(gguf, work_dir / 'pack' / 'hf')
        source, local_dir = str(hf_dir), hf_dir
        summary['offline_pack'] = {'name': pack.name, 'gguf': pack.gguf_file,
                                   'sha256': pack.sha256, 'description': pack.description}
        summary['model'] = 'offline-pack:' + pack.name

    final_model = out_dir / MODEL_FILE
    if not prebuild_only and args.fused:
        from qwen_voice_ros.llm.export.fused_builder import build_fused

        if local_dir is None:
            raise ModelNotFound('--fused needs a local Hugging Face directory or --offline-pack')
        precision = args.quantize if quantize else 'fp32'
        with progress.step('fused', 'building the fused {} graph ({})'.format(
                precision, args.fused_provider)):
            summary['fused'] = build_fused(local_dir, out_dir, precision,
                                           provider=args.fused_provider,
                                           block_size=args.block_size,
                                           accuracy_level=args.accuracy_level)
            progress.info('{} nodes: {}'.format(summary['fused']['nodes'], ', '.join(
                '{} {}'.format(k, v) for k, v in sorted(summary['fused']['ops'].items()))))
        summary['quantization'] = {'scheme': args.quantize, 'graph': 'fused'}
        onnx_export.copy_sidecar_files(local_dir, out_dir)  # whatever the builder left out
    elif not prebuild_only:
        summary['opset'] = args.opset
        stage_dir = work_dir / 'fp32'
        with progress.step('export', 'exporting ONNX (opset {}, {})'.format(
                args.opset, onnx_export.TASK)):
            with warnings.catch_warnings():
                if not args.verbose:
                    warnings.simplefilter('ignore')
                fp32_model = onnx_export.export_onnx(
                    source, stage_dir, opset=args.opset, local_dir=local_dir,
                    trust_remote_code=args.trust_remote_code)
            progress.info('{} ({:.1f} MB with external data)'.format(
                fp32_model, onnx_export.onnx_bytes(stage_dir) / 1e6))
        edit = ', LM head on the last position only' if args.last_logits_only else ''
        if quantize:
            from qwen_voice_ros.llm.export.quantize import quantize_weights

            block_size = args.block_size or 32
            with progress.step('quantize', 'quantising MatMul weights to {} (block {}{})'.format(
                    args.quantize, block_size, edit)):
                summary['quantization'] = quantize_weights(
                    fp32_model, final_model, args.quantize, block_size=block_size,
                    symmetric=args.symmetric, accuracy_level=args.accuracy_level,
                    last_logits_only=args.last_logits_only)
                progress.info('{} MatMulNBits nodes'.format(
                    summary['quantization']['matmulnbits_nodes']))
        else:
            from qwen_voice_ros.llm.export.quantize import finalize_float

            with progress.step('finalize', 'writing the float graph' + edit):
                if args.last_logits_only:
                    external = finalize_float(fp32_model, final_model, True)
                else:  # nothing to change: move the staged files instead of copying GBs
                    external = onnx_export.move_onnx(stage_dir, out_dir)
                    fp32_model = final_model
            summary['quantization'] = {'scheme': 'none', 'external_data': external,
                                       'last_logits_only': args.last_logits_only}
        onnx_export.copy_sidecar_files(stage_dir, out_dir, overwrite=True)
        if args.validate:
            from qwen_voice_ros.llm.export.validate import validate

            graphs = [fp32_model] + ([final_model] if final_model != fp32_model else [])
            with progress.step('validate', 'comparing logits with transformers'):
                results = validate(source, graphs)
            fp32_result = results[0]
            _print_validation(progress, 'exported fp32 graph', fp32_result)
            validation = dict(results[-1])
            if len(results) > 1:
                _print_validation(progress, 'final graph', results[-1])
                validation['fp32'] = fp32_result
            summary['validation'] = validation
            summary['max_abs_diff'] = validation['max_abs_diff']
            summary['argmax_agreement'] = validation['argmax_agreement']
            limit = args.atol * max(1.0, float(fp32_result['max_abs_logit']))
            float_results = [r for r in results if r is fp32_result or not quantize]
            worst = max(float(r['max_abs_diff']) for r in float_results)
            if worst > limit:
                raise ValidationFailed(
                    'float graph differs from transformers by {:.3g} > tolerance {:.3g}; '
                    'files kept in {}'.format(worst, limit, out_dir))
        if not args.keep_intermediate:
            onnx_export.remove_tree(stage_dir)

    exit_code = 0
    if args.trt_prebuild:
        from qwen_voice_ros.llm.export.trt_prebuild import prebuild

        cache_dir = Path(args.trt_cache).expanduser() if args.trt_cache else out_dir / 'trt_cache'
        try:
            with progress.step('trt_prebuild', 'building the TensorRT engine cache in {}'.format(
                    cache_dir)):
                summary['trt'] = prebuild(out_dir, cache_dir, fp16=not args.trt_fp32,
                                          max_context=args.trt_max_context,
                                          max_prompt=args.trt_max_prompt)
            for warning in summary['trt'].get('warnings', []):
                progress.info('warning: ' + warning)
        except TensorRTUnavailable as exc:
            print('qwen-voice-export: ' + str(exc), file=sys.stderr)
            summary['trt'] = {'error': str(exc)}
            exit_code = exc.exit_code

    if not args.keep_intermediate:
        onnx_export.remove_tree(work_dir)
    files = _sizes(out_dir)
    summary['model_onnx'] = str(final_model)
    summary['files'] = files
    summary['onnx_bytes'] = files.get(MODEL_FILE, 0) + files.get(EXTERNAL_DATA_FILE, 0)
    summary['out_dir_bytes'] = onnx_export.dir_size(out_dir)
    summary['seconds'] = dict(progress.seconds, total=round(progress.elapsed(), 2))
    summary['status'] = 'ok' if exit_code == 0 else 'trt_unavailable'
    info_path = out_dir / 'export_info.json'
    if prebuild_only and info_path.is_file():  # keep the export's record, add the cache's
        info = json.loads(info_path.read_text())
        info['trt'] = summary.get('trt')
    else:
        info = {k: v for k, v in summary.items() if k != 'files'}
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return exit_code


def _print_summary(summary: Dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, sort_keys=True), flush=True)
        return
    lines: List[str] = ['status: {}'.format(summary.get('status'))]
    for key in ('model', 'out_dir', 'model_onnx', 'onnx_bytes', 'max_abs_diff',
                'argmax_agreement', 'error'):
        if key in summary:
            lines.append('{}: {}'.format(key, summary[key]))
    if 'quantization' in summary:
        lines.append('quantization: {}'.format(summary['quantization'].get('scheme')))
    if 'seconds' in summary:
        lines.append('seconds: {}'.format(summary['seconds'].get('total')))
    print('\n'.join(lines), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    summary: Dict[str, object] = {'status': 'error'}
    started = time.monotonic()
    try:
        code = run(args, summary)
    except ExportError as exc:
        code = exc.exit_code
        summary['status'] = {2: 'model_not_found', 3: 'validation_failed',
                             5: 'integrity_error'}.get(code, 'error')
        summary['error'] = str(exc)
        summary.setdefault('seconds', {'total': round(time.monotonic() - started, 2)})
        print('qwen-voice-export: error: ' + str(exc), file=sys.stderr)
    except KeyboardInterrupt:
        print('qwen-voice-export: interrupted', file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: keep the traceback, still end with a summary line
        import traceback

        traceback.print_exc()
        code = 1
        summary['error'] = '{}: {}'.format(type(exc).__name__, exc)
    _print_summary(summary, args.json)
    return code


if __name__ == '__main__':
    sys.exit(main())
