"""
Capture node: microphone (or a WAV file) -> ``audio_stamped`` + latched ``audio_info``.

Same topic names and message types as upstream ``audio_capture`` with ``format:=wave``, so
either can feed the hearing node.  Messages carry S16LE mono at ``sample_rate``;
``header.stamp`` is the capture time of the chunk's first sample (``ChunkStamper``).  The
device is opened on configure, so a missing or busy microphone fails configure with
PortAudio's message.  Diagnostics report the input level, clipping (WARN above
``clip_warn_ratio``) and overflows; publishers are lifecycle-managed.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time

from qwen_voice_ros.audio.capture_stats import ChunkStamper, LevelMeter
from qwen_voice_ros.audio.pcm import AudioFormat
from qwen_voice_ros.core.params import Param
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import ERROR, WARN, VoiceNode, run


class CaptureNode(VoiceNode):
    capability = 'capture'
    PARAMS = (
        Param('source', 'sounddevice', 'audio input', choices=('sounddevice', 'wav')),
        Param('device', '', 'PortAudio device name or index ("" = default)'),
        Param('wav_path', '', 'source wav: file played in real time'),
        Param('loop', False, 'source wav: start over at the end'),
        Param('sample_rate', 16000, 'capture rate (Hz)', min=8000, max=192000),
        Param('chunk_ms', 32, 'chunk length (ms)', min=1, max=1000),
        Param('frame_id', '', 'header.frame_id of the audio messages'),
        Param('clip_warn_ratio', 0.01, 'WARN when this fraction of samples is at full scale',
              min=0.0, max=1.0),
        Param('level_window_s', 2.0, 'level/clipping statistics window', min=0.05, max=600.0),
        Param('audio_topic', 'audio_stamped', 'audio out'),
        Param('info_topic', 'audio_info', 'audio format out (latched)'),
    )

    def __init__(self):
        super().__init__('capture')

    def declare(self):
        self.source = self.audio_pub = None
        self.chunks = 0
        self.stamper = ChunkStamper()
        self.meter = LevelMeter(float(self.param('level_window_s')))

    def load(self):
        from qwen_voice_ros.audio.sources import create_source
        self.format = AudioFormat(sample_rate=int(self.param('sample_rate')))
        self.format.check()
        source = create_source(self.param('source'), device=self.param('device'),
                               wav_path=self.param('wav_path'),
                               sample_rate=self.format.sample_rate,
                               chunk_ms=int(self.param('chunk_ms')), loop=bool(self.param('loop')))
        source.start(self.on_chunk)  # opens the device now: failure fails configure
        self.source = source

    def unload(self):
        if self.source is not None:
            self.source.stop()
            self.source = None

    def open_io(self):
        msgs = ros_io.audio_msgs()
        self.audio_pub = self.add_lifecycle_publisher(msgs.AudioDataStamped,
                                                      self.param('audio_topic'),
                                                      ros_io.QOS_AUDIO)
        # Latched format: a plain publisher, so a late subscriber learns it even before
        # activation (it carries no audio).
        info_pub = self.add_io(self.create_publisher(
            msgs.AudioInfo, self.param('info_topic'), ros_io.QOS_LATCHED))
        info_pub.publish(ros_io.info_msg(self.format))

    def on_chunk(self, audio: np.ndarray) -> None:
        """Source thread: one chunk of float32 mono at the capture rate."""
        if not len(audio):
            return
        rate = self.format.sample_rate
        start_ns = self.stamper.stamp(self.get_clock().now().nanoseconds, len(audio), rate)
        self.meter.add(audio, rate)
        pub = self.audio_pub
        if not self.active or pub is None:
            return
        _level, ratio = self.meter.level()
        if ratio > float(self.param('clip_warn_ratio')):
            self.set_health(WARN, 'input clipping: %.1f%% of samples at full scale; lower the '
                            'microphone gain' % (100.0 * ratio))
        elif self.health[0] == WARN and self.health[1].startswith('input clipping'):
            self.report_ok()
        stamp = Time(sec=start_ns // 1000000000, nanosec=start_ns % 1000000000)
        pub.publish(ros_io.audio_stamped(audio, stamp, self.param('frame_id')))
        self.chunks += 1

    def level(self):
        """Return (RMS level in dBFS, clipping ratio) over the statistics window."""
        return self.meter.level()

    def diagnostic_values(self):
        level, ratio = self.meter.level()
        values = {'source': self.param('source'), 'sample_rate': self.param('sample_rate'),
                  'chunks': self.chunks, 'level_dbfs': round(level, 1),
                  'clipping_ratio': round(ratio, 5)}
        source = self.source
        if source is not None:
            values['overflows'] = getattr(source, 'overflows', 0)
            if source.finished:
                values['source_finished'] = True
            problem = getattr(source, 'error', '')  # device vanished or stalled mid-stream
            if problem:
                values['source_error'] = problem
                self._health = (ERROR, 'capture failed: %s' % problem)
        return values


def main(args=None):
    run(CaptureNode, args)


if __name__ == '__main__':
    main()
