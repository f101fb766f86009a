"""
Check that docs/parameters.md is current and every declared parameter is described.

``scripts/gen_param_docs.py --json`` constructs each node of the stack in a child process (not
spun, DDS discovery off) and prints what it declared; the Markdown is rendered from that here
and compared with the committed file.  One child process, about 3 s.
"""
import difflib
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from ros_harness import REPO, ros_env

SCRIPT = os.path.join(REPO, 'scripts', 'gen_param_docs.py')
DOC = os.path.join(REPO, 'docs', 'parameters.md')


def _load_script():
    spec = importlib.util.spec_from_file_location('gen_param_docs', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def gen():
    return _load_script()


@pytest.fixture(scope='module')
def declared():
    proc = subprocess.run([sys.executable, SCRIPT, '--json'], env=ros_env(), cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                          universal_newlines=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_stack_node_is_documented(declared):
    from qwen_voice_ros.stack.description import NODES
    assert [n['name'] for n in declared] == [spec.name for spec in NODES]
    for node in declared:
        assert len(node['params']) > 5, node['name']


def test_every_backend_param_is_declared(declared):
    """Each registry backend's PARAMS appear as ``<backend>.<param>`` with the same default."""
    from qwen_voice_ros.asr import ASR_BACKENDS
    from qwen_voice_ros.audio.vad import VAD_BACKENDS
    from qwen_voice_ros.llm import REGISTRY as LLM
    from qwen_voice_ros.tts import REGISTRY as TTS
    by_node = {n['name']: {r['name']: r for r in n['params']} for n in declared}
    for node, registry in (('hearing', VAD_BACKENDS), ('hearing', ASR_BACKENDS),
                           ('llm', LLM), ('tts', TTS)):
        for backend in registry.names:
            for param in registry.params(backend):
                name = '%s.%s' % (backend, param.name)
                assert name in by_node[node], '%s: %s not declared' % (node, name)
                row = by_node[node][name]
                assert row['default'] == param.default, name
                assert row.get('backend_of', [None, None])[1] == backend, name


def test_doc_is_current(gen, declared):
    text = gen.render(declared)
    with open(DOC, encoding='utf-8') as f:
        old = f.read()
    if old != text:
        diff = ''.join(list(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                 'docs/parameters.md', 'generated'))[:80])
        pytest.fail('docs/parameters.md is out of date; run python scripts/gen_param_docs.py'
                    '\n' + diff)


def test_every_parameter_has_a_description(gen, declared):
    missing = gen.missing_descriptions(declared)
    assert not missing, ('%d parameters declared without a description (use core.params.Param '
                         'and VoiceNode.declare_params): %s' % (len(missing), ', '.join(missing)))


def test_render_escapes_and_ranges(gen):
    rows = [{'name': 'a', 'type': 'string', 'default': 'x|y', 'min': None, 'max': None,
             'choices': ['p', 'q'], 'description': 'one | two', 'builtin': False},
            {'name': 'b', 'type': 'float', 'default': 0.5, 'min': 0.0, 'max': None,
             'choices': None, 'description': 'half', 'builtin': False}]
    table = gen._table(rows)
    assert table[2] == '| `a` | string | `"x\\|y"` | `p` \\| `q` | one \\| two |'
    assert table[3] == '| `b` | float | `0.5` | >= 0.0 | half |'
    assert gen.missing_descriptions([{'name': 'n', 'params': [
        dict(rows[0], description=' '), dict(rows[1], name='use_sim_time', builtin=True,
                                             description='')]}]) == ['n: a']
