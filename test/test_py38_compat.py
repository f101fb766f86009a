"""The package must run on Python 3.8 (JetPack 5): syntax, stdlib and annotations."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = [os.path.join(REPO, 'qwen_voice_ros'), os.path.join(REPO, 'launch')]


@pytest.mark.linter
def test_vermin_says_python_3_8():
    vermin = os.path.join(os.path.dirname(sys.executable), 'vermin')
    out = subprocess.run([vermin, '-t=3.8-', '--eval-annotations',
                          '--no-tips', '--violations'] + TARGETS,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.returncode == 0, out.stdout


@pytest.mark.linter
def test_ruff_py38_target():
    out = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '--target-version',
                          'py38', '--select', 'E9,F63,F7,F82,FA102'] + TARGETS,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.returncode == 0, out.stdout
