"""OnnxCausalLM against transformers on tiny random Qwen3/Qwen2 models (token parity)."""
from __future__ import annotations

import threading

import pytest

pytest.importorskip('onnxruntime')
torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
pytest.importorskip('optimum')

from qwen_voice_ros.llm import tiny_models  # noqa: E402
from qwen_voice_ros.llm.base import GenerationOptions, LLMError  # noqa: E402
from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM, OnnxChatBackend  # noqa: E402

GREEDY_32 = GenerationOptions(max_new_tokens=32)
SYSTEM = {'role': 'system', 'content': '你是一个机器人助手。'}


@pytest.fixture(scope='module', params=['qwen3', 'qwen2'])
def model(request):
    hf_dir = tiny_models.build_tiny_hf_model(None, arch=request.param)
    onnx_dir = tiny_models.export_onnx(hf_dir)
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir))
    reference.eval()
    return hf_dir, onnx_dir, reference


def reference_greedy(reference, prompt_ids, n=32):
    with torch.no_grad():
        out = reference.generate(torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


def test_greedy_matches_transformers_32_tokens(model):
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': '你好，今天天气怎么样？'}])
    ours = engine.generate(prompt, GREEDY_32, stop_token_ids=())
    assert len(ours) == 32
    assert ours == reference_greedy(reference, prompt)
    assert len(set(ours)) > 3  # a degenerate single-token loop would prove little


def test_two_turns_reuse_cache_and_match(model):
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir)
    turn1 = [SYSTEM, {'role': 'user', 'content': '请讲一个笑话。'}]
    prompt1 = engine.encode_chat(turn1)
    reply1 = engine.generate(prompt1, GREEDY_32, stop_token_ids=())
    assert reply1 == reference_greedy(reference, prompt1)
    assert engine.cached_ids == prompt1 + reply1[:-1]

    turn2 = turn1 + [{'role': 'assistant', 'content': engine.tokenizer.decode(reply1, True)},
                     {'role': 'user', 'content': 'What can you do? 再说一遍。'}]
    prompt2 = engine.encode_chat(turn2)
    shared = 0
    while prompt2[shared] == (prompt1 + reply1)[shared]:
        shared += 1
    reply2 = engine.generate(prompt2, GREEDY_32, stop_token_ids=())
    assert engine.last_stats['reused_tokens'] == shared > len(prompt1) // 2
    assert reply2 == reference_greedy(reference, prompt2)

    # Same answer from an empty cache: reuse changes nothing but the work done.
    fresh = OnnxCausalLM(onnx_dir)
    assert fresh.generate(prompt2, GREEDY_32, stop_token_ids=()) == reply2


def test_device_style_cache_truncation_matches(model):
    """The Slice-graph truncation used on CUDA/TensorRT, exercised here on CPU buffers."""
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir)
    engine._graph_truncate = True
    turn1 = [SYSTEM, {'role': 'user', 'content': '请讲一个笑话。'}]
    reply1 = engine.generate(engine.encode_chat(turn1), GREEDY_32, stop_token_ids=())
    turn2 = turn1 + [{'role': 'assistant', 'content': engine.tokenizer.decode(reply1, True)},
                     {'role': 'user', 'content': '再说一遍。'}]
    prompt2 = engine.encode_chat(turn2)
    reply2 = engine.generate(prompt2, GREEDY_32, stop_token_ids=())
    assert engine._truncate_session is not None
    assert 0 < engine.last_stats['reused_tokens'] < len(engine.encode_chat(turn1)) + 32
    assert reply2 == reference_greedy(reference, prompt2)


def test_exact_extension_and_repeat_prompt(model):
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([{'role': 'user', 'content': '你好'}])
    first = engine.generate(prompt, GenerationOptions(max_new_tokens=8), stop_token_ids=())
    # The next prompt extends everything cached: only the new suffix is fed.
    extended = prompt + first + engine.tokenizer.encode('<|im_end|>\n<|im_start|>user\n好\n')
    out = engine.generate(extended, GREEDY_32, stop_token_ids=())
    assert engine.last_stats['reused_tokens'] == len(prompt) + len(first) - 1
    assert out == reference_greedy(reference, extended)
    # The identical prompt again: all but the last prompt token come from the cache.
    again = engine.generate(extended, GREEDY_32, stop_token_ids=())
    assert again == out
    assert engine.last_stats['reused_tokens'] == len(extended) - 1


def test_chunked_prefill_matches(model):
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir, max_prompt=7)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': '机器人正在充电，电量百分之八十。'}])
    assert len(prompt) > 3 * 7
    assert engine.generate(prompt, GREEDY_32, stop_token_ids=()) == \
        reference_greedy(reference, prompt)


def test_stops_on_im_end_and_max_new_tokens(model):
    _, onnx_dir, _ = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([{'role': 'user', 'content': '你好'}])
    free = engine.generate(prompt, GenerationOptions(max_new_tokens=5), stop_token_ids=())
    assert len(free) == 5 and engine.last_stats['stop_reason'] == 'max_new_tokens'
    # Make the third greedy token a stop token: generation ends before yielding it.
    out = engine.generate(prompt, GenerationOptions(max_new_tokens=5),
                          stop_token_ids=[free[2]] if free[2] not in free[:2] else [free[0]])
    assert engine.last_stats['stop_reason'] == 'stop_token'
    assert len(out) < 5
    assert engine.tokenizer.im_end_id in engine.stop_token_ids
    assert engine.tokenizer.endoftext_id in engine.stop_token_ids


def test_sampling_is_seeded(model):
    _, onnx_dir, _ = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([{'role': 'user', 'content': '讲个故事'}])
    opts = GenerationOptions(max_new_tokens=16, temperature=1.2, top_p=0.95, top_k=50,
                             min_p=0.01, repetition_penalty=1.1, seed=7)
    a = engine.generate(prompt, opts, stop_token_ids=())
    b = engine.generate(prompt, opts, stop_token_ids=())
    opts.seed = 8
    c = engine.generate(prompt, opts, stop_token_ids=())
    assert a == b and a != c


def test_repetition_penalty_matches_transformers(model):
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([{'role': 'user', 'content': '你好你好你好'}])
    ours = engine.generate(prompt, GenerationOptions(max_new_tokens=16, repetition_penalty=1.3),
                           stop_token_ids=())
    with torch.no_grad():
        ref = reference.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                                 repetition_penalty=1.3, eos_token_id=None, pad_token_id=0)
    assert ours == ref[0, len(prompt):].tolist()


def test_cancel_between_steps(model):
    _, onnx_dir, _ = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([{'role': 'user', 'content': '你好'}])
    cancel = threading.Event()
    got = []
    for token in engine.generate_ids(prompt, GenerationOptions(max_new_tokens=64),
                                     cancel=cancel, stop_token_ids=()):
        got.append(token)
        if len(got) == 5:
            cancel.set()
    assert len(got) == 5
    assert engine.last_stats['stop_reason'] == 'cancelled'
    # The cache holds exactly what was fed; the next turn still reuses it.
    assert engine.cached_ids[:len(prompt)] == prompt


def test_cancel_from_another_thread_within_one_step(model):
    _, onnx_dir, _ = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([{'role': 'user', 'content': '你好'}])
    cancel = threading.Event()
    timer = threading.Timer(0.02, cancel.set)
    after_cancel = 0
    timer.start()
    try:
        for _ in engine.generate_ids(prompt, GenerationOptions(max_new_tokens=100000),
                                     cancel=cancel, stop_token_ids=()):
            if cancel.is_set():
                after_cancel += 1
            if len(engine.cached_ids) >= engine.max_context - 1:
                break
    finally:
        timer.cancel()
    assert cancel.is_set()
    assert after_cancel <= 1
    assert engine.last_stats['stop_reason'] == 'cancelled'


def test_context_full_stops_cleanly(model):
    _, onnx_dir, _ = model
    engine = OnnxCausalLM(onnx_dir, max_context=48)
    prompt = engine.encode_chat([{'role': 'user', 'content': '你好'}])
    out = engine.generate(prompt, GenerationOptions(max_new_tokens=200), stop_token_ids=())
    assert engine.last_stats['stop_reason'] == 'context_full'
    # The last token is yielded but never fed: the cache is exactly full.
    assert len(engine.cached_ids) == 48 and len(prompt) + len(out) == 49
    with pytest.raises(LLMError):
        engine.generate(list(range(5, 60)), GREEDY_32)


def test_score_continuations_matches_transformers(model):
    _, onnx_dir, reference = model
    engine = OnnxCausalLM(onnx_dir)
    messages = [SYSTEM, {'role': 'user', 'content': '这句话是什么方言？'}]
    candidates = ['粤语', '四川话', 'Mandarin', '']
    scores = engine.score_continuations(messages, candidates)
    prompt = engine.encode_chat(messages)
    for text, score in zip(candidates, scores):
        ids = engine.tokenizer.encode(text)
        if not ids:
            assert score == 0.0
            continue
        with torch.no_grad():
            logits = reference(torch.tensor([prompt + ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        expected = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(ids))
        assert score == pytest.approx(expected, abs=1e-3)
    # Generation after scoring still starts from a correct cache.
    assert engine.generate(prompt, GREEDY_32, stop_token_ids=()) == \
        reference_greedy(reference, prompt)


@pytest.fixture()
def closing():
    """Close every chat backend a test loads: each holds a share of the process's engine pool."""
    backends = []
    yield backends.append
    for backend in backends:
        backend.close()


def test_chat_backend_streams_and_cancels(model, closing):
    _, onnx_dir, _ = model
    backend = OnnxChatBackend(onnx_dir)
    closing(backend)
    backend.load()
    messages = [SYSTEM, {'role': 'user', 'content': '你好'}]
    opts = GenerationOptions(max_new_tokens=24, request_ngram_block=0, max_sentences=0)
    text = ''.join(backend.stream_chat(messages, opts))
    engine = backend.engine
    ids = engine.generate(engine.encode_chat(messages), opts)
    assert text == engine.tokenizer.decode(ids, skip_special_tokens=True)
    assert backend.count_tokens('你好，机器人') == len(engine.tokenizer.encode('你好，机器人'))

    cancel = threading.Event()
    pieces = []
    for delta in backend.stream_chat(messages, GenerationOptions(max_new_tokens=64), cancel):
        pieces.append(delta)
        cancel.set()
    assert len(pieces) == 1
    assert engine.last_stats['stop_reason'] == 'cancelled'


def test_reply_never_repeats_a_request_bigram(model):
    _, onnx_dir, _ = model
    engine = OnnxCausalLM(onnx_dir)
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': '你好'}])
    free = engine.generate(prompt, GenerationOptions(max_new_tokens=16), stop_token_ids=())
    # Treat the unguarded reply as the "request": every bigram of it would be an echo.
    pairs = set(zip(free, free[1:]))
    assert pairs
    guarded = engine.generate(prompt, GenerationOptions(max_new_tokens=16, request_ngram_block=2),
                              stop_token_ids=(), request_ids=free)
    assert len(guarded) == 16 and not pairs & set(zip(guarded, guarded[1:]))
    off = engine.generate(prompt, GenerationOptions(max_new_tokens=16, request_ngram_block=0),
                          stop_token_ids=(), request_ids=free)
    assert off == free


def test_chat_backend_stops_after_max_sentences(model, closing):
    _, onnx_dir, _ = model
    backend = OnnxChatBackend(onnx_dir)
    closing(backend)
    messages = [SYSTEM, {'role': 'user', 'content': '你好'}]
    full = ''.join(backend.stream_chat(messages, GenerationOptions(
        max_new_tokens=64, request_ngram_block=0, max_sentences=0)))
    from qwen_voice_ros.llm.reply_quality import count_sentences
    cut = ''.join(backend.stream_chat(messages, GenerationOptions(
        max_new_tokens=64, request_ngram_block=0, max_sentences=1)))
    assert full.startswith(cut)
    assert count_sentences(cut) <= 1
    if count_sentences(full) > 1:
        assert backend.engine.last_stats['stop_reason'] == 'max_sentences'
        assert 'decode_s' in backend.engine.last_stats


def test_chat_backend_trims_history_to_context(model, closing):
    _, onnx_dir, _ = model
    backend = OnnxChatBackend(onnx_dir, max_context=160)
    closing(backend)
    history = [SYSTEM]
    for i in range(12):
        history += [{'role': 'user', 'content': '第%d个问题：今天天气很好吗？' % i},
                    {'role': 'assistant', 'content': '是的，天气很好，我们去公园吧。'}]
    history.append({'role': 'user', 'content': '最后一个问题'})
    opts = GenerationOptions(max_new_tokens=16)
    ids = backend.fit_messages(history, opts)
    assert len(ids) + 16 <= 160
    text = backend.engine.tokenizer.decode(ids)
    assert text.startswith('<|im_start|>system\n你是一个机器人助手。')
    assert '最后一个问题' in text and '第0个问题' not in text
    assert isinstance(''.join(backend.stream_chat(history, opts)), str)
    with pytest.raises(LLMError):
        backend.fit_messages([SYSTEM, {'role': 'user', 'content': '天气' * 400}], opts)


def test_last_position_logits_graph(model, tmp_path):
    import shutil
    from qwen_voice_ros.llm.decode_graph import keep_last_logits_file
    _, onnx_dir, reference = model
    edited = tmp_path / 'last'
    shutil.copytree(str(onnx_dir), str(edited))
    keep_last_logits_file(edited / 'model.onnx')
    engine = OnnxCausalLM(edited, max_prompt=16)
    full = OnnxCausalLM(onnx_dir)
    assert engine.last_logits_only and not full.last_logits_only
    prompt = engine.encode_chat([SYSTEM, {'role': 'user', 'content': '你好，今天天气怎么样？'}])
    assert engine.generate(prompt, GREEDY_32, stop_token_ids=()) == \
        reference_greedy(reference, prompt)
    messages = [SYSTEM, {'role': 'user', 'content': '哪种方言？'}]
    ours = engine.score_continuations(messages, ['粤语', '四川话'])
    assert ours == pytest.approx(full.score_continuations(messages, ['粤语', '四川话']),
                                 abs=1e-3)
