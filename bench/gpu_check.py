"""Check the ONNX engine on a GPU: CUDA EP (IO binding, device KV cache) against the CPU EP.

Run on a machine with onnxruntime-gpu (bench/gpu_check.py MODEL_DIR [MODEL_DIR ...]).  For
each model: greedy tokens from the CPU and CUDA providers must be equal (prompt, then a second
chat turn reusing the cache); decode tok/s and prefill time are printed for both; the
TensorRT EP is tried and its result (or why it can't run) reported.  Last line: JSON.
"""
import json
import sys
import time

from qwen_voice_ros.llm.base import GenerationOptions
from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM


def run(engine, prompt, n):
    options = GenerationOptions(max_new_tokens=n, temperature=0.0)
    start = time.perf_counter()
    first = None
    out = []
    for token in engine.generate_ids(prompt, options, stop_token_ids=[]):
        if first is None:
            first = time.perf_counter()
        out.append(token)
    end = time.perf_counter()
    decode_s = end - first if first else 0.0
    return out, (first - start if first else 0.0), (len(out) - 1) / decode_s if decode_s else 0.0


def check(model_dir, new_tokens=64):
    result = {'model': model_dir}
    engines = {}
    for provider in ('cpu', 'cuda', 'tensorrt'):
        try:
            t = time.perf_counter()
            engines[provider] = OnnxCausalLM(model_dir, provider=provider, max_context=1024,
                                             trt_cache_dir='/tmp/trt_cache')
            result[provider + '_load_s'] = round(time.perf_counter() - t, 2)
            result[provider + '_providers'] = engines[provider].session.get_providers()
        except Exception as exc:  # report why a provider can't run here
            result[provider + '_error'] = str(exc)[:300]
    tok = engines['cpu'].tokenizer
    prompt = tok.encode('<|im_start|>user\n你好，请介绍一下你自己。<|im_end|>\n'
                        '<|im_start|>assistant\n')
    tokens = {}
    for provider, engine in engines.items():
        ids, ttft, tps = run(engine, prompt, new_tokens)
        follow = prompt + ids + tok.encode('<|im_end|>\n<|im_start|>user\n再说一遍。<|im_end|>\n'
                                           '<|im_start|>assistant\n')
        ids2, ttft2, tps2 = run(engine, follow, 32)
        reused = engine.last_stats.get('reused_tokens')
        # Timing: a warm second pass of the first prompt (cache reset).
        engine.reset()
        _ids, ttft, tps = run(engine, prompt, new_tokens)
        tokens[provider] = (ids, ids2)
        result[provider] = {'ttft_ms': round(ttft * 1e3, 2), 'decode_tok_s': round(tps, 1),
                            'turn2_reused_tokens': reused, 'turn2_ttft_ms': round(ttft2 * 1e3, 2)}
    for provider in tokens:
        if provider != 'cpu':
            result[provider + '_tokens_match_cpu'] = tokens[provider] == tokens['cpu']
    return result


def main():
    import onnxruntime
    # onnxruntime-gpu >= 1.21 can load CUDA/cuDNN from the nvidia-* pip packages.
    getattr(onnxruntime, 'preload_dlls', lambda: None)()
    results = [check(d) for d in sys.argv[1:]]
    for r in results:
        print(json.dumps(r, ensure_ascii=False, indent=1))
    print(json.dumps(results, ensure_ascii=False))


if __name__ == '__main__':
    main()
