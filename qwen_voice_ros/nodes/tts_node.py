"""
TTS node: reply sentences (std_msgs/String) -> speech on ``tts/audio`` (AudioDataStamped).

Each sentence becomes one audio message whose ``header.frame_id`` is the turn id; its
format is latched on ``tts/audio_info``.  Synthesis runs on a worker thread; sentences of a
turn that a newer turn superseded are dropped (barge-in).
"""
from __future__ import annotations

import queue
import threading
from typing import Dict


from qwen_voice_ros.audio.pcm import AudioFormat, resample
from qwen_voice_ros.core.turns import TurnTracker
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


class TTSNode(VoiceNode):
    capability = 'tts'
    default_turn_grace_s = 0.5

    def __init__(self):
        super().__init__('tts')

    def declare(self):
        p = self.declare_parameter
        p('backend', 'espeak')
        p('voice', 'cmn-latn-pinyin')   # espeak voice for Mandarin
        p('speed_wpm', 160)
        p('voice_by_dialect', True)     # Cantonese turns get the Cantonese voice
        p('sample_rate', 16000)         # output rate on tts/audio
        p('input_topic', 'reply_sentence')
        p('audio_topic', 'tts/audio')
        p('info_topic', 'tts/audio_info')
        self.tts = None

    def load(self):
        from qwen_voice_ros.tts import create_tts
        backend = self.param('backend')
        params = {}
        if backend == 'espeak':
            params = {'voice': self.param('voice'), 'speed_wpm': int(self.param('speed_wpm')),
                      'voice_by_dialect': bool(self.param('voice_by_dialect'))}
        tts = create_tts(backend, **params)
        tts.load()
        # One short synthesis now: a broken backend fails configure, not the first turn,
        # and the first real sentence doesn't pay the cold start.
        tts.synthesize('你好')
        self.tts = tts
        self.format = AudioFormat(sample_rate=int(self.param('sample_rate')))

    def unload(self):
        if getattr(self, '_queue', None) is not None:
            self._queue.put(None)
            self._worker.join(timeout=5.0)
            self._queue = None
        if self.tts is not None:
            self.tts.close()
            self.tts = None

    def open_io(self):
        msgs = ros_io.audio_msgs()
        self.audio_pub = self.add_io(self.create_publisher(
            msgs.AudioDataStamped, self.param('audio_topic'), ros_io.QOS_AUDIO))
        self.info_pub = self.add_io(self.create_publisher(
            msgs.AudioInfo, self.param('info_topic'), ros_io.QOS_LATCHED))
        self.info_pub.publish(ros_io.info_msg(self.format))
        self.tracker = TurnTracker()
        self.dialects: Dict[str, str] = {}
        self._queue: 'queue.Queue' = queue.Queue()
        self._worker = threading.Thread(target=self._work, name='tts-worker', daemon=True)
        self._worker.start()
        feed_event = self.subscribe_text_turns(self.param('input_topic'), 'reply_sentence',
                                               self.on_sentence)

        def on_event(event):
            if event['stage'] == 'dialect':
                self.dialects[event['turn_id']] = event.get('dialect', {}).get('label')
                if len(self.dialects) > 256:
                    self.dialects.pop(next(iter(self.dialects)))
            elif event['stage'] in ('utterance', 'transcript'):
                self.tracker.observe(event['turn_id'],
                                     float(event.get('turn_stamp', event['stamp'])))
            feed_event(event)
        self.subscribe_events(on_event)

    def on_sentence(self, turn_id, turn_stamp, text, event):
        self.tracker.observe(turn_id, turn_stamp)
        seq = int(event.get('seq', 0)) if event else 0
        self._queue.put((turn_id, turn_stamp, text, seq))

    def _work(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            turn_id, turn_stamp, text, seq = item
            if self.tracker.is_stale(turn_id):
                self.counters['dropped_stale'] = self.counters.get('dropped_stale', 0) + 1
                continue
            if not text.strip():
                self.report_error('empty sentence: nothing to speak', turn_id, turn_stamp)
                continue
            try:
                speech = self.tts.synthesize(text, dialect=self.dialects.get(turn_id))
            except Exception as exc:
                self.report_error('tts failed for %r: %s' % (text[:40], exc), turn_id,
                                  turn_stamp)
                continue
            audio = resample(speech.audio, speech.sample_rate, self.format.sample_rate)
            self.counters['turns'] += 1
            duration = len(audio) / float(self.format.sample_rate)
            self.emit(turn_id, 'tts_audio', turn_stamp, text=text, seq=seq,
                      duration_s=round(duration, 3), detail={'backend': self.tts.name})
            self.audio_pub.publish(ros_io.audio_stamped(audio, self.stamp(), turn_id))
            self.report_ok()


def main(args=None):
    run(TTSNode, args)


if __name__ == '__main__':
    main()
