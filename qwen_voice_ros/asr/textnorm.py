"""
Text normalisation for CER: one script, no punctuation or spaces, numbers in one form.

Both reference and hypothesis go through :func:`normalize_for_cer`: OpenCC t2s (Whisper mixes
traditional and simplified), full-width -> half-width, lower case, Arabic numbers read out in
Chinese characters (``15`` -> 十五, ``3.5`` -> 三点五, ``50%`` -> 百分之五十, long digit strings
such as years and phone numbers digit by digit), 两 -> 二, and every character that is not a
letter or digit dropped (punctuation, spaces, symbols).
"""
from __future__ import annotations

import re
import unicodedata
from typing import List, Sequence

DIGITS = '零一二三四五六七八九'
_UNITS = ((100000000, '亿'), (10000, '万'), (1000, '千'), (100, '百'), (10, '十'))
_NUMBER = re.compile(r'(\d+(?:\.\d+)?)(%?)')
_t2s = None
_t2s_loaded = False


def int_to_chinese(n: int) -> str:
    """Read a non-negative integer the usual way: 15 -> 十五, 105 -> 一百零五, 0 -> 零."""
    if n == 0:
        return '零'
    out = ''
    rest = n
    zero_pending = False
    for value, unit in _UNITS:
        if rest >= value:
            head, rest = divmod(rest, value)
            if zero_pending and out:
                out += '零'
            out += int_to_chinese(head) + unit if head >= 10 else DIGITS[head] + unit
            zero_pending = 0 < rest < value // 10
        elif out and rest:
            zero_pending = True
    if rest:
        if zero_pending and out:
            out += '零'
        out += DIGITS[rest]
    if out.startswith('一十'):
        out = out[1:]
    return out


def _read_number(match) -> str:
    number, percent = match.group(1), match.group(2)
    whole, _, frac = number.partition('.')
    if len(whole) > 1 and (whole.startswith('0') or len(whole) >= 5 and not frac):
        text = ''.join(DIGITS[int(d)] for d in whole)  # codes, years, phone numbers
    elif len(whole) == 4 and not frac and 1000 <= int(whole) <= 2100:
        text = ''.join(DIGITS[int(d)] for d in whole)  # a year: 二零二六
    else:
        text = int_to_chinese(int(whole))
    if frac:
        text += '点' + ''.join(DIGITS[int(d)] for d in frac)
    return ('百分之' + text) if percent else text


def _to_simplified(text: str) -> str:
    global _t2s, _t2s_loaded
    if not _t2s_loaded:
        from qwen_voice_ros.asr.base import make_t2s
        _t2s = make_t2s()
        _t2s_loaded = True
    return _t2s.convert(text) if _t2s is not None else text


def normalize_for_cer(text: str) -> str:
    text = unicodedata.normalize('NFKC', text or '').lower()
    text = _to_simplified(text)
    text = _NUMBER.sub(_read_number, text)
    text = text.replace('两', '二')
    return ''.join(ch for ch in text if unicodedata.category(ch)[0] in 'LN')


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    if not ref:
        return len(hyp)
    prev: List[int] = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]
