"""
Weight-only INT4/INT8 quantisation of the decoder's MatMul weights (``MatMulNBits``).

Activations stay float; each constant MatMul weight is quantised in blocks of ``block_size``
input channels with one scale (and zero point) per block.  ``MatMulNBits`` is an ONNX Runtime
contrib op (com.microsoft): CPU and CUDA EPs run it; TensorRT 8.5 does not (see
docs/llm_export.md).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional

from . import ExportError
from .onnx_export import EXTERNAL_DATA_FILE

BITS = {'int4': 4, 'int8': 8}
# Protobuf refuses messages over 2 GiB; leave headroom for the graph itself.
EXTERNAL_DATA_THRESHOLD = 1800 * 1024 * 1024


def initializer_bytes(model) -> int:
    """Return the serialised size of a loaded ``ModelProto``'s initializers."""
    return sum(tensor.ByteSize() for tensor in model.graph.initializer)


def save_onnx(model, path: Path, force_external: bool = False) -> bool:
    """
    Save ``model``; weights go to ``model.onnx_data`` beside it when too big for protobuf.

    Returns whether external data was used.  Any stale external data file is removed first so
    a small model never leaves an old, unreferenced ``model.onnx_data`` behind.
    """
    import onnx

    path = Path(path)
    stale = path.parent / EXTERNAL_DATA_FILE
    if stale.exists():
        stale.unlink()
    external = force_external or initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=EXTERNAL_DATA_FILE,
                        size_threshold=1024, convert_attribute=False)
    else:
        onnx.save_model(model, str(path))
    return external


def count_ops(model_path: Path) -> Dict[str, int]:
    """Node counts per op type (main graph), reading the graph without its weights."""
    import onnx

    counts: Dict[str, int] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def fold_transposed_weights(model) -> int:
    """
    Give MatMuls that read ``Transpose(initializer)`` their own transposed initializer.

    optimum ties lm_head to the token embedding through a Transpose node; the quantiser only
    sees constant initializers, so without this the largest MatMul (hidden x vocab) would
    stay float and be read in full for every generated token.  Returns MatMuls changed.
    """
    from onnx import numpy_helper

    initializers = {t.name: t for t in model.graph.initializer}
    transposes = {}
    for node in model.graph.node:
        perm = [list(a.ints) for a in node.attribute if a.name == 'perm']
        if node.op_type == 'Transpose' and node.input[0] in initializers and \
                len(initializers[node.input[0]].dims) == 2 and perm in ([], [[1, 0]]):
            transposes[node.output[0]] = node
    folded = {}
    changed = 0
    for node in model.graph.node:
        if node.op_type == 'MatMul' and len(node.input) == 2 and node.input[1] in transposes:
            name = node.input[1]
            if name not in folded:
                source = initializers[transposes[name].input[0]]
                array = numpy_helper.to_array(source).T.copy()
                folded[name] = numpy_helper.from_array(array, name + '_folded')
                model.graph.initializer.append(folded[name])
            node.input[1] = folded[name].name
            changed += 1
    still_used = {i for n in model.graph.node for i in n.input} | \
        {o.name for o in model.graph.output}
    for transpose in transposes.values():
        if transpose.output[0] not in still_used:
            model.graph.node.remove(transpose)
    return changed


def quantize_weights(src_model: Path, dst_model: Path, scheme: str, block_size: int = 32,
                     symmetric: bool = False, accuracy_level: Optional[int] = None,
                     last_logits_only: bool = False) -> Dict[str, object]:
    """
    Quantise ``src_model``'s MatMul weights to ``scheme`` ('int4'|'int8') into ``dst_model``.

    ``src_model``'s external data (if any) is read from its own directory, so ``dst_model``
    should live in another directory (or replace the source only after this returns).
    ``last_logits_only`` also applies the engine's LM-head-on-the-last-position edit.
    """
    if scheme not in BITS:
        raise ExportError('unknown quantisation {!r}; choose one of {}'.format(
            scheme, ', '.join(sorted(BITS))))
    if block_size < 16 or block_size & (block_size - 1):
        raise ExportError('--block-size must be a power of two >= 16, got {}'.format(block_size))
    import onnx
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:
        raise ExportError('weight quantisation needs onnxruntime>=1.17 and onnx-ir '
                          '(pip install -r requirements/extra-llm-export.txt): {}'.format(exc)) \
            from None

    # The quantiser logs two INFO lines per MatMul (hundreds on a real model).
    logging.getLogger('onnxruntime.quantization.matmul_nbits_quantizer').setLevel(
        logging.WARNING)
    model = onnx.load(str(src_model))  # loads external data from src_model's directory
    untied = fold_transposed_weights(model)
    quantizer = MatMulNBitsQuantizer(
        model, bits=BITS[scheme], block_size=block_size, is_symmetric=symmetric,
        accuracy_level=accuracy_level, op_types_to_quantize=('MatMul',))
    quantizer.process()
    quantized = quantizer.model.model
    replaced = sum(1 for n in quantized.graph.node if n.op_type == 'MatMulNBits')
    if replaced == 0:
        raise ExportError('no MatMul weight was quantised in {} (weights not constant?)'.format(
            src_model))
    if last_logits_only:
        from qwen_voice_ros.llm.decode_graph import keep_last_logits
        keep_last_logits(quantized)
    external = save_onnx(quantized, Path(dst_model))
    return {
        'scheme': scheme, 'bits': BITS[scheme], 'block_size': block_size,
        'symmetric': symmetric, 'accuracy_level': accuracy_level,
        'matmulnbits_nodes': replaced,
        'untied_matmul_weights': untied,
        'float_matmul_nodes_left': sum(1 for n in quantized.graph.node if n.op_type == 'MatMul'),
        'external_data': external,
        'last_logits_only': last_logits_only,
    }


def finalize_float(src_model: Path, dst_model: Path, last_logits_only: bool) -> bool:
    """
    Write the unquantised graph to ``dst_model`` (optionally last-position logits only).

    Returns whether external data was used.
    """
    import onnx

    if not last_logits_only:
        import shutil

        stale = Path(dst_model).parent / EXTERNAL_DATA_FILE
        if stale.exists():
            stale.unlink()
        shutil.copyfile(str(src_model), str(dst_model))
        src_data = Path(src_model).parent / EXTERNAL_DATA_FILE
        if src_data.exists():
            shutil.copyfile(str(src_data), str(stale))
        return src_data.exists()
    from qwen_voice_ros.llm.decode_graph import keep_last_logits

    model = onnx.load(str(src_model))
    keep_last_logits(model)
    return save_onnx(model, Path(dst_model))
