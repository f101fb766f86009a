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


def test_terminated_chunk_leaves_the_cache_intact(onnx_dir):
    import onnxruntime as ort
    from qwen_voice_ros.llm import onnx_engine
    engine = _engine(onnx_dir, prefill_chunk=8)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': LONG_TEXT}])
    engine.generate(prompt[:20], _options(1), stop_token_ids=())
    cached = engine.cached_ids
    engine._run_options = ort.RunOptions()
    engine._run_options.terminate = True  # what the watcher does when the cancel comes
    with pytest.raises(onnx_engine._Terminated):
        engine._forward(prompt[len(cached):len(cached) + 8])
    engine._run_options = None
    assert engine.cached_ids == cached
    assert engine.generate(prompt, _options(), stop_token_ids=()) == \
        _engine(onnx_dir, prefill_chunk=0).generate(prompt, _options(), stop_token_ids=())
    assert engine.last_stats['reused_tokens'] == len(cached)


def test_cancel_watcher_sets_terminate_and_stops():
    from qwen_voice_ros.llm.onnx_engine import _CancelWatcher

    class Options:
        terminate = False
    cancel = threading.Event()
    watcher = _CancelWatcher(cancel, Options(), poll_s=0.005)
    time.sleep(0.03)
    assert watcher.run_options.terminate is False
    cancel.set()
    watcher._thread.join(2.0)
    assert watcher.run_options.terminate is True and not watcher._thread.is_alive()
    idle = _CancelWatcher(threading.Event(), Options(), poll_s=0.005)
    idle.stop()
    idle._thread.join(2.0)
    assert not idle._thread.is_alive() and idle.run_options.terminate is False


def test_deadline_is_checked_between_prefill_chunks(onnx_dir):
    engine = _engine(onnx_dir, prefill_chunk=8)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': LONG_TEXT}])
    calls = _count_forwards(engine)
    out = engine.generate(prompt, _options(), deadline=time.monotonic() - 1.0,
                          stop_token_ids=())
    assert out == [] and calls == []
    assert engine.last_stats['stop_reason'] == 'timeout'
    cancel = threading.Event()
    cancel.set()  # cancelled before it started: no chunk runs at all
    assert engine.generate(prompt, _options(), cancel=cancel, stop_token_ids=()) == []
    assert calls == [] and engine.last_stats['stop_reason'] == 'cancelled'


# ---- memory: stable prefix, merged unanswered turns ---------------------------------------
def _memory(**kwargs):
    from qwen_voice_ros.llm.memory import ConversationMemory
    return ConversationMemory(persona='你是机器人。', reply_style='dialect', **kwargs)


def test_instruction_sits_before_the_newest_user_turn_and_the_prefix_is_stable():
    from qwen_voice_ros.llm.memory import MANDARIN_INSTRUCTION
    memory = _memory(token_budget=4096)
    memory.set_dialect('yue')
    memory.add_user('今晚去边度食饭？')
    first = memory.messages()
    assert first[0] == {'role': 'system', 'content': '你是机器人。'}
    assert first[-2]['role'] == 'system' and '粤语' in first[-2]['content']
    assert first[-1] == {'role': 'user', 'content': '今晚去边度食饭？'}
    memory.commit_assistant('去楼下茶餐厅啦。')
    memory.set_dialect('mandarin')  # the label changes: the earlier prompt stays intact
    memory.add_user('好的，几点？')
    second = memory.messages()
    assert second[:len(first)] == first
    assert second[len(first)] == {'role': 'assistant', 'content': '去楼下茶餐厅啦。'}
    assert second[-2:] == [{'role': 'system', 'content': MANDARIN_INSTRUCTION},
                           {'role': 'user', 'content': '好的，几点？'}]
    assert memory.turns == [{'role': 'user', 'content': '今晚去边度食饭？'},
                            {'role': 'assistant', 'content': '去楼下茶餐厅啦。'},
                            {'role': 'user', 'content': '好的，几点？'}]


def test_unanswered_user_turns_are_merged_not_accumulated():
    memory = _memory(token_budget=4096)
    memory.add_user('帮我')
    memory.commit_assistant('')  # superseded before anything was spoken
    memory.set_dialect('sichuanese')
    memory.add_user('把灯关掉')
    assert memory.turns == [{'role': 'user', 'content': '帮我'},
                            {'role': 'user', 'content': '把灯关掉'}]
    messages = memory.messages()
    assert messages[-3:-1] == [{'role': 'user', 'content': '帮我'},
                               {'role': 'system', 'content': messages[-2]['content']}]
    assert '四川话' in messages[-2]['content']  # the newer turn's instruction
    for i in range(40):  # a long run of superseded turns keeps the newest two texts
        memory.add_user('第%d句' % i)
    assert memory.turns == [{'role': 'user', 'content': '第38句'},
                            {'role': 'user', 'content': '第39句'}]
    assert len(memory.messages()) == len(messages)
    memory.commit_assistant('好。')
    memory.add_user('谢谢')
    assert [t['role'] for t in memory.turns] == ['user', 'user', 'assistant', 'user']
    only_newest = _memory(merge_unanswered=1)
    only_newest.add_user('一')
    only_newest.add_user('二')
    assert only_newest.turns == [{'role': 'user', 'content': '二'}]


def _prefix_changes(memory, turns=40):
    """Run ``turns`` answered turns; return how often the oldest kept turn changed."""
    memory.set_dialect('yue')
    budget = memory.token_budget
    oldest = []
    for i in range(turns):
        memory.add_user('问题%d：今天天气好吗' % i)
        messages = memory.messages()
        assert sum(len(m['content']) + 5 for m in messages) <= budget
        assert messages[-1]['content'] == '问题%d：今天天气好吗' % i
        assert messages[1]['role'] == 'system' and messages[2]['role'] == 'user'
        oldest.append(messages[2]['content'])
        memory.commit_assistant('回答%d：天气很好。' % i)
    return sum(1 for a, b in zip(oldest[15:], oldest[16:]) if a != b)


def test_budget_counts_instructions_and_trims_with_headroom():
    # Every turn here is ~90 counted tokens (instruction included): ~10 fit in 1000.
    every_turn = _prefix_changes(_memory(token_budget=1000, trim_ratio=1.0))
    headroom = _prefix_changes(_memory(token_budget=1000))  # trim_ratio 0.75
    assert every_turn == 24  # the prefix shifts on every turn once the budget is reached
    assert 1 <= headroom <= every_turn // 2


def test_next_turn_reuses_the_cached_prompt_and_reply(onnx_dir):
    from qwen_voice_ros.llm.onnx_engine import OnnxChatBackend
    backend = OnnxChatBackend(str(onnx_dir), prefill_chunk=16)
    backend.load()
    engine = backend.engine
    memory = _memory(token_budget=4096, count_tokens=backend.count_tokens)
    options = _options(12)
    memory.set_dialect('yue')
    memory.add_user('今晚去边度食饭？')
    prompt1 = engine.encode_chat(memory.messages())
    reply = ''.join(backend.stream_chat(memory.messages(), options))
    memory.commit_assistant(reply or '好。')
    memory.set_dialect('sichuanese')  # another label: the prefix still holds
    memory.add_user('巴适得板，我们去吃火锅嘛。')
    prompt2 = engine.encode_chat(memory.messages())
    reply = ''.join(backend.stream_chat(memory.messages(), options))
    memory.commit_assistant(reply or '好。')
    # Qwen3 renders the generation prompt's empty think block only on the last turn.
    head = prompt1 if engine.template_flavor != 'qwen3' else \
        engine.encode_chat(memory.messages()[:-4], add_generation_prompt=False)
    assert prompt2[:len(head)] == head
    assert engine.last_stats['reused_tokens'] >= len(head)
    # A superseded turn (cancelled during prefill, nothing said) merges with the next one.
    cancel = threading.Event()
    cancel.set()
    memory.add_user('第三句')
    assert list(backend.stream_chat(memory.messages(), options, cancel)) == []
    memory.commit_assistant('')
    memory.add_user('第四句')
    assert memory.turns[-2:] == [{'role': 'user', 'content': '第三句'},
                                 {'role': 'user', 'content': '第四句'}]
    prompt4 = engine.encode_chat(memory.messages())
    list(backend.stream_chat(memory.messages(), options))
    head = prompt2 if engine.template_flavor != 'qwen3' else \
        engine.encode_chat(memory.messages()[:-4], add_generation_prompt=False)
    assert prompt4[:len(head)] == head and len(head) > len(prompt1)
    assert engine.last_stats['reused_tokens'] >= len(head)
