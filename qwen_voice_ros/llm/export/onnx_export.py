"""
Hugging Face causal LM -> ONNX decoder graph with KV cache, via optimum's ``main_export``.

The output directory is self-contained for the run-time engine: ``model.onnx`` (plus
``model.onnx_data`` when the weights exceed protobuf's 2 GB limit) next to ``config.json``,
``generation_config.json`` and the tokenizer files.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

from . import ExportError, ModelNotFound

DEFAULT_OPSET = 17  # TensorRT 8.5 (JetPack 5) parses ONNX up to opset 17
TASK = 'text-generation-with-past'
MODEL_FILE = 'model.onnx'
EXTERNAL_DATA_FILE = 'model.onnx_data'  # optimum's name for the external weights file

# Files the engine reads next to model.onnx; copied from the source dir when optimum did not.
SIDECAR_FILES = (
    'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json',
    'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt',
    'chat_template.jinja', 'LICENSE',
)

_HUB_ID = re.compile(r'^[A-Za-z0-9][\w.-]*/[\w.-]+$')


def looks_like_hub_id(model: str) -> bool:
    """``owner/name`` that is not written as a filesystem path (``./x``, ``/x``, ``~/x``)."""
    return bool(_HUB_ID.match(model)) and not model.startswith(('.', '/', '~'))


def resolve_model(model: str) -> Tuple[str, Optional[Path]]:
    """
    Return ``(source for from_pretrained, local dir or None)`` or raise :class:`ModelNotFound`.

    A local directory wins; otherwise an ``owner/name`` id is checked against the hub by
    fetching its ``config.json`` (which fails fast and clearly when the hub is unreachable).
    """
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / 'config.json').is_file():
            raise ModelNotFound(
                '{} is a directory but has no config.json; pass a Hugging Face model '
                'directory (config.json + *.safetensors + tokenizer files).'.format(local))
        return str(local.resolve()), local.resolve()
    if local.exists():
        raise ModelNotFound('{} is a file, not a Hugging Face model directory.'.format(local))
    if not looks_like_hub_id(model):
        raise ModelNotFound('model directory {} does not exist.'.format(local))
    try:
        from huggingface_hub import hf_hub_download, HfApi
    except ImportError as exc:
        raise ModelNotFound('{} is not a local directory and huggingface_hub is not installed '
                            'to fetch it: {}'.format(model, exc)) from None
    try:
        hf_hub_download(model, 'config.json', local_files_only=True)  # already cached?
        return model, None
    except Exception:  # noqa: B902 - not cached: ask the hub below
        pass
    try:
        # One metadata request fails in well under a second when the hub is unreachable;
        # a download would retry with back-off for ~25 s, logging every attempt.
        HfApi().model_info(model, timeout=10)
    except Exception as exc:  # offline, unknown repo, gated repo, ... all end the same way
        raise ModelNotFound(
            "'{model}' is not a local directory and could not be fetched from the Hugging Face "
            'Hub ({reason}). On a machine with internet run `huggingface-cli download {model} '
            '--local-dir DIR` (or let this tool fetch it there) and pass --model DIR.'.format(
                model=model, reason=_hub_failure(exc))) from None
    return model, None


def _hub_failure(exc: Exception) -> str:
    """One short line saying why the hub lookup failed."""
    kind = type(exc).__name__
    text = str(exc)
    if kind in ('OfflineModeIsEnabled',) or 'HF_HUB_OFFLINE' in text:
        return 'HF_HUB_OFFLINE is set'
    if kind in ('ConnectionError', 'ConnectTimeout', 'ReadTimeout', 'Timeout') or \
            'NameResolution' in text or 'Max retries' in text:
        return 'the hub is unreachable from this machine'
    if kind in ('RepositoryNotFoundError', 'GatedRepoError'):
        return 'no such public repository; private or gated ones need `huggingface-cli login`'
    first = text.strip().splitlines()[0] if text.strip() else ''
    return '{}: {}'.format(kind, first[:160]) if first else kind


def copy_sidecar_files(src_dir: Path, out_dir: Path, overwrite: bool = False) -> List[str]:
    """Copy config/generation/tokenizer files the engine needs; return the names copied."""
    copied = []
    for name in SIDECAR_FILES:
        src = src_dir / name
        dst = out_dir / name
        if src.is_file() and (overwrite or not dst.exists()):
            shutil.copyfile(str(src), str(dst))
            copied.append(name)
    return copied


def onnx_files(out_dir: Path) -> List[Path]:
    """``model.onnx`` and its external data file, when present."""
    return [p for p in (out_dir / MODEL_FILE, out_dir / EXTERNAL_DATA_FILE) if p.is_file()]


def check_decoder_io(model_path: Path) -> Tuple[List[str], List[str]]:
    """Check the graph has the KV-cache decoder signature the engine expects."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    missing = [n for n in ('input_ids', 'attention_mask', 'position_ids') if n not in inputs]
    if 'logits' not in outputs:
        missing.append('logits')
    if not any(n.startswith('past_key_values.') for n in inputs):
        missing.append('past_key_values.*')
    if not any(n.startswith('present.') for n in outputs):
        missing.append('present.*')
    if missing:
        raise ExportError('exported graph {} lacks {} (inputs {}, outputs {})'.format(
            model_path, ', '.join(missing), inputs, outputs))
    return inputs, outputs


def export_onnx(source: str, out_dir: Path, opset: int = DEFAULT_OPSET,
                local_dir: Optional[Path] = None, trust_remote_code: bool = False) -> Path:
    """Export ``source`` (local dir or hub id) to ``out_dir/model.onnx`` and return that path."""
    try:
        from optimum.exporters.onnx import main_export
    except ImportError as exc:
        raise ExportError('the ONNX export needs optimum and optimum-onnx '
                          '(pip install -r requirements/dev.txt): {}'.format(exc)) from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in onnx_files(out_dir):
        stale.unlink()
    main_export(
        source, str(out_dir), task=TASK, opset=opset, device='cpu',
        do_validation=False,  # validate.py compares logits itself, on real prompts
        local_files_only=local_dir is not None, trust_remote_code=trust_remote_code,
    )
    model_path = out_dir / MODEL_FILE
    if not model_path.is_file():
        raise ExportError('optimum finished without writing {}'.format(model_path))
    if local_dir is not None:
        copy_sidecar_files(local_dir, out_dir)
    check_decoder_io(model_path)
    return model_path


def onnx_bytes(out_dir: Path) -> int:
    return sum(p.stat().st_size for p in onnx_files(out_dir))


def move_onnx(src_dir: Path, dst_dir: Path) -> bool:
    """Move ``model.onnx`` (+ external data) from ``src_dir``; return whether data was moved."""
    for stale in onnx_files(dst_dir):
        stale.unlink()
    moved_data = False
    for path in onnx_files(src_dir):
        os.replace(str(path), str(Path(dst_dir) / path.name))
        moved_data = moved_data or path.name == EXTERNAL_DATA_FILE
    return moved_data


def dir_size(path: Path) -> int:
    """Bytes under ``path``, not counting the ``.work`` staging directory."""
    root = Path(path)
    return sum(p.stat().st_size for p in root.rglob('*')
               if p.is_file() and '.work' not in p.relative_to(root).parts)


def remove_tree(path: Path) -> None:
    if Path(path).is_dir():
        shutil.rmtree(str(path), ignore_errors=True)
    elif os.path.lexists(str(path)):
        os.remove(str(path))
