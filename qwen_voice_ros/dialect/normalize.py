"""
Text normalisation shared by every stage: script, width, punctuation, length.

Traditional characters are folded to simplified with OpenCC ``t2s`` (imported lazily; without
OpenCC the text is classified unconverted and a warning is logged once).  NFKC folds full-width
Latin letters, digits and punctuation to half width.  Punctuation, symbols and emoji become a
single space (a phrase boundary), so ASR output without punctuation and typed text with it give
the same character n-grams apart from those boundaries.  Runs of Latin letters/digits or other
non-Han scripts collapse to one ``@`` so a code-switched English word counts as one token.
"""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from typing import Optional

_LOG = logging.getLogger(__name__)

# Cap on the characters classified; longer input is truncated (keeps latency bounded).
MAX_CHARS = 600

# OpenCC t2s output that differs from mainland written-Cantonese usage.
_T2S_FIXUPS = {'\U00020bb6': '嗰', '㖞': '喎', '\U00029801': '餸', '\U0002983c': '餸'}

_HAN_RE = re.compile('[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]')
_OTHER_WORD_RE = re.compile('[^\\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff'
                            '\U00020000-\U0003134f]+')
_SPACE_RE = re.compile(r'\s+')

_converter = None
_converter_lock = threading.Lock()
_converter_failed = False


def _t2s(text: str) -> str:
    global _converter, _converter_failed
    if _converter is None and not _converter_failed:
        with _converter_lock:
            if _converter is None and not _converter_failed:
                try:
                    import opencc
                    try:
                        _converter = opencc.OpenCC('t2s')
                    except Exception:  # noqa: BLE001 - other OpenCC builds want the .json name
                        _converter = opencc.OpenCC('t2s.json')
                except Exception as exc:  # noqa: BLE001
                    _converter_failed = True
                    _LOG.warning('OpenCC unavailable (%s): traditional script is not folded', exc)
    if _converter is None:
        return text
    try:
        out = _converter.convert(text)
    except Exception:  # noqa: BLE001 - classify the unconverted text rather than fail
        return text
    for src, dst in _T2S_FIXUPS.items():
        if src in out:
            out = out.replace(src, dst)
    return out


def han_count(text: str) -> int:
    """Count the Han (CJK ideograph) characters in ``text``."""
    return len(_HAN_RE.findall(text))


def _is_boundary(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in 'PSZC'


def normalize_text(text: Optional[str], max_chars: int = MAX_CHARS) -> str:
    """
    Return the canonical form the classifier sees (simplified, half width, no punctuation).

    Never raises; ``None`` or non-str input gives ``''``.
    """
    if not isinstance(text, str) or not text:
        return ''
    text = text[:max_chars * 2]
    # Lone surrogates (broken UTF-16 input) cannot be encoded for OpenCC; replace them.
    text = text.encode('utf-8', 'replace').decode('utf-8', 'replace')
    text = unicodedata.normalize('NFKC', text)
    text = _t2s(text)
    chars = []
    for ch in text:
        if _HAN_RE.match(ch):
            chars.append(ch)
        elif _is_boundary(ch):
            chars.append(' ')
        else:
            chars.append(ch.lower())
    text = ''.join(chars)
    text = _OTHER_WORD_RE.sub('@', text)
    text = _SPACE_RE.sub(' ', text).strip()
    return text[:max_chars]
