"""
Capture node: microphone (or a WAV file) -> ``audio_stamped`` + latched ``audio_info``.

Same topic names and message types as upstream ``audio_capture`` with ``format:=wave``, so
either can feed the hearing node.  Messages carry S16LE mono at ``sample_rate``;
``header.stamp`` is the capture time of the chunk's first sample.  The device is opened on
configure, so a missing or busy microphone fails configure with PortAudio's message.
Diagnostics report the input level, clipping (WARN above ``clip_warn_ratio``) and overflows.
"""
from __future__ import annotations

import collections
import threading
from typing import Deque, Tuple

import numpy as np
from builtin_interfaces.msg import Time

from qwen_voice_ros.audio.pcm import AudioFormat, clipping_ratio
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import WARN, VoiceNode, run


class CaptureNode(VoiceNode):
    capability = 'capture'

    def __init__(self):
        super().__init__('capture')

    def declare(self):
        p = self.declare_parameter
        p('source', 'sounddevice')    # sounddevice | wav
        p('device', '')               # PortAudio device name or index; '' = default
        p('wav_path', '')             # source wav: file played in real time
        p('loop', False)              # source wav: start over at the end
        p('sample_rate', 16000)
        p('chunk_ms', 32)
        p('frame_id', '')
        p('clip_warn_ratio', 0.01)    # WARN when this fraction of samples is at full scale
        p('level_window_s', 2.0)      # level/clipping statistics over this window
        p('audio_topic', 'audio_stamped')
        p('info_topic', 'audio_info')
        self.source = None
        self.audio_pub = None
        self.chunks = 0
        self._next_start_ns = None
        self._stats: Deque[Tuple[int, float, int]] = collections.deque()
        self._stats_lock = threading.Lock()

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
        self.audio_pub = self.add_io(self.create_publisher(
            msgs.AudioDataStamped, self.param('audio_topic'), ros_io.QOS_AUDIO))
        info_pub = self.add_io(self.create_publisher(
            msgs.AudioInfo, self.param('info_topic'), ros_io.QOS_LATCHED))
        info_pub.publish(ros_io.info_msg(self.format))

    def on_chunk(self, audio: np.ndarray) -> None:
        """Source thread: one chunk of float32 mono at the capture rate."""
        if not len(audio):
            return
        rate = self.format.sample_rate
        now_ns = self.get_clock().now().nanoseconds
        duration_ns = int(len(audio) * 1e9 / rate)
        # The chunk is complete when the callback fires: its first sample is that much older.
        # Callbacks come in bursts (ALSA periods), so stamps follow the sample count, pulled
        # gently towards the clock (device clock drift), and re-anchored after a real gap.
        estimate_ns = now_ns - duration_ns
        if self._next_start_ns is None or abs(estimate_ns - self._next_start_ns) > 1e8:
            self._next_start_ns = estimate_ns
        else:
            self._next_start_ns += (estimate_ns - self._next_start_ns) // 100
        start_ns = self._next_start_ns
        self._next_start_ns = start_ns + duration_ns
        sum_sq = float(np.sum(np.square(audio, dtype=np.float64)))
        clipped = int(round(clipping_ratio(audio) * len(audio)))
        self._update_stats(len(audio), sum_sq, clipped, rate)
        pub = self.audio_pub
        if not self.active or pub is None:
            return
        stamp = Time(sec=start_ns // 1000000000, nanosec=start_ns % 1000000000)
        pub.publish(ros_io.audio_stamped(audio, stamp, self.param('frame_id')))
        self.chunks += 1

    def _update_stats(self, n: int, sum_sq: float, clipped: int, rate: int) -> None:
        window = int(float(self.param('level_window_s')) * rate)
        with self._stats_lock:
            self._stats.append((n, sum_sq, clipped))
            total = sum(s[0] for s in self._stats)
            while len(self._stats) > 1 and total - self._stats[0][0] >= window:
                total -= self._stats.popleft()[0]
        if not self.active:
            return
        level, ratio = self.level()
        limit = float(self.param('clip_warn_ratio'))
        if ratio > limit:
            self.set_health(WARN, 'input clipping: %.1f%% of samples at full scale; lower the '
                            'microphone gain' % (100.0 * ratio))
        elif self.health[0] == WARN and self.health[1].startswith('input clipping'):
            self.report_ok()

    def level(self) -> Tuple[float, float]:
        """(RMS level in dBFS, clipping ratio) over the statistics window."""
        with self._stats_lock:
            n = sum(s[0] for s in self._stats)
            sum_sq = sum(s[1] for s in self._stats)
            clipped = sum(s[2] for s in self._stats)
        if not n:
            return float('-inf'), 0.0
        rms = (sum_sq / n) ** 0.5
        return 20.0 * float(np.log10(max(rms, 1e-10))), clipped / float(n)

    def diagnostic_values(self):
        level, ratio = self.level()
        values = {'source': self.param('source'), 'sample_rate': self.format.sample_rate
                  if getattr(self, 'format', None) else self.param('sample_rate'),
                  'chunks': self.chunks, 'level_dbfs': round(level, 1),
                  'clipping_ratio': round(ratio, 5)}
        source = self.source
        if source is not None:
            values['overflows'] = getattr(source, 'overflows', 0)
            if source.finished:
                values['source_finished'] = True
        return values


def main(args=None):
    run(CaptureNode, args)


if __name__ == '__main__':
    main()
