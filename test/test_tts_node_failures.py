"""TTS failures: a clear configure error, and one failed sentence does not stop the next.

espeak-ng missing fails configure with the reason; a failing synthesis is reported for that
sentence and the next sentence is spoken.
"""
import os
import stat
import textwrap

import pytest

from ros_harness import NodeProcess, Probe, diagnostics_of, level_of, ros_env
from qwen_voice_ros.tts import TTSError, TTSNotConfigured, create_tts


def test_missing_espeak_is_not_configured():
    tts = create_tts('espeak', executable='espeak-ng-not-installed')
    with pytest.raises(TTSNotConfigured, match='not found'):
        tts.load()


def test_empty_text_is_an_error():
    tts = create_tts('espeak')
    tts.load()
    with pytest.raises(TTSError, match='empty'):
        tts.synthesize('   ')


def _diag_probe(env):
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    from qwen_voice_ros.nodes import ros_io
    probe = Probe(env['ROS_DOMAIN_ID'])
    probe.subscribe(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
    probe.subscribe(String, 'voice/events', ros_io.QOS_EVENTS)
    return probe


def test_tts_node_without_espeak_reports_not_configured(tmp_path):
    env = ros_env()
    env['PATH'] = str(tmp_path)  # no espeak-ng anywhere on PATH
    node = NodeProcess('qwen_voice_ros.nodes.tts_node', env, {'backend': 'espeak'})
    probe = _diag_probe(env)
    try:
        probe.wait_for(lambda: diagnostics_of(probe, 'tts') is not None
                       and level_of(diagnostics_of(probe, 'tts')) == 2, 20, 'ERROR diagnostics')
        assert 'espeak-ng not found' in diagnostics_of(probe, 'tts').message
        assert node.proc.poll() is None  # the node stays up, unconfigured, and says why
    finally:
        probe.close()
        node.stop()


def test_failed_sentence_is_reported_and_the_next_is_spoken(tmp_path):
    """An espeak-ng that fails on one sentence (wrapper around the real one)."""
    import shutil
    real = shutil.which('espeak-ng')
    wrapper = tmp_path / 'espeak-ng'
    wrapper.write_text(textwrap.dedent('''\
        #!/bin/sh
        for arg in "$@"; do case "$arg" in *坏*) echo "synthesis failed" >&2; exit 3;; esac; done
        exec %s "$@"
        ''' % real))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = ros_env()
    env['PATH'] = '%s:%s' % (tmp_path, os.environ['PATH'])
    node = NodeProcess('qwen_voice_ros.nodes.tts_node', env, {'backend': 'espeak', 'fallback': ''})
    probe = _diag_probe(env)
    try:
        from audio_common_msgs.msg import AudioDataStamped
        from std_msgs.msg import String
        from qwen_voice_ros.nodes import ros_io
        probe.subscribe(AudioDataStamped, 'tts/audio', ros_io.QOS_AUDIO)
        pub = probe.publisher(String, 'reply_sentence', ros_io.QOS_TEXT)
        probe.wait_for(lambda: pub.get_subscription_count() > 0
                       and diagnostics_of(probe, 'tts') is not None
                       and diagnostics_of(probe, 'tts').message == 'serving', 20, 'tts active')
        pub.publish(String(data='这句话是坏的。'))
        probe.wait_for(lambda: any(e['stage'] == 'error' for e in probe.events()), 20, 'error')
        errors = [e for e in probe.events() if e['stage'] == 'error']
        assert 'synthesis failed' in errors[0]['error']
        probe.wait_for(lambda: level_of(diagnostics_of(probe, 'tts')) == 1, 10, 'WARN')
        pub.publish(String(data='这句话是好的。'))
        probe.wait_for(lambda: len(probe.messages('tts/audio')) == 1, 20, 'the next sentence')
        assert len(probe.messages('tts/audio')[0].audio.data) > 3200
    finally:
        probe.close()
        node.stop()
