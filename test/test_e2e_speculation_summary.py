"""The e2e report's speculation summary: withdrawn speculative turns are not requests."""
import pytest

pytest.importorskip('rosbags')  # qwen_voice_ros.stack.e2e reads bags (Python >= 3.10)


def test_e2e_summary_counts_withdrawn_speculative_turns_apart_from_requests():
    from qwen_voice_ros.core.events import make_event
    from qwen_voice_ros.stack.e2e import speculation_of_events

    def ev(turn, stage, node, **kw):
        return make_event(turn, stage, node, 10.0, 9.0, **kw)
    events = [
        ev('a', 'speech_start', '/hearing'),
        ev('a', 'speculative_transcript', '/hearing', text='今天', speculative=True),
        ev('a', 'cancelled', '/hearing', speculative=True, detail={'reason': 'speech resumed'}),
        ev('a', 'cancelled', '/llm', speculative=True, detail={'reason': 'x'}),
        ev('b', 'speculative_transcript', '/hearing', text='今天天气', speculative=True),
        ev('b', 'utterance', '/hearing'),
        ev('b', 'transcript', '/hearing', text='今天天气', detail={'confirms_speculative': True}),
        ev('b', 'reply', '/llm', text='好。', detail={
            'first_sentence_held_s': 0.0, 'reused_tokens': 212, 'prompt_tokens': 221}),
    ]
    summary = speculation_of_events(events)
    assert summary['user_turns'] == 1
    assert (summary['speculative_announced_turns'], summary['speculative_confirmed_turns'],
            summary['speculative_withdrawn_turns']) == (2, 1, 1)
    assert summary['first_sentence_held_s'] == [0.0]
    assert summary['reused_tokens'] == [212] and summary['prompt_tokens'] == [221]
