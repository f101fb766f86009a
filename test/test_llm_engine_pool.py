"""One loaded model per process: the engine pool shared by the llm and dialect nodes.

Real ONNX Runtime sessions on generated tiny Qwen models: two users of one model directory
get one session (the weights), their own KV caches, scores equal to a standalone engine's
(also while the other user generates in a second thread, and after it cancels a reply in
the middle of its prefill), and the session is freed when the last user releases it.
"""
from __future__ import annotations

import gc
import threading
import weakref

import pytest

from qwen_voice_ros.dialect.llm_stage import LABEL_NAMES, build_messages

TEXT = '你在搞么子咯？'
LABELS = list(LABEL_NAMES.values())
CHAT = [{'role': 'system', 'content': '你是一个机器人助手。'},
        {'role': 'user', 'content': '机器人正在客厅里充电，电量百分之八十，明天早上七点提醒我吃药。' * 4}]


@pytest.fixture(scope='module', params=['qwen3', 'qwen2'])
def onnx_dir(request):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('torch')
    pytest.importorskip('optimum')
    from qwen_voice_ros.llm import tiny_models
    return str(tiny_models.tiny_onnx_model(arch=request.param))


@pytest.fixture()
def pool():
    from qwen_voice_ros.llm import engine_pool
    assert engine_pool.stats() == [], 'a previous test leaked an engine'
    yield engine_pool
    leaked = engine_pool.stats()
    assert leaked == [], leaked


def _standalone_scores(onnx_dir, max_context=2048):
    from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
    return OnnxCausalLM(onnx_dir, max_context=max_context).score_continuations(
        build_messages(TEXT), LABELS)


def _options(n=24):
    from qwen_voice_ros.llm.base import GenerationOptions
    return GenerationOptions(max_new_tokens=n)


def test_two_users_share_one_session_and_free_it_on_the_last_release(onnx_dir, pool):
    from qwen_voice_ros.llm.onnx_engine import OnnxChatBackend
    backend = OnnxChatBackend(onnx_dir)          # what the llm node loads
    backend.load()
    scorer = pool.acquire(onnx_dir, provider='cpu', max_context=2048)   # the dialect node's
    try:
        assert scorer.session is backend.engine.session
        assert scorer.run_lock is backend.engine.run_lock
        assert scorer._kv_sets[0][0] is not backend.engine._kv_sets[0][0]
        assert backend.engine.max_context == 4096 and scorer.max_context == 2048
        assert [s['users'] for s in pool.stats()] == [2]
        assert pool.users_of(scorer) == 2
        session = weakref.ref(scorer.session)
    finally:
        backend.close()                           # llm node cleanup first: still in use
    assert [s['users'] for s in pool.stats()] == [1] and scorer.session is not None
    assert scorer.score_continuations(build_messages(TEXT), LABELS) == \
        pytest.approx(_standalone_scores(onnx_dir), abs=1e-5)
    assert pool.release(scorer) is True           # the last user frees the model
    gc.collect()
    assert session() is None
    assert pool.release(scorer) is False          # twice is harmless


def test_other_settings_get_their_own_engine(onnx_dir, pool, tmp_path):
    from qwen_voice_ros.llm.onnx_engine import physical_cores
    a = pool.acquire(onnx_dir, provider='cpu')
    b = pool.acquire(onnx_dir, provider='cpu', intra_op_threads=physical_cores() + 1)
    # 0 threads means "physical cores": the same session as that number spelt out
    c = pool.acquire(onnx_dir, provider='cpu', intra_op_threads=physical_cores())
    try:
        assert a.session is not b.session and len(pool.stats()) == 2
        assert c.session is a.session
    finally:
        for handle in (a, b, c):
            pool.release(handle)


def test_scores_stay_exact_while_the_other_user_generates(onnx_dir, pool):
    expected = _standalone_scores(onnx_dir)
    replier = pool.acquire(onnx_dir, provider='cpu', prefill_chunk=8)
    scorer = pool.acquire(onnx_dir, provider='cpu', max_context=2048)
    # count graph runs in flight on the shared session: the run lock allows one at a time
    session, inside, overlaps, runs = scorer.session, [0], [], [0]
    original = session.run_with_iobinding
    guard = threading.Lock()

    def run_with_iobinding(*args, **kwargs):
        with guard:
            inside[0] += 1
            runs[0] += 1
            if inside[0] > 1:
                overlaps.append(inside[0])
        try:
            threading.Event().wait(0.001)  # widen the window an unserialised run would hit
            return original(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1
    session.run_with_iobinding = run_with_iobinding
    try:
        prompt = replier.encode_chat(CHAT)
        errors, replies = [], []

        def reply_loop():
            try:
                for _ in range(3):
                    replies.append(replier.generate(prompt, _options(), stop_token_ids=()))
            except Exception as exc:  # reported below; an assert here would be lost
                errors.append(exc)
        thread = threading.Thread(target=reply_loop)
        thread.start()
        scores = [scorer.score_continuations(build_messages(TEXT), LABELS) for _ in range(3)]
        thread.join(120)
        assert not errors, errors
        assert runs[0] > 50 and overlaps == []
        for got in scores:
            assert got == pytest.approx(expected, abs=1e-5)
        # and the replies are the standalone engine's too (the caches never mixed)
        from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
        alone = OnnxCausalLM(onnx_dir, prefill_chunk=8)
        assert replies == [alone.generate(prompt, _options(), stop_token_ids=())] * 3
    finally:
        pool.release(replier)
        pool.release(scorer)


def test_a_cancelled_reply_leaves_the_scoring_cache_and_its_prefix_reuse_intact(
        onnx_dir, pool):
    expected = _standalone_scores(onnx_dir)
    replier = pool.acquire(onnx_dir, provider='cpu', prefill_chunk=4)
    scorer = pool.acquire(onnx_dir, provider='cpu', max_context=2048)
    try:
        assert scorer.score_continuations(build_messages(TEXT), LABELS) == \
            pytest.approx(expected, abs=1e-5)
        scoring_prompt = scorer.encode_chat(build_messages(TEXT))
        cached = scorer.cached_ids
        assert cached[:len(scoring_prompt)] == scoring_prompt
        # cancel the reply in the middle of its prefill (after its third chunk)
        cancel = threading.Event()
        forward = replier._forward
        calls = []

        def counted(ids, all_logits=False):
            calls.append(len(ids))
            if len(calls) == 3:
                cancel.set()
            return forward(ids, all_logits)
        replier._forward = counted
        out = replier.generate(replier.encode_chat(CHAT), _options(), cancel=cancel)
        assert out == [] and replier.last_stats['stop_reason'] == 'cancelled'
        assert scorer.cached_ids == cached
        # the next scoring call reuses the whole few-shot prompt from its own cache
        assert scorer.score_continuations(build_messages(TEXT), LABELS) == \
            pytest.approx(expected, abs=1e-5)
        assert scorer.last_stats['reused_tokens'] == len(scoring_prompt) - 1
    finally:
        pool.release(replier)
        pool.release(scorer)


def test_a_released_handle_refuses_to_run(onnx_dir, pool):
    from qwen_voice_ros.llm.base import LLMError
    handle = pool.acquire(onnx_dir, provider='cpu')
    prompt = handle.encode_chat(CHAT)
    pool.release(handle)
    with pytest.raises(LLMError, match='closed'):
        handle.generate(prompt, _options(2))
