"""Chunked, cancellable prefill and a prompt layout whose cached prefix survives turns."""
from __future__ import annotations

import threading
import time

import pytest

SYSTEM = {'role': 'system', 'content': '你是一个机器人助手。'}
LONG_TEXT = '机器人正在客厅里充电，电量百分之八十，明天早上七点提醒我吃药。' * 6


def _options(n=16):
    from qwen_voice_ros.llm.base import GenerationOptions
    return GenerationOptions(max_new_tokens=n)


@pytest.fixture(scope='module', params=['qwen3', 'qwen2'])
def onnx_dir(request):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('torch')
    pytest.importorskip('optimum')
    from qwen_voice_ros.llm import tiny_models
    return tiny_models.tiny_onnx_model(arch=request.param)


def _engine(onnx_dir, **kwargs):
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    return OnnxCausalLM(onnx_dir, **kwargs)


def _count_forwards(engine, on_call=None):
    calls = []
    forward = engine._forward

    def counted(ids, all_logits=False):
        calls.append(len(ids))
        out = forward(ids, all_logits)
        if on_call is not None:
            on_call(len(calls))
        return out
    engine._forward = counted
    return calls


# ---- engine: chunked prefill --------------------------------------------------------------
def test_chunked_prefill_is_token_identical(onnx_dir):
    whole = _engine(onnx_dir, prefill_chunk=0)
    chunked = _engine(onnx_dir, prefill_chunk=5)
    prompt = whole.encode_chat([SYSTEM, {'role': 'user', 'content': LONG_TEXT}])
    calls = _count_forwards(chunked)
    assert chunked.generate(prompt, _options(), stop_token_ids=()) == \
        whole.generate(prompt, _options(), stop_token_ids=())
    assert calls[:3] == [5, 5, 5] and sum(calls[:-15]) == len(prompt)
    assert chunked.prefill_chunk == 5 and whole.prefill_chunk == whole.max_prompt


def test_cancel_during_prefill_returns_within_one_chunk(onnx_dir):
    engine = _engine(onnx_dir, prefill_chunk=8)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': LONG_TEXT}])
    assert len(prompt) > 10 * 8
    cancel = threading.Event()
    calls = _count_forwards(engine, on_call=lambda n: cancel.set() if n == 2 else None)
    out = engine.generate(prompt, _options(), cancel=cancel, stop_token_ids=())
    assert out == [] and calls == [8, 8]  # the chunk in flight finishes, no more
    assert engine.last_stats['stop_reason'] == 'cancelled'
    assert engine.cached_ids == prompt[:16]
    # The fed chunks stay cached: the next turn reuses them and answers the same.
    again = engine.generate(prompt, _options(), stop_token_ids=())
    assert engine.last_stats['reused_tokens'] == 16
    assert again == _engine(onnx_dir, prefill_chunk=0).generate(prompt, _options(),
                                                                stop_token_ids=())


def test_cancel_from_another_thread_during_prefill(onnx_dir):
    engine = _engine(onnx_dir, prefill_chunk=4)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': LONG_TEXT * 3}])
    cancel = threading.Event()
    after = []
    calls = _count_forwards(engine, on_call=lambda n: after.append(n) if cancel.is_set()
                            else None)
    timer = threading.Timer(0.01, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        out = engine.generate(prompt, _options(), cancel=cancel, stop_token_ids=())
    finally:
        timer.cancel()
    took = time.monotonic() - started
    if not cancel.is_set():
        pytest.skip('the whole prefill finished before the timer fired (%.3f s)' % took)
    assert out == [] and len(after) <= 1
    assert engine.last_stats['stop_reason'] == 'cancelled'
    assert len(calls) * 4 < len(prompt)


def test_deadline_is_checked_between_prefill_chunks(onnx_dir):
    engine = _engine(onnx_dir, prefill_chunk=8)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': LONG_TEXT}])
    calls = _count_forwards(engine)
    out = engine.generate(prompt, _options(), deadline=time.monotonic() - 1.0,
                          stop_token_ids=())
    assert out == [] and calls == [8]
    assert engine.last_stats['stop_reason'] == 'timeout'
