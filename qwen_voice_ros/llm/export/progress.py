"""Numbered progress steps with elapsed times, printed to stderr."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Dict, Iterator, Optional, TextIO


class Progress:
    """
    Print ``[n/N] title`` when a step starts and its duration when it ends.

    Stdout is left to the caller (the final summary / JSON line); progress goes to stderr.
    """

    def __init__(self, total: int, stream: Optional[TextIO] = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.index = 0
        self.seconds: Dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def info(self, message: str) -> None:
        print('      ' + message, file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, key: str, title: str) -> Iterator[None]:
        """Time one step; ``key`` names it in :attr:`seconds` (the JSON summary)."""
        self.index += 1
        head = '[{}/{}]'.format(self.index, self.total)
        print('{} {} ... (t={:.1f}s)'.format(head, title, self.elapsed()),
              file=self.stream, flush=True)
        step_start = time.monotonic()
        outcome = 'failed'
        try:
            yield
            outcome = 'done'
        finally:
            took = time.monotonic() - step_start
            self.seconds[key] = round(took, 2)
            print('{} {} {} in {:.1f}s (t={:.1f}s)'.format(
                head, title, outcome, took, self.elapsed()), file=self.stream, flush=True)
