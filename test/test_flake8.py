"""ament_flake8 over the package, as the ROS build farm runs it (also run by colcon test)."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    from ament_flake8.main import main_with_errors
    rc, errors = main_with_errors(argv=[os.path.join(REPO, d) for d in
                                        ('qwen_voice_ros', 'launch', 'test', 'bench', 'scripts')
                                        if os.path.isdir(os.path.join(REPO, d))])
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
