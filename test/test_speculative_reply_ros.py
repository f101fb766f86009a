"""
Speculative reply through the running nodes: speech that resumes inside the VAD hangover.

A request is voiced with the offline Kokoro pack in two halves with a pause between them
that is longer than the speculative-ASR wait (200 ms) and shorter than the hangover, and
replayed as microphone audio into hearing (Silero + offline Whisper-base) -> dialect -> llm
(the test's OpenAI-compatible server, which records every prompt) -> tts (espeak-ng) ->
playback (null sink, real time).  The first half's transcript is announced speculatively and
the llm starts on it; the second half withdraws it.  Checked on the recorded events:

* the first turn ends with the hearing node's ``cancelled`` (``speculative: true``, the
  reason) and the llm's ``cancelled``; not one sentence, tts chunk or played sample of it;
* the whole request is the next turn: speculative then confirmed under one turn id, and
  answered; its first sentence comes after its confirming transcript;
* the withdrawn text never reaches the conversation (the last prompt has no user message
  with it).

The pause and the hangover are longer than the defaults (2.4 s inside a 4 s hangover) so
that Whisper finishes inside the pause on a loaded machine as well (1.6 s passed 5 of 6
runs at load 8-13).  Skips without the packs.
"""
import subprocess
import sys

import pytest

pytest.importorskip('faster_whisper')
pytest.importorskip('audio_common_msgs')

import ros_harness  # noqa: E402
from llm_server import ChatServer  # noqa: E402

from qwen_voice_ros.replay import speech_bag  # noqa: E402

FIRST, SECOND = '今天天气很好', '我们下午去公园散步吧'


def whisper_pack_or_skip():
    from qwen_voice_ros.asr import offline_pack
    if not offline_pack.is_ready() and not offline_pack.parts_installed():
        pytest.skip('offline Whisper pack not installed (requirements/offline-speech-pack.txt)')
    return offline_pack.ensure_pack()


def test_speech_resuming_in_the_hangover_cancels_the_speculative_turn(tmp_path):
    asr_dir = whisper_pack_or_skip()
    reason = speech_bag.kokoro_unavailable()
    if reason:
        pytest.skip('Kokoro pack unavailable: %s' % reason)
    bag = tmp_path / 'speech'
    clips = [speech_bag.voice(FIRST, 'kokoro', 'jf_alpha'),
             speech_bag.voice(SECOND, 'kokoro', 'jf_alpha')]
    speech_bag.write_speech_bag(str(bag), clips, lead_s=0.5, gap_s=2.4, tail_s=7.0)
    hearing = {'faster_whisper.model_dir': asr_dir, 'vad_backend': 'silero',
               'min_silence_ms': 4000, 'speculative_silence_ms': 200}
    playback = {'sink': 'null', 'realtime': True}
    with ChatServer() as server, ros_harness.text_graph(server.url, extra_nodes=[
            ('qwen_voice_ros.nodes.hearing_node', hearing),
            ('qwen_voice_ros.nodes.playback_node', playback)]) as (probe, env):
        replay = subprocess.run(
            [sys.executable, '-m', 'qwen_voice_ros.replay.cli', str(bag),
             '--wait-for-subscribers', '1', '--json'],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr[-3000:]

        def turn_played():
            return any(e['stage'] == 'playback' and e.get('final') for e in probe.events())
        probe.wait_for(turn_played, 60, 'the whole request answered and played')
        events = probe.events()
        audio_ids = [m.header.frame_id for m in probe.messages('tts/audio')]
    log = '\n'.join('%s %-22s %-10s %s %s' % (
        e['turn_id'], e['stage'], e['node'], e.get('text', ''), e.get('detail', ''))
        for e in events)

    def of(turn_id, stage, node=None):
        return [e for e in events if e['turn_id'] == turn_id and e['stage'] == stage
                and (node is None or e['node'] == node)]

    announced = [e for e in events if e['stage'] == 'speculative_transcript']
    assert len(announced) >= 2, 'the first half was not announced in the pause:\n' + log
    first, whole = announced[0]['turn_id'], announced[-1]['turn_id']
    assert first != whole and all(e.get('speculative') is True for e in announced), log
    # The first turn: withdrawn by the hearing node with the reason, cancelled by the llm.
    withdrawn = of(first, 'cancelled', '/hearing')
    assert len(withdrawn) == 1 and withdrawn[0]['speculative'] is True, log
    assert 'speech resumed' in withdrawn[0]['detail']['reason'], log
    llm_cancel = of(first, 'cancelled', '/llm')
    assert len(llm_cancel) == 1 and llm_cancel[0]['speculative'] is True, log
    # Not one sentence, chunk or sample of it: nothing downstream ever heard of it.
    for stage in ('transcript', 'utterance', 'reply_sentence', 'reply', 'tts_audio',
                  'playback_start', 'playback'):
        assert of(first, stage) == [], '%s of the withdrawn turn:\n%s' % (stage, log)
    assert first not in audio_ids
    # The whole request: one turn id from the speculative to the confirmed transcript.
    confirmed = of(whole, 'transcript', '/hearing')
    assert len(confirmed) == 1, log
    assert confirmed[0]['detail']['confirms_speculative'] is True, log
    assert confirmed[0]['text'] == announced[-1]['text'], log
    assert len(confirmed[0]['text']) > len(announced[0]['text']), log
    sentences = of(whole, 'reply_sentence', '/llm')
    assert sentences and min(e['stamp'] for e in sentences) >= confirmed[0]['stamp'], log
    assert of(whole, 'playback_start') and of(whole, 'reply')[0]['detail']['speculative'], log
    assert of(whole, 'cancelled') == [], log
    # The withdrawn half never became a user message of the conversation.
    last_prompt = server.requests[-1]['messages']
    users = [m['content'] for m in last_prompt if m['role'] == 'user']
    assert users[-1] == confirmed[0]['text'], last_prompt
    assert announced[0]['text'] not in users, last_prompt
