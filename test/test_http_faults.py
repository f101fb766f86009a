"""Hostile and broken LLM servers (issue 8): each fault is a clear error, the next turn works."""
import os
import threading
import time

import pytest

from llm_server import ChatServer, reply_for
from qwen_voice_ros.core import http
from qwen_voice_ros.llm import GenerationOptions, LLMError, LLMNotConfigured, complete
from qwen_voice_ros.llm.http_backend import OpenAIHTTPBackend

MESSAGES = [{'role': 'user', 'content': '帮我拿水'}]
ANSWER = reply_for('帮我拿水')


def backend_for(server, **kwargs):
    return OpenAIHTTPBackend(base_url=server.url, **kwargs)


def recovers(server, backend):
    server.fault = None
    return complete(backend, MESSAGES, GenerationOptions(timeout_s=5.0)) == ANSWER


def test_redirect_to_another_host_is_refused_and_key_not_forwarded(monkeypatch):
    monkeypatch.setenv('QVR_TEST_KEY', 'sk-secret')
    with ChatServer() as evil, ChatServer() as server:
        server.fault, server.redirect_to = 'redirect', evil.url
        backend = backend_for(server, api_key_env='QVR_TEST_KEY')
        with pytest.raises(LLMError, match='refused redirect'):
            complete(backend, MESSAGES)
        assert server.headers[-1]['Authorization'] == 'Bearer sk-secret'
        assert evil.requests == [] and evil.headers == []  # nothing ever reached it
        # localhost and 127.0.0.1 are different origins too
        server.redirect_to = evil.url.replace('127.0.0.1', 'localhost')
        with pytest.raises(LLMError, match='refused redirect'):
            complete(backend, MESSAGES)
        assert evil.headers == []
        assert recovers(server, backend)


def test_same_origin_redirect_is_followed():
    with ChatServer() as server:
        server.fault = 'redirect_same'
        assert complete(backend_for(server), MESSAGES) == ANSWER


@pytest.mark.parametrize('fault', ['trickle', 'trickle_headers'])
def test_trickling_server_hits_the_whole_request_deadline(fault):
    with ChatServer() as server:
        server.fault, server.trickle_s = fault, 0.3  # a byte well within any read timeout
        backend = backend_for(server)
        start = time.monotonic()
        with pytest.raises(LLMError, match='deadline|timed out'):
            complete(backend, MESSAGES, GenerationOptions(timeout_s=1.2))
        elapsed = time.monotonic() - start
        assert 1.1 < elapsed < 2.0, elapsed
        assert recovers(server, backend)


def test_cancel_interrupts_a_trickling_read():
    with ChatServer() as server:
        server.fault, server.trickle_s = 'trickle', 0.3
        cancel = threading.Event()
        threading.Timer(0.4, cancel.set).start()
        start = time.monotonic()
        got = list(backend_for(server).stream_chat(MESSAGES, GenerationOptions(timeout_s=30),
                                                   cancel))
        assert time.monotonic() - start < 1.0
        assert got == ['好']


@pytest.mark.parametrize('fault,match', [
    ('html', 'not an SSE stream'),
    ('empty', 'empty reply'),
    ('truncated', 'closed the stream'),
    ('long_line', 'longer than'),
    ('garbage_chunk', 'bad SSE chunk'),
])
def test_bad_stream_bodies_are_errors(fault, match):
    with ChatServer() as server:
        server.fault = fault
        backend = backend_for(server)
        with pytest.raises(LLMError, match=match):
            complete(backend, MESSAGES)
        assert recovers(server, backend)


@pytest.mark.parametrize('fault,match', [
    ('empty_json', 'empty reply'), ('html', 'invalid JSON')])
def test_bad_whole_bodies_are_errors(fault, match):
    with ChatServer() as server:
        server.fault = fault
        backend = backend_for(server, stream=False)
        with pytest.raises(LLMError, match=match):
            complete(backend, MESSAGES)
        assert recovers(server, backend)


def test_api_key_from_env_or_file_never_a_ros_parameter(tmp_path, monkeypatch):
    names = [p.name for p in OpenAIHTTPBackend.PARAMS]
    assert 'api_key' not in names and {'api_key_env', 'api_key_file'} <= set(names)
    key_file = tmp_path / 'key'
    key_file.write_text('sk-from-file\n')
    os.chmod(str(key_file), 0o600)
    with ChatServer() as server:
        complete(backend_for(server, api_key_file=str(key_file)), MESSAGES)
        assert server.headers[-1]['Authorization'] == 'Bearer sk-from-file'
        monkeypatch.setenv('QVR_TEST_KEY', 'sk-from-env')
        complete(backend_for(server, api_key_env='QVR_TEST_KEY'), MESSAGES)
        assert server.headers[-1]['Authorization'] == 'Bearer sk-from-env'
        complete(backend_for(server), MESSAGES)
        assert 'Authorization' not in server.headers[-1]
    monkeypatch.delenv('QVR_TEST_KEY')
    with pytest.raises(LLMNotConfigured, match='QVR_TEST_KEY is not set'):
        OpenAIHTTPBackend(api_key_env='QVR_TEST_KEY').load()
    with pytest.raises(LLMNotConfigured, match='cannot read'):
        OpenAIHTTPBackend(api_key_file=str(tmp_path / 'missing')).load()


def test_non_http_urls_are_refused():
    with pytest.raises(LLMNotConfigured, match='only http and https'):
        OpenAIHTTPBackend(base_url='file:///etc/passwd')
    with pytest.raises(http.HTTPError, match='only http and https'):
        http.request('GET', 'ftp://127.0.0.1/x')


def test_core_http_size_cap_and_status_error():
    with ChatServer() as server:
        resp = http.request('GET', server.url + '/models', timeout_s=5, max_bytes=10)
        with pytest.raises(http.HTTPError, match='larger than 10 bytes'):
            resp.read()
        resp.close()
        server.fail_next = True
        with pytest.raises(http.HTTPError, match='HTTP 500') as info:
            http.request('POST', server.url + '/chat/completions', body=b'{}', timeout_s=5)
        assert info.value.status == 500
