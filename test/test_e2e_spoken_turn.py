"""
One spoken request, replayed as microphone audio, goes all the way to audio out, timed.

The request is voiced with the offline Kokoro pack into a bag of AudioDataStamped (as a
microphone would record it, stamped in 2023: far from "now"), played by qwen-voice-replay into
hearing (Silero VAD + offline Whisper-base) -> dialect -> llm (local OpenAI-compatible test
server) -> tts (espeak-ng) -> playback (WAV, real time).  The report of the recording must show
the turn answered with latencies of seconds on one clock -- not the ~10^8 s that mixing the
bag's audio stamps with the nodes' clocks gave -- and the true end-of-speech latency from the
truth file.  Skips when a pack is missing (CI installs them).
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip('faster_whisper')
pytest.importorskip('audio_common_msgs')

from llm_server import ChatServer, reply_for  # noqa: E402
from ros_harness import text_graph  # noqa: E402

from qwen_voice_ros.replay import speech_bag, turn_report  # noqa: E402

REQUEST = ('明天北京的天气怎么样？', 'mandarin')


def whisper_pack_or_skip():
    from qwen_voice_ros.asr import offline_pack
    if not offline_pack.is_ready() and not offline_pack.parts_installed():
        pytest.skip('offline Whisper pack not installed (requirements/offline-speech-pack.txt)')
    return offline_pack.ensure_pack()


def test_spoken_request_is_answered_with_latencies_on_one_clock(tmp_path):
    asr_dir = whisper_pack_or_skip()
    reason = speech_bag.kokoro_unavailable()
    if reason:
        pytest.skip('Kokoro pack unavailable: %s' % reason)
    bag, out, wav_dir = tmp_path / 'speech', tmp_path / 'recorded', tmp_path / 'wav'
    truth = speech_bag.make_request_bag(str(bag), [REQUEST], tts='kokoro',
                                        truth_path=str(bag / 'truth.json'), lead_s=0.5,
                                        tail_s=1.5)
    hearing = {'faster_whisper.model_dir': asr_dir, 'vad_backend': 'silero'}
    playback = {'sink': 'wav', 'wav_dir': str(wav_dir), 'realtime': True}
    with ChatServer() as server, text_graph(server.url, extra_nodes=[
            ('qwen_voice_ros.nodes.hearing_node', hearing),
            ('qwen_voice_ros.nodes.playback_node', playback)]) as (_probe, env):
        replay = subprocess.run(
            [sys.executable, '-m', 'qwen_voice_ros.replay.cli', str(bag), '--record', str(out),
             '--tail-s', '10', '--wait-for-subscribers', '1', '--json'],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr[-3000:]
    assert json.loads(replay.stdout.strip().splitlines()[-1])['published']['/audio_stamped'] > 50

    report = turn_report.build(str(out), truth['path'])
    text = turn_report.format_report(report)
    assert report['turns'] == 1 and report['answered_turns'] == 1, text
    row = report['rows'][0]
    assert row['cer'] <= 0.2, text
    assert row['reply'] == reply_for(row['transcript']), text
    stages = row['stages']
    # Seconds, not years: every figure on the nodes' clock.
    assert 0.0 < stages['first_audio'] < 30.0, text
    assert 0.0 < stages['first_audio_true'] < 30.0, text
    # The hearing node's turn start is the true end of speech (within a 32 ms chunk and
    # scheduling), and the VAD hangover shows as end-of-speech detection.
    assert abs(stages['turn_start_err']) < 0.3, text
    assert 0.3 < stages['eos_detect'] < 15.0, text
    # The dialect label may precede the confirmed transcript: it is computed on the
    # speculative one, announced before the hangover ended (docs/latency.md).
    assert 0.0 < stages['asr'] < 30.0, text
    assert -stages['eos_detect'] <= stages['dialect'] < 10.0, text
    assert stages['first_sentence'] <= stages['first_tts_audio'] <= stages['first_audio'], text
    assert report['first_audio_p50_s'] == stages['first_audio']
    assert report['reasons'] == [], text
    assert any(name.startswith(row['turn_id']) for name in os.listdir(str(wav_dir)))
