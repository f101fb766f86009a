"""
Turn a stream of text deltas into sentence-sized chunks for TTS, CJK-aware.

A chunk ends at 。！？；… (and their ASCII forms followed by space/end), or a newline.  The
first chunk of a reply may also break at ， 、 , once it is ``first_min_chars`` long, so the
robot starts speaking sooner; later chunks break at commas only when they grow past
``max_chars``.  Closing quotes/brackets stay with their sentence.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List

SENTENCE_END = set('。！？；…!?;')
CLAUSE_BREAK = set('，、,：:')
CLOSERS = set('”’」』）)】》"\'')


class SentenceSplitter:
    def __init__(self, first_min_chars: int = 6, max_chars: int = 60):
        self.first_min_chars = first_min_chars
        self.max_chars = max_chars
        self._buf = ''
        self._emitted = 0

    def feed(self, delta: str) -> List[str]:
        """Add text; return the chunks completed by it."""
        out: List[str] = []
        self._buf += delta
        start = 0
        i = 0
        while i < len(self._buf):
            ch = self._buf[i]
            end = None
            if ch == '\n':
                end = i + 1
            elif ch in SENTENCE_END:
                end = i + 1
                # "..." / "？！" / closing quotes belong to this sentence.
                while end < len(self._buf) and (self._buf[end] in SENTENCE_END
                                                or self._buf[end] in CLOSERS):
                    end += 1
                if end == len(self._buf):
                    break  # more punctuation or a closer may follow in the next delta
                if ch in '!?;' and not self._buf[end].isspace() and not _is_cjk(self._buf[end]):
                    end = None  # ASCII punctuation inside Latin text, e.g. "v1.0?x"
            elif ch in CLAUSE_BREAK:
                length = i + 1 - start
                limit = self.first_min_chars if self._emitted == 0 and not out else self.max_chars
                if length >= limit:
                    end = i + 1
            if end is not None:
                chunk = self._buf[start:end].strip()
                if chunk:
                    out.append(chunk)
                start = end
                i = end
                continue
            i += 1
        self._buf = self._buf[start:]
        self._emitted += len(out)
        return out

    def flush(self) -> List[str]:
        """End of reply: whatever is left is the last chunk."""
        chunk = self._buf.strip()
        self._buf = ''
        if chunk:
            self._emitted += 1
            return [chunk]
        return []


def split_stream(deltas: Iterable[str], **kwargs) -> Iterator[str]:
    splitter = SentenceSplitter(**kwargs)
    for delta in deltas:
        for chunk in splitter.feed(delta):
            yield chunk
    for chunk in splitter.flush():
        yield chunk


def _is_cjk(ch: str) -> bool:
    return '\u3000' <= ch <= '\u9fff' or '\uf900' <= ch <= '\uffef'


class SentenceLimit:
    """
    Cut a stream of text deltas after ``max_sentences`` sentences (0: no limit).

    A sentence ends at a run of :data:`SENTENCE_END` marks or a newline (closing quotes and
    brackets stay with it).  :meth:`feed` returns the part of a delta to keep; once the text
    goes on past the last allowed sentence it returns the part before that and
    :attr:`done` becomes true, so the caller stops generating.
    """

    def __init__(self, max_sentences: int) -> None:
        self.max_sentences = int(max_sentences)
        self.ended = 0          # completed sentences so far
        self._in_end = False    # inside a run of end marks / closers
        self._has_text = False  # current sentence has non-space text
        self.done = False

    def feed(self, delta: str) -> str:
        """Return the kept part of ``delta``; sets :attr:`done` when the limit cuts it."""
        if self.done:
            return ''
        if self.max_sentences <= 0:
            return delta
        for index, ch in enumerate(delta):
            if ch in SENTENCE_END or ch == '\n':
                if self._has_text and not self._in_end:
                    self.ended += 1
                self._in_end = self._in_end or self._has_text
                self._has_text = False
            elif self._in_end and ch in CLOSERS:
                continue
            elif ch.isspace():
                continue
            else:
                if self._in_end and self.ended >= self.max_sentences:
                    self.done = True
                    return delta[:index]
                self._in_end = False
                self._has_text = True
        return delta
