"""
TTS node: reply sentences (std_msgs/String) -> speech on ``tts/audio`` (AudioDataStamped).

An adapter around :class:`~qwen_voice_ros.tts.pipeline.TTSPipeline`: each sentence is
synthesised as soon as it arrives, one audio message per piece (``header.frame_id`` = turn
id, format latched on ``tts/audio_info``).  The backend comes from ``tts.REGISTRY``
(``backend`` + ``<backend>.<param>``); default Kokoro, and when Kokoro cannot load, espeak-ng
with a WARN saying why.  ``voice_profile`` (a WAV or YAML/JSON profile) can change at run
time; Kokoro matches a voice to it in the background.  Cancelled or superseded turns are
dropped (a superseded turn: one ``cancelled`` event, ``detail.stage`` tts and
``superseded_by``); a failing sentence gives an error event and the fallback voice speaks it.
"""
from __future__ import annotations

import threading

from qwen_voice_ros.audio.pcm import AudioFormat, resample
from qwen_voice_ros.core.params import Param
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import OK, WARN, VoiceNode, run


class TTSNode(VoiceNode):
    capability = 'tts'
    default_turn_grace_s = 0.5
    PARAMS = (
        Param('fallback', 'espeak', "backend used when the main one fails or lacks the turn's "
              "dialect (Cantonese); '' = none"),
        Param('sample_rate', 16000, 'output rate on tts/audio (Hz)', min=8000, max=48000),
        Param('normalize_text', True, 'read digits, dates, units and symbols as Chinese'),
        Param('max_chars', 80, 'longer sentences are split into pieces of this many characters',
              min=10, max=2000),
        Param('voice_profile', '', 'voice to speak with: a reference WAV or a YAML/JSON profile '
              '(wav, transcript, language, dialect); changeable at run time'),
        Param('input_topic', 'reply_sentence', 'reply sentences to speak'),
        Param('audio_topic', 'tts/audio', 'synthesised audio'),
        Param('info_topic', 'tts/audio_info', 'format of tts/audio (latched)'),
    )

    def __init__(self, **kwargs):
        super().__init__('tts', **kwargs)

    def declare(self):
        from qwen_voice_ros.tts import REGISTRY
        self.declare_backend_params(REGISTRY, 'kokoro')
        self.pipeline, self.note, self.voice = None, '', ''
        self.add_on_set_parameters_callback(self._on_set)

    def _build(self, name):
        from qwen_voice_ros.tts import REGISTRY
        tts = REGISTRY.create(name, {p.name: self.param('%s.%s' % (name, p.name))
                                     for p in REGISTRY.params(name)})
        tts.load()
        tts.synthesize('你好')   # a broken backend fails now, and the first turn is warm
        return tts

    def load(self):
        from qwen_voice_ros.tts import REGISTRY
        from qwen_voice_ros.tts.pipeline import TTSPipeline, build_backends
        name = self.param('backend')
        if name not in REGISTRY.names:
            raise ValueError('unknown tts backend %r (available: %s)'
                             % (name, ', '.join(REGISTRY.names)))
        primary, fallback, self.note = build_backends(self._build, name, self.param('fallback'))
        if self.note:
            self.get_logger().warning(self.note)
        self.pipeline = TTSPipeline(primary, fallback, self._on_audio, self._on_error,
                                    self.param('normalize_text'), self.param('max_chars'),
                                    clock=self.now_s,  # clamp foreign turn stamps (issue 8)
                                    on_dropped=self._on_dropped)
        self.format = AudioFormat(sample_rate=int(self.param('sample_rate')))
        self.voice = primary.name
        problem = self._apply_profile(self.param('voice_profile'))
        if problem:
            self.note = 'voice_profile rejected, default voice: %s' % problem

    def unload(self):
        if self.pipeline is not None:
            # Stop and join the worker before freeing the backends: a thread still inside
            # onnxruntime at interpreter exit aborts the process (SIGINT gave exit code 134).
            self.pipeline.stop()
            if not self.pipeline.join(timeout=30.0):
                self.get_logger().warning('tts worker still busy after 30 s; closing anyway')
            for tts in {self.pipeline.primary, self.pipeline.fallback} - {None}:
                tts.close()
            self.pipeline = None

    def open_io(self):
        msgs = ros_io.audio_msgs()
        self.audio_pub = self.add_lifecycle_publisher(msgs.AudioDataStamped,
                                                      self.param('audio_topic'), ros_io.QOS_AUDIO)
        self.info_pub = self.add_io(self.create_publisher(
            msgs.AudioInfo, self.param('info_topic'), ros_io.QOS_LATCHED))
        self.info_pub.publish(ros_io.info_msg(self.format))
        self.start_worker('tts-worker', self.pipeline.loop)
        feed_event = self.subscribe_text_turns(self.param('input_topic'), 'reply_sentence',
                                               self.on_sentence)

        self.subscribe_events(lambda event: (self.pipeline.on_event(event), feed_event(event)))

    def on_activate(self, state):
        result = super().on_activate(state)
        self._serving()
        return result

    def _serving(self):
        if self.note:
            self.set_health(WARN, 'serving with a warning: %s' % self.note)
        else:
            self.report_ok()

    def on_sentence(self, turn_id, turn_stamp, text, event):
        from qwen_voice_ros.tts.pipeline import Job
        self.pipeline.submit(Job(turn_id, turn_stamp, text, int((event or {}).get('seq', 0))))

    def _on_audio(self, piece):
        audio = resample(piece.speech.audio, piece.speech.sample_rate, self.format.sample_rate)
        self.counters['turns'] += 1
        job = piece.job
        self.emit(job.turn_id, 'tts_audio', job.turn_stamp, text=piece.text, seq=job.seq,
                  duration_s=round(len(audio) / float(self.format.sample_rate), 3),
                  detail={'backend': piece.backend, 'part': piece.part, 'parts': piece.parts})
        self.audio_pub.publish(ros_io.audio_stamped(audio, self.stamp(), job.turn_id))
        if self._health[0] != OK and piece.backend == self.pipeline.primary.name:
            self._serving()

    def _on_dropped(self, job, superseded_by):
        """Say once that a superseded turn's sentences were dropped (issue 8)."""
        self.emit(job.turn_id, 'cancelled', job.turn_stamp,
                  detail={'stage': 'tts', 'superseded_by': superseded_by})

    def _on_error(self, job, message, fallback):
        self.report_error(message + ('; spoken by %s' % fallback if fallback else ''),
                          job.turn_id, job.turn_stamp)

    def _on_set(self, parameters):
        from rcl_interfaces.msg import SetParametersResult
        for p in parameters:
            if p.name == 'voice_profile' and self.pipeline is not None:
                problem = self._apply_profile(p.value)
                if problem:
                    return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _apply_profile(self, path):
        """Check the profile now (return the problem); match the voice on a thread."""
        from qwen_voice_ros.tts.profiles import check_profile
        profile, problem = check_profile(path)
        if problem:
            self.report_error('voice_profile rejected: %s' % problem)
            return problem
        primary = self.pipeline.primary

        def apply():
            try:
                self.voice = '%s: %s' % (primary.name, primary.set_profile(profile))
                self.get_logger().info('voice profile %s: %s' % (path or '(none)', self.voice))
            except Exception as exc:
                self.report_error('voice_profile %s failed: %s' % (path, exc))
        threading.Thread(target=apply, name='tts-profile', daemon=True).start()
        return ''

    def diagnostic_values(self):
        values = dict(self.pipeline.counters) if self.pipeline is not None else {}
        if self.pipeline is not None:
            values.update(queued=self.pipeline.pending(), max_queue=self.pipeline.max_queue,
                          queue_policy='drop oldest')
        values.update(voice=self.voice, fallback_reason=self.note)
        return values


def main(args=None):
    run(TTSNode, args)


if __name__ == '__main__':
    main()
