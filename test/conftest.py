"""Test-suite set-up: the test folder's helpers are importable (llm_server, ros_harness)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
