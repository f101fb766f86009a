"""
Hearing node (``qwen-voice-asr``, node name ``hearing``): audio -> utterances -> text.

Subscribes ``audio_stamped`` + ``audio_info`` (our capture node or upstream ``audio_capture``
with ``format:=wave``), converts to 16 kHz float32, cuts utterances with the VAD and for each:

* publishes it on ``utterance`` (AudioDataStamped, ``header.frame_id`` = a new turn id,
  ``header.stamp`` = utterance start; format latched on ``utterance_info``) and an
  ``utterance`` event (``duration_s``; ``turn_stamp`` = utterance end);
* with an ASR backend, transcribes it on a worker thread and publishes ``transcript``
  (std_msgs/String) after a ``transcript`` event carrying the text.

``asr_backend`` defaults to ``faster_whisper``, which needs ``model_dir``; without it
configure fails and says so (a transcript is never made up).  ``asr_backend:=none`` runs the
VAD alone.  Bad input (unusable AudioInfo, odd byte counts, empty or clipped audio) is
reported on /diagnostics and as an error; the next good message is processed as usual.
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import String

from qwen_voice_ros.audio.pcm import AudioFormat, AudioFormatError, clipping_ratio
from qwen_voice_ros.audio.stream import AudioStreamDecoder
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


def _stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _to_time(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1000000000, nanosec=ns % 1000000000)


class HearingNode(VoiceNode):
    capability = 'hearing'

    def __init__(self):
        super().__init__('hearing')

    def declare(self):
        p = self.declare_parameter
        p('sample_rate', 16000)           # pipeline rate (VAD and ASR)
        p('vad_backend', 'energy')
        p('vad_threshold', 0.5)           # P(speech) above which a frame is voiced
        p('energy_threshold_db', 12.0)    # energy VAD: dB above the noise floor
        p('energy_floor_db', -65.0)       # energy VAD: lowest noise floor assumed
        p('min_speech_ms', 150)
        p('min_silence_ms', 500)
        p('pad_ms', 200)
        p('max_utterance_s', 20.0)
        p('clip_warn_ratio', 0.01)        # report input with more samples at full scale
        p('asr_backend', 'faster_whisper')  # faster_whisper | none
        p('model_dir', '')
        p('language', 'zh')
        p('compute_type', 'int8')
        p('device', 'cpu')
        p('beam_size', 1)
        p('cpu_threads', 0)
        p('audio_topic', 'audio_stamped')
        p('info_topic', 'audio_info')
        p('utterance_topic', 'utterance')
        p('utterance_info_topic', 'utterance_info')
        p('transcript_topic', 'transcript')
        self.asr = None
        self._queue = None
        self.utterances = 0
        self.transcripts = 0
        self._last_clip_report = 0.0

    # ---- lifecycle --------------------------------------------------------------------------
    def load(self):
        from qwen_voice_ros.audio.vad import UtteranceSegmenter, create_classifier
        rate = int(self.param('sample_rate'))
        kwargs = {}
        if self.param('vad_backend') == 'energy':
            kwargs = {'threshold_db': float(self.param('energy_threshold_db')),
                      'floor_db': float(self.param('energy_floor_db'))}
        classifier = create_classifier(self.param('vad_backend'), sample_rate=rate, **kwargs)
        self.segmenter = UtteranceSegmenter(
            classifier, sample_rate=rate, threshold=float(self.param('vad_threshold')),
            min_speech_ms=int(self.param('min_speech_ms')),
            min_silence_ms=int(self.param('min_silence_ms')), pad_ms=int(self.param('pad_ms')),
            max_utterance_s=float(self.param('max_utterance_s')))
        backend = self.param('asr_backend')
        if backend not in ('', 'none'):
            from qwen_voice_ros.asr import create_asr
            asr = create_asr(backend, model_dir=self.param('model_dir'),
                             language=self.param('language'),
                             compute_type=self.param('compute_type'),
                             device=self.param('device'), beam_size=int(self.param('beam_size')),
                             cpu_threads=int(self.param('cpu_threads')))
            asr.load()  # ASRNotConfigured -> configure fails with its message
            self.asr = asr
        self.decoder = AudioStreamDecoder(pipeline_rate=rate, streaming=True)
        self._samples_fed = 0
        self._anchor = None   # ROS time (s) of stream sample 0, from message stamps

    def unload(self):
        if self._queue is not None:
            self._queue.put(None)
            self._worker.join(timeout=10.0)
            self._queue = None
        if self.asr is not None:
            self.asr.close()
            self.asr = None

    def open_io(self):
        msgs = ros_io.audio_msgs()
        rate = int(self.param('sample_rate'))
        self.utt_pub = self.add_io(self.create_publisher(
            msgs.AudioDataStamped, self.param('utterance_topic'), ros_io.QOS_AUDIO))
        info_pub = self.add_io(self.create_publisher(
            msgs.AudioInfo, self.param('utterance_info_topic'), ros_io.QOS_LATCHED))
        info_pub.publish(ros_io.info_msg(AudioFormat(sample_rate=rate)))
        self.text_pub = self.add_io(self.create_publisher(
            String, self.param('transcript_topic'), ros_io.QOS_TEXT))
        if self.asr is not None:
            self._queue = queue.Queue()
            self._worker = threading.Thread(target=self._transcribe_loop,
                                            name='asr-worker', daemon=True)
            self._worker.start()
        self.add_io(self.create_subscription(msgs.AudioInfo, self.param('info_topic'),
                                             self.on_info, ros_io.QOS_LATCHED))
        self.add_io(self.create_subscription(msgs.AudioDataStamped, self.param('audio_topic'),
                                             self.on_audio, ros_io.QOS_AUDIO))

    # ---- input ------------------------------------------------------------------------------
    def on_info(self, msg):
        before = (self.decoder.format, self.decoder.format_error)
        try:
            self.decoder.set_info(msg.channels, msg.sample_rate, msg.sample_format,
                                  msg.coding_format)
        except AudioFormatError as exc:
            self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
            self.report_error('unusable audio_info: %s' % exc)
            return
        if (self.decoder.format, self.decoder.format_error) != before:
            self._restart_stream()
            self.get_logger().info('audio format: %s' % (self.decoder.format,))

    def _restart_stream(self):
        self.segmenter.reset()
        self.decoder.reset()
        self._samples_fed = 0
        self._anchor = None

    def on_audio(self, msg):
        if not self.active:
            return
        try:
            decoded = self.decoder.decode(ros_io.payload_bytes(msg))
        except AudioFormatError as exc:
            self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
            self.report_error('bad audio message: %s' % exc)
            return
        if decoded.empty:
            self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
            self.report_error('empty audio message on %s (no samples)'
                              % self.param('audio_topic'))
            return
        audio = decoded.audio
        ratio = clipping_ratio(audio)
        if ratio > float(self.param('clip_warn_ratio')):
            self.counters['clipped_chunks'] = self.counters.get('clipped_chunks', 0) + 1
            now = time.monotonic()
            if now - self._last_clip_report > 1.0:  # one report a second, not one per chunk
                self._last_clip_report = now
                self.report_error('clipped input: %.1f%% of samples at full scale; lower the '
                                  'microphone gain' % (100.0 * ratio))
        rate = self.segmenter.rate
        # Anchor stream time to the ROS clock: this message's first sample was captured at
        # its stamp (when stamped; otherwise now minus its duration).
        msg_start = _stamp_s(msg.header.stamp)
        if msg_start <= 0.0:
            msg_start = self.now_s() - decoded.source_duration_s
        anchor = msg_start - self._samples_fed / float(rate)
        if self._anchor is None or abs(anchor - self._anchor) > 0.5:
            self._anchor = anchor  # first message, or a gap in the stream: re-anchor
        self._samples_fed += len(audio)
        for utt in self.segmenter.feed(audio):
            self._publish_utterance(utt)
        if ratio <= float(self.param('clip_warn_ratio')):
            self.report_ok()  # good input again after a reported bad message

    def _publish_utterance(self, utt):
        turn_id = self.ids.new()
        start = self._anchor + utt.start_s
        end = self._anchor + utt.end_s
        self.utterances += 1
        self.counters['turns'] += 1
        self.emit(turn_id, 'utterance', end, duration_s=round(utt.duration_s, 3),
                  detail={'start_s': round(start, 3), 'forced': utt.forced,
                          'vad': self.param('vad_backend')})
        self.utt_pub.publish(ros_io.audio_stamped(utt.audio, _to_time(start), turn_id))
        if self._queue is not None:
            self._queue.put((turn_id, end, utt.audio))

    # ---- ASR worker -------------------------------------------------------------------------
    def _transcribe_loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            turn_id, turn_stamp, audio = item
            try:
                started = time.monotonic()
                text = self.asr.transcribe(np.asarray(audio, dtype=np.float32))
                elapsed = time.monotonic() - started
            except Exception as exc:
                self.report_error('ASR failed: %r' % exc, turn_id, turn_stamp, stage='asr')
                continue
            if not text.strip():
                self.report_error('no speech recognised in the utterance', turn_id, turn_stamp,
                                  stage='asr')
                continue
            self.transcripts += 1
            self.emit(turn_id, 'transcript', turn_stamp, text=text,
                      detail={'backend': self.asr.name, 'asr_s': round(elapsed, 3),
                              'audio_s': round(len(audio) / float(self.segmenter.rate), 3)})
            self.text_pub.publish(String(data=text))
            self.report_ok()

    def diagnostic_values(self):
        values = {'asr_backend': self.param('asr_backend'),
                  'vad_backend': self.param('vad_backend'),
                  'utterances': self.utterances, 'transcripts': self.transcripts}
        decoder = getattr(self, 'decoder', None)
        if decoder is not None:
            fmt = decoder.format
            values['input_format'] = '%s %d ch %d Hz %s' % (
                fmt.sample_format, fmt.channels, fmt.sample_rate, fmt.coding_format)
            if decoder.format_error:
                values['format_error'] = decoder.format_error
        segmenter = getattr(self, 'segmenter', None)
        if segmenter is not None:
            values['in_speech'] = segmenter.in_speech
        if self._queue is not None:
            values['asr_queue'] = self._queue.qsize()
        return values


def main(args=None):
    run(HearingNode, args)


if __name__ == '__main__':
    main()
