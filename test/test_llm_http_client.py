"""The OpenAI-compatible HTTP backend against a local server: streamed, whole, failures."""
import socket
import threading
import time

import pytest

from llm_server import ChatServer, reply_for
from qwen_voice_ros.llm import GenerationOptions, LLMError, complete, create_backend
from qwen_voice_ros.llm.thinking import ThinkFilter

MESSAGES = [{'role': 'system', 'content': '你是机器人。'}, {'role': 'user', 'content': '帮我拿水'}]


@pytest.mark.parametrize('stream', [True, False])
def test_reply_streamed_and_whole(stream):
    with ChatServer() as server:
        backend = create_backend('openai_http', base_url=server.url, model='test-model',
                                 stream=stream, check_on_load=True)
        backend.load()
        deltas = list(backend.stream_chat(MESSAGES, GenerationOptions(max_new_tokens=64)))
        assert ''.join(deltas) == reply_for('帮我拿水')
        assert (len(deltas) > 5) == stream  # streamed in pieces, or whole at once
        request = server.requests[-1]
        assert request['stream'] is stream
        assert request['model'] == 'test-model'
        assert request['max_tokens'] == 64
        assert request['messages'] == MESSAGES
        assert request['chat_template_kwargs'] == {'enable_thinking': False}


@pytest.mark.parametrize('stream', [True, False])
def test_thinking_is_passed_and_separated(stream):
    with ChatServer() as server:
        backend = create_backend('openai_http', base_url=server.url, stream=stream)
        think = ThinkFilter()
        for delta in backend.stream_chat(MESSAGES, GenerationOptions(enable_thinking=True)):
            think.feed(delta)
        think.flush()
        assert server.requests[-1]['chat_template_kwargs'] == {'enable_thinking': True}
        assert think.thinking == '用户在说话，我要简短回答。'
        assert think.spoken == reply_for('帮我拿水')


def test_unreachable_server_is_a_clear_error():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    backend = create_backend('openai_http', base_url='http://127.0.0.1:%d/v1' % port)
    with pytest.raises(LLMError, match='unreachable'):
        complete(backend, MESSAGES)


def test_slow_server_times_out_then_next_turn_works():
    with ChatServer(delay_s=0.5) as server:
        backend = create_backend('openai_http', base_url=server.url)
        start = time.monotonic()
        with pytest.raises(LLMError, match='timed out|stalled|deadline'):
            complete(backend, MESSAGES, GenerationOptions(timeout_s=0.3))
        assert time.monotonic() - start < 3.0
        server.delay_s = 0.0
        assert complete(backend, MESSAGES) == reply_for('帮我拿水')


def test_http_error_then_recovery():
    with ChatServer() as server:
        backend = create_backend('openai_http', base_url=server.url)
        server.fail_next = True
        with pytest.raises(LLMError, match='HTTP 500'):
            complete(backend, MESSAGES)
        assert complete(backend, MESSAGES) == reply_for('帮我拿水')


def test_cancel_stops_the_stream():
    with ChatServer(delay_s=0.05) as server:
        backend = create_backend('openai_http', base_url=server.url)
        cancel = threading.Event()
        received = []
        for delta in backend.stream_chat(MESSAGES, GenerationOptions(), cancel):
            received.append(delta)
            if len(received) == 2:
                cancel.set()
        assert len(received) == 2
