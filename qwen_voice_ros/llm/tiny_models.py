"""
Random-weight Qwen3 / Qwen2 models for tests and benchmarks (no model hub needed).

``build_tiny_hf_model`` writes a Hugging Face directory (config.json, generation_config.json,
safetensors weights, tokenizer.json, tokenizer_config.json with the Qwen3 chat template) and
``export_onnx`` turns it into an optimum ``text-generation-with-past`` ONNX directory.  Both
cache their output under ``.cache/tiny_models/<hash>`` keyed by every argument, so repeated
test runs reuse the files.  Needs torch, transformers, tokenizers and optimum (dev only).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

# Bump when the generated files change so stale caches are not reused.
_CACHE_VERSION = 3

QWEN_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
# Qwen3 adds <think>/</think> as added (not special) tokens: kept when decoding.
QWEN_THINK_TOKENS = ['<think>', '</think>']

# Qwen2/Qwen3 pre-tokenizer split pattern (from the published tokenizer.json).
QWEN_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

_CORPUS = [
    '你好，我是机器人。今天天气很好，我们一起去公园散步吧！',
    '请问你需要什么帮助？我可以回答问题、讲故事，或者陪你聊天。',
    '广东话同普通话有啲唔同。四川话、上海话、东北话都系方言。',
    '我听不懂你说的话，请再说一遍。好的，没问题，马上就来。',
    '机器人正在充电，电量百分之八十。前方有障碍物，请注意安全。',
    'Hello, I am a robot. The weather is nice today; let us go for a walk.',
    'What can I do for you? 1, 2, 3, 42, 2025 years. Numbers: 0123456789.',
    'user assistant system think answer question dialect Mandarin Cantonese',
]


def cache_root() -> Path:
    """Directory for generated models (``$QWEN_VOICE_CACHE`` or ``<repo>/.cache``)."""
    env = os.environ.get('QWEN_VOICE_CACHE')
    if env:
        return Path(env) / 'tiny_models'
    return Path(__file__).resolve().parents[2] / '.cache' / 'tiny_models'


def _key(payload: Dict) -> str:
    text = json.dumps(dict(payload, _v=_CACHE_VERSION), sort_keys=True)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def qwen3_chat_template() -> str:
    """Return the Qwen3 chat template text (tools branch omitted), as published upstream."""
    from qwen_voice_ros.llm.chat_template import QWEN3_JINJA_TEMPLATE
    return QWEN3_JINJA_TEMPLATE


def build_tokenizer_json(path: Path, vocab_size: int = 640) -> int:
    """Train a small byte-level BPE in Qwen's layout and write it; return its size."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, \
        pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                     use_regex=False)
    n_added = len(QWEN_SPECIAL_TOKENS) + len(QWEN_THINK_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - n_added, min_frequency=1,
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in QWEN_SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_THINK_TOKENS])
    tok.save(str(path))
    return tok.get_vocab_size(with_added_tokens=True)


def build_tiny_hf_model(out_dir=None, arch: str = 'qwen3', hidden_size: int = 64,
                        num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                        head_dim: Optional[int] = None, vocab_size: Optional[int] = None,
                        seed: int = 0, intermediate_size: Optional[int] = None,
                        tie_word_embeddings: bool = False) -> Path:
    """
    Write (or reuse) a random-weight Qwen3/Qwen2 model directory and return its path.

    ``vocab_size`` None -> the tokenizer's size (small); a larger value (e.g. 151936) pads the
    embedding like the real models.  ``out_dir`` None -> the content-hashed cache directory.
    """
    if arch not in ('qwen3', 'qwen2'):
        raise ValueError("arch must be 'qwen3' or 'qwen2', got %r" % (arch,))
    args = dict(kind='hf', arch=arch, hidden_size=hidden_size, num_layers=num_layers,
                num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                vocab_size=vocab_size, seed=seed, intermediate_size=intermediate_size,
                tie=tie_word_embeddings)
    out = Path(out_dir) if out_dir is not None else cache_root() / _key(args)
    if (out / '.complete').exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.tmp-', dir=str(out.parent)))
    try:
        _write_hf_model(tmp, args)
        (tmp / '.complete').write_text('ok\n')
        if out.exists():
            shutil.rmtree(str(out))
        os.replace(str(tmp), str(out))
    finally:
        if tmp.exists():
            shutil.rmtree(str(tmp), ignore_errors=True)
    return out


def _write_hf_model(out: Path, args: Dict) -> None:
    import torch
    import transformers

    tok_size = build_tokenizer_json(out / 'tokenizer.json')
    vocab_size = args['vocab_size'] or tok_size
    if vocab_size < tok_size:
        raise ValueError('vocab_size %d < tokenizer size %d' % (vocab_size, tok_size))
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(out / 'tokenizer.json'))
    ids = {t: tok.token_to_id(t) for t in QWEN_SPECIAL_TOKENS + QWEN_THINK_TOKENS}
    hidden = args['hidden_size']
    head_dim = args['head_dim'] or hidden // args['num_heads']
    common = dict(
        vocab_size=vocab_size, hidden_size=hidden,
        intermediate_size=args['intermediate_size'] or hidden * 3,
        num_hidden_layers=args['num_layers'], num_attention_heads=args['num_heads'],
        num_key_value_heads=args['num_kv_heads'], max_position_embeddings=4096,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=args['tie'],
        bos_token_id=ids['<|endoftext|>'], eos_token_id=ids['<|im_end|>'],
        torch_dtype='float32', use_cache=True)
    if args['arch'] == 'qwen3':
        config = transformers.Qwen3Config(head_dim=head_dim, **common)
        model_cls = transformers.Qwen3ForCausalLM
    else:
        if head_dim * args['num_heads'] != hidden:
            raise ValueError('qwen2 needs head_dim == hidden_size / num_heads')
        config = transformers.Qwen2Config(**common)
        model_cls = transformers.Qwen2ForCausalLM
    torch.manual_seed(args['seed'])
    model = model_cls(config)
    with torch.no_grad():
        # Random init with std 0.02 gives near-uniform logits; widen it so greedy decoding
        # has clear winners (parity tests then do not hinge on 1e-6 ties).
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.08 if 'embed' in name or 'lm_head' in name else 0.05)
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    gen = transformers.GenerationConfig(
        bos_token_id=ids['<|endoftext|>'], eos_token_id=[ids['<|im_end|>'], ids['<|endoftext|>']],
        pad_token_id=ids['<|endoftext|>'], do_sample=False)
    gen.save_pretrained(str(out))
    added = {}
    for name in QWEN_SPECIAL_TOKENS + QWEN_THINK_TOKENS:
        added[str(ids[name])] = dict(content=name, lstrip=False, rstrip=False, normalized=False,
                                     single_word=False, special=name in QWEN_SPECIAL_TOKENS)
    tok_config = dict(
        tokenizer_class='Qwen2Tokenizer', model_max_length=4096, add_bos_token=False,
        add_prefix_space=False, bos_token=None, eos_token='<|im_end|>',
        pad_token='<|endoftext|>', unk_token=None, errors='replace',
        clean_up_tokenization_spaces=False,
        split_special_tokens=False, added_tokens_decoder=added,
        additional_special_tokens=['<|im_start|>', '<|im_end|>'],
        chat_template=qwen3_chat_template())
    (out / 'tokenizer_config.json').write_text(json.dumps(tok_config, ensure_ascii=False,
                                                          indent=2), encoding='utf-8')


def export_onnx(hf_dir, onnx_dir=None, opset: int = 17) -> Path:
    """
    Export ``hf_dir`` with optimum (text-generation-with-past, fp32) and return the dir.

    The returned directory holds ``model.onnx`` (+ external data when large), config.json,
    generation_config.json and the tokenizer files.  ``onnx_dir`` None -> cache directory.
    """
    hf_dir = Path(hf_dir)
    stamp = (hf_dir / '.complete').read_text() if (hf_dir / '.complete').exists() else ''
    args = dict(kind='onnx', hf=str(hf_dir.resolve()), opset=opset, stamp=stamp,
                mtime=int((hf_dir / 'config.json').stat().st_mtime))
    out = Path(onnx_dir) if onnx_dir is not None else cache_root() / ('onnx-' + _key(args))
    if (out / '.complete').exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='.tmp-', dir=str(out.parent)))
    try:
        from optimum.exporters.onnx import main_export
        main_export(str(hf_dir), output=str(tmp), task='text-generation-with-past',
                    opset=opset, device='cpu', do_validation=False, no_post_process=False,
                    library_name='transformers')
        for name in ('tokenizer.json', 'tokenizer_config.json', 'generation_config.json',
                     'config.json'):
            if (hf_dir / name).exists() and not (tmp / name).exists():
                shutil.copy(str(hf_dir / name), str(tmp / name))
        (tmp / '.complete').write_text('ok\n')
        if out.exists():
            shutil.rmtree(str(out))
        os.replace(str(tmp), str(out))
    finally:
        if tmp.exists():
            shutil.rmtree(str(tmp), ignore_errors=True)
    return out


def tiny_onnx_model(arch: str = 'qwen3', **kwargs) -> Path:
    """Build and export (both cached) a tiny model; return the ONNX directory."""
    return export_onnx(build_tiny_hf_model(None, arch=arch, **kwargs))


def list_graph_io(onnx_dir) -> Dict[str, List[str]]:
    """Return {'inputs': [...], 'outputs': [...]} names of ``onnx_dir/model.onnx``."""
    import onnx
    model = onnx.load(str(Path(onnx_dir) / 'model.onnx'), load_external_data=False)
    return dict(inputs=[i.name for i in model.graph.input],
                outputs=[o.name for o in model.graph.output])


def fused_onnx_model(hf_dir, precision: str = 'fp32') -> Path:
    """
    Build (cached) the fused GroupQueryAttention graph of ``hf_dir``; return its directory.

    See ``llm/export/fused_builder.py``; needs onnxruntime-genai (export-time extra).
    """
    from qwen_voice_ros.llm.export.fused_builder import build_fused, build_signature

    hf_dir = Path(hf_dir)
    key = _key({'fused': str(hf_dir.resolve()), 'precision': precision,
                'stamp': (hf_dir / 'config.json').stat().st_mtime,
                'options': build_signature(precision)})
    out = cache_root() / ('fused-%s-%s' % (precision, key))
    if (out / '.complete').exists():
        return out
    build_fused(hf_dir, out, precision=precision)
    (out / '.complete').write_text('ok\n')
    return out
