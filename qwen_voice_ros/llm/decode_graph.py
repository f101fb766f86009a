"""
Graph edits that make an optimum decoder export cheaper to run (needs the onnx package).

:func:`keep_last_logits` computes the LM head for the last position only.  optimum's export
applies the vocabulary projection to every position, so prefilling a 300-token prompt on
Qwen3 (vocabulary 151,936) spends most of its time and ~180 MB of output on logits nobody
reads; generation only needs the last row.  The engine detects the edited graph (logits
shaped [batch, 1, vocab]) and scores continuations token by token on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def keep_last_logits(model, logits_name: str = 'logits') -> bool:
    """
    Edit an in-memory ``onnx.ModelProto`` in place; return False if already edited.

    Inserts ``Slice(hidden, starts=[-1], ends=[INT64_MAX], axes=[1])`` in front of the node
    that produces ``logits`` (MatMul, or MatMulNBits after quantisation).
    """
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np

    graph = model.graph
    producer = next((n for n in graph.node if logits_name in n.output), None)
    if producer is None:
        raise ValueError('no node produces %r' % logits_name)
    if producer.op_type not in ('MatMul', 'MatMulNBits', 'Gemm'):
        raise ValueError('logits come from %s, expected the LM head MatMul' % producer.op_type)
    hidden = producer.input[0]
    if hidden.endswith('_last_position'):
        return False
    sliced = hidden + '_last_position'
    consts = {
        sliced + '_starts': np.array([-1], dtype=np.int64),
        sliced + '_ends': np.array([np.iinfo(np.int64).max], dtype=np.int64),
        sliced + '_axes': np.array([1], dtype=np.int64),
    }
    for name, value in consts.items():
        graph.initializer.append(numpy_helper.from_array(value, name))
    node = helper.make_node('Slice', [hidden] + list(consts), [sliced],
                            name='keep_last_position')
    index = list(graph.node).index(producer)
    graph.node.insert(index, node)
    producer.input[0] = sliced
    for output in graph.output:
        if output.name == logits_name:
            dims = output.type.tensor_type.shape.dim
            if len(dims) == 3:
                dims[1].ClearField('dim_param')
                dims[1].dim_value = 1
    # Stale intermediate shapes along the edited path would confuse ORT's shape checks.
    keep = [v for v in graph.value_info if v.name != logits_name]
    del graph.value_info[:]
    graph.value_info.extend(keep)
    if model.ByteSize() < (1 << 31) - 1:
        onnx.checker.check_model(model)
    return True


def keep_last_logits_file(src: Path, dst: Optional[Path] = None) -> Path:
    """
    Apply :func:`keep_last_logits` to ``src`` and save to ``dst`` (default: in place).

    Large models are saved with their weights in ``<dst name>.data`` next to ``dst``.
    """
    import onnx

    src, dst = Path(src), Path(dst or src)
    model = onnx.load(str(src))
    keep_last_logits(model)
    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size > (1 << 31) - (1 << 26):
        data_name = dst.name + '.data'
        if (dst.parent / data_name).exists():
            (dst.parent / data_name).unlink()
        onnx.save(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=data_name, size_threshold=1024)
    else:
        onnx.save(model, str(dst))
    return dst
