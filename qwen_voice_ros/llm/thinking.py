"""Separate Qwen3's ``<think>...</think>`` block from the text that is spoken, while streaming."""
from __future__ import annotations

from typing import Tuple

OPEN, CLOSE = '<think>', '</think>'


class ThinkFilter:
    """
    Feed raw deltas; get back (spoken_delta, thinking_delta).

    Tags may arrive split across deltas, so a possible tag prefix is held back until it is
    decided.  Text before any tag is spoken; a reply that opens with ``<think>`` is thinking
    until ``</think>``.
    """

    def __init__(self):
        self._buf = ''
        self._in_think = False
        self.thinking = ''
        self.spoken = ''

    def feed(self, delta: str) -> Tuple[str, str]:
        self._buf += delta
        spoken, thought = [], []
        while self._buf:
            tag = CLOSE if self._in_think else OPEN
            idx = self._buf.find(tag)
            if idx >= 0:
                (thought if self._in_think else spoken).append(self._buf[:idx])
                self._buf = self._buf[idx + len(tag):]
                self._in_think = not self._in_think
                continue
            keep = _partial_suffix(self._buf, tag)
            (thought if self._in_think else spoken).append(self._buf[:len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep:]
            break
        s, t = ''.join(spoken), ''.join(thought)
        if not self.spoken:
            s = s.lstrip()  # the empty think block leaves "\n\n" before the answer
        self.spoken += s
        self.thinking += t
        return s, t

    def flush(self) -> Tuple[str, str]:
        rest, self._buf = self._buf, ''
        if self._in_think:
            self.thinking += rest
            return '', rest
        self.spoken += rest
        return rest, ''


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
