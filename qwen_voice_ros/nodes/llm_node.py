"""
LLM node: transcript -> streamed reply sentences + full reply (std_msgs/String) + events.

An adapter over :class:`~qwen_voice_ros.dialogue.session.ReplySession` (dialect wait,
barge-in, what was spoken) and the chat backend of ``REGISTRY`` (``<backend>.<param>``).
Generation runs on a supervised worker thread; every turn ends in one event: ``reply``,
``cancelled`` (``detail.superseded_by``) or ``error`` -- after an error the user also hears
``fallback_text`` on ``reply_sentence``.  It also watches tts and playback for the turns
it answered (:class:`~qwen_voice_ros.dialogue.downstream.DownstreamWatch`): a turn whose
sentences tts never voices, or whose audio playback never reports (the process died
mid-turn), ends with an ``error`` event (``detail.stage`` tts or playback), not in silence.

Speculative reply (``speculative_reply``): a ``speculative_transcript`` event (the hearing
node's text before the VAD hangover closed the utterance) starts the turn at once, but its
sentences, its ``reply`` and any fallback are held until the confirming ``transcript`` event
of the same turn id; a ``cancelled``/``error`` event of another node for it before that
withdraws it (one ``cancelled`` event here, ``speculative: true``).  Everything this node
publishes on ``reply_sentence``/``reply`` is therefore confirmed, and so is everything tts
and playback (ours or yours) make of it (docs/latency.md).
"""
from __future__ import annotations

import dataclasses
import time

from std_msgs.msg import String

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.dialogue import COMPLETED, ReplySession
from qwen_voice_ros.dialogue.downstream import DownstreamWatch
from qwen_voice_ros.dialogue.first_chunk import FirstChunkHold
from qwen_voice_ros.llm import REGISTRY
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run

# Older flat names still accepted (they override <backend>.<param> when set).
ALIASES = {'model_dir': 'onnx.model_dir', 'provider': 'onnx.provider',
           'trt_cache_dir': 'onnx.trt_cache_dir', 'base_url': 'openai_http.base_url',
           'model': 'openai_http.model'}
CANTONESE = ('cantonese', 'yue')


class LLMNode(VoiceNode):
    capability = 'llm'
    default_turn_grace_s = 0.5  # after the dialect node (0.25 s), which announces first
    PARAMS = (
        Param('enable_thinking', False, 'Qwen3 thinking mode (the <think> text is not spoken)'),
        Param('max_new_tokens', 256, 'longest reply in tokens', min=1, max=8192),
        Param('temperature', 0.7, 'sampling temperature (0 = greedy)', min=0.0, max=5.0),
        Param('top_p', 0.8, 'nucleus sampling', min=0.0, max=1.0),
        Param('top_k', 20, 'top-k sampling (0 = off)', min=0, max=100000),
        Param('min_p', 0.0, 'min-p sampling', min=0.0, max=1.0),
        Param('repetition_penalty', 1.05, 'repetition penalty', min=0.5, max=5.0),
        Param('seed', -1, 'sampling seed (-1 = random)', min=-1, max=2 ** 31 - 1),
        Param('timeout_s', 30.0, 'deadline for one whole reply', min=0.1, max=3600.0),
        Param('persona', '', 'system prompt persona ("" = the built-in robot assistant)'),
        Param('reply_style', 'mandarin', 'reply language', choices=('mandarin', 'dialect')),
        Param('dialect_wait_s', 0.3, "wait this long for the turn's dialect label",
              min=0.0, max=10.0),
        Param('history_token_budget', 1536, 'system prompt + history, in model tokens',
              min=64, max=131072),
        Param('first_min_chars', 6, 'shortest first sentence streamed', min=1, max=200),
        Param('first_max_chars', 10, 'cut the first chunk after this many characters even '
              'without punctuation (TTS starts sooner; 0: no cap)', min=0, max=200),
        Param('max_queue', 4, 'turns waiting for the worker (drop oldest)', min=1, max=64),
        Param('fallback_text', '抱歉，我现在回答不了，请再说一遍。',
              'spoken when the reply fails ("" = silent)'),
        Param('fallback_text_cantonese', '唔好意思，我而家答唔到，请你再讲一次。',
              'fallback for Cantonese turns ("" = fallback_text)'),
        Param('playback_report_margin_s', 5.0, 'a turn whose audio playback has not reported '
              'this long after it should have played ends with an error event (0: off, '
              'also the tts check)', min=0.0, max=600.0),
        Param('tts_report_s', 30.0, 'a turn whose published sentences tts has not voiced this '
              'long after its last tts progress ends with an error event', min=0.1,
              max=3600.0),
        Param('first_chunk_hold_s', 2.0, 'after publishing a reply\'s first sentence, pause '
              'the decode until tts has voiced it, at most this long (tts and LLM share the '
              'CPU: the first audio comes sooner; 0: off; only once a tts is seen)',
              min=0.0, max=10.0),
        Param('speculative_reply', True, 'start generating on a speculative_transcript event '
              '(before the VAD hangover ends); its output is held until the confirming '
              'transcript event (false: wait for the transcript)'),
        Param('speculative_confirm_s', 10.0, 'a speculative turn still unconfirmed this long '
              'is withdrawn (its producer went away)', min=0.1, max=600.0),
        Param('warm_up', True, 'onnx backend: prefill the fixed system prompt (persona and '
              'examples) at configure, so the first turn reuses it like every later turn'),
        Param('input_topic', 'transcript', 'user text in'),
        Param('reply_topic', 'reply', 'full reply out'),
        Param('sentence_topic', 'reply_sentence', 'streamed sentences out'),
    ) + tuple(Param(k, '', 'deprecated alias of %s' % v) for k, v in ALIASES.items())

    def __init__(self):
        super().__init__('llm')

    def declare(self):
        self.declare_backend_params(REGISTRY, 'onnx')
        self.backend = self.session = self.watch = self.hold = None

    def load(self):
        from qwen_voice_ros.llm.base import LLMNotConfigured
        from qwen_voice_ros.llm.memory import DEFAULT_PERSONA, ConversationMemory
        for alias, target in ALIASES.items():
            if self.param(alias) and target.startswith(self.param('backend') + '.'):
                self.set_parameters([rclpy_parameter(target, self.param(alias))])
        try:
            backend = self.create_backend(REGISTRY)
        except (ValueError, KeyError) as exc:
            raise LLMNotConfigured(str(exc)) from None
        backend.load()
        self.backend = backend
        memory = ConversationMemory(self.param('persona') or DEFAULT_PERSONA,
                                    self.param('reply_style'),
                                    int(self.param('history_token_budget')),
                                    count_tokens=backend.count_tokens)
        self.session = ReplySession(self.now_s, memory, float(self.param('dialect_wait_s')),
                                    max_queue=int(self.param('max_queue')),
                                    confirm_timeout_s=float(self.param('speculative_confirm_s')))
        self.hold = FirstChunkHold(float(self.param('first_chunk_hold_s')))
        self.warm = {}
        if self.param('warm_up') and backend.name == 'onnx':
            # An HTTP server keeps its own prompt cache (and may not be up yet): onnx only.
            from qwen_voice_ros.dialogue.warmup import warm_prefix
            try:
                self.warm = warm_prefix(backend, memory, self.options())
                self.get_logger().info('system prompt prefilled at configure: %s' % self.warm)
            except Exception as exc:  # a slow first turn, not a failed configure
                self.get_logger().warning('system prompt warm-up failed: %r' % exc)
        self.watch = DownstreamWatch(self.now_s, float(self.param('playback_report_margin_s')),
                                     float(self.param('tts_report_s')))

    def unload(self):
        if self.session is not None:
            self.session.close()
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def options(self):
        from qwen_voice_ros.llm.base import GenerationOptions
        known = {f.name for f in dataclasses.fields(GenerationOptions)}
        values = {p.name: self.param(p.name) for p in self.PARAMS if p.name in known}
        values['seed'] = None if values['seed'] < 0 else values['seed']
        return GenerationOptions(**values)

    def open_io(self):
        self.reply_pub = self.add_lifecycle_publisher(String, self.param('reply_topic'),
                                                      ros_io.QOS_TEXT)
        self.sentence_pub = self.add_lifecycle_publisher(String, self.param('sentence_topic'),
                                                         ros_io.QOS_TEXT)
        feed_event = self.subscribe_text_turns(
            self.param('input_topic'), 'transcript', self.on_transcript,
            on_reattribute=self._rename)
        me = self.get_fully_qualified_name()

        def on_event(event):
            feed_event(event)
            stage, turn_id = event['stage'], event['turn_id']
            if stage == 'dialect':
                label = (event.get('dialect') or {}).get('label')
                self.publish_outcomes(self.session.on_dialect(turn_id, label))
            elif stage == 'playback':
                self.session.on_playback(turn_id, int(event.get('seq', -1)))
                self.watch.on_playback(turn_id, event.get('final') is True)
            elif stage == 'tts_audio':
                self.hold.on_tts_audio(turn_id)
                self.watch.on_tts_audio(turn_id, event.get('turn_stamp'),
                                        int(event.get('seq', 0)), event.get('duration_s', 0.0))
            elif stage == 'playback_start':
                self.watch.on_playback_start(turn_id)
            elif stage in ('cancelled', 'error'):
                self.watch.on_outcome(turn_id)
                if event['node'] != me and self.session.is_unconfirmed(turn_id):
                    why = (event.get('detail') or {}).get('reason') or event.get('error')
                    self.publish_outcomes(self.session.withdraw(
                        turn_id, '%s: %s' % (event['node'], why or stage)))
            elif (stage == 'speculative_transcript' and event['node'] != me
                  and self.param('speculative_reply') and isinstance(event.get('text'), str)):
                self.publish_outcomes(self.session.on_speculative(
                    turn_id, event.get('turn_stamp', event['stamp']), event['text']))
            elif (stage == 'transcript' and event['node'] != me
                  and self.session.is_unconfirmed(turn_id)):
                # The confirmation: publish what was held now, not after the text's match.
                self.publish_outcomes(self.session.on_transcript(
                    turn_id, event.get('turn_stamp', event['stamp']), event.get('text') or ''))
            elif stage in ('utterance', 'transcript') and event['node'] != me:
                stamp = event.get('turn_stamp', event['stamp'])
                self.publish_outcomes(self.session.on_user_turn(turn_id, stamp))
        self.subscribe_events(on_event)
        self.add_io(self.create_timer(0.02, self._poll))
        self._timing = {}  # turn id -> ttft_s, tokens, tok_per_s for its reply event
        self.worker = self.start_worker('llm-worker', self._work)

    def _rename(self, old, new, _event=None):
        self.session.rename(old, new)
        self.watch.rename(old, new)
        self.hold.rename(old, new)

    def _poll(self):
        self.publish_outcomes(self.session.poll())
        for o in self.watch.poll():
            # Said on behalf of a stage that cannot (it died): not an llm fault, so no WARN
            # health here; counted as tts_/playback_unreported in this node's diagnostics.
            self.get_logger().warning('turn %s: %s' % (o.turn_id, o.error))
            self.emit(o.turn_id, 'error', o.turn_stamp, error=o.error, detail=o.detail)

    def on_transcript(self, turn_id, turn_stamp, text, event):
        self.counters['turns'] += 1
        self.publish_outcomes(self.session.on_transcript(turn_id, turn_stamp, text))

    def publish_outcomes(self, step_or_outcome):
        outcomes = getattr(step_or_outcome, 'outcomes', [step_or_outcome])
        for o in outcomes:
            if o is None:
                continue
            if o.kind != COMPLETED:
                self.watch.on_outcome(o.turn_id)  # stated here: tts/playback owe nothing more
            if o.kind == COMPLETED:
                dialect = o.detail.get('dialect')
                timing = self._timing.pop(o.turn_id, {})
                if o.detail.get('speculative'):
                    timing.update({k: o.detail[k] for k in (
                        'speculative', 'confirm_wait_s', 'first_sentence_held_s')})
                self.emit(o.turn_id, 'reply', o.turn_stamp, text=o.text, final=True,
                          seq=o.detail['sentences'], thinking=o.detail.get('thinking') or None,
                          dialect={'label': dialect} if dialect else None,
                          detail=dict(timing, backend=self.backend.name))
                self.reply_pub.publish(String(data=o.text))
                self.report_ok()
            elif o.kind == 'cancelled':
                self.emit(o.turn_id, 'cancelled', o.turn_stamp, text=o.text, detail=o.detail,
                          speculative=True if o.detail.get('speculative') else None)
            else:
                self.report_error(o.error, o.turn_id, o.turn_stamp, stage='llm')
                self._fallback(o)

    def _fallback_text(self, dialect):
        text = self.param('fallback_text')
        if dialect in CANTONESE:
            text = self.param('fallback_text_cantonese') or text
        return text

    def _fallback(self, outcome):
        """After a failed reply, say a short sentence so the user hears something."""
        text = self._fallback_text(outcome.detail.get('dialect'))
        if not text or 'sentences' not in outcome.detail:
            return  # a turn that never reached the model (empty text, superseded queue)
        self.emit(outcome.turn_id, 'reply_sentence', outcome.turn_stamp, text=text,
                  seq=outcome.detail['sentences'], final=True, detail={'fallback': True})
        self.sentence_pub.publish(String(data=text))

    def _work(self):
        from qwen_voice_ros.llm.sentences import SentenceSplitter
        from qwen_voice_ros.llm.thinking import ThinkFilter
        session = self.session
        while True:
            turn = session.next_turn(timeout=1.0)
            if turn is None:
                if session.closed:
                    return
                continue
            think = ThinkFilter()
            splitter = SentenceSplitter(first_min_chars=int(self.param('first_min_chars')),
                                        first_max_chars=int(self.param('first_max_chars')))

            def say(sentence, turn=turn):
                # Bound now: a speculative turn's sentences are published when it is
                # confirmed, possibly after this loop has moved on to the next turn.
                session.add_sentence(turn, sentence, lambda seq: self._publish_sentence(
                    turn, seq, sentence))
            try:
                messages = session.begin(turn)
                if messages is None:
                    continue
                started, stamps = time.monotonic(), []  # time to first token, tokens/s
                for delta in self.backend.stream_chat(messages, self.options(), turn.cancel):
                    stamps.append(time.monotonic())
                    if turn.cancel.is_set():
                        break
                    for sentence in splitter.feed(think.feed(delta)[0]):
                        say(sentence)
                    self.hold.wait(turn.turn_id, turn.cancel)
                if not turn.cancel.is_set():
                    spoken, _thought = think.flush()
                    for sentence in splitter.feed(spoken) + splitter.flush():
                        say(sentence)
                    if stamps:
                        self._timing[turn.turn_id] = _timing(started, stamps)
                        self._timing[turn.turn_id].update(self._prefix_stats())
                    self.publish_outcomes(session.complete(turn, think.spoken.strip(),
                                                           think.thinking))
            except Exception as exc:  # LLMError and anything a backend throws
                # The spoken fallback becomes the turn's reply in memory (see fail()).
                self.publish_outcomes(session.fail(turn, 'reply failed: %s'
                                                   % (str(exc) or repr(exc)),
                                                   self._fallback_text(turn.dialect)))
            finally:
                session.stopped(turn)

    def _prefix_stats(self):
        """Prompt tokens and how many came from the cache (onnx engine), for the reply event."""
        stats = getattr(getattr(self.backend, 'engine', None), 'last_stats', None) or {}
        return {k: stats[k] for k in ('prompt_tokens', 'reused_tokens') if k in stats}

    def _publish_sentence(self, turn, seq, sentence):
        self.watch.on_sentence(turn.turn_id, turn.turn_stamp, seq)
        if seq == 0:
            self.hold.arm(turn.turn_id)
        self.emit(turn.turn_id, 'reply_sentence', turn.turn_stamp, text=sentence, seq=seq,
                  final=False)
        self.sentence_pub.publish(String(data=sentence))

    def diagnostic_values(self):
        values = {'backend': self.param('backend')}
        if self.session is not None:
            values.update(self.session.values())
        if self.watch is not None:
            values.update(self.watch.values())
            values.update(self.hold.values())
        values.update(getattr(self, 'warm', None) or {})
        return values


def rclpy_parameter(name, value):
    from rclpy.parameter import Parameter
    return Parameter(name, value=value)


def _timing(started, stamps):
    """Time to first streamed token and decode speed (one delta per token, or SSE chunk)."""
    span = stamps[-1] - stamps[0]
    return {'ttft_s': round(stamps[0] - started, 4), 'tokens': len(stamps),
            'tok_per_s': round((len(stamps) - 1) / span, 2) if span > 0 else None}


def main(args=None):
    run(LLMNode, args)


if __name__ == '__main__':
    main()
