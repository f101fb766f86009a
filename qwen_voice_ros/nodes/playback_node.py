"""
Playback node: ``tts/audio`` (AudioDataStamped, frame_id = turn id) -> speaker.

Chunks play in arrival order through a sink (``sounddevice``, ``wav`` or ``null``); after
each chunk has played, a ``playback`` event (turn_id, seq = arrival order within the turn,
duration_s) is published.  Barge-in: when an ``utterance`` or ``transcript`` event starts a
newer turn, the chunk playing now is cut off at once if it belongs to an older turn, queued
chunks of older turns are dropped, later chunks of those turns are dropped on arrival, and
one ``cancelled`` event per cut turn says how much was played.

Bad input (unusable ``tts/audio_info``, odd byte counts, empty chunks) is reported on
/diagnostics and as an error event; the next good chunk plays as usual.
"""
from __future__ import annotations

import collections
import threading
from typing import Deque, Dict, Optional, Set, Tuple

import numpy as np

from qwen_voice_ros.audio.pcm import AudioFormatError
from qwen_voice_ros.audio.stream import AudioStreamDecoder
from qwen_voice_ros.core.turns import TurnTracker
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run

# (turn_id, seq, audio)
_Chunk = Tuple[str, int, np.ndarray]


class PlaybackNode(VoiceNode):
    capability = 'playback'

    def __init__(self):
        super().__init__('playback')

    def declare(self):
        p = self.declare_parameter
        p('sink', 'sounddevice')      # sounddevice | wav | null
        p('device', '')               # PortAudio output device name or index; '' = default
        p('wav_dir', '')              # sink wav: where <turn_id>_<seq>.wav files go
        p('sample_rate', 16000)       # output rate; incoming audio is resampled to it
        p('realtime', True)           # wav/null sinks: take as long as the audio lasts
        p('audio_topic', 'tts/audio')
        p('info_topic', 'tts/audio_info')
        self.sink = None
        self._play_lock = threading.RLock()
        self._pending: Deque[_Chunk] = collections.deque()
        self._current: Optional[_Chunk] = None
        self._seq: Dict[str, int] = {}
        self._turn_stamps: Dict[str, float] = {}
        self._superseded: Set[str] = set()
        self.played_chunks = 0
        self.played_s = 0.0

    def load(self):
        from qwen_voice_ros.audio.sinks import create_sink
        self.rate = int(self.param('sample_rate'))
        self.sink = create_sink(self.param('sink'), device=self.param('device'),
                                wav_dir=self.param('wav_dir'), sample_rate=self.rate,
                                realtime=bool(self.param('realtime')))
        self.decoder = AudioStreamDecoder(pipeline_rate=self.rate, streaming=False)
        self.tracker = TurnTracker()

    def unload(self):
        if self.sink is not None:
            with self._play_lock:
                self._pending.clear()
            self.sink.close()
            self.sink = None

    def open_io(self):
        msgs = ros_io.audio_msgs()
        self.add_io(self.create_subscription(msgs.AudioInfo, self.param('info_topic'),
                                             self.on_info, ros_io.QOS_LATCHED))
        self.add_io(self.create_subscription(msgs.AudioDataStamped, self.param('audio_topic'),
                                             self.on_audio, ros_io.QOS_AUDIO))
        self.subscribe_events(self.on_event)

    # ---- input ------------------------------------------------------------------------------
    def _bad_input(self, message: str, turn_id: str = '') -> None:
        self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
        self.report_error(message, turn_id, self._turn_stamps.get(turn_id))

    def on_info(self, msg):
        try:
            fmt = self.decoder.set_info(msg.channels, msg.sample_rate, msg.sample_format,
                                        msg.coding_format)
        except AudioFormatError as exc:
            self._bad_input('unusable %s: %s' % (self.param('info_topic'), exc))
            return
        self.get_logger().info('tts audio format: %s' % (fmt,))

    def on_audio(self, msg):
        if not self.active:
            return
        turn_id = msg.header.frame_id or ''
        if not turn_id:
            turn_id = self.ids.new()  # a producer that sends no turn ids: each chunk a turn
        if self._is_stale(turn_id):
            self.counters['dropped_stale'] = self.counters.get('dropped_stale', 0) + 1
            return
        try:
            decoded = self.decoder.decode(ros_io.payload_bytes(msg))
        except AudioFormatError as exc:
            self._bad_input('bad audio chunk: %s' % exc, turn_id)
            return
        if decoded.empty or not len(decoded.audio):
            self._bad_input('empty audio chunk on %s: nothing to play'
                            % self.param('audio_topic'), turn_id)
            return
        with self._play_lock:
            seq = self._seq.get(turn_id, 0)
            self._seq[turn_id] = seq + 1
            if len(self._seq) > 256:
                self._seq.pop(next(iter(self._seq)))
            self._pending.append((turn_id, seq, decoded.audio))
            self._start_next()

    def on_event(self, event):
        stage = event['stage']
        turn_id = event['turn_id']
        if 'turn_stamp' in event:
            self._turn_stamps[turn_id] = float(event['turn_stamp'])
            if len(self._turn_stamps) > 512:
                self._turn_stamps.pop(next(iter(self._turn_stamps)))
        if stage not in ('utterance', 'transcript'):
            return
        newest = self.tracker.observe(turn_id, float(event.get('turn_stamp', event['stamp'])))
        if newest:
            self.barge_in(turn_id)

    def _is_stale(self, turn_id: str) -> bool:
        return turn_id in self._superseded or self.tracker.is_stale(turn_id)

    # ---- barge-in ---------------------------------------------------------------------------
    def barge_in(self, new_turn: str) -> None:
        """Silence and forget everything of turns older than ``new_turn``."""
        with self._play_lock:
            cut = {chunk[0] for chunk in self._pending if chunk[0] != new_turn}
            dropped = len(self._pending)
            self._pending = collections.deque(c for c in self._pending if c[0] == new_turn)
            dropped -= len(self._pending)
            current = self._current
            if current is not None and current[0] != new_turn:
                cut.add(current[0])
                self.sink.stop()  # on_done(False) of the current chunk follows
            self._superseded.update(cut)
            if len(self._superseded) > 512:
                self._superseded = set(list(self._superseded)[-256:])
        if dropped:
            self.counters['dropped_stale'] = self.counters.get('dropped_stale', 0) + dropped
        for turn_id in sorted(cut):
            self.counters['barge_ins'] = self.counters.get('barge_ins', 0) + 1
            self.emit(turn_id, 'cancelled', self._turn_stamps.get(turn_id),
                      detail={'stage': 'playback', 'by_turn': new_turn,
                              'dropped_chunks': dropped})

    # ---- playing ----------------------------------------------------------------------------
    def _start_next(self) -> None:
        with self._play_lock:
            if self._current is not None or not self._pending or self.sink is None:
                return
            chunk = self._pending.popleft()
            self._current = chunk
        turn_id, seq, audio = chunk
        self.sink.play(audio, self.rate, on_done=lambda done, played: self._done(
            chunk, done, played), tag='%s_%d' % (turn_id, seq))

    def _done(self, chunk: _Chunk, completed: bool, played_s: float) -> None:
        """Sink thread: a chunk finished or was cut off."""
        turn_id, seq, audio = chunk
        with self._play_lock:
            if self._current is chunk:
                self._current = None
        if completed:
            self.played_chunks += 1
            self.played_s += played_s
            self.emit(turn_id, 'playback', self._turn_stamps.get(turn_id), seq=seq,
                      duration_s=round(len(audio) / float(self.rate), 3),
                      detail={'sink': self.sink.name if self.sink else ''})
            self.report_ok()
        else:
            self.counters['interrupted'] = self.counters.get('interrupted', 0) + 1
        self._start_next()

    def diagnostic_values(self):
        fmt = self.decoder.format if getattr(self, 'decoder', None) else None
        values = {'sink': self.param('sink'), 'played_chunks': self.played_chunks,
                  'played_s': round(self.played_s, 2), 'queued': len(self._pending),
                  'playing': self._current[0] if self._current else ''}
        if fmt is not None:
            values['input_format'] = '%s %d ch %d Hz %s' % (
                fmt.sample_format, fmt.channels, fmt.sample_rate, fmt.coding_format)
            if self.decoder.format_error:
                values['format_error'] = self.decoder.format_error
        underflows = getattr(self.sink, 'underflows', None)
        if underflows is not None:
            values['underflows'] = underflows
        return values


def main(args=None):
    run(PlaybackNode, args)


if __name__ == '__main__':
    main()
