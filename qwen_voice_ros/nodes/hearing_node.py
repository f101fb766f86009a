"""
Hearing node (``qwen-voice-hearing``, node name ``hearing``): audio -> utterances -> text.

Subscribes ``audio_stamped`` + ``audio_info`` (our capture node or upstream ``audio_capture``
with ``format:=wave``), converts to 16 kHz float32, cuts utterances with the VAD and:

* as soon as speech is confirmed, a ``speech_start`` event (new turn id; barge-in signal);
* per closed utterance, ``utterance`` (AudioDataStamped, ``header.frame_id`` = the turn id,
  ``header.stamp`` = utterance start; format latched on ``utterance_info``) and an
  ``utterance`` event (``duration_s``; ``turn_stamp`` = when the end of speech reached this
  node, on its clock: latency_s is the end-of-speech detection time);
* with an ASR backend, the utterance is transcribed on a worker thread and ``transcript``
  (std_msgs/String) follows a ``transcript`` event carrying the text.  Speculatively: once
  ``speculative_silence_ms`` of silence follows speech the audio so far is transcribed on that
  worker; when the hangover then closes the utterance with the same audio, that transcript
  is published at once (speech that resumes discards it; asr/speculative.py).  The turn's
  stamps stay the end of speech.
* speculative reply (``speculative_reply``, default on): a speculative transcript ready
  while the utterance is still open goes out at once as a ``speculative_transcript`` event
  (``speculative: true``, the open turn's id; nothing on the ``transcript`` topic), so the
  dialect and llm nodes start on it.  The close confirms it with the ordinary ``transcript``
  event + text of the same turn id; speech that resumes (or a closed utterance whose audio
  differs) withdraws it with a ``cancelled`` event (``speculative: true``, ``detail.reason``)
  and the utterance goes on under a new turn id (docs/latency.md).

Backends come from registries and declare their own parameters: ``vad_backend`` (energy |
silero | webrtc) with ``<vad>.<param>``, ``backend`` (faster_whisper | sherpa_onnx | none) with
``<backend>.<param>``.  ``faster_whisper.model_dir: ''`` is the offline Whisper-base pack.
The half-duplex gate (dialogue.gate) mutes or desensitises the VAD while playback speaks.
Bad input (unusable AudioInfo, odd byte counts, empty, clipped or non-finite audio, DC offset,
a stream that stops mid-utterance) is reported on /diagnostics; the next utterance works.
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
from qwen_voice_ros.core.params import Param
from qwen_voice_ros.core.stream_clock import ArrivalClock
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


def _stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _to_time(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1000000000, nanosec=ns % 1000000000)


class HearingNode(VoiceNode):
    capability = 'hearing'
    PARAMS = (
        Param('sample_rate', 16000, 'pipeline rate of the VAD and ASR (Hz)',
              min=8000, max=48000),
        Param('vad_threshold', 0.5, 'P(speech) above which a frame is voiced',
              min=0.0, max=1.0),
        Param('min_speech_ms', 150, 'voiced time that confirms speech (speech_start event)',
              min=10, max=5000),
        Param('min_silence_ms', 700, 'hangover: silence that ends an utterance (comma '
              'pauses up to ~0.65 s stay inside with silero/webrtc)', min=50, max=10000),
        Param('pad_ms', 200, 'pre-roll / post-roll kept around the speech', min=0, max=2000),
        Param('max_utterance_s', 20.0, 'force-close an utterance this long', min=0.5,
              max=600.0),
        Param('speculative_silence_ms', 200, 'transcribe the audio so far after this much '
              'silence, before the hangover ends (0: off)', min=0, max=10000),
        Param('speculative_reply', True, 'announce a speculative transcript ready before the '
              'hangover ends as a speculative_transcript event, so dialect and llm start on it '
              '(confirmed or withdrawn when the utterance closes; false: publish it only at '
              'the close)'),
        Param('warm_up', True, 'run the ASR once at configure so the first turn is not '
              'slower'),
        Param('stream_timeout_s', 2.0, 'no audio this long mid-utterance (device gone): '
              'close the utterance and report it', min=0.1, max=60.0),
        Param('half_duplex', 'raise', 'while the robot speaks: drop frames (mute) or raise '
              'the VAD threshold (raise)', choices=('off', 'mute', 'raise')),
        Param('half_duplex_tail_s', 0.3, 'the gate holds this long after playback stopped',
              min=0.0, max=10.0),
        Param('half_duplex_threshold', 0.9, 'VAD threshold while speaking (mode raise)',
              min=0.0, max=1.0),
        Param('clip_warn_ratio', 0.01, 'report input with more samples at full scale',
              min=0.0, max=1.0),
        Param('dc_warn', 0.05, 'report a DC offset above this (full scale 1.0)',
              min=0.0, max=1.0),
        Param('audio_topic', 'audio_stamped', 'audio in (AudioDataStamped)'),
        Param('info_topic', 'audio_info', 'audio format in (AudioInfo, latched)'),
        Param('utterance_topic', 'utterance', 'utterances out (AudioDataStamped)'),
        Param('utterance_info_topic', 'utterance_info', 'utterance format out (latched)'),
        Param('transcript_topic', 'transcript', 'transcripts out (std_msgs/String)'),
    )

    def __init__(self):
        super().__init__('hearing')

    def declare(self):
        from qwen_voice_ros.asr import ASR_BACKENDS
        from qwen_voice_ros.audio.vad import VAD_BACKENDS
        self.declare_backend_params(VAD_BACKENDS, 'silero', key='vad_backend')
        self.declare_backend_params(ASR_BACKENDS, 'faster_whisper', key='backend')
        self.asr = None
        self._queue = None
        self.utterances = 0
        self.transcripts = 0
        self._reported = {}

    # ---- lifecycle --------------------------------------------------------------------------
    def load(self):
        from qwen_voice_ros.asr import ASR_BACKENDS
        from qwen_voice_ros.audio.vad import VAD_BACKENDS, UtteranceSegmenter
        rate = int(self.param('sample_rate'))
        classifier = self.create_backend(VAD_BACKENDS, key='vad_backend')
        classifier.prepare(rate)  # VADNotAvailable -> configure fails with its message
        self.base_threshold = float(self.param('vad_threshold'))
        self.segmenter = UtteranceSegmenter(
            classifier, sample_rate=rate, threshold=self.base_threshold,
            min_speech_ms=int(self.param('min_speech_ms')),
            min_silence_ms=int(self.param('min_silence_ms')), pad_ms=int(self.param('pad_ms')),
            max_utterance_s=float(self.param('max_utterance_s')),
            on_speech_start=self._on_speech_start)
        self.gate = None
        if self.param('half_duplex') != 'off':
            from qwen_voice_ros.dialogue.gate import HalfDuplexGate
            self.gate = HalfDuplexGate(self.param('half_duplex'),
                                       float(self.param('half_duplex_tail_s')),
                                       float(self.param('half_duplex_threshold')),
                                       clock=self.now_s)
        if self.param('backend') not in ('', 'none'):
            asr = self.create_backend(ASR_BACKENDS, key='backend')
            asr.load()  # ASRNotConfigured -> configure fails with its message
            if self.param('warm_up'):
                asr.transcribe(np.zeros(rate // 2, dtype=np.float32))  # first-call costs now
            self.asr = asr
        from qwen_voice_ros.asr.speculative import SpeculativeASR
        silence_ms = int(self.param('speculative_silence_ms')) if self.asr is not None else 0
        if silence_ms:
            # Before pad_ms of silence the post-roll is not complete: the peeked audio would
            # never equal the closed utterance's, so the job could not be used.
            silence_ms = max(silence_ms, int(self.param('pad_ms')))
        if silence_ms >= int(self.param('min_silence_ms')):
            silence_ms = 0  # the hangover ends first: nothing to gain
        self.spec = SpeculativeASR(after_silence_s=silence_ms / 1000.0,
                                   announce=bool(self.param('speculative_reply')),
                                   on_announce=self._announce, on_withdraw=self._withdraw)
        self.decoder = AudioStreamDecoder(pipeline_rate=rate, streaming=True)
        self._samples_fed = 0
        self._anchor = None   # ROS time (s) of stream sample 0, from message stamps
        # Turn stamps: when a sample reached this node, on its clock (not the audio stamps',
        # which a replayed bag dates to its recording): docs/latency.md.
        self.arrivals = ArrivalClock()
        self._open_turn = None
        self._last_audio = time.monotonic()
        self._stats_seen = (0, 0)

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
        if self.gate is not None:
            self.subscribe_events(self.gate.on_playback_event)
        self.add_io(self.create_timer(0.25, self._check_stream))
        self.add_io(self.create_subscription(msgs.AudioInfo, self.param('info_topic'),
                                             self.on_info, ros_io.QOS_LATCHED))
        self.add_io(self.create_subscription(msgs.AudioDataStamped, self.param('audio_topic'),
                                             self.on_audio, ros_io.QOS_AUDIO))

    # ---- input ------------------------------------------------------------------------------
    def _bad_input(self, message: str, key: str = '', every_s: float = 0.0) -> None:
        self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
        if every_s:
            now = time.monotonic()
            if now - self._reported.get(key, -1e9) < every_s:
                return  # one report per period, not one per chunk
            self._reported[key] = now
        self.report_error(message)

    def on_info(self, msg):
        before = (self.decoder.format, self.decoder.format_error)
        try:
            self.decoder.set_info(msg.channels, msg.sample_rate, msg.sample_format,
                                  msg.coding_format)
        except AudioFormatError as exc:
            self._bad_input('unusable audio_info: %s' % exc)
            return
        if (self.decoder.format, self.decoder.format_error) != before:
            self._restart_stream('audio format changed')
            self.get_logger().info('audio format: %s' % (self.decoder.format,))

    def _restart_stream(self, why: str):
        if self._open_turn is not None:  # the turn started by speech_start gets its outcome
            turn_id, onset = self._open_turn
            self.report_error('utterance dropped: %s mid-utterance' % why, turn_id, onset,
                              stage='vad')
        self._open_turn = None
        # The error above is the open turn's outcome: an announced job is not withdrawn
        # again (one outcome per turn); the llm ends its speculative turn on that error.
        self.spec.reset(withdraw=False)
        self.segmenter.reset()
        self.decoder.reset()
        self._samples_fed = 0
        self._anchor = None
        self.arrivals.reset()

    def _check_stream(self):
        """Audio stopped mid-utterance (device gone, capture stopped): close what was heard."""
        if not self.active or not self.segmenter.in_speech:
            return
        if time.monotonic() - self._last_audio > float(self.param('stream_timeout_s')):
            utt = self.segmenter.flush()
            self._bad_input('audio stream stopped mid-utterance (no audio for %.1f s); '
                            'closed the utterance' % float(self.param('stream_timeout_s')))
            if utt is not None:
                self._publish_utterance(utt)

    def on_audio(self, msg):
        if not self.active:
            return
        try:
            decoded = self.decoder.decode(ros_io.payload_bytes(msg))
        except AudioFormatError as exc:
            self._bad_input('bad audio message: %s' % exc)
            return
        if decoded.empty:
            self._bad_input('empty audio message on %s (no samples)'
                            % self.param('audio_topic'))
            return
        self._last_audio = time.monotonic()
        audio = decoded.audio
        ok = True
        ratio = clipping_ratio(np.nan_to_num(audio))
        if ratio > float(self.param('clip_warn_ratio')):
            ok = False
            self.counters['clipped_chunks'] = self.counters.get('clipped_chunks', 0) + 1
            self._bad_input('clipped input: %.1f%% of samples at full scale; lower the '
                            'microphone gain' % (100.0 * ratio), 'clip', 1.0)
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
        self.arrivals.add(self._samples_fed, self.now_s())
        if self.gate is not None:
            now = self.now_s()
            self.segmenter.threshold = self.gate.vad_threshold(now, self.base_threshold)
            muted = self.gate.muted(now)
        else:
            muted = False
        for utt in self.segmenter.feed(audio, muted=muted):
            self._publish_utterance(utt)
        if self._queue is not None:
            job = self.spec.update(self.segmenter)
            if job is not None:
                if self._open_turn is not None:
                    job.turn_id = self._open_turn[0]
                job.turn_stamp = self._arrival(job.speech_end_s)
                self._queue.put(('speculative', job))
        stats = self.segmenter.stats
        if stats.nonfinite_samples > self._stats_seen[0]:
            ok = False
            self._bad_input('non-finite samples (NaN/inf) in the input: %d replaced by 0'
                            % (stats.nonfinite_samples - self._stats_seen[0]), 'nan', 1.0)
        self._stats_seen = (stats.nonfinite_samples, stats.clipped_samples)
        if abs(stats.dc_offset) > float(self.param('dc_warn')):
            ok = False
            self._bad_input('DC offset %.3f in the input (removed before the VAD); check the '
                            'microphone' % stats.dc_offset, 'dc', 5.0)
        if ok:
            self.report_ok()  # good input again after a reported bad message

    def _on_speech_start(self, onset_s: float):
        turn_id = self.ids.new()
        stamp = self._arrival(onset_s + 1.0 / self.segmenter.rate)
        self._open_turn = (turn_id, stamp)
        self.emit(turn_id, 'speech_start', stamp,
                  detail={'vad': self.param('vad_backend'),
                          'threshold': round(self.segmenter.threshold, 3)})

    def _arrival(self, stream_s: float) -> float:
        known = self.arrivals.time_of_s(stream_s, self.segmenter.rate)
        return self.now_s() if known is None else known

    def _announce(self, job):
        """ASR worker, under the speculation lock: the utterance is still open; say its text."""
        if not job.turn_id:
            return  # no open turn (speech_start never came): nothing to tie it to
        self.counters['speculative_announced'] = \
            self.counters.get('speculative_announced', 0) + 1
        self.emit(job.turn_id, 'speculative_transcript', job.turn_stamp, text=job.text,
                  speculative=True,
                  detail={'backend': self.asr.name, 'asr_s': round(job.asr_s, 3),
                          'audio_s': round(len(job.audio) / float(self.segmenter.rate), 3)})

    def _withdraw(self, job, reason):
        """Speech resumed (or the closed audio differs): the announced turn is cancelled."""
        if not job.turn_id:
            return
        self.emit(job.turn_id, 'cancelled', job.turn_stamp, speculative=True,
                  detail={'stage': 'hearing', 'reason': reason})
        if self._open_turn is not None and self._open_turn[0] == job.turn_id:
            # The rest of this utterance is a new turn: the cancelled id never comes back.
            self._open_turn = (self.ids.new(), self._open_turn[1])

    def _publish_utterance(self, utt):
        # Claim first: a withdrawn speculative turn hands the utterance a new turn id.
        job = self.spec.claim(utt)
        turn_id = self._open_turn[0] if self._open_turn is not None else self.ids.new()
        self._open_turn = None
        start = self._anchor + utt.start_s
        end = self._arrival(utt.speech_end_s)  # end of speech, received: the turn's start
        self.utterances += 1
        self.counters['turns'] += 1
        self.emit(turn_id, 'utterance', end, duration_s=round(utt.duration_s, 3),
                  detail={'start_s': round(start, 3), 'forced': utt.forced,
                          'speech_start_s': round(self._anchor + utt.speech_start_s, 3),
                          'speech_end_s': round(self._anchor + utt.speech_end_s, 3),
                          'vad': self.param('vad_backend')})
        self.utt_pub.publish(ros_io.audio_stamped(utt.audio, _to_time(start), turn_id))
        if self._queue is not None:
            self._queue.put((turn_id, end, utt.audio, job, time.monotonic()))

    # ---- ASR worker -------------------------------------------------------------------------
    def _transcribe_loop(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item[0] == 'speculative':
                job = item[1]
                if job.run(self._transcribe):  # skipped when speech resumed meanwhile
                    self.spec.finished(job)    # announce it if the utterance is still open
                continue
            turn_id, turn_stamp, audio, job, closed = item
            speculative = (job is not None and job.wait(60.0)
                           and (job.text is not None or job.error is not None))
            try:
                if speculative:  # ran during the hangover on exactly this audio
                    if job.error is not None:
                        raise job.error
                    text, elapsed = job.text, job.asr_s
                    self.counters['speculative'] = self.counters.get('speculative', 0) + 1
                else:
                    started = time.monotonic()
                    text = self._transcribe(audio)
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
                              'speculative': bool(speculative),
                              # this confirms the speculative_transcript of the same id
                              'confirms_speculative': bool(speculative and job.announced),
                              'after_close_s': round(time.monotonic() - closed, 3),
                              'audio_s': round(len(audio) / float(self.segmenter.rate), 3)})
            self.text_pub.publish(String(data=text))
            self.report_ok()

    def _transcribe(self, audio) -> str:
        return self.asr.transcribe(np.asarray(audio, dtype=np.float32))

    def diagnostic_values(self):
        values = {'backend': self.param('backend'), 'vad_backend': self.param('vad_backend'),
                  'utterances': self.utterances, 'transcripts': self.transcripts}
        if self.asr is not None and getattr(self.asr, 'resolved_dir', ''):
            values['model_dir'] = self.asr.resolved_dir
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
            values['vad_threshold_now'] = round(segmenter.threshold, 3)
        if getattr(self, 'gate', None) is not None:
            values['half_duplex_gated'] = self.gate.gated(self.now_s())
        if self._queue is not None:
            values['asr_queue'] = self._queue.qsize()
        spec = getattr(self, 'spec', None)
        if spec is not None and spec.enabled:
            values['speculative_used'] = spec.used
            values['speculative_discarded'] = spec.discarded
            if spec.announce:
                values.update(speculative_announced=spec.announced,
                              speculative_confirmed=spec.confirmed,
                              speculative_withdrawn=spec.withdrawn)
        return values


def main(args=None):
    run(HearingNode, args)


if __name__ == '__main__':
    main()
