"""The WAV sink survives any tag (the turn id from a foreign ``frame_id``): issue 8."""
import os
import threading

import numpy as np

from qwen_voice_ros.audio.sinks import create_sink

try:
    from hypothesis import given, strategies as st
    from fuzz_support import fuzz_settings
except ImportError:  # pragma: no cover - hypothesis is in requirements/dev
    given = None


def play(sink, tag):
    done = threading.Event()
    result = []
    sink.play(np.zeros(160, np.float32), 16000, tag=tag,
              on_done=lambda completed, played: (result.append(completed), done.set()))
    assert done.wait(5.0), 'the sink thread stopped answering'
    return result[0]


def test_long_and_odd_tags_then_a_normal_chunk(tmp_path):
    sink = create_sink('wav', device='', wav_dir=str(tmp_path), sample_rate=16000,
                       realtime=False)
    try:
        for tag in ('x' * 5000, '../../etc/evil', '/', '', '\x00', '好' * 300):
            assert play(sink, tag) is True
        assert play(sink, 't-ok-0001_0') is True
        names = os.listdir(str(tmp_path))
        assert 't-ok-0001_0.wav' in names
        assert all(os.path.dirname(n) == '' and len(n) < 200 for n in names)
        # a write that fails (directory gone) is reported as not completed, and the sink lives
        os.chmod(str(tmp_path), 0o500)
        if not os.access(str(tmp_path), os.W_OK):  # (root may still write)
            assert play(sink, 'nope') is False
            assert sink.errors == 1 and 'Error' in sink.last_error
        os.chmod(str(tmp_path), 0o700)
        assert play(sink, 't-ok-0002_0') is True
    finally:
        os.chmod(str(tmp_path), 0o700)
        sink.close()


if given is not None:
    _DIR = {}

    @fuzz_settings(500)
    @given(st.text(max_size=400))
    def test_fuzz_wav_sink_tags_any_text(tag):
        import tempfile
        if 'sink' not in _DIR:
            _DIR['dir'] = tempfile.mkdtemp(prefix='wav-sink-fuzz-')
            _DIR['sink'] = create_sink('wav', device='', wav_dir=_DIR['dir'],
                                       sample_rate=16000, realtime=False)
        assert play(_DIR['sink'], tag) is True
        for name in os.listdir(_DIR['dir']):
            os.unlink(os.path.join(_DIR['dir'], name))
