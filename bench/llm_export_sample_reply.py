"""Greedy Chinese replies from an exported model dir through the ONNX engine (CPU).

    .venv/bin/python bench/llm_export_sample_reply.py models/qwen2.5-coder-0.5b-int4

Prints each reply with its token count and decode speed; used for docs/llm_export.md.
"""
import sys
import time

from qwen_voice_ros.llm.base import GenerationOptions
from qwen_voice_ros.llm.onnx_engine import OnnxChatBackend

PROMPTS = (
    '你好，请用一句话介绍你自己。',
    '机器人应该怎样安全地穿过人多的走廊？请简短回答。',
    '把“今天天气很好”翻译成英文。',
)
SYSTEM = '你是一个友好的中文机器人助手，回答简短。'


def main(model_dir: str) -> None:
    backend = OnnxChatBackend(model_dir, provider='cpu', max_context=1024)
    started = time.monotonic()
    backend.load()
    print('load %.1fs' % (time.monotonic() - started))
    options = GenerationOptions(max_new_tokens=80, temperature=0.0, repetition_penalty=1.1)
    for prompt in PROMPTS:
        messages = [{'role': 'system', 'content': SYSTEM}, {'role': 'user', 'content': prompt}]
        started = time.monotonic()
        first = None
        parts = []
        for delta in backend.stream_chat(messages, options):
            if first is None:
                first = time.monotonic() - started
            parts.append(delta)
        took = time.monotonic() - started
        reply = ''.join(parts)
        tokens = backend.count_tokens(reply)
        print('Q: %s\nA: %s\n   (%d tokens, first %.2fs, %.1fs total, %.1f tok/s after the '
              'first)' % (prompt, reply, tokens, first or 0.0, took,
                          (tokens - 1) / max(1e-6, took - (first or 0.0))))


if __name__ == '__main__':
    main(sys.argv[1])
