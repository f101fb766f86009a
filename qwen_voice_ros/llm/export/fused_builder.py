"""
Fused decode graph for the CPU and CUDA execution providers (ONNX Runtime GenAI's builder).

optimum's export (``onnx_export.py``) spells attention out in small ops: rotary embedding,
masks, KV concatenation, RMSNorm as Pow/ReduceMean/..., ~2,500 kernels per decode step on a
24-layer Qwen2.5-0.5B.  This module builds the same decoder with ONNX Runtime's fused
contrib ops instead -- ``GroupQueryAttention`` (rotary embedding inside, KV cache as
``[batch, kv_heads, seq, head_dim]`` past/present pairs: the layout the engine already binds),
``SkipSimplifiedLayerNormalization`` / ``SimplifiedLayerNormalization``, Q/K/V fused into one
``MatMulNBits`` -- and, for INT4/INT8 with tied embeddings, one quantised table shared by the
token embedding (``GatherBlockQuantized``) and the LM head (``MatMulNBits``): no float copy
of the 151,936 x hidden table stays in memory.  ``prune_lm_head`` keeps logits for the last
position only (like :func:`~qwen_voice_ros.llm.decode_graph.keep_last_logits`).

The graph has no ``position_ids`` input (GQA derives positions from ``attention_mask``); the
engine handles both.  TensorRT 8.5 (JetPack 5) takes none of these contrib ops
(GroupQueryAttention, SkipSimplifiedLayerNormalization, MatMulNBits, GatherBlockQuantized
are com.microsoft ops with no TensorRT 8.5 plugin), so a TensorRT robot keeps the plain
optimum graph (``qwen-voice-export`` without ``--fused``).

The builder is ``onnxruntime_genai.models.builder`` (pip ``onnxruntime-genai``, export-time
only: the robot needs only onnxruntime).  onnxruntime-genai 0.18 imports model classes that
transformers 4.57 lacks and reads ``rope_scaling`` as a dict; :func:`build_fused` runs it in
a subprocess with placeholders for those classes and a patched copy of config.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from . import ExportError

PRECISIONS = ('fp32', 'fp16', 'int8', 'int4')
# transformers names onnxruntime-genai 0.18's builder imports at module level; only the
# Qwen2/Qwen3 causal-LM paths are used here, so placeholders are enough.
_MISSING_CLASSES = ('Qwen3_5ForConditionalGeneration', 'Qwen3_5MoeForConditionalGeneration',
                    'Qwen3VLForConditionalGeneration', 'Lfm2VlForConditionalGeneration',
                    'Mistral3ForConditionalGeneration', 'Gemma3ForConditionalGeneration',
                    'Qwen2_5_VLForConditionalGeneration')
SIDE_FILES = ('config.json', 'generation_config.json')
RETIE_TOLERANCE = 0.1
# MatMulNBits block size per precision when the caller gives none.  INT4: 128, not the
# builder's 32 -- on the 2-core AMD EPYC (AVX512-VNNI) ONNX Runtime's int8-activation kernel
# (accuracy_level 4) decodes the 0.5B pack ~1.5x faster per CPU second with 128 (per-step CPU
# time 25.6 vs 39.6 ms, interleaved rounds) and the graph is 16 % smaller (273 vs 325 MB); the
# cost is a larger quantisation error (teacher-forced KL to the fp32 weights 0.107 vs 0.062 nats
# per token, docs/llm.md "block size").  INT8 keeps 32 (128 not measured).
DEFAULT_BLOCK_SIZE = {'int4': 128, 'int8': 32}


def builder_available() -> bool:
    """Whether onnxruntime-genai (the model builder) is installed."""
    import importlib.util
    return importlib.util.find_spec('onnxruntime_genai') is not None


def untied_copy_difference(hf_dir: Path) -> Optional[float]:
    """
    Max |embed - lm_head| / max |embed| when both tables are stored, else None.

    A GGUF dequantised by transformers stores the tied table twice (llama.cpp quantises
    ``token_embd`` and ``output`` separately: Q5_0 and Q8_0 in the offline pack), so the
    config says untied although both are copies of one tensor.  Models over 5 GB in fp32
    (the 1.5B pack) are saved sharded: the index file says which shard holds each table.
    """
    import numpy as np
    from safetensors import safe_open

    names = ('model.embed_tokens.weight', 'lm_head.weight')
    index = hf_dir / 'model.safetensors.index.json'
    if (hf_dir / 'model.safetensors').is_file():
        files = {name: hf_dir / 'model.safetensors' for name in names}
    elif index.is_file():
        with open(str(index), encoding='utf-8') as handle:
            weight_map = json.load(handle).get('weight_map') or {}
        if not all(name in weight_map for name in names):
            return None
        files = {name: hf_dir / weight_map[name] for name in names}
    else:
        return None
    tables = []
    for name in names:
        with safe_open(str(files[name]), 'np') as handle:
            if name not in set(handle.keys()):
                return None
            tables.append(handle.get_tensor(name))
    embed, head = tables
    if embed.shape != head.shape:
        return None
    return float(np.max(np.abs(embed - head)) / max(float(np.max(np.abs(embed))), 1e-12))


def _shadow_hf_dir(hf_dir: Path, work: Path, tie: bool = False) -> Path:
    """Symlink ``hf_dir`` into ``work`` with a config.json the builder can read."""
    work.mkdir(parents=True, exist_ok=True)
    for path in hf_dir.iterdir():
        if path.name != 'config.json' and path.is_file():
            os.symlink(str(path.resolve()), str(work / path.name))
    with open(str(hf_dir / 'config.json'), encoding='utf-8') as handle:
        config = json.load(handle)
    if tie:
        config['tie_word_embeddings'] = True  # transformers then ties lm_head to the embedding
    if not isinstance(config.get('rope_scaling'), dict):
        config['rope_scaling'] = {'rope_type': 'default',
                                  'rope_theta': config.get('rope_theta', 10000.0)}
    with open(str(work / 'config.json'), 'w', encoding='utf-8') as handle:
        json.dump(config, handle, indent=2)
    return work


def default_block_size(precision: str) -> int:
    """Return the block size :func:`build_fused` uses for ``precision`` when given none."""
    return DEFAULT_BLOCK_SIZE.get(precision, 32)


def builder_options(precision: str, provider: str, tied: bool,
                    block_size: Optional[int] = None, accuracy_level: int = 4,
                    shared_embeddings: Optional[bool] = None) -> Dict[str, str]:
    """``--extra_options`` for the builder (see the module docstring)."""
    options = {'prune_lm_head': 'true'}
    if precision in ('int4', 'int8'):
        block_size = int(block_size or default_block_size(precision))
        if block_size < 16 or block_size & (block_size - 1):
            raise ExportError('block size must be a power of two >= 16, got %d' % block_size)
        options.update(block_size=str(block_size), accuracy_level=str(accuracy_level),
                       is_symmetric='false')
    # GatherBlockQuantized (the quantised embedding lookup) is 4-bit only: with INT4 and tied
    # embeddings the LM head's MatMulNBits table is the embedding table too.  INT8 keeps a
    # float embedding table next to its INT8 LM head.
    share = tied and precision == 'int4' if shared_embeddings is None \
        else bool(shared_embeddings)
    if share:
        options['shared_embeddings'] = 'true'
        options['op_types_to_quantize'] = 'MatMul/Gather'
    if provider == 'cuda' and precision in ('fp16', 'int4', 'int8'):
        options['enable_cuda_graph'] = 'false'
    return options


def build_signature(precision: str, provider: str = 'cpu') -> Dict[str, str]:
    """Return the default build options that decide a fused graph's weights (block size...)."""
    return builder_options(precision, provider, tied=False)


def cached_build_is_current(out_dir, precision: str, provider: str = 'cpu') -> bool:
    """
    Whether ``out_dir`` holds a fused graph built with today's default options.

    Caches (the llama.cpp bench's, the tiny test models') use it so that a changed default
    (e.g. the INT4 block size) rebuilds instead of silently measuring the old graph.
    """
    info_path = Path(out_dir) / 'fused_info.json'
    if not info_path.is_file() or not (Path(out_dir) / 'model.onnx').is_file():
        return False
    with open(str(info_path), encoding='utf-8') as handle:
        built = json.load(handle).get('extra_options', {})
    return all(built.get(key) == value
               for key, value in build_signature(precision, provider).items())


def build_fused(hf_dir, out_dir, precision: str = 'int4', provider: str = 'cpu',
                block_size: Optional[int] = None, accuracy_level: int = 4,
                shared_embeddings: Optional[bool] = None,
                timeout_s: float = 3600.0) -> Dict[str, object]:
    """
    Build the fused decoder of the Hugging Face model in ``hf_dir`` into ``out_dir``.

    ``precision``: fp32 | fp16 | int8 | int4 (weight-only MatMulNBits, block ``block_size``
    -- None: :data:`DEFAULT_BLOCK_SIZE`, 128 for INT4 -- CPU ``accuracy_level`` 4 = int8
    activations).  ``provider``: cpu | cuda.  The output
    directory holds model.onnx (+ model.onnx.data), config.json, generation_config.json and
    the tokenizer files, i.e. what :class:`~qwen_voice_ros.llm.onnx_engine.OnnxCausalLM`
    loads.  Returns a summary (op counts included).
    """
    if precision not in PRECISIONS:
        raise ExportError('fused graph precision must be one of %s, got %r'
                          % (', '.join(PRECISIONS), precision))
    if provider not in ('cpu', 'cuda'):
        raise ExportError('the fused graph is for the cpu and cuda providers (TensorRT 8.5 '
                          'takes the plain graph), got %r' % provider)
    if not builder_available():
        raise ExportError('the fused graph needs onnxruntime-genai at export time '
                          '(pip install --no-deps -r requirements/extra-llm-export.txt)')
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not (hf_dir / 'config.json').is_file():
        raise ExportError('%s is not a Hugging Face model directory (no config.json)' % hf_dir)
    with open(str(hf_dir / 'config.json'), encoding='utf-8') as handle:
        config = json.load(handle)
    tied = bool(config.get('tie_word_embeddings', False))
    retie = None
    if not tied and precision == 'int4' and shared_embeddings is not False:
        retie = untied_copy_difference(hf_dir)
        # Two quantisations of one tied table differ by a few %; distinct tables by ~100 %.
        tied = retie is not None and retie <= RETIE_TOLERANCE
    options = builder_options(precision, provider, tied, block_size, accuracy_level,
                              shared_embeddings)
    with tempfile.TemporaryDirectory(prefix='qwen_voice_fused_') as tmp:
        shadow = _shadow_hf_dir(hf_dir, Path(tmp) / 'hf',
                                tie=tied and not config.get('tie_word_embeddings'))
        staging = Path(tmp) / 'out'
        cmd = [sys.executable, '-m', 'qwen_voice_ros.llm.export.fused_builder', '--run-builder',
               '-i', str(shadow), '-o', str(staging), '-p', precision, '-e', provider,
               '-c', str(Path(tmp) / 'cache'), '--extra_options'] + \
            ['%s=%s' % item for item in sorted(options.items())]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout_s, check=False)
        log = proc.stdout.decode('utf-8', 'replace')
        if proc.returncode != 0 or not (staging / 'model.onnx').is_file():
            raise ExportError('onnxruntime-genai builder failed (exit %d): %s'
                              % (proc.returncode, log.strip().splitlines()[-1:] or ['?']))
        for name in SIDE_FILES:
            if (hf_dir / name).is_file():
                shutil.copy(str(hf_dir / name), str(staging / name))
        repaired = repair_tied_embedding(staging / 'model.onnx')
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob('model.onnx*'):
            stale.unlink()
        for path in staging.iterdir():  # out_dir may hold other things (e.g. the HF source)
            if path.is_file():
                shutil.move(str(path), str(out_dir / path.name))
    ops = count_ops(out_dir / 'model.onnx')
    info = {'graph': 'fused', 'builder': 'onnxruntime-genai', 'precision': precision,
            'provider': provider, 'extra_options': options, 'ops': ops,
            'tied_embedding_repaired': repaired,
            'retied_copies_max_rel_diff': retie,
            'nodes': sum(ops.values()),
            'onnx_bytes': sum(p.stat().st_size for p in out_dir.glob('model.onnx*'))}
    with open(str(out_dir / 'fused_info.json'), 'w', encoding='utf-8') as handle:
        json.dump(info, handle, indent=2, sort_keys=True)
    return info


def repair_tied_embedding(model_path: Path) -> bool:
    """
    Point a shared ``GatherBlockQuantized`` embedding at the LM head's quantised table.

    onnxruntime-genai 0.18 wires the tied embedding lookup to the LM head's *float* weight
    name and gives it no scales or zero points; the weight is quantised afterwards into
    ``<name>_Q4`` / ``_scales`` / ``_zero_points`` (MatMulNBits layout: [N, blocks, blob]
    uint8, two 4-bit values per byte, low nibble first -- GatherBlockQuantized's layout for
    ``bits=4`` on uint8 data, quantize_axis 1).  This rewires the lookup to those three
    tensors and drops the float table.  Returns whether anything changed.
    """
    import onnx

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    changed = False
    for node in graph.node:
        if node.op_type != 'GatherBlockQuantized' or len(node.input) >= 3:
            continue
        reshape = producers.get(node.input[0])
        if reshape is None or reshape.op_type != 'Reshape':
            continue
        base = reshape.input[0]
        # '<w>_Q4' (0.18) or '<w>_Q4G<block>' (other builder versions / methods).
        packed = next((name for name in sorted(inits) if name == base + '_Q4'
                       or name.startswith(base + '_Q4G')), None)
        if packed is None or base + '_scales' not in inits:
            raise ExportError('tied embedding: no quantised table %s_Q4 to share' % base)
        reshape.input[0] = packed
        node.input.extend([base + '_scales'])
        if base + '_zero_points' in inits:
            node.input.extend([base + '_zero_points'])
        changed = True
    if not changed:
        return False
    used = {i for n in graph.node for i in n.input}
    for tensor in list(graph.initializer):
        if tensor.name not in used:
            graph.initializer.remove(tensor)
    data = model_path.parent / (model_path.name + '.data')
    if data.exists():
        data.unlink()
    onnx.save_model(model, str(model_path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=data.name, size_threshold=1024)
    return True


def count_ops(model_path: Path) -> Dict[str, int]:
    """Node counts per op type of a graph, read without its weights."""
    import onnx

    counts: Dict[str, int] = {}
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _run_builder(argv: List[str]) -> None:
    import runpy

    import transformers  # noqa: F401  (the lazy module swaps itself in sys.modules)
    module = sys.modules['transformers']
    missing = [name for name in _MISSING_CLASSES if not hasattr(module, name)]
    module = sys.modules['transformers']
    for name in missing:
        setattr(module, name, type(name, (), {}))
    sys.argv = ['onnxruntime_genai.models.builder'] + argv
    runpy.run_module('onnxruntime_genai.models.builder', run_name='__main__')


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--run-builder':
        _run_builder(sys.argv[2:])
    else:
        print('usage: python -m qwen_voice_ros.llm.export.fused_builder --run-builder '
              '<onnxruntime_genai builder arguments>', file=sys.stderr)
        sys.exit(2)
