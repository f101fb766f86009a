"""
Turn a stream of text deltas into sentence-sized chunks for TTS, CJK-aware.

A chunk ends at 。！？；… (and their ASCII forms followed by space/end), or a newline.  The
first chunk of a reply may also break at ， 、 , once it is ``first_min_chars`` long, so the
robot starts speaking sooner; later chunks break at commas only when they grow past
``max_chars``.  With ``first_max_chars`` the first chunk is cut after that many characters
even without punctuation (TTS time grows with the text: a short first chunk is heard
sooner), preferably next to a particle (:data:`CUT_AFTER`, :data:`CUT_BEFORE`), never inside a
Latin word.  Closing quotes/brackets stay with their sentence.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List

SENTENCE_END = set('。！？；…!?;')
CLAUSE_BREAK = set('，、,：:')
CLOSERS = set('”’」』）)】》"\'')
# Where a first chunk without punctuation is best cut: after a sentence particle, or before
# a word that starts a phrase (adverbs, prepositions, pronouns); Latin text at a space.
CUT_AFTER = set('的了吗呢吧啊呀哦嘛着过 ')
CUT_BEFORE = set('在和与跟就也都还很给把被让我你他她它这那 ')
LATIN_WIDTH = 3  # a CJK character is spoken about as long as three Latin letters


class SentenceSplitter:
    def __init__(self, first_min_chars: int = 6, max_chars: int = 60,
                 first_max_chars: int = 0):
        self.first_min_chars = first_min_chars
        self.max_chars = max_chars
        self.first_max_chars = int(first_max_chars)  # 0: no cap
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
        if self.first_max_chars > 0 and self._emitted == 0 and not out:
            cut = self._first_cut()
            if cut:
                out.append(self._buf[:cut].strip())
                self._buf = self._buf[cut:].lstrip()
        self._emitted += len(out)
        return out

    def _first_cut(self) -> int:
        """Where to cut a first chunk that has no break yet (a buffer index); 0: not yet."""
        buf = self._buf
        cap = self.first_max_chars
        if len(buf) <= cap or _has_end(buf[:cap + 1]):
            return 0  # short yet, or a sentence end is waiting for its closers
        if not (_is_cjk(buf[cap - 1]) or _is_cjk(buf[cap])):
            return self._latin_cut(cap * LATIN_WIDTH)
        low = max(1, min(self.first_min_chars, cap))
        for i in range(cap, low - 1, -1):  # the latest good place within the cap
            if (buf[i - 1] in CUT_AFTER or buf[i] in CUT_BEFORE) and buf[:i].strip():
                return i
        return cap

    def _latin_cut(self, cap: int) -> int:
        """Cut Latin text at the last space within ``cap``, never inside a word."""
        buf = self._buf
        if len(buf) <= cap or _has_end(buf[:cap + 1]):
            return 0
        space = buf.rfind(' ', 0, cap + 1)
        if space > 0 and buf[:space].strip():
            return space
        for i in range(cap, len(buf)):
            if buf[i].isspace() or _is_cjk(buf[i]):
                return i if buf[:i].strip() else 0
        return 0

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


def _has_end(text: str) -> bool:
    return any(ch in SENTENCE_END or ch == '\n' for ch in text)


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
