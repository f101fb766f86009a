"""The fused export's tied-table check reads single and sharded safetensors checkpoints.

A GGUF dequantised by transformers stores the tied embedding twice; the 1.5B offline pack is
saved in two shards (over 5 GB in fp32), and before this check read the shard index the
1.5B export kept an fp32 embedding plus a separate INT4 LM head (1.94 GB instead of ~1 GB).
"""
import json

import numpy as np
import pytest

from qwen_voice_ros.llm.export.fused_builder import untied_copy_difference

safetensors_numpy = pytest.importorskip('safetensors.numpy')


def _tables(seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    embed = rng.standard_normal((64, 16)).astype(np.float32)
    return embed, embed + noise * rng.standard_normal(embed.shape).astype(np.float32)


def test_single_file_checkpoint(tmp_path):
    embed, head = _tables()
    safetensors_numpy.save_file({'model.embed_tokens.weight': embed, 'lm_head.weight': head},
                                str(tmp_path / 'model.safetensors'))
    diff = untied_copy_difference(tmp_path)
    assert diff == pytest.approx(float(np.max(np.abs(embed - head)) / np.max(np.abs(embed))))


def test_sharded_checkpoint_reads_both_tables_through_the_index(tmp_path):
    embed, head = _tables()
    other = np.zeros((4, 4), np.float32)
    safetensors_numpy.save_file({'model.embed_tokens.weight': embed, 'x': other},
                                str(tmp_path / 'model-00001-of-00002.safetensors'))
    safetensors_numpy.save_file({'lm_head.weight': head},
                                str(tmp_path / 'model-00002-of-00002.safetensors'))
    (tmp_path / 'model.safetensors.index.json').write_text(json.dumps({'weight_map': {
        'model.embed_tokens.weight': 'model-00001-of-00002.safetensors', 'x':
        'model-00001-of-00002.safetensors',
        'lm_head.weight': 'model-00002-of-00002.safetensors'}}))
    diff = untied_copy_difference(tmp_path)
    assert diff is not None and diff < 0.05
    # distinct tables are told apart
    safetensors_numpy.save_file({'lm_head.weight': _tables(seed=1)[0]},
                                str(tmp_path / 'model-00002-of-00002.safetensors'))
    assert untied_copy_difference(tmp_path) > 0.5


def test_no_lm_head_or_no_checkpoint(tmp_path):
    assert untied_copy_difference(tmp_path) is None
    safetensors_numpy.save_file({'model.embed_tokens.weight': _tables()[0]},
                                str(tmp_path / 'model.safetensors'))
    assert untied_copy_difference(tmp_path) is None
