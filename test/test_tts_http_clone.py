"""
HTTP zero-shot cloning backends against local servers that speak each documented API.

CosyVoice (FastAPI multipart, raw PCM), GPT-SoVITS api_v2 (JSON, streamed WAV) and
Fish-Speech /v1/tts (msgpack/JSON, streamed WAV): what is sent, what is decoded (a tone at
the reference's pitch proves the clip arrived and the rate is right), dialect routing,
reference-clip checks, streaming, and every hostile-server case ending in a clear TTSError
within the deadline, with the next sentence working.  No ROS; about 10 s.
"""
import json
import os
import threading
import time
import urllib.request

import numpy as np
import pytest

from clone_servers import (CosyVoiceServer, FishServer, GPTSoVITSServer, pitch_hz,
                           write_tone_wav)
from qwen_voice_ros.core.params import check_all
from qwen_voice_ros.tts.base import TTSError, TTSNotConfigured
from qwen_voice_ros.tts.http_clone import looks_like_text, PCMDecoder, ReferenceClip
from qwen_voice_ros.tts.http_cosyvoice import CosyVoiceTTS
from qwen_voice_ros.tts.http_fish import FishSpeechTTS
from qwen_voice_ros.tts.http_gpt_sovits import GPTSoVITSTTS

SERVERS = {'cosyvoice': CosyVoiceServer, 'gpt_sovits': GPTSoVITSServer,
           'fish_speech': FishServer}
CLASSES = {'cosyvoice': CosyVoiceTTS, 'gpt_sovits': GPTSoVITSTTS,
           'fish_speech': FishSpeechTTS}
TEXT = '今天天气很好，我们出去走走吧。'
try:  # the local Fish server decodes msgpack with the msgpack library (absent on 3.8 CI)
    import msgpack  # noqa: F401
    FISH_ENCODING = 'msgpack'
except ImportError:
    FISH_ENCODING = 'json'


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp('clips')
    return {
        'ref': write_tone_wav(d / 'ref.wav', 200.0, 4.0, 16000),
        'ref44': write_tone_wav(d / 'ref44.wav', 200.0, 4.0, 44100),
        'ref2': write_tone_wav(d / 'ref2.wav', 330.0, 4.0, 16000),
        'yue': write_tone_wav(d / 'yue.wav', 260.0, 5.0, 22050),
        'short': write_tone_wav(d / 'short.wav', 200.0, 1.0, 16000),
        'long': write_tone_wav(d / 'long.wav', 200.0, 12.0, 16000),
        'silent': write_tone_wav(d / 'silent.wav', 200.0, 4.0, 16000, amp=0.0),
        'narrow': write_tone_wav(d / 'narrow.wav', 200.0, 4.0, 8000),
    }


@pytest.fixture(scope='module')
def servers():
    made = {name: cls() for name, cls in SERVERS.items()}
    yield made
    for server in made.values():
        server.close()


@pytest.fixture(autouse=True)
def reset(servers):
    for server in servers.values():
        server.fault, server.chunk_delay_s, server.redirect_to = None, 0.0, ''
        del server.requests[:]
    yield


def make(name, url, clip, **params):
    cls = CLASSES[name]
    values = dict(base_url=url, ref_audio_path=clip, prompt_text='希望你以后能够做的比我还好呦。')
    if name == 'fish_speech':
        values['encoding'] = FISH_ENCODING
    values.update(params)
    tts = cls(**check_all(cls.PARAMS, values))
    tts.load()
    return tts


def assert_voice(speech, rate, freq, text=TEXT, per_char=0.12):
    assert speech.sample_rate == rate
    assert abs(pitch_hz(speech.audio, rate) - freq) < 0.03 * freq, pitch_hz(speech.audio, rate)
    assert abs(speech.duration_s - per_char * len(text)) < 0.02


# -- what each backend sends and decodes --------------------------------------------------

def test_cosyvoice_zero_shot(servers, clips):
    server = servers['cosyvoice']
    tts = make('cosyvoice', server.url, clips['ref44'])
    assert_voice(tts.synthesize(TEXT), 24000, 200.0)
    req = server.requests[-1]
    assert req['path'] == '/inference_zero_shot' and req['method'] == 'POST'
    assert req['form'] == {'tts_text': TEXT, 'prompt_text': '希望你以后能够做的比我还好呦。'}
    assert req['ref_rate'] == 16000 and abs(req['ref_seconds'] - 4.0) < 0.01  # 44.1k resampled


def test_cosyvoice_dialect_instruct(servers, clips):
    server = servers['cosyvoice']
    tts = make('cosyvoice', server.url, clips['ref'], reply_style='dialect')
    assert tts.speaks('sichuanese') and tts.speaks('cantonese') and tts.speaks(None)
    tts.synthesize('你吃饭没得？', dialect='sichuanese')
    assert server.requests[-1]['path'] == '/inference_instruct2'
    assert server.requests[-1]['form']['instruct_text'] == '用四川话说这句话'
    tts.synthesize('你食咗饭未呀？', dialect='yue')
    assert server.requests[-1]['form']['instruct_text'] == '用粤语说这句话'
    tts.synthesize(TEXT, dialect='mandarin')
    assert server.requests[-1]['path'] == '/inference_zero_shot'
    # mandarin reply style: the LLM answers Mandarin, so dialect turns stay zero-shot
    plain = make('cosyvoice', server.url, clips['ref'])
    plain.synthesize(TEXT, dialect='sichuanese')
    assert server.requests[-1]['path'] == '/inference_zero_shot'


def test_cosyvoice3_prompt_format(servers, clips):
    server = servers['cosyvoice']
    tts = make('cosyvoice', server.url, clips['ref'], model_version='cosyvoice3',
               reply_style='dialect')
    tts.synthesize(TEXT)
    assert server.requests[-1]['form']['prompt_text'] == (
        'You are a helpful assistant.<|endofprompt|>希望你以后能够做的比我还好呦。')
    tts.synthesize('好少咯，一般系放嗰啲国庆啊。', dialect='cantonese')
    assert server.requests[-1]['form']['instruct_text'] == (
        'You are a helpful assistant. 请用广东话表达。<|endofprompt|>')
    cross = make('cosyvoice', server.url, clips['ref'], model_version='cosyvoice3',
                 mode='cross_lingual', prompt_text='')
    assert_voice(cross.synthesize(TEXT), 24000, 200.0)
    assert server.requests[-1]['path'] == '/inference_cross_lingual'
    assert server.requests[-1]['form']['tts_text'].startswith('You are a helpful assistant.')


def test_cosyvoice_get_only_server(clips):
    server = CosyVoiceServer(methods=('GET',))
    try:
        with pytest.raises(TTSError, match='405.*Method Not Allowed'):
            make('cosyvoice', server.url, clips['ref']).synthesize(TEXT)
        old = make('cosyvoice', server.url, clips['ref'], http_method='GET')
        assert_voice(old.synthesize(TEXT), 24000, 200.0)
    finally:
        server.close()


def test_fake_servers_reject_malformed_requests(servers, clips):
    def post(url, body, ctype):
        req = urllib.request.Request(url, data=body, headers={'Content-Type': ctype})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    status, body = post(servers['cosyvoice'].url + '/inference_zero_shot', b'tts_text=x',
                        'application/x-www-form-urlencoded')
    assert status == 422 and {d['loc'][1] for d in json.loads(body)['detail']} == {
        'tts_text', 'prompt_text', 'prompt_wav'}
    doc = {'text': 'x', 'text_lang': 'zh', 'ref_audio_path': clips['ref'], 'prompt_lang': 'xx'}
    status, body = post(servers['gpt_sovits'].url + '/tts', json.dumps(doc).encode(),
                        'application/json')
    assert status == 400 and 'prompt_lang: xx is not supported' in json.loads(body)['message']
    status, _ = post(servers['fish_speech'].url + '/v1/tts', b'text=x', 'text/plain')
    assert status == 415
    status, _ = post(servers['fish_speech'].url + '/v1/tts',
                     json.dumps({'text': 'x', 'top_p': 5.0}).encode(), 'application/json')
    assert status == 422


def test_gpt_sovits_request_and_cantonese(servers, clips):
    server = servers['gpt_sovits']
    tts = make('gpt_sovits', server.url, clips['ref'], cantonese_ref_audio_path=clips['yue'],
               cantonese_prompt_text='你食咗饭未呀？')
    assert tts.speaks('cantonese') and not tts.speaks('sichuanese')
    assert_voice(tts.synthesize(TEXT), 32000, 200.0)
    req = server.requests[-1]
    assert (req['text'], req['text_lang'], req['prompt_lang'], req['media_type']) == (
        TEXT, 'zh', 'zh', 'wav')
    assert req['ref_audio_path'] == os.path.abspath(clips['ref']) and req['streaming_mode'] is True
    assert_voice(tts.synthesize('你食咗饭未呀？', dialect='cantonese'), 32000, 260.0,
                 text='你食咗饭未呀？')
    req = server.requests[-1]
    assert (req['text_lang'], req['prompt_lang'], req['ref_audio_path'],
            req['prompt_text']) == ('yue', 'yue', os.path.abspath(clips['yue']), '你食咗饭未呀？')
    whole = make('gpt_sovits', server.url, clips['ref'], streaming_mode=0)
    assert_voice(whole.synthesize(TEXT), 32000, 200.0)
    assert server.requests[-1]['streaming_mode'] is False


def test_gpt_sovits_server_side_reference_errors(servers, clips):
    server = servers['gpt_sovits']
    with pytest.raises(TTSNotConfigured, match='12.0 s long; at most 10.0'):
        make('gpt_sovits', server.url, clips['long'])
    # a clip only the server can see: its own refusal comes back in its words
    remote = make('gpt_sovits', server.url, '', server_ref_audio_path=clips['long'])
    with pytest.raises(TTSError, match='HTTP 400: tts failed - 参考音频在3~10秒范围外'):
        remote.synthesize(TEXT)


@pytest.mark.parametrize('encoding', ['msgpack', 'json'])
def test_fish_request(servers, clips, encoding, monkeypatch):
    if encoding == 'msgpack':
        pytest.importorskip('msgpack')
    server = FishServer(api_key='s3cret')
    try:
        with pytest.raises(TTSError, match='HTTP 401'):
            make('fish_speech', server.url, clips['ref'], encoding=encoding).synthesize(TEXT)
        monkeypatch.setenv('FISH_KEY_TEST', 's3cret')
        tts = make('fish_speech', server.url, clips['ref44'], encoding=encoding,
                   api_key_env='FISH_KEY_TEST')
        assert_voice(tts.synthesize(TEXT), 44100, 200.0)
        req = server.requests[-1]
        assert req['ctype'] == 'application/' + encoding and req['auth'] == 'Bearer s3cret'
        assert req['ref_texts'] == ['希望你以后能够做的比我还好呦。'] and req['ref_rate'] == 44100
        assert req['req']['format'] == 'wav' and req['req']['streaming'] is True
    finally:
        server.close()
    with pytest.raises(TTSNotConfigured, match='FISH_KEY_MISSING'):
        make('fish_speech', server.url, clips['ref'], api_key_env='FISH_KEY_MISSING')


# -- streaming and cancel ------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(SERVERS))
def test_first_audio_before_the_end(servers, clips, name):
    server = servers[name]
    server.chunk_delay_s = 0.25   # 4 chunks: the whole answer takes >= 0.75 s
    tts = make(name, server.url, clips['ref'])
    start = time.monotonic()
    stamps = [time.monotonic() - start for _ in tts.synthesize_stream(TEXT)]
    assert len(stamps) >= 3
    assert stamps[0] < 0.4 and stamps[-1] >= 0.7, stamps


def test_cancel_stops_a_stream(servers, clips):
    server = servers['gpt_sovits']
    server.chunk_delay_s = 1.0
    tts = make('gpt_sovits', server.url, clips['ref'])
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(TTSError, match='cancelled'):
        list(tts.synthesize_stream(TEXT, cancel=cancel))
    assert time.monotonic() - start < 0.8


# -- hostile or broken servers: a clear error within the deadline, then the next turn --------

FAULT_MESSAGES = {
    'down': 'unreachable',
    'hang': 'no answer .* within 0.6 s',
    'trickle': 'deadline of 0.6 s passed|no answer',
    'status500': 'HTTP 500: Internal Server Error',
    'json_error': 'HTTP (400|422|500)',
    'json_200': 'application/json instead of audio: model not loaded',
    'html': 'text/html instead of audio',
    'not_audio': 'not a WAV stream|sent text, not audio',
    'empty': 'no audio',
    'silence': 'silence',
    'redirect': 'refused redirect',
    'cut_header': 'inside its WAV header',
}


@pytest.mark.parametrize('fault', sorted(FAULT_MESSAGES))
@pytest.mark.parametrize('name', sorted(SERVERS))
def test_fault_is_a_clear_error_then_next_turn_works(servers, clips, name, fault):
    server = servers[name]
    if fault == 'cut_header' and not server.wav_out:
        pytest.skip('CosyVoice streams raw PCM: there is no header to cut')
    url = server.url
    if fault == 'down':
        url = 'http://127.0.0.1:%d' % _free_port()
    else:
        server.fault = fault
    other = servers['fish_speech' if name != 'fish_speech' else 'cosyvoice']
    server.redirect_to = other.url
    tts = make(name, url, clips['ref'], timeout_s=0.6)
    start = time.monotonic()
    with pytest.raises(TTSError, match=FAULT_MESSAGES[fault]):
        tts.synthesize(TEXT)
    assert time.monotonic() - start < 0.6 + 0.5
    if fault == 'redirect':
        assert not other.requests   # nothing (no reference clip) went to the other host
    server.fault = None
    tts.base_url = server.url
    assert_voice(tts.synthesize(TEXT), server.rate, 200.0)


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# -- bad input: reference clip and text -----------------------------------------------------

@pytest.mark.parametrize('clip,message', [
    ('short', '1.00 s long; at least 3.0 s'),
    ('silent', 'is silent'),
    ('narrow', '8000 Hz; at least 16000 Hz'),
    ('missing', 'No such file'),
])
@pytest.mark.parametrize('name', sorted(SERVERS))
def test_bad_reference_clip(servers, clips, tmp_path, name, clip, message):
    path = clips.get(clip, str(tmp_path / 'missing.wav'))
    with pytest.raises(TTSNotConfigured, match=message):
        make(name, servers[name].url, path)


def test_not_a_wav_reference(servers, tmp_path):
    bad = tmp_path / 'bad.wav'
    bad.write_bytes(b'ID3\x03\x00' + b'\x00' * 100)   # an MP3 named .wav
    with pytest.raises(TTSNotConfigured, match='not a WAV stream'):
        make('cosyvoice', servers['cosyvoice'].url, str(bad))


@pytest.mark.parametrize('text', ['。！？……', '😀🎉', '   ', '——'])
def test_unspeakable_text_is_refused_without_a_request(servers, clips, text):
    tts = make('cosyvoice', servers['cosyvoice'].url, clips['ref'])
    with pytest.raises(TTSError, match='nothing to speak'):
        tts.synthesize(text)
    assert not servers['cosyvoice'].requests


def test_too_long_text(servers, clips):
    tts = make('fish_speech', servers['fish_speech'].url, clips['ref'], max_chars=50)
    with pytest.raises(TTSError, match='longer than max_chars=50'):
        tts.synthesize('很' * 51)
    assert tts.synthesize('很好。').duration_s > 0


def test_profile_switch_and_bad_profile_keeps_the_voice(servers, clips):
    tts = make('cosyvoice', servers['cosyvoice'].url, clips['ref'])
    summary = tts.set_profile({'wav_path': clips['ref2'], 'transcript': '你好呀。',
                               'dialect': 'mandarin'})
    assert 'ref2.wav' in summary
    assert_voice(tts.synthesize(TEXT), 24000, 330.0)
    assert servers['cosyvoice'].requests[-1]['form']['prompt_text'] == '你好呀。'
    with pytest.raises(TTSError, match='is silent'):
        tts.set_profile({'wav_path': clips['silent'], 'transcript': 'x'})
    assert_voice(tts.synthesize(TEXT), 24000, 330.0)
    tts.set_profile(None)
    assert_voice(tts.synthesize(TEXT), 24000, 200.0)


def test_bad_base_url(clips):
    with pytest.raises(TTSNotConfigured, match='only http and https'):
        make('cosyvoice', 'ftp://example.com', clips['ref'])


# -- decoder units ---------------------------------------------------------------------------

def test_wav_decoder_in_pieces_and_sizes(clips):
    with open(clips['ref2'], 'rb') as fh:
        data = fh.read()
    dec = PCMDecoder(wav=True)
    cuts = list(range(0, 100)) + list(range(100, len(data), 1001)) + [len(data)]
    parts = [dec.feed(data[a:b]) for a, b in zip(cuts, cuts[1:])]
    audio = np.concatenate(parts + [dec.finish()])
    assert dec.sample_rate == 16000 and len(audio) == 64000
    ref = ReferenceClip.load(clips['ref2'])
    assert np.allclose(audio, ref.audio)
    # a declared size shorter than what follows: trailing bytes (e.g. a LIST chunk) ignored
    dec = PCMDecoder(wav=True)
    tail = dec.feed(data + b'LIST\x04\x00\x00\x00abcd')
    assert len(np.concatenate([tail, dec.finish()])) == 64000


def test_raw_decoder_keeps_odd_bytes():
    pcm = (np.arange(-100, 100, dtype='<i2') * 100).tobytes()
    dec = PCMDecoder(wav=False, sample_rate=24000)
    out = np.concatenate([dec.feed(pcm[:7]), dec.feed(pcm[7:]), dec.finish()])
    assert np.allclose(out * 32768, np.arange(-100, 100) * 100)


def test_raw_pcm_starting_with_a_brace_is_audio():
    samples = np.array([0x227B, -3, 5, -200, 1000, -7, 2, 0] * 8, dtype='<i2')  # b'{"...'
    assert samples.tobytes()[:2] == b'{"' and not looks_like_text(samples.tobytes())
    assert looks_like_text(b'{"detail": "Not Found", "status": 404, "padding": "xxxxxxxxxxxxx"}')
    assert looks_like_text('<html><body>网关错误</body></html>'.encode('utf-8'))


def test_registered_in_the_tts_registry(servers, clips):
    from qwen_voice_ros.tts import create_tts, REGISTRY
    assert {'cosyvoice', 'gpt_sovits', 'fish_speech'} <= set(REGISTRY.names)
    tts = create_tts('gpt_sovits', base_url=servers['gpt_sovits'].url,
                     ref_audio_path=clips['ref'], prompt_text='你好。')
    tts.load()
    assert_voice(tts.synthesize(TEXT), 32000, 200.0)
    with pytest.raises(TTSNotConfigured, match='max_ref_s must be <= 600'):
        create_tts('cosyvoice', max_ref_s=1000.0)


def test_clip_mostly_silence_is_too_short(servers, tmp_path):
    import wave
    rate = 16000
    t = np.arange(rate) / float(rate)
    audio = np.concatenate([np.zeros(rate * 2), 0.3 * np.sin(2 * np.pi * 200 * t),
                            np.zeros(rate)])
    path = str(tmp_path / 'padded.wav')
    with wave.open(path, 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((audio * 32767).astype('<i2').tobytes())
    with pytest.raises(TTSNotConfigured, match='only 1.00 s of sound in 4.00 s'):
        make('cosyvoice', servers['cosyvoice'].url, path)


def test_abort_ends_the_request_in_flight(servers, clips):
    server = servers['cosyvoice']
    server.chunk_delay_s = 1.0
    tts = make('cosyvoice', server.url, clips['ref'])
    assert tts.abort() == 0
    threading.Timer(0.3, tts.abort).start()
    start = time.monotonic()
    with pytest.raises(TTSError, match='cosyvoice: cancelled'):
        tts.synthesize(TEXT)
    assert time.monotonic() - start < 0.8
    server.chunk_delay_s = 0.0
    assert_voice(tts.synthesize(TEXT), 24000, 200.0)   # the next sentence is not cancelled
