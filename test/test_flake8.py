"""ament_flake8 over the package, as the ROS build farm runs it (also run by colcon test)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# flake8 checks files in a multiprocessing pool of forked workers.  Forked from this pytest
# process, after earlier tests loaded torch / onnxruntime and their threads, a worker can
# segfault in garbage collection and the pool then waits forever (seen once in CI), so
# flake8 runs in a fresh interpreter.
RUN = ('import sys\n'
       'from ament_flake8.main import main_with_errors\n'
       'rc, errors = main_with_errors(argv=sys.argv[1:])\n'
       'print("\\n".join(errors))\n'
       'sys.exit(1 if rc else 0)\n')


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    dirs = ('qwen_voice_ros', 'launch', 'test', 'bench', 'scripts')
    paths = [os.path.join(REPO, d) for d in dirs if os.path.isdir(os.path.join(REPO, d))]
    done = subprocess.run([sys.executable, '-c', RUN] + paths, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    assert done.returncode == 0, 'flake8 found code style errors / warnings:\n' + done.stdout
