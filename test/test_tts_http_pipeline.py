"""
The HTTP cloning backends inside the tts stage (TTSPipeline, no ROS) with espeak-ng as fallback.

Server down or hanging: an error naming the server, the sentence spoken by the fallback
voice, and the next sentence cloned again.  Dialect routing through the pipeline's per-turn
dialect: CosyVoice instructs the dialect, GPT-SoVITS takes Cantonese as ``yue`` and leaves
Sichuanese to the fallback.  A cancelled turn sends no further requests.
"""
import shutil
import time

import pytest

from clone_servers import CosyVoiceServer, GPTSoVITSServer, write_tone_wav
from qwen_voice_ros.tts import create_tts
from qwen_voice_ros.tts.pipeline import Job, TTSPipeline

pytestmark = pytest.mark.skipif(shutil.which('espeak-ng') is None,
                                reason='espeak-ng (the fallback voice) is not installed')


@pytest.fixture(scope='module')
def ref(tmp_path_factory):
    return write_tone_wav(tmp_path_factory.mktemp('ref') / 'ref.wav', 200.0, 4.0, 16000)


@pytest.fixture(scope='module')
def espeak():
    tts = create_tts('espeak')
    tts.load()
    return tts


class Stage:
    def __init__(self, primary, fallback):
        self.pieces, self.errors = [], []
        self.pipeline = TTSPipeline(primary, fallback, self.pieces.append,
                                    lambda job, msg, fb: self.errors.append((msg, fb)))

    def say(self, turn, text, seq=0):
        self.pipeline.submit(Job(turn, time.time(), text, seq))
        while self.pipeline.run_once():
            pass
        return self.pieces[-1] if self.pieces else None


def test_down_or_hanging_server_falls_back_then_recovers(ref, espeak):
    server = CosyVoiceServer()
    try:
        cosy = create_tts('cosyvoice', base_url=server.url, ref_audio_path=ref,
                          prompt_text='你好。', timeout_s=0.6)
        cosy.load()
        stage = Stage(cosy, espeak)
        assert stage.say('t1', '你好，我是机器人。').backend == 'cosyvoice'
        server.fault = 'hang'
        start = time.monotonic()
        piece = stage.say('t2', '今天天气很好。')
        assert piece.backend == 'espeak' and piece.speech.duration_s > 0.3
        assert time.monotonic() - start < 0.6 + 3.0   # deadline + espeak on a busy CPU
        assert 'cosyvoice failed' in stage.errors[-1][0] and 'within 0.6 s' in stage.errors[-1][0]
        assert stage.errors[-1][1] == 'espeak'
        server.fault = None
        assert stage.say('t3', '我们出去走走吧。').backend == 'cosyvoice'
        cosy.base_url = 'http://127.0.0.1:9'   # nothing listens there
        assert stage.say('t4', '再见。').backend == 'espeak'
        assert 'unreachable' in stage.errors[-1][0]
        assert stage.pipeline.counters['fallbacks'] == 2
    finally:
        server.close()


def test_dialect_routing_through_the_pipeline(ref, espeak):
    cosy_server, sovits_server = CosyVoiceServer(), GPTSoVITSServer()
    try:
        cosy = create_tts('cosyvoice', base_url=cosy_server.url, ref_audio_path=ref,
                          prompt_text='你好。', reply_style='dialect')
        cosy.load()
        stage = Stage(cosy, espeak)
        stage.pipeline.set_dialect('t1', 'sichuanese')
        assert stage.say('t1', '你吃饭没得？').backend == 'cosyvoice'
        assert cosy_server.requests[-1]['form']['instruct_text'] == '用四川话说这句话'

        sovits = create_tts('gpt_sovits', base_url=sovits_server.url, ref_audio_path=ref,
                            prompt_text='你好。')
        sovits.load()
        stage = Stage(sovits, espeak)
        stage.pipeline.set_dialect('t2', 'cantonese')
        assert stage.say('t2', '你食咗饭未呀？').backend == 'gpt_sovits'
        assert sovits_server.requests[-1]['text_lang'] == 'yue'
        stage.pipeline.set_dialect('t3', 'sichuanese')
        sent = len(sovits_server.requests)
        assert stage.say('t3', '你吃饭没得？').backend == 'espeak'
        assert len(sovits_server.requests) == sent and not stage.errors
    finally:
        cosy_server.close()
        sovits_server.close()


def test_cancelled_turn_sends_no_more_requests(ref, espeak):
    server = GPTSoVITSServer()
    try:
        sovits = create_tts('gpt_sovits', base_url=server.url, ref_audio_path=ref,
                            prompt_text='你好。')
        sovits.load()
        stage = Stage(sovits, espeak)
        for seq, text in enumerate(['第一句话。', '第二句话。', '第三句话。']):
            stage.pipeline.submit(Job('t1', time.time(), text, seq))
        assert stage.pipeline.run_once()
        stage.pipeline.cancel('t1', 'barge-in')
        while stage.pipeline.run_once():
            pass
        assert [p.text for p in stage.pieces] == ['第一句话。']
        assert len(server.requests) == 1 and stage.pipeline.counters['dropped'] == 2
    finally:
        server.close()
