"""The input device vanishes mid-stream (its PulseAudio server is killed): a clear ERROR.

The capture node keeps running and says why on /diagnostics; the hearing side of the same
case (a stream that stops mid-utterance) is in test_audio_hearing_node.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('audio_common_msgs')

from audio_ros_harness import (NodeProcess, diag_level, diag_statuses,  # noqa: E402
                               diag_values, wait_for)


def test_capture_reports_a_device_that_vanishes_mid_stream(probe, tmp_path):
    if shutil.which('pulseaudio') is None or shutil.which('pacat') is None:
        pytest.skip('pulseaudio / pulseaudio-utils not installed '
                    '(scripts/setup-env installs them)')
    from diagnostic_msgs.msg import DiagnosticArray

    from qwen_voice_ros.nodes import ros_io
    runtime = tempfile.mkdtemp(prefix='qvr-pulse-vanish-')
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, PULSE_RUNTIME_PATH=runtime + '/pulse')
    env.pop('PULSE_SERVER', None)
    subprocess.run(['pulseaudio', '-D', '-n', '--exit-idle-time=-1', '--daemonize=yes',
                    '--use-pid-file=yes', '--load=module-native-protocol-unix',
                    '--load=module-null-sink sink_name=virt_sink rate=48000 channels=1'],
                   env=env, check=True, timeout=20, stderr=subprocess.DEVNULL)
    env['PULSE_SERVER'] = 'unix:%s/pulse/native' % runtime
    zeros = open('/dev/zero', 'rb')
    feeder = node = None
    try:
        wait_for(lambda: subprocess.run(['pactl', 'info'], env=env, capture_output=True)
                 .returncode == 0, 10.0, 'pulseaudio up')
        subprocess.run(['pactl', 'set-default-source', 'virt_sink.monitor'], env=env, check=True)
        feeder = subprocess.Popen(['pacat', '--playback', '--device=virt_sink',
                                   '--format=s16le', '--rate=16000', '--channels=1'],
                                  stdin=zeros, env=env, stderr=subprocess.DEVNULL)
        msgs = ros_io.audio_msgs()
        ns = '/cap_vanish'
        received = probe.collect(msgs.AudioDataStamped, ns + '/audio_stamped',
                                 ros_io.QOS_AUDIO)
        diag = probe.collect(DiagnosticArray, '/diagnostics', ros_io.QOS_DIAGNOSTICS)
        node = NodeProcess('capture_node', {'source': 'sounddevice'}, probe.domain,
                           str(tmp_path / 'capture.log'), namespace=ns,
                           extra_env={'XDG_RUNTIME_DIR': runtime,
                                      'PULSE_SERVER': env['PULSE_SERVER']})
        wait_for(lambda: len(received) > 10, 20.0, 'audio from the capture node', [node])
        subprocess.run(['pulseaudio', '--kill'], env=env, timeout=10)
        status = wait_for(lambda: [s for s in diag_statuses(diag, ns + '/capture')
                                   if diag_level(s) == 2], 10.0, 'ERROR diagnostics',
                          [node])[0]
        assert 'capture failed' in status.message
        assert 'stopped delivering audio' in status.message or 'stalled' in status.message
        assert diag_values(status)['state'] == 'active'
        assert node.proc.poll() is None   # no crash: the node stays up to say why
    finally:
        if node is not None:
            node.stop()
        if feeder is not None:
            feeder.terminate()
            feeder.wait(timeout=5)
        zeros.close()
        subprocess.run(['pulseaudio', '--kill'], env=env, timeout=10,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(runtime, ignore_errors=True)
