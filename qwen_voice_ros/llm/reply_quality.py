"""
Reply-quality measures for spoken replies: echo of the request, length in sentences.

*Echo*: a reply echoes its request when at least half of the reply's characters also occur
in the request, in the same order -- ``LCS(reply, request) / len(reply) >= 0.5`` over the
characters that are neither punctuation nor whitespace (the longest common subsequence, so
"中不中？咱一块儿去逛街。" answered with itself scores 1.0 and "一公里是一千米。" to
"一公里等于多少米？" scores 4/7).  An empty reply is not an echo; it is counted apart.
"""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Dict, List

from qwen_voice_ros.llm.sentences import SENTENCE_END

ECHO_THRESHOLD = 0.5


def content_chars(text: str) -> str:
    """Keep the characters of ``text`` that count: no punctuation, symbols or whitespace."""
    return ''.join(ch for ch in text
                   if not ch.isspace() and unicodedata.category(ch)[0] not in 'PSZC')


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence of two strings (O(len(a) * len(b)))."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for ch in a:
        cur = [0]
        for j, other in enumerate(b):
            cur.append(prev[j] + 1 if ch == other else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def echo_ratio(reply: str, request: str) -> float:
    """``LCS(reply, request) / len(reply)`` on :func:`content_chars`; 0.0 for an empty reply."""
    r, q = content_chars(reply), content_chars(request)
    if not r:
        return 0.0
    return lcs_length(r, q) / float(len(r))


def is_echo(reply: str, request: str, threshold: float = ECHO_THRESHOLD) -> bool:
    """Whether ``reply`` shares >= ``threshold`` of its characters with ``request``, in order."""
    return bool(content_chars(reply)) and echo_ratio(reply, request) >= threshold


def count_sentences(text: str) -> int:
    """
    Sentences in ``text``: runs of sentence-final punctuation end one.

    Text after the last such mark counts as one more sentence; ASCII '.' is not an end
    (decimals, versions).
    """
    count = 0
    in_end = False
    tail = False
    for ch in text.strip():
        if ch in SENTENCE_END or ch == '\n':
            if not in_end and tail:
                count += 1
            in_end = True
            tail = False
        else:
            in_end = False
            if not ch.isspace():
                tail = True
    return count + (1 if tail else 0)


def load_requests(path) -> List[Dict[str, str]]:
    """Rows ``{"id", "dialect", "text"}`` of a JSON-lines request file (blank lines skipped)."""
    rows = []
    with open(str(Path(path)), encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError('%s:%d: %s' % (path, number, exc)) from None
            if not isinstance(row, dict) or not str(row.get('text', '')).strip():
                raise ValueError('%s:%d: need an object with a non-empty "text"' % (path, number))
            rows.append({'id': str(row.get('id', number)), 'text': str(row['text']).strip(),
                         'dialect': str(row.get('dialect') or 'mandarin')})
    return rows


def summarise(results: List[Dict[str, object]]) -> Dict[str, object]:
    """Aggregate per-request results (keys ``reply``, ``request``) into the bench figures."""
    n = len(results)
    if n == 0:
        raise ValueError('no results')
    replies = [str(r['reply']) for r in results]
    echoes = [is_echo(str(r['reply']), str(r['request'])) for r in results]
    empty = [not content_chars(text) for text in replies]
    sentences = [count_sentences(text) for text in replies]
    spoken = [s for s, e in zip(sentences, empty) if not e]
    return {
        'requests': n,
        'echo_rate': round(sum(echoes) / float(n), 4),
        'echo_count': int(sum(echoes)),
        'empty_rate': round(sum(empty) / float(n), 4),
        'avg_reply_chars': round(sum(len(content_chars(t)) for t in replies) / float(n), 2),
        'avg_sentences': round(sum(sentences) / float(n), 3),
        'one_or_two_sentence_rate': round(
            sum(1 for s in spoken if 1 <= s <= 2) / float(n), 4),
        'mean_echo_ratio': round(sum(echo_ratio(str(r['reply']), str(r['request']))
                                     for r in results) / float(n), 4),
    }
