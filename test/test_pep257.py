"""ament_pep257 over the package (also run by colcon test)."""
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    from ament_pep257.main import main
    rc = main(argv=[os.path.join(REPO, 'qwen_voice_ros'), os.path.join(REPO, 'launch')])
    assert rc == 0, 'Found code style errors / warnings'
