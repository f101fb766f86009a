"""
Playback node: ``tts/audio`` (AudioDataStamped, frame_id = turn id) -> speaker.

An adapter over :class:`~qwen_voice_ros.dialogue.playback.PlaybackQueue`: chunks play in
arrival order through a sink (``sounddevice``, ``wav`` or ``null``).  Events: a
``playback_start`` when a chunk starts (the half-duplex gate follows it), a ``playback``
when it has played (``final`` on the turn's last chunk, as counted by the llm's ``reply``
event), and one ``cancelled`` per turn cut by a newer turn or by the user starting to speak
(``speech_start``), with ``detail.superseded_by``.  Bad input (unusable
``tts/audio_info``, odd byte counts, empty chunks) is reported on /diagnostics and as an
error event; the next good chunk plays as usual.
"""
from __future__ import annotations

from qwen_voice_ros.audio.pcm import AudioFormatError
from qwen_voice_ros.audio.stream import AudioStreamDecoder
from qwen_voice_ros.core.params import Param
from qwen_voice_ros.dialogue import PlaybackQueue
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


class PlaybackNode(VoiceNode):
    capability = 'playback'
    PARAMS = (
        Param('sink', 'sounddevice', 'audio output', choices=('sounddevice', 'wav', 'null')),
        Param('device', '', 'PortAudio output device name or index ("" = default)'),
        Param('wav_dir', '', 'sink wav: where <turn_id>_<seq>.wav files go'),
        Param('sample_rate', 16000, 'output rate; incoming audio is resampled to it',
              min=8000, max=192000),
        Param('realtime', True, 'wav/null sinks: take as long as the audio lasts'),
        Param('max_pending', 64, 'chunks waiting to play (beyond: drop oldest)', min=1,
              max=10000),
        Param('audio_topic', 'tts/audio', 'audio in'),
        Param('info_topic', 'tts/audio_info', 'audio format in (latched)'),
    )

    def __init__(self):
        super().__init__('playback')

    def declare(self):
        self.sink = self.queue = None

    def load(self):
        from qwen_voice_ros.audio.sinks import create_sink
        self.rate = int(self.param('sample_rate'))
        self.sink = create_sink(self.param('sink'), device=self.param('device'),
                                wav_dir=self.param('wav_dir'), sample_rate=self.rate,
                                realtime=bool(self.param('realtime')))
        self.decoder = AudioStreamDecoder(pipeline_rate=self.rate, streaming=False)
        self.queue = PlaybackQueue(self.now_s, max_pending=int(self.param('max_pending')))

    def unload(self):
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def open_io(self):
        msgs = ros_io.audio_msgs()
        self.add_io(self.create_subscription(msgs.AudioInfo, self.param('info_topic'),
                                             self.on_info, ros_io.QOS_LATCHED))
        self.add_io(self.create_subscription(msgs.AudioDataStamped, self.param('audio_topic'),
                                             self.on_audio, ros_io.QOS_AUDIO))
        self.subscribe_events(self.on_event)

    def _bad_input(self, message: str, turn_id: str = '') -> None:
        self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
        self.report_error(message, turn_id, self.queue.turn_stamp(turn_id) if turn_id else None)

    def on_info(self, msg):
        try:
            fmt = self.decoder.set_info(msg.channels, msg.sample_rate, msg.sample_format,
                                        msg.coding_format)
        except AudioFormatError as exc:
            return self._bad_input('unusable %s: %s' % (self.param('info_topic'), exc))
        self.get_logger().info('tts audio format: %s' % (fmt,))

    def on_audio(self, msg):
        if not self.active:
            return
        # No turn ids: each chunk a turn.  A foreign frame_id is capped (file names, memory).
        turn_id = msg.header.frame_id[:128] or self.ids.new()
        if self.queue.is_stale(turn_id):
            # Once per turn: its cancelled outcome, if no cut stated one (issue 8).
            return self.publish_outcomes([self.queue.drop_stale(turn_id)])
        try:
            decoded = self.decoder.decode(ros_io.payload_bytes(msg))
        except AudioFormatError as exc:
            return self._bad_input('bad audio chunk: %s' % exc, turn_id)
        if decoded.empty or not len(decoded.audio):
            return self._bad_input('empty audio chunk on %s: nothing to play'
                                   % self.param('audio_topic'), turn_id)
        _chunk, outcomes = self.queue.push(turn_id, decoded.audio,
                                           len(decoded.audio) / float(self.rate))
        self.publish_outcomes(outcomes)
        self._start_next()

    def on_event(self, event):
        stage, turn_id = event['stage'], event['turn_id']
        if 'turn_stamp' in event:
            self.queue.note_stamp(turn_id, float(event['turn_stamp']))
        if stage in ('utterance', 'transcript'):
            cut = self.queue.on_new_turn(turn_id, event.get('turn_stamp', event['stamp']))
        elif stage == 'speech_start':
            cut = self.queue.on_speech_start(turn_id)
        elif stage == 'reply' or (stage == 'reply_sentence' and event.get('final') is True):
            offset = 0 if stage == 'reply' else 1
            return self.publish_outcomes([self.queue.expect(turn_id,
                                                            int(event.get('seq', 0)) + offset)])
        else:
            return
        if cut.stop_sink and self.sink is not None:
            self.sink.stop()  # on_done(False) of the current chunk follows
        self.publish_outcomes(cut.outcomes)

    def publish_outcomes(self, outcomes):
        for o in outcomes:
            if o is not None and o.event_stage:
                self.emit(o.turn_id, o.event_stage, o.turn_stamp, error=o.error or None,
                          detail=o.detail)

    def _start_next(self) -> None:
        chunk = self.queue.next() if self.sink is not None else None
        if chunk is None:
            return
        self.emit(chunk.turn_id, 'playback_start', self.queue.turn_stamp(chunk.turn_id),
                  seq=chunk.seq, duration_s=round(chunk.duration_s, 3))
        self.sink.play(chunk.audio, self.rate, on_done=lambda done, played: self._done(
            chunk, done, played), tag='%s_%d' % (chunk.turn_id[:64], chunk.seq))

    def _done(self, chunk, completed: bool, played_s: float) -> None:
        """Sink thread: a chunk finished or was cut off."""
        outcome = self.queue.done(chunk, completed, played_s)
        if completed:
            self.emit(chunk.turn_id, 'playback', self.queue.turn_stamp(chunk.turn_id),
                      seq=chunk.seq, duration_s=round(chunk.duration_s, 3),
                      final=outcome is not None or None,
                      detail={'sink': self.sink.name if self.sink else ''})
            self.report_ok()
        self._start_next()

    def diagnostic_values(self):
        values = {'sink': self.param('sink')}
        if self.queue is not None:
            values.update(self.queue.values())
        fmt = self.decoder.format if getattr(self, 'decoder', None) else None
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
