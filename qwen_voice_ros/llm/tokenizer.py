"""
Qwen tokenizer from a model directory's ``tokenizer.json`` (``tokenizers`` library only).

Also :class:`IncrementalDecoder`, which turns a growing list of token ids into text deltas
without ever emitting half of a multi-byte UTF-8 character (Qwen's byte-level BPE often
splits one Chinese character over two or three tokens).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

from qwen_voice_ros.llm.base import LLMNotConfigured

ENDOFTEXT = '<|endoftext|>'
IM_START = '<|im_start|>'
IM_END = '<|im_end|>'
THINK_OPEN = '<think>'
THINK_CLOSE = '</think>'


class QwenTokenizer:
    """Encode/decode text; knows the ids of Qwen's control tokens."""

    def __init__(self, model_dir) -> None:
        path = Path(model_dir) / 'tokenizer.json'
        if not path.is_file():
            raise LLMNotConfigured('no tokenizer.json in model directory %s' % (model_dir,))
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LLMNotConfigured('the onnx LLM backend needs the "tokenizers" package') \
                from exc
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise LLMNotConfigured('corrupt tokenizer.json in %s: %s' % (model_dir, exc)) \
                from exc
        self.endoftext_id = self._tok.token_to_id(ENDOFTEXT)
        self.im_start_id = self._tok.token_to_id(IM_START)
        self.im_end_id = self._tok.token_to_id(IM_END)
        self.think_open_id = self._tok.token_to_id(THINK_OPEN)
        self.think_close_id = self._tok.token_to_id(THINK_CLOSE)
        if self.im_start_id is None or self.im_end_id is None:
            raise LLMNotConfigured('tokenizer.json in %s lacks <|im_start|>/<|im_end|>: '
                                   'not a Qwen chat tokenizer' % (model_dir,))
        self.special_ids = self._special_ids(path)

    @staticmethod
    def _special_ids(path: Path) -> List[int]:
        with open(str(path), encoding='utf-8') as handle:
            data = json.load(handle)
        return [int(t['id']) for t in data.get('added_tokens', []) if t.get('special')]

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def stop_ids(self) -> List[int]:
        """Ids that end an assistant turn: <|im_end|> and <|endoftext|>."""
        return [i for i in (self.im_end_id, self.endoftext_id) if i is not None]

    def encode(self, text: str) -> List[int]:
        """Token ids for ``text``; control tokens written in the text become single ids."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> Optional[int]:
        return self._tok.token_to_id(token)


class IncrementalDecoder:
    """Feed ids one at a time; get back only text that is complete UTF-8."""

    def __init__(self, tokenizer: QwenTokenizer, skip_special_tokens: bool = True) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids: List[int] = []
        self._prefix_offset = 0   # ids before this are fully emitted and stable
        self._read_offset = 0     # text of ids[prefix_offset:read_offset] already emitted

    def push(self, token_id: int) -> str:
        """Add one id; return the new text (possibly empty while a character is partial)."""
        self._ids.append(int(token_id))
        prefix_text = self._tok.decode(self._ids[self._prefix_offset:self._read_offset],
                                       self._skip)
        full_text = self._tok.decode(self._ids[self._prefix_offset:], self._skip)
        if full_text.endswith('\ufffd') or len(full_text) <= len(prefix_text):
            return ''
        delta = full_text[len(prefix_text):]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return delta

    def flush(self) -> str:
        """Emit whatever is left at the end (an incomplete character becomes U+FFFD)."""
        prefix_text = self._tok.decode(self._ids[self._prefix_offset:self._read_offset],
                                       self._skip)
        full_text = self._tok.decode(self._ids[self._prefix_offset:], self._skip)
        self._prefix_offset = self._read_offset = len(self._ids)
        return full_text[len(prefix_text):]

    @property
    def text(self) -> str:
        return self._tok.decode(self._ids, self._skip)
