"""bench/dialogue_turns.py's counting, on a hand-made event log (no ROS)."""
from __future__ import annotations

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    'dialogue_turns', os.path.join(HERE, '..', 'bench', 'dialogue_turns.py'))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def ev(stage, turn_id, stamp, node='/llm', **kw):
    kw.update(stage=stage, turn_id=turn_id, stamp=stamp, node=node)
    return kw


def test_counts_splits_outcomes_and_cancel_latency():
    texts = bench.turn_texts(3)
    assert len(set(texts)) == 3
    published = [100.0, 104.0, 108.0]
    events = [
        ev('transcript', 'a', 100.3, '/dialect', text=texts[0]),
        ev('dialect', 'a', 100.31, '/dialect'),
        ev('transcript', 'b', 104.3, '/dialect', text=texts[1]),
        ev('transcript', 'b2', 104.6, '/llm', text=texts[1]),      # a split turn
        ev('dialect', 'b', 104.31, '/dialect'),
        ev('cancelled', 'a', 104.4, detail={'superseded_by': 'b'}),
        ev('reply', 'b', 106.0),
        ev('playback', 'b', 106.5, '/playback', seq=0),
        ev('transcript', 'c', 108.3, '/dialect', text=texts[2]),
    ]
    out = bench.analyse(texts, published, events)
    assert out['turns'] == 3 and out['turns_announced'] == 3
    assert out['turns_with_dialect'] == 2 and out['turns_with_llm_outcome'] == 2
    assert out['split_turn_ids'] == 1 and out['llm_cancelled'] == 1
    assert out['cancel_latency_p95_s'] == 0.1 and out['cancel_after_publish_p95_s'] == 0.4
    assert out['turns_played'] == 1


def test_percentile_nearest_rank():
    assert bench.percentile([], 95) is None
    values = list(range(1, 101))
    assert bench.percentile(values, 50) == 50 and bench.percentile(values, 95) == 95
    assert bench.percentile([3.0], 95) == 3.0
