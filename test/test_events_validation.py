"""One validation point for incoming events (issue 8): the hand cases and a fuzz of decode()."""
import json
import os
import time

import pytest

from qwen_voice_ros.core import events
from qwen_voice_ros.core.turns import TurnTracker

try:
    from hypothesis import given, strategies as st
    from fuzz_support import fuzz_settings
except ImportError:  # pragma: no cover - hypothesis is in requirements/dev
    given = None

GOOD = events.make_event('t-3f2a9c-0007', 'transcript', '/voice/hearing', 1.7e9, 1.7e9 - 0.5,
                         text='帮我拿水', seq=0, final=True,
                         dialect={'label': 'sichuanese', 'scores': {'sichuanese': 0.8},
                                  'confidence': 0.8, 'stage': 'fast'},
                         detail={'backend': 'x', 'timings': [1, 2, {'a': 3}]})


def with_(**changes):
    event = dict(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            event.pop(key, None)
        else:
            event[key] = value
    return json.dumps(event, ensure_ascii=False)


def raw_with(key, raw):
    """Replace one key's value by raw JSON text (numbers JSON can hold but Python may not)."""
    event = dict(GOOD)
    event[key] = '@@'
    return json.dumps(event, ensure_ascii=False).replace('"@@"', raw)


# The hand cases of issue 8 plus our own: every one is an EventError, nothing else.
HAND_CASES = {
    'turn_id list': with_(turn_id=['t-1']),
    'turn_id dict': with_(turn_id={'a': 1}),
    'turn_id empty': with_(turn_id=''),
    'turn_id huge': with_(turn_id='t' * 65),
    'turn_id newline': with_(turn_id='t-1\n'),
    'dialect string': with_(dialect='sichuanese'),
    'dialect list': with_(dialect=['sichuanese']),
    'dialect label unknown word': with_(dialect={'label': 'klingon'}),
    'dialect label int': with_(dialect={'label': 3}),
    'dialect scores NaN-free but not numbers': with_(dialect={'label': 'henan',
                                                              'scores': {'henan': 'x'}}),
    'stamp string': with_(stamp='1.7e9'),
    'stamp null': with_(stamp=None),
    'stamp bool': with_(stamp=True),
    'stamp 400 digits': raw_with('stamp', '9' * 400),
    'stamp 1e400': raw_with('stamp', '1e400'),
    'stamp NaN': raw_with('stamp', 'NaN'),
    'stamp negative': with_(stamp=-1.0),
    'turn_stamp 1e12': with_(turn_stamp=1e12),
    'turn_stamp Infinity': raw_with('turn_stamp', 'Infinity'),
    'seq string': with_(seq='1'),
    'seq negative': with_(seq=-1),
    'seq float': with_(seq=1.5),
    'seq huge': with_(seq=10 ** 30),
    'final string': with_(final='yes'),
    'speculative string': with_(speculative='true'),
    'speculative int': with_(speculative=1),
    'speculative null': with_(speculative=None),
    'text list': with_(text=['a']),
    'text too long': with_(text='字' * (events.MAX_TEXT_CHARS + 1)),
    'text lone surrogate': with_(text='\ud800'),
    'detail list': with_(detail=[1]),
    'detail too big': with_(detail={'x': 'a' * events.MAX_DETAIL_CHARS}),
    'stage unknown': with_(stage='nope'),
    'stage list': with_(stage=['transcript']),
    'schema other': with_(schema='v2'),
    'node int': with_(node=3),
    'missing turn_id': with_(turn_id=KeyError),
    'duration negative': with_(duration_s=-1),
    '100k-deep list': '[' * 100000 + ']' * 100000,
    '100k-deep object': '{"a":' * 100000 + '1' + '}' * 100000,
    '30k-deep (under the size cap)': '[' * 30000,
    'deep inside detail': raw_with('detail', '{"a":' + '[' * 20 + ']' * 20 + '}'),
    'not JSON': '{nope',
    'JSON list': '[1, 2]',
    'JSON string': '"x"',
    'empty': '',
    'huge': ' ' * (events.MAX_EVENT_CHARS + 1),
    'bytes not UTF-8': b'\xff\xfe',
    'None': None,
    'int': 5,
}


def test_a_good_event_passes_and_numbers_become_floats():
    event = events.decode(json.dumps(GOOD, ensure_ascii=False))
    assert event['turn_id'] == 't-3f2a9c-0007' and event['text'] == '帮我拿水'
    int_stamp = events.decode(with_(stamp=1700000000))
    assert isinstance(int_stamp['stamp'], float)
    # optional keys may be null (what a node with no dialect yet publishes)
    assert events.decode(with_(dialect={'label': None}))['dialect'] == {'label': None}
    assert 'dialect' not in events.decode(with_(dialect=None))
    assert events.decode(with_(unknown_key=[1, 2]))['unknown_key'] == [1, 2]  # ignored


@pytest.mark.parametrize('name', sorted(HAND_CASES))
def test_hand_case_is_rejected_quickly(name):
    start = time.perf_counter()
    with pytest.raises(events.EventError):
        events.decode(HAND_CASES[name])
    assert time.perf_counter() - start < 0.5  # no deep recursion, no hang


def test_every_stage_a_node_emits_validates():
    for stage in events.STAGES:
        event = events.make_event('t-a-0001', stage, '/n', 12.5, 12.0, text='好', seq=3,
                                  final=False, duration_s=0.5, error='x', detail={'k': 1})
        assert events.decode(events.encode(event))['stage'] == stage


def test_speculative_is_a_strict_bool_and_marks_the_unconfirmed_transcript_stage():
    event = events.make_event('t-a-0002', 'speculative_transcript', '/hearing', 12.4, 12.0,
                              text='今天天气怎么样', speculative=True, detail={'asr_s': 0.2})
    decoded = events.decode(events.encode(event))
    assert decoded['stage'] == 'speculative_transcript' and decoded['speculative'] is True
    assert events.decode(with_(speculative=False))['speculative'] is False
    # The confirmed stage stays 'transcript': readers that ignore unknown stages never take a
    # speculative text for a confirmed one.
    assert 'speculative_transcript' in events.STAGES and 'transcript' in events.STAGES


def test_dialect_labels_match_the_classifier():
    from qwen_voice_ros.dialect.markers import DIALECT_LABELS
    assert events.DIALECT_LABELS == DIALECT_LABELS


def test_foreign_stamp_cannot_make_later_turns_stale():
    now = [100.0]
    tracker = TurnTracker(clock=lambda: now[0])
    tracker.observe('t-evil', 1e12)
    now[0] += 1.0
    assert tracker.observe('t-next', now[0] - 0.1)
    assert not tracker.is_stale('t-next') and tracker.is_stale('t-evil')
    tracker.observe('t-inf', float('inf'))
    now[0] += 1.0
    assert tracker.observe('t-after', now[0])
    assert not tracker.is_stale('t-after')


FUZZED = {'decode_cases': 0}


@pytest.fixture(scope='module', autouse=True)
def _fuzz_report():
    yield
    report = os.environ.get('QWEN_VOICE_FUZZ_REPORT', '')
    if report and FUZZED['decode_cases']:
        with open(report, 'a', encoding='utf-8') as f:
            f.write(json.dumps({'node': 'events.decode', 'messages': FUZZED['decode_cases'],
                                'counters': {}}) + '\n')


if given is not None:
    _scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                        st.text(max_size=20))
    _json = st.recursive(_scalar, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=20)
    _keys = st.sampled_from(list(GOOD) + ['dialect', 'x'])

    @fuzz_settings(3000)
    @given(st.dictionaries(_keys, _json, max_size=6), st.booleans())
    def test_fuzz_decode_only_raises_event_error(changes, drop):
        FUZZED['decode_cases'] += 1
        event = dict(GOOD)
        event.update(changes)
        if drop and changes:
            event.pop(next(iter(changes)))
        try:
            data = json.dumps(event, ensure_ascii=False)
        except ValueError:
            return
        try:
            decoded = events.decode(data)
        except events.EventError:
            return
        # anything accepted is what consumers rely on
        assert isinstance(decoded['turn_id'], str) and decoded['stage'] in events.STAGES
        for key in ('stamp', 'turn_stamp', 'latency_s', 'duration_s'):
            if key in decoded:
                assert isinstance(decoded[key], float)
        if 'seq' in decoded:
            assert isinstance(decoded['seq'], int) and decoded['seq'] >= 0
        if 'dialect' in decoded:
            assert isinstance(decoded['dialect'], dict)

    @fuzz_settings(1000)
    @given(st.text(max_size=300))
    def test_fuzz_decode_random_text(text):
        FUZZED['decode_cases'] += 1
        try:
            events.decode(text)
        except events.EventError:
            pass
