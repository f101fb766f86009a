#!/usr/bin/env python3
"""Thin wrapper: ``python bench/bench_llm.py [--json]`` == ``qwen-voice-bench-llm``."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qwen_voice_ros.llm.bench_cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
