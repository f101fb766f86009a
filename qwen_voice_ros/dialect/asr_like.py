"""
Make text look like Mandarin ASR output: no punctuation, dialect-only characters in Mandarin form.

A Mandarin ASR model only writes characters from its training transcripts, so the rare dialect
characters (侬, 嫑, 咥, 佢, 咗 ...) come out as the Mandarin word with the same meaning or a
near-homophone.  Common characters that merely have a dialect *use* (中, 整, 耍, 咋, 俺, 哩)
stay.  Used to report accuracy on ASR-like text and to augment training data.
"""
from __future__ import annotations

import re
import unicodedata

# Multi-character words first (longest match wins), then single characters.
_WORDS = [
    ('嫑', '不要'), ('覅', '不要'), ('呒没', '没有'), ('呒', '没'), ('侬', '你'), ('搿', '这'),
    ('咥', '吃'), ('嫽', '好'), ('谝', '聊'), ('隑', '靠'), ('戆', '傻'), ('囡', '女'),
    ('娭毑', '奶奶'), ('佢哋', '他们'), ('我哋', '我们'), ('你哋', '你们'), ('哋', '们'),
    ('佢', '他'), ('咗', '了'), ('嘅', '的'), ('喺', '在'), ('啲', '点'), ('嘢', '东西'),
    ('睇', '看'), ('嚟', '来'), ('揾', '找'), ('搵', '找'), ('畀', '给'), ('瞓', '睡'),
    ('攰', '累'), ('谂', '想'), ('啱', '对'), ('嗰', '那'), ('噉', '这样'), ('㗎', '啊'),
    ('喎', '哦'), ('啩', '吧'), ('啫', '呢'), ('嘥', '浪费'), ('冚', '全'), ('攞', '拿'),
    ('闩', '关'), ('𠮶', '那'), ('係', '是'), ('冇', '没'), ('嬲', '生气'), ('唧', '几'),
    ('嘚', '得'), ('嗲嗲', '爷爷'),
]
_LOOKALIKE_EXCLUDE = re.compile('(?:金|名|份|超|限|数|余|定|差|总|面|巨|配|前|税|票|款)额|额(?:头|度|外|定|满|角)')
_PUNCT_RE = re.compile(r'\s+')
_WORD_RE = re.compile('|'.join(re.escape(w) for w, _ in sorted(_WORDS, key=lambda p: -len(p[0]))))
_MAP = dict(_WORDS)


def _replace_e(text: str) -> str:
    """额 "I" (Shaanxi) -> 我, keeping the standard words 金额, 额头 ..."""
    out = []
    i = 0
    for m in re.finditer('额', text):
        start = m.start()
        window = text[max(0, start - 1):start + 2]
        if _LOOKALIKE_EXCLUDE.search(window):
            continue
        out.append(text[i:start])
        out.append('我')
        i = start + 1
    out.append(text[i:])
    return ''.join(out)


def strip_punctuation(text: str) -> str:
    """Remove punctuation, symbols and spaces (ASR output has none)."""
    kept = [ch for ch in text if unicodedata.category(ch)[0] not in 'PSZ']
    return _PUNCT_RE.sub('', ''.join(kept))


def to_asr_like(text: str) -> str:
    """Punctuation removed and dialect-only characters written in Mandarin form."""
    text = strip_punctuation(text)
    text = _WORD_RE.sub(lambda m: _MAP[m.group(0)], text)
    return _replace_e(text)
