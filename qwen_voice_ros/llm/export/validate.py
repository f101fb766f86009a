"""
Compare an exported decoder graph with transformers on a few prompts.

For each prompt: transformers' full-sequence logits vs. ONNX Runtime's (plain CPU session,
empty past), and one KV-cache step (prefix first, then the last token with the returned
``present.*`` as past) vs. transformers' last-position logits.  A graph trimmed to the last
position (``decode_graph.keep_last_logits``) is fed token by token through its KV cache to
get every position.  Reported: max abs logit difference, argmax agreement over all
positions, and the KV-step difference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from . import ExportError

DEFAULT_PROMPTS = (
    '你好，请用一句话介绍你自己。',
    '今天天气怎么样？我们去公园散步好不好？',
    'Robot, please move forward two meters and then turn left.',
)
# Used when the model directory has no tokenizer (tiny random test models).
RANDOM_PROMPT_LENGTHS = (7, 13, 4)


def prompt_token_ids(source: str, vocab_size: int, prompts: Sequence[str] = DEFAULT_PROMPTS,
                     seed: int = 0) -> List[List[int]]:
    """
    Token ids for ``prompts`` (chat-templated when the tokenizer has a template).

    Without a tokenizer, deterministic random ids stand in: the comparison is about the
    graph, not the text.
    """
    try:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError):
        tokenizer = None
    if tokenizer is None:
        import numpy as np
        rng = np.random.default_rng(seed)
        return [rng.integers(0, vocab_size, size=n).tolist() for n in RANDOM_PROMPT_LENGTHS]
    ids = []
    for text in prompts:
        if getattr(tokenizer, 'chat_template', None):
            encoded = tokenizer.apply_chat_template(
                [{'role': 'user', 'content': text}], add_generation_prompt=True, tokenize=True)
            if isinstance(encoded, dict) or hasattr(encoded, 'input_ids'):
                encoded = encoded['input_ids']
        else:
            encoded = tokenizer(text)['input_ids']
        ids.append([int(t) for t in encoded])
    return ids


def reference_logits(source: str, token_ids: List[List[int]]) -> list:
    """Return transformers' float32 logits ``[T, vocab]`` per prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.eval()
    results = []
    with torch.no_grad():
        for ids in token_ids:
            input_ids = torch.tensor([ids], dtype=torch.long)
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                        use_cache=False)
            results.append(out.logits[0].float().numpy())
    del model
    return results


class DecoderSession:
    """A plain ONNX Runtime session over the exported decoder with empty-past helpers."""

    def __init__(self, model_path: Path, providers: Optional[List[object]] = None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(model_path), providers=providers or ['CPUExecutionProvider'])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.past_names = [n for n in self.inputs if n.startswith('past_key_values.')]

    def empty_past(self) -> Dict[str, object]:
        import numpy as np

        feeds = {}
        for name in self.past_names:
            arg = self.inputs[name]
            shape = [d if isinstance(d, int) else 1 for d in arg.shape]
            shape[2] = 0  # [batch, kv_heads, past_len, head_dim]
            dtype = np.float16 if arg.type == 'tensor(float16)' else np.float32
            feeds[name] = np.zeros(shape, dtype=dtype)
        return feeds

    def forward(self, ids: Sequence[int], past: Optional[Dict[str, object]] = None,
                past_len: int = 0):
        """Run ``ids`` after ``past_len`` cached tokens; return (logits[T, V], next past)."""
        import numpy as np

        n = len(ids)
        feeds = dict(past) if past is not None else self.empty_past()
        feeds['input_ids'] = np.asarray([ids], dtype=np.int64)
        if 'attention_mask' in self.inputs:
            feeds['attention_mask'] = np.ones((1, past_len + n), dtype=np.int64)
        if 'position_ids' in self.inputs:
            feeds['position_ids'] = np.arange(past_len, past_len + n, dtype=np.int64)[None, :]
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        next_past = {name.replace('present.', 'past_key_values.', 1): value
                     for name, value in outputs.items() if name.startswith('present.')}
        return outputs['logits'][0].astype(np.float32), next_past


def compare_graph(model_path: Path, token_ids: List[List[int]], reference: list
                  ) -> Dict[str, object]:
    """Max abs logit difference and argmax agreement of one graph against ``reference``."""
    import numpy as np

    session = DecoderSession(model_path)
    max_diff = 0.0
    kv_diff = 0.0
    agree = 0
    positions = 0
    last_only = False
    for ids, ref in zip(token_ids, reference):
        logits, _ = session.forward(ids)
        if logits.shape[0] == 1 and ref.shape[0] > 1:
            # The graph computes the last position only: get every position's logits by
            # feeding the prompt one token at a time through the KV cache (teacher forcing).
            last_only = True
            rows = []
            past = None
            for position, token in enumerate(ids):
                row, past = session.forward([token], past=past, past_len=position)
                rows.append(row[-1])
            logits = np.stack(rows)
        if logits.shape != ref.shape:
            raise ExportError('logits shape {} from {} != transformers {}'.format(
                logits.shape, model_path, ref.shape))
        max_diff = max(max_diff, float(np.abs(logits - ref).max()))
        agree += int((logits.argmax(-1) == ref.argmax(-1)).sum())
        positions += ref.shape[0]
        if len(ids) >= 2:
            _, past = session.forward(ids[:-1])
            step, _ = session.forward(ids[-1:], past=past, past_len=len(ids) - 1)
            kv_diff = max(kv_diff, float(np.abs(step[-1] - ref[-1]).max()))
    return {
        'model': str(model_path),
        'max_abs_diff': max_diff,
        'kv_step_max_abs_diff': kv_diff,
        'argmax_agreement': agree / positions if positions else 0.0,
        'positions': positions,
        'prompts': len(token_ids),
        'last_logits_only': last_only,
        'max_abs_logit': float(max(np.abs(r).max() for r in reference)),
    }


def validate(source: str, model_paths: Sequence[Path],
             prompts: Sequence[str] = DEFAULT_PROMPTS) -> List[Dict[str, object]]:
    """Compare each graph in ``model_paths`` with transformers' logits for ``source``."""
    import json

    config_path = Path(model_paths[0]).parent / 'config.json'
    vocab_size = json.loads(config_path.read_text())['vocab_size'] if config_path.is_file() \
        else 1000
    token_ids = prompt_token_ids(source, vocab_size, prompts)
    reference = reference_logits(source, token_ids)
    return [compare_graph(Path(p), token_ids, reference) for p in model_paths]
