"""
Qwen3 / Qwen2 decoder on ONNX Runtime: KV-cache decode loop with IO binding.

The graph is an optimum ``text-generation-with-past`` export (inputs ``input_ids``,
``attention_mask``, ``position_ids``, ``past_key_values.N.key/value``; outputs ``logits``,
``present.N.key/value``), fp32/fp16, optionally with MatMulNBits INT4/INT8 weights.

Cache handling: two preallocated buffers per cache tensor, each big enough for
``max_context`` positions, live on the execution device.  Every step binds the ``past``
inputs to one buffer (as a [1, kv, past, head_dim] view) and the ``present`` outputs to the
other, then swaps them, so the cache never leaves the device and nothing is allocated per
token.  The token ids behind the cache are remembered: a new prompt that shares a prefix
with them (the next chat turn) only runs the new suffix through the graph.

No torch at run time: onnxruntime, numpy and tokenizers only (imported in the constructor).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.llm import chat_template
from qwen_voice_ros.llm.base import ChatBackend, GenerationOptions, LLMError, \
    LLMNotConfigured, Message
from qwen_voice_ros.llm.providers import check_active_provider, check_outputs, \
    describe_decoder, expected_inputs_from_config, inputs_from_session, model_file, \
    present_output_name, read_graph_inputs, session_providers
from qwen_voice_ros.llm.sampling import log_softmax, NgramBlocker, Sampler
from qwen_voice_ros.llm.sentences import SentenceLimit
from qwen_voice_ros.llm.tokenizer import IncrementalDecoder, QwenTokenizer

_NP_TYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16}

# A one-node graph, Slice(x[1, kv, past, hd], starts=[0], ends=end, axes=[2]), serialised
# (opset 17, IR 8) so the device-side cache truncation needs no onnx package on the robot.
_TRUNCATE_GRAPHS = {
    np.dtype(np.float32): (
        'CAgSDnF3ZW5fdm9pY2Vfcm9zOq8BCiAKAXgKBnN0YXJ0cwoDZW5kCgRheGVzEgF5IgVTbGljZRIOdHJ1bmNh'
        'dGVfY2FjaGUqDwgBEAc6AQBCBnN0YXJ0cyoNCAEQBzoBAkIEYXhlc1ojCgF4Eh4KHAgBEhgKAggBCgQSAmt2'
        'CgYSBHBhc3QKBBICaGRaEQoDZW5kEgoKCAgHEgQKAggBYiMKAXkSHgocCAESGAoCCAEKBBICa3YKBhIEa2Vl'
        'cAoEEgJoZEIECgAQEQ=='),
    np.dtype(np.float16): (
        'CAgSDnF3ZW5fdm9pY2Vfcm9zOq8BCiAKAXgKBnN0YXJ0cwoDZW5kCgRheGVzEgF5IgVTbGljZRIOdHJ1bmNh'
        'dGVfY2FjaGUqDwgBEAc6AQBCBnN0YXJ0cyoNCAEQBzoBAkIEYXhlc1ojCgF4Eh4KHAgKEhgKAggBCgQSAmt2'
        'CgYSBHBhc3QKBBICaGRaEQoDZW5kEgoKCAgHEgQKAggBYiMKAXkSHgocCAoSGAoCCAEKBBICa3YKBhIEa2Vl'
        'cAoEEgJoZEIECgAQEQ=='),
}


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads not counted)."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        available = os.cpu_count() or 1
    try:
        cores = set()
        physical = core = None
        with open('/proc/cpuinfo', encoding='ascii', errors='replace') as handle:
            for line in handle:
                if line.startswith('physical id'):
                    physical = line.split(':')[1].strip()
                elif line.startswith('core id'):
                    core = line.split(':')[1].strip()
                    cores.add((physical, core))
        if cores:
            return max(1, min(available, len(cores)))
    except OSError:
        pass
    return max(1, available)


class _Terminated(Exception):
    """A run stopped by its RunOptions' terminate flag (the cache is left as it was)."""


class _CancelWatcher:
    """
    Set ``run_options.terminate`` once ``cancel`` is set, until :meth:`stop`.

    ONNX Runtime checks the flag between graph nodes, so a cancel stops a long prefill
    chunk within one node instead of at the end of the chunk.
    """

    def __init__(self, cancel: threading.Event, run_options, poll_s: float = 0.02) -> None:
        self.run_options = run_options
        self._cancel = cancel
        self._done = threading.Event()
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._watch, name='llm-cancel-watch',
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._cancel.wait(self._poll_s):
                self.run_options.terminate = True
                return

    def stop(self) -> None:
        self._done.set()


def _load_json(path: Path, required: bool) -> Dict:
    if not path.is_file():
        if required:
            raise LLMNotConfigured('missing %s' % path)
        return {}
    try:
        with open(str(path), encoding='utf-8') as handle:
            data = json.load(handle)
    except (ValueError, OSError) as exc:
        raise LLMNotConfigured('corrupt %s: %s' % (path, exc)) from exc
    if not isinstance(data, dict):
        raise LLMNotConfigured('corrupt %s: not a JSON object' % path)
    return data


class OnnxCausalLM:
    """
    One decoder graph + tokenizer with a persistent KV cache (single conversation).

    ``provider``: 'cpu', 'cuda' or 'tensorrt' (TensorRT engines are cached in
    ``trt_cache_dir``; first build takes minutes).  ``max_context`` bounds prompt + reply
    tokens and sizes the cache buffers.  ``max_prompt`` is the longest chunk fed at once
    (also the TensorRT profile's max).  Prompts are prefilled in chunks of
    ``prefill_chunk`` tokens (at most ``max_prompt``; 0 = ``max_prompt``) with a cancel and
    deadline check between chunks, so a cancelled turn frees the engine within one chunk
    (a cancel also stops the chunk in flight, through ONNX Runtime's terminate flag); the
    chunks already fed stay cached and the next prompt reuses them.
    Not thread-safe: one generation at a time (starting a new one ends the previous one).
    """

    def __init__(self, model_dir, provider: str = 'cpu', trt_cache_dir: Optional[str] = None,
                 trt_fp16: bool = True, max_context: int = 4096,
                 intra_op_threads: Optional[int] = None, model_filename: str = 'model.onnx',
                 device_id: int = 0, max_prompt: int = 1024, prefill_chunk: int = 64) -> None:
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise LLMNotConfigured('LLM model directory %s does not exist' % self.model_dir)
        if max_context < 2 or max_prompt < 1:
            raise LLMNotConfigured('max_context must be >= 2 and max_prompt >= 1')
        self.config = _load_json(self.model_dir / 'config.json', required=True)
        self.generation_config = _load_json(self.model_dir / 'generation_config.json',
                                            required=False)
        graph_path = model_file(self.model_dir, model_filename)
        self.tokenizer = QwenTokenizer(self.model_dir)
        try:
            self.num_layers = int(self.config['num_hidden_layers'])
            heads = int(self.config['num_attention_heads'])
            self.num_kv_heads = int(self.config.get('num_key_value_heads') or heads)
            # Qwen3 sets head_dim explicitly (128 on 0.6B where hidden/heads is 64).
            self.head_dim = int(self.config.get('head_dim')
                                or int(self.config['hidden_size']) // heads)
            self.vocab_size = int(self.config['vocab_size'])
        except (KeyError, TypeError, ValueError) as exc:
            raise LLMNotConfigured('config.json in %s lacks %s' % (self.model_dir, exc)) \
                from exc
        self.model_type = str(self.config.get('model_type', 'qwen3'))
        self.template_flavor = chat_template.flavor_for_model_type(self.model_type)
        self.max_context = int(min(max_context,
                                   self.config.get('max_position_embeddings', max_context)))
        self.max_prompt = int(min(max_prompt, self.max_context))
        self.prefill_chunk = int(min(prefill_chunk, self.max_prompt)) if prefill_chunk > 0 \
            else self.max_prompt
        self.provider = provider

        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise LLMNotConfigured('the onnx LLM backend needs onnxruntime') from exc
        # TensorRT needs the inputs before the session exists (profiles); read them without
        # the weights.  Other providers check the live session's inputs below.
        declared = read_graph_inputs(graph_path) if provider == 'tensorrt' else None
        if declared is None:
            declared = expected_inputs_from_config(self.model_dir / 'config.json')
        describe_decoder(declared, self.num_kv_heads, self.head_dim)
        providers = session_providers(
            provider, inputs=declared,
            max_context=self.max_context, max_prompt=self.max_prompt,
            trt_cache_dir=trt_cache_dir, trt_fp16=trt_fp16, device_id=device_id,
            num_kv_heads=self.num_kv_heads, head_dim=self.head_dim)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = int(intra_op_threads or physical_cores())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(graph_path), sess_options=options,
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise LLMNotConfigured('cannot load ONNX graph %s: %s' % (graph_path, exc)) \
                from exc
        check_active_provider(provider, self.session.get_providers())
        layout = describe_decoder(inputs_from_session(self.session), self.num_kv_heads,
                                  self.head_dim)
        if layout.num_layers != self.num_layers:
            raise LLMNotConfigured('graph has %d cache layers, config.json says %d'
                                   % (layout.num_layers, self.num_layers))
        outputs = {o.name: o for o in self.session.get_outputs()}
        check_outputs(list(outputs), self.num_layers)
        self.has_position_ids = layout.has_position_ids
        self.kv_dtype = _NP_TYPES[layout.kv_type]
        logits_meta = outputs['logits']
        self.logits_dtype = _NP_TYPES.get(logits_meta.type, np.float32)
        # A graph trimmed to the last position (see decode_graph.py) has logits [b, 1, vocab].
        self.last_logits_only = len(logits_meta.shape) == 3 and logits_meta.shape[1] == 1
        graph_vocab = logits_meta.shape[-1]
        if isinstance(graph_vocab, int) and graph_vocab != self.vocab_size:
            raise LLMNotConfigured('graph vocab %d != config vocab %d'
                                   % (graph_vocab, self.vocab_size))
        self.past_names = ['past_key_values.%d.%s' % (layer, kind)
                           for layer in range(self.num_layers) for kind in ('key', 'value')]
        self.present_names = [present_output_name(n) for n in self.past_names]

        stops = self.generation_config.get('eos_token_id')
        stops = stops if isinstance(stops, list) else ([stops] if stops is not None else [])
        self.stop_token_ids = sorted(set(int(s) for s in stops) | set(self.tokenizer.stop_ids()))

        self._device = 'cpu' if provider == 'cpu' else 'cuda'
        self._device_id = device_id
        self._ort = ort
        # CPU truncates the cache with numpy; devices run a one-node Slice graph in place.
        self._graph_truncate = self._device != 'cpu'
        self._truncate_session = None
        # Serialises every graph run of this engine and of its forks (engine_pool): two
        # nodes in one process step one after the other, never concurrently on one session.
        self.run_lock = threading.RLock()
        self._init_cache_state()

    def _init_cache_state(self) -> None:
        """Create the per-conversation state: IO binding, KV buffers, cached ids."""
        self._io = self.session.io_binding()
        self._truncate_session = None
        self._allocate()
        self._cached: List[int] = []   # token ids whose keys/values sit in the cache
        self._owner = None              # the generation currently allowed to step
        self._run_options = None        # RunOptions of the prefill in progress (terminate)
        self.last_stats: Dict[str, object] = {}

    def fork(self, max_context: Optional[int] = None, max_prompt: Optional[int] = None,
             prefill_chunk: Optional[int] = None) -> 'OnnxCausalLM':
        """
        Return a second conversation on the same loaded graph: own KV cache, shared weights.

        The fork shares the session, tokenizer and ``run_lock``; it has its own cache
        buffers, IO binding and cached ids, so a reply cancelled on one fork (or a prompt
        that evicts its prefix) never touches the other's cache and prefix reuse.  Without
        arguments it keeps this engine's sizes; ``max_context`` / ``max_prompt`` are capped
        by the model's positions and, on TensorRT, by this engine's optimisation profile.
        """
        if self.session is None:
            raise LLMError('engine is closed')
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        limit = int(self.config.get('max_position_embeddings') or 0) or None
        if self.provider == 'tensorrt':  # the engine's profile fixes the largest shapes
            limit = self.max_context
        context = int(max_context or self.max_context)
        clone.max_context = int(min(context, limit)) if limit else context
        prompt = int(max_prompt or self.max_prompt)
        if self.provider == 'tensorrt':
            prompt = min(prompt, self.max_prompt)
        clone.max_prompt = int(min(prompt, clone.max_context))
        chunk = self.prefill_chunk if prefill_chunk is None else int(prefill_chunk)
        clone.prefill_chunk = int(min(chunk, clone.max_prompt)) if chunk > 0 \
            else clone.max_prompt
        clone._init_cache_state()
        return clone

    def close(self) -> None:
        """Drop this conversation's buffers and its reference to the session."""
        with self.run_lock:
            self.drop_cache()
            self.session = None

    def drop_cache(self) -> None:
        """Free the KV buffers (the pool's base engine only lends its session to forks)."""
        self._cached = []
        self._owner = None
        self._kv_sets = []
        self._kv_ptrs = []
        self._io = None
        self._truncate_session = None

    # -- buffers --------------------------------------------------------------------------
    def _allocate(self) -> None:
        per_layer = self.num_kv_heads * self.max_context * self.head_dim
        self._kv_sets = []
        self._kv_ptrs = []
        for _ in range(2):
            buffers, ptrs = [], []
            for _name in self.past_names:
                if self._device == 'cpu':
                    buf = np.zeros(per_layer, dtype=self.kv_dtype)
                    ptrs.append(buf.ctypes.data)
                else:
                    buf = self._ort.OrtValue.ortvalue_from_shape_and_type(
                        [per_layer], self.kv_dtype, 'cuda', self._device_id)
                    ptrs.append(buf.data_ptr())
                buffers.append(buf)
            self._kv_sets.append(buffers)
            self._kv_ptrs.append(ptrs)
        self._cur = 0
        self._ids_buf = np.zeros(self.max_prompt, dtype=np.int64)
        self._mask_buf = np.ones(self.max_context, dtype=np.int64)
        self._pos_buf = np.arange(self.max_context, dtype=np.int64)
        self._step_logits = np.zeros((1, 1, self.vocab_size), dtype=self.logits_dtype)

    @property
    def cached_ids(self) -> List[int]:
        """Token ids currently held in the KV cache (read-only copy)."""
        return list(self._cached)

    def reset(self) -> None:
        """Forget the cache (next prompt is prefilled from scratch)."""
        self._cached = []
        self._owner = None

    def _truncate(self, length: int) -> None:
        """Keep the first ``length`` cached positions."""
        old = len(self._cached)
        if length >= old:
            return
        if length > 0 and not self._graph_truncate:
            kv, hd = self.num_kv_heads, self.head_dim
            src_set, dst_set = self._kv_sets[self._cur], self._kv_sets[1 - self._cur]
            for src, dst in zip(src_set, dst_set):
                # [kv, old, hd] -> [kv, length, hd]: rows of every head are contiguous.
                dst[:kv * length * hd].reshape(kv, length, hd)[...] = \
                    src[:kv * old * hd].reshape(kv, old, hd)[:, :length]
            self._cur = 1 - self._cur
        elif length > 0:
            self._truncate_on_device(old, length)
        del self._cached[length:]

    def _truncate_on_device(self, old: int, length: int) -> None:
        """
        Copy the first ``length`` positions into the other buffer set, on the device.

        ORT's Python API has no strided device-to-device copy, so a tiny Slice graph does it
        with both ends bound to the cache buffers (the cache never visits the host).
        """
        ort = self._ort
        if self._truncate_session is None:
            import base64
            options = ort.SessionOptions()
            options.log_severity_level = 3
            providers = ['CPUExecutionProvider'] if self._device == 'cpu' else \
                [('CUDAExecutionProvider', {'device_id': str(self._device_id)}),
                 'CPUExecutionProvider']
            graph = base64.b64decode(_TRUNCATE_GRAPHS[np.dtype(self.kv_dtype)])
            self._truncate_session = ort.InferenceSession(graph, options, providers=providers)
        session = self._truncate_session
        io = session.io_binding()
        end = np.array([length], dtype=np.int64)
        io.bind_input('end', 'cpu', 0, np.int64, [1], end.ctypes.data)
        kv, hd = self.num_kv_heads, self.head_dim
        src, dst = self._kv_ptrs[self._cur], self._kv_ptrs[1 - self._cur]
        dev, dev_id, kv_type = self._device, self._device_id, self.kv_dtype
        for index in range(len(self.past_names)):
            io.bind_input('x', dev, dev_id, kv_type, [1, kv, old, hd], src[index])
            io.bind_output('y', dev, dev_id, kv_type, [1, kv, length, hd], dst[index])
            with self.run_lock:
                session.run_with_iobinding(io)
        self._cur = 1 - self._cur

    def _forward(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Run ``ids`` after the cache; return logits [m, vocab] (m = 1 or len(ids))."""
        if self.session is None:
            raise LLMError('engine is closed')
        n = len(ids)
        past = len(self._cached)
        if n < 1 or n > self.max_prompt:
            raise LLMError('chunk of %d tokens (max_prompt %d)' % (n, self.max_prompt))
        if past + n > self.max_context:
            raise LLMError('context full: %d cached + %d new > max_context %d'
                           % (past, n, self.max_context))
        io = self._io
        self._ids_buf[:n] = ids
        io.bind_input('input_ids', 'cpu', 0, np.int64, [1, n], self._ids_buf.ctypes.data)
        io.bind_input('attention_mask', 'cpu', 0, np.int64, [1, past + n],
                      self._mask_buf.ctypes.data)
        if self.has_position_ids:
            io.bind_input('position_ids', 'cpu', 0, np.int64, [1, n],
                          self._pos_buf.ctypes.data + past * self._pos_buf.itemsize)
        past_shape = [1, self.num_kv_heads, past, self.head_dim]
        present_shape = [1, self.num_kv_heads, past + n, self.head_dim]
        src, dst = self._kv_ptrs[self._cur], self._kv_ptrs[1 - self._cur]
        dev, dev_id, kv_type = self._device, self._device_id, self.kv_dtype
        for index, name in enumerate(self.past_names):
            io.bind_input(name, dev, dev_id, kv_type, past_shape, src[index])
            io.bind_output(self.present_names[index], dev, dev_id, kv_type, present_shape,
                           dst[index])
        rows = 1 if (n == 1 or self.last_logits_only) else n
        logits = self._step_logits if rows == 1 else \
            np.empty((1, rows, self.vocab_size), dtype=self.logits_dtype)
        io.bind_output('logits', 'cpu', 0, self.logits_dtype, [1, rows, self.vocab_size],
                       logits.ctypes.data)
        run_options = self._run_options
        try:
            with self.run_lock:
                if run_options is None:
                    self.session.run_with_iobinding(io)
                else:
                    self.session.run_with_iobinding(io, run_options)
        except Exception as exc:
            if run_options is not None and run_options.terminate:
                # Outputs went to the other buffer set and were not swapped in: the cache
                # still holds exactly self._cached.
                raise _Terminated() from exc
            self.reset()
            raise LLMError('decoder step failed: %s' % exc) from exc
        self._cur = 1 - self._cur
        self._cached.extend(int(i) for i in ids)
        out = logits[0]
        return out if all_logits else out[-1:]

    def _prefill(self, prompt_ids: Sequence[int],
                 interrupted: Optional[Callable[[], Optional[str]]] = None
                 ) -> Optional[np.ndarray]:
        """
        Bring the cache to ``prompt_ids`` (reusing a shared prefix); return last logits.

        Feeds ``prefill_chunk`` tokens at a time; before each chunk ``interrupted()`` may
        return a reason, and then the prefill stops (``last_stats['stop_reason']``) and
        returns None, leaving the chunks fed so far in the cache.
        """
        if len(prompt_ids) >= self.max_context:
            raise LLMError('prompt of %d tokens does not fit max_context %d'
                           % (len(prompt_ids), self.max_context))
        common = 0
        limit = min(len(self._cached), len(prompt_ids) - 1)
        cached = self._cached
        while common < limit and cached[common] == prompt_ids[common]:
            common += 1
        self._truncate(common)
        self.last_stats['reused_tokens'] = len(self._cached)
        rest = list(prompt_ids[len(self._cached):])
        logits = None
        chunk = self.prefill_chunk
        for start in range(0, len(rest), chunk):
            reason = interrupted() if interrupted is not None else None
            if reason:
                self.last_stats['stop_reason'] = reason
                return None
            try:
                logits = self._forward(rest[start:start + chunk])
            except _Terminated:
                self.last_stats['stop_reason'] = \
                    (interrupted() if interrupted is not None else None) or 'cancelled'
                return None
        return np.array(logits[-1], dtype=np.float32)

    # -- public API -----------------------------------------------------------------------
    def generate_ids(self, prompt_ids: Sequence[int],
                     options: Optional[GenerationOptions] = None,
                     cancel: Optional[threading.Event] = None,
                     stop_token_ids: Optional[Sequence[int]] = None,
                     deadline: Optional[float] = None,
                     request_ids: Optional[Sequence[int]] = None) -> Iterator[int]:
        """
        Yield generated token ids (stop token excluded) for ``prompt_ids``.

        ``request_ids`` (the last user message's tokens): with
        ``options.request_ngram_block = n > 0`` the reply never repeats an n-gram of them
        (see :class:`~qwen_voice_ros.llm.sampling.NgramBlocker`).

        Stops on a stop id (default <|im_end|>, <|endoftext|> and generation_config's
        eos), ``options.max_new_tokens``, a full context, ``deadline`` (time.monotonic),
        or ``cancel`` — checked between prefill chunks and before every decode step, so at
        most the decode step in flight finishes; a prefill chunk in flight is stopped by
        ONNX Runtime's terminate flag (a watcher thread sets it when ``cancel`` is set).
        ``last_stats`` tells why it stopped and how long it took.
        """
        options = options or GenerationOptions()
        prompt_ids = [int(i) for i in prompt_ids]
        if not prompt_ids:
            raise LLMError('empty prompt')
        sampler = Sampler.from_options(options)
        stops = set(self.stop_token_ids if stop_token_ids is None else stop_token_ids)
        owner = object()
        self._owner = owner
        self.last_stats = stats = {'prompt_tokens': len(prompt_ids), 'new_tokens': 0,
                                   'stop_reason': 'max_new_tokens'}

        def interrupted() -> Optional[str]:
            if cancel is not None and cancel.is_set():
                return 'cancelled'
            if self._owner is not owner:  # another generate/score call took the cache
                return 'superseded'
            return None

        def prefill_interrupted() -> Optional[str]:
            reason = interrupted()
            if reason is None and deadline is not None and time.monotonic() > deadline:
                reason = 'timeout'
            return reason

        start = time.perf_counter()
        # A cancel also stops the chunk in flight (RunOptions.terminate), not only the next.
        watcher = _CancelWatcher(cancel, self._ort.RunOptions()) if cancel is not None \
            else None
        self._run_options = watcher.run_options if watcher is not None else None
        try:
            logits = self._prefill(prompt_ids, prefill_interrupted)
        finally:
            self._run_options = None
            if watcher is not None:
                watcher.stop()
        stats['prefill_s'] = time.perf_counter() - start
        if logits is None:  # cancelled between prefill chunks; stop_reason is set
            stats['decode_s'] = 0.0
            return
        seen = list(prompt_ids) if sampler.repetition_penalty != 1.0 else ()
        block_n = int(getattr(options, 'request_ngram_block', 0) or 0)
        blocker = NgramBlocker(request_ids, block_n, exempt=stops) \
            if block_n > 0 and request_ids else None
        out: List[int] = []
        decode_start = time.perf_counter()

        try:
            for step in range(int(options.max_new_tokens)):
                reason = interrupted()
                if reason is None and deadline is not None and time.monotonic() > deadline:
                    reason = 'timeout'
                if reason:
                    stats['stop_reason'] = reason
                    break
                token = sampler(logits, seen, blocker.banned(out) if blocker else ())
                if step == 0:
                    stats['ttft_s'] = time.perf_counter() - start
                if token in stops:
                    stats['stop_reason'] = 'stop_token'
                    break
                stats['new_tokens'] = step + 1
                yield token
                if step + 1 >= options.max_new_tokens:
                    break
                reason = interrupted()
                if reason:
                    stats['stop_reason'] = reason
                    break
                if len(self._cached) + 1 > self.max_context:
                    stats['stop_reason'] = 'context_full'
                    break
                if seen:
                    seen.append(token)
                out.append(token)
                logits = self._forward([token])[-1]
        finally:  # also when the consumer closes the generator early
            stats['decode_s'] = time.perf_counter() - decode_start

    def generate(self, prompt_ids: Sequence[int], options: Optional[GenerationOptions] = None,
                 **kwargs) -> List[int]:
        """All generated ids as a list (convenience over :meth:`generate_ids`)."""
        return list(self.generate_ids(prompt_ids, options, **kwargs))

    def encode_chat(self, messages: List[Message], enable_thinking: bool = False,
                    add_generation_prompt: bool = True) -> List[int]:
        """Token ids of the rendered chat prompt."""
        text = chat_template.render_chat(messages, add_generation_prompt=add_generation_prompt,
                                         enable_thinking=enable_thinking,
                                         flavor=self.template_flavor)
        return self.tokenizer.encode(text)

    def score_continuations(self, messages: List[Message], continuations: Sequence[str],
                            enable_thinking: bool = False) -> List[float]:
        """
        Total log-probability (natural log) of each text as the assistant's reply.

        The prompt is ``messages`` rendered with the generation prompt (non-thinking mode by
        default), shared by all continuations through the cache.  An empty continuation
        scores 0.0.  Higher is more likely; compare continuations of similar token length or
        normalise by :meth:`QwenTokenizer.encode` length.
        """
        prompt = self.encode_chat(messages, enable_thinking=enable_thinking)
        self._owner = object()
        self.last_stats = {}
        scores = []
        for text in continuations:
            ids = self.tokenizer.encode(text)
            if not ids:
                scores.append(0.0)
                continue
            if len(prompt) + len(ids) > self.max_context:
                raise LLMError('prompt + continuation exceed max_context %d' % self.max_context)
            total = float(log_softmax(self._prefill(prompt))[ids[0]])
            body = ids[:-1]
            if not self.last_logits_only:
                for start in range(0, len(body), self.max_prompt):
                    chunk = body[start:start + self.max_prompt]
                    rows = log_softmax(self._forward(chunk, all_logits=True))
                    targets = ids[start + 1:start + 1 + len(chunk)]
                    total += float(rows[np.arange(len(chunk)), targets].sum())
            else:
                for index, token in enumerate(body):
                    row = log_softmax(self._forward([token])[-1])
                    total += float(row[ids[index + 1]])
            scores.append(total)
        return scores


class OnnxChatBackend(ChatBackend):
    """The default chat backend: :class:`OnnxCausalLM` behind :class:`ChatBackend`."""

    name = 'onnx'

    # Parameters the llm node declares as onnx.<name> (core.params); '' / 0 = the default.
    PARAMS = (
        Param('model_dir', '', 'a qwen-voice-export output directory (docs/llm_export.md)'),
        Param('provider', 'cpu', 'ONNX Runtime execution provider',
              choices=('tensorrt', 'cuda', 'cpu')),
        Param('trt_cache_dir', '', 'TensorRT engine cache directory ("" = next to the model)'),
        Param('trt_fp16', True, 'TensorRT: build FP16 engines'),
        Param('max_context', 4096, 'KV cache length in tokens (prompt + reply)',
              min=256, max=131072),
        Param('intra_op_threads', 0, 'ONNX Runtime threads (0 = physical cores)', min=0, max=256),
        Param('device_id', 0, 'GPU index (cuda/tensorrt)', min=0, max=64),
        Param('max_prompt', 1024, 'longest prompt chunk fed at once (tokens)', min=1,
              max=131072),
        Param('prefill_chunk', 64, 'prompt tokens per prefill call; a cancel is seen between '
              'chunks (0 = max_prompt)', min=0, max=131072),
    )

    def __init__(self, model_dir, provider: str = 'cpu', trt_cache_dir: Optional[str] = None,
                 trt_fp16: bool = True, max_context: int = 4096,
                 intra_op_threads: Optional[int] = None, model_filename: str = 'model.onnx',
                 device_id: int = 0, max_prompt: int = 1024, prefill_chunk: int = 64) -> None:
        if not model_dir:
            raise LLMNotConfigured('onnx backend needs model_dir (a qwen-voice-export output '
                                   'directory); see docs/llm_export.md')
        trt_cache_dir = trt_cache_dir or None
        intra_op_threads = intra_op_threads or None
        self._kwargs = dict(provider=provider, trt_cache_dir=trt_cache_dir, trt_fp16=trt_fp16,
                            max_context=max_context, intra_op_threads=intra_op_threads,
                            model_filename=model_filename, device_id=device_id,
                            max_prompt=max_prompt, prefill_chunk=prefill_chunk)
        self.model_dir = model_dir
        self.engine: Optional[OnnxCausalLM] = None
        self._tokenizer: Optional[QwenTokenizer] = None

    def load(self) -> None:
        if self.engine is None:
            # Through the process-wide pool: a dialect node in the same process scoring with
            # the same model shares this session (docs/llm.md, "One engine per process").
            from qwen_voice_ros.llm import engine_pool
            self.engine = engine_pool.acquire(self.model_dir, **self._kwargs)
            self._tokenizer = self.engine.tokenizer

    def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            from qwen_voice_ros.llm import engine_pool
            engine_pool.release(engine)

    def _require(self) -> OnnxCausalLM:
        if self.engine is None:
            self.load()
        assert self.engine is not None
        return self.engine

    def fit_messages(self, messages: List[Message], options: GenerationOptions) -> List[int]:
        """Prompt ids, dropping the oldest non-system turns until prompt + reply fit."""
        engine = self._require()
        budget = engine.max_context - max(1, int(options.max_new_tokens))
        kept = list(messages)
        while True:
            ids = engine.encode_chat(kept, enable_thinking=options.enable_thinking)
            if len(ids) <= budget:
                return ids
            first = 1 if kept and kept[0].get('role') == 'system' else 0
            if len(kept) - first <= 1:
                raise LLMError('the last message alone (%d tokens) exceeds the context budget '
                               '%d; shorten it or raise max_context' % (len(ids), budget))
            del kept[first]

    def stream_chat(self, messages: List[Message], options: GenerationOptions,
                    cancel: Optional[threading.Event] = None) -> Iterator[str]:
        engine = self._require()
        prompt = self.fit_messages(messages, options)
        decoder = IncrementalDecoder(engine.tokenizer, skip_special_tokens=True)
        deadline = time.monotonic() + options.timeout_s if options.timeout_s else None
        users = [m.get('content', '') for m in messages if m.get('role') == 'user']
        request = engine.tokenizer.encode(users[-1]) if users else None
        limit = SentenceLimit(int(getattr(options, 'max_sentences', 0) or 0))
        tokens = engine.generate_ids(prompt, options, cancel=cancel, deadline=deadline,
                                     request_ids=request)
        for token in tokens:
            delta = limit.feed(decoder.push(token))
            if delta:
                yield delta
            if limit.done:
                tokens.close()
                engine.last_stats['stop_reason'] = 'max_sentences'
                return
        if not (cancel is not None and cancel.is_set()):
            tail = limit.feed(decoder.flush())
            if tail:
                yield tail

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            self._tokenizer = QwenTokenizer(self.model_dir)
        return len(self._tokenizer.encode(text))

    def score_continuations(self, messages: List[Message],
                            continuations: Sequence[str]) -> List[float]:
        return self._require().score_continuations(messages, continuations)
