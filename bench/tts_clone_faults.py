#!/usr/bin/env python3
"""
Time the HTTP cloning backends against the test suite's local API servers.

    bench/tts_clone_faults.py [--timeout 2.0] [--json]

For cosyvoice, gpt_sovits and fish_speech (built through the tts registry): the round trip
of one sentence, the first and last streamed block with the server pacing its 4 chunks
0.25 s apart, and how long each fault (server down, hang, trickle, HTTP 500, JSON error,
HTML, empty, silence, redirect to another host) takes to become a TTSError.  With
``--json`` the last line is one JSON object: backend -> {round_trip_s, first_block_s,
last_block_s, faults: {fault: [seconds, message]}}.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'test'))

FAULTS = ('down', 'hang', 'trickle', 'status500', 'json_error', 'html', 'empty', 'silence',
          'redirect')
TEXT = '今天天气很好，我们出去走走吧。'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def measure(name, server_cls, ref, timeout_s):
    from clone_servers import FishServer
    from qwen_voice_ros.tts import create_tts, TTSError
    server, other = server_cls(), FishServer()
    server.redirect_to = other.url
    try:
        tts = create_tts(name, base_url=server.url, ref_audio_path=ref, prompt_text='你好。',
                         timeout_s=timeout_s)
        tts.load()
        tts.synthesize(TEXT)
        start = time.monotonic()
        for _ in range(20):
            tts.synthesize(TEXT)
        round_trip = (time.monotonic() - start) / 20
        server.chunk_delay_s = 0.25
        start = time.monotonic()
        stamps = [time.monotonic() - start for _ in tts.synthesize_stream(TEXT)]
        server.chunk_delay_s = 0.0
        faults = {}
        for fault in FAULTS:
            if fault == 'down':
                tts.base_url = 'http://127.0.0.1:%d' % _free_port()
            else:
                server.fault = fault
            start = time.monotonic()
            try:
                tts.synthesize(TEXT)
                message = 'NO ERROR'
            except TTSError as exc:
                message = str(exc)
            faults[fault] = [round(time.monotonic() - start, 4), message]
            server.fault, tts.base_url = None, server.url
        return {'round_trip_s': round(round_trip, 4), 'first_block_s': round(stamps[0], 4),
                'last_block_s': round(stamps[-1], 4), 'faults': faults}
    finally:
        server.close()
        other.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--timeout', type=float, default=2.0, help='backend timeout_s')
    parser.add_argument('--json', action='store_true', help='last line: one JSON object')
    args = parser.parse_args(argv)
    from clone_servers import CosyVoiceServer, FishServer, GPTSoVITSServer, write_tone_wav
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref = write_tone_wav(os.path.join(tmp, 'ref.wav'), 200.0, 4.0, 16000)
        for name, cls in (('cosyvoice', CosyVoiceServer), ('gpt_sovits', GPTSoVITSServer),
                          ('fish_speech', FishServer)):
            res = results[name] = measure(name, cls, ref, args.timeout)
            print('%s: round trip %.1f ms; streamed first block %.3f s, last %.3f s'
                  % (name, res['round_trip_s'] * 1000, res['first_block_s'],
                     res['last_block_s']))
            for fault, (seconds, message) in res['faults'].items():
                print('   %-10s %.3f s  %s' % (fault, seconds, message[:90]))
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    return 0 if all(m != 'NO ERROR' for r in results.values()
                    for _, m in r['faults'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
