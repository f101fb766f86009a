"""Dialect node: transcript (std_msgs/String) -> dialect label (std_msgs/String) + scores event."""
from __future__ import annotations

from std_msgs.msg import String

from qwen_voice_ros.core.params import Param
from qwen_voice_ros.dialect.markers import DIALECT_LABELS
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


PARAMS = (
    Param('backend', 'fast', 'classifier stage: markers (lexicon only), fast (markers + '
          'character/pinyin n-gram model, shipped), llm (Qwen scores the 8 labels), hybrid '
          '(fast, and llm when fast is unsure)', choices=('markers', 'fast', 'llm', 'hybrid')),
    Param('llm_threshold', 0.6, 'hybrid: fast-stage confidence below which the llm stage '
          'decides', min=0.0, max=1.0),
    Param('context_prior', '', "'' or a label the robot's location makes likely, e.g. "
          'sichuanese for a robot in Chengdu', choices=('',) + DIALECT_LABELS),
    Param('speaker_smoothing', 0.0, 'weight of the previous turns of the same speaker in the '
          'label (0 = each turn alone)', min=0.0, max=0.99),
    Param('model_path', '', "fast stage n-gram model (.npz); '' = the shipped model"),
    Param('asr_model_path', '', "fast stage model for ASR text (.npz); '' = the shipped ASR "
          'model (model_path when that is set)'),
    # auto by default: on the robot the text is what ASR made of speech, and the ASR model
    # (714 real transcripts) scores 0.700 / Mandarin recall 0.90 on held-out spoken sentences
    # where the typed model scores 0.656; typed text (replay, a user's text node) keeps the
    # typed model and its 94 % (docs/dialect.md).
    Param('text_source', 'auto', 'which fast-stage model classifies a transcript: typed, '
          "auto (asr when its transcript event comes from the hearing node's ASR, else "
          'typed), asr (e.g. for an external ASR node that publishes no events)',
          choices=('typed', 'auto', 'asr')),
    # In its own process this is a second engine next to the llm node's; run both nodes in
    # one process (qwen-voice-dialect-llm, share_llm:=true) with the llm node's model_dir and
    # provider and they share one loaded model (llm/engine_pool.py, docs/llm.md).
    Param('llm_model_dir', '', 'llm/hybrid: a qwen-voice-export ONNX directory used for scoring'),
    Param('llm_share_engine', True, 'llm/hybrid: share the loaded model with other nodes of '
          'this process that use the same model_dir and provider (own KV cache, one lock)'),
    Param('llm_provider', 'cpu', 'llm/hybrid: ONNX Runtime execution provider',
          choices=('tensorrt', 'cuda', 'cpu')),
    Param('llm_intra_op_threads', 0, 'llm/hybrid: ONNX Runtime threads (0 = physical cores; '
          "to share the llm node's engine use its onnx.intra_op_threads)", min=0, max=256),
    # few-shot prompt ~270 tokens + the sentence (cut to <= 1250 characters) + label
    Param('llm_max_context', 2048, 'llm/hybrid: KV cache length in tokens', min=512,
          max=32768),
    Param('input_topic', 'transcript', 'text to classify (std_msgs/String)'),
    Param('output_topic', 'dialect', 'label out (std_msgs/String; scores travel as an event)'),
)


class DialectNode(VoiceNode):
    capability = 'dialect'

    def __init__(self):
        super().__init__('dialect')

    def declare(self):
        self.declare_params(PARAMS)
        self.classifier = self.engine = None

    def load(self):
        from qwen_voice_ros.dialect import load_dialect_classifier
        stage = self.param('backend')
        scorer = None
        if stage in ('llm', 'hybrid'):
            model_dir = self.param('llm_model_dir')
            if not model_dir:
                raise ValueError('dialect backend %r needs llm_model_dir' % stage)
            settings = dict(provider=self.param('llm_provider'),
                            max_context=int(self.param('llm_max_context')),
                            intra_op_threads=int(self.param('llm_intra_op_threads')) or None)
            if self.param('llm_share_engine'):
                from qwen_voice_ros.llm import engine_pool
                scorer = engine_pool.acquire(model_dir, **settings)
            else:
                from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
                scorer = OnnxCausalLM(model_dir, **settings)
            self.engine = scorer
        try:
            self.classifier = load_dialect_classifier(
                stage=stage, llm_threshold=float(self.param('llm_threshold')),
                context_prior=self.param('context_prior') or None,
                speaker_smoothing=float(self.param('speaker_smoothing')),
                model_path=self.param('model_path'), llm_scorer=scorer,
                asr_model_path=self.param('asr_model_path'))
        except Exception:
            self.unload()
            raise

    def unload(self):
        self.classifier = None
        engine, self.engine = self.engine, None
        if engine is not None:
            from qwen_voice_ros.llm import engine_pool
            engine_pool.release(engine)  # frees the model when no other node uses it

    def diagnostic_values(self):
        values = {'backend': self.param('backend')}
        if self.engine is not None:
            from qwen_voice_ros.llm import engine_pool
            values['llm_engine_users'] = engine_pool.users_of(self.engine)
        return values

    def open_io(self):
        self.label_pub = self.add_io(self.create_publisher(
            String, self.param('output_topic'), ros_io.QOS_TEXT))
        feed_event = self.subscribe_text_turns(self.param('input_topic'), 'transcript',
                                               self.on_transcript)
        self._speculative = {}  # turn id -> (text, result) of its speculative transcript

        def on_event(event):
            if event['stage'] == 'speculative_transcript' and isinstance(event.get('text'),
                                                                         str):
                self.on_speculative(event)
            feed_event(event)
        self.subscribe_events(on_event)

    def on_speculative(self, event):
        """Label a speculative transcript now (event only): the llm starts before the close."""
        text, turn_id = event['text'], event['turn_id']
        if not text.strip() or turn_id in self._speculative:
            return
        source = self.param('text_source')
        if source == 'auto':
            from qwen_voice_ros.dialect import source_of_event
            source = source_of_event(dict(event, stage='transcript'))  # same ASR text
        result = self.classifier.classify(text, source=source)
        self._speculative[turn_id] = (text, result)
        while len(self._speculative) > 64:
            self._speculative.pop(next(iter(self._speculative)))
        # No label on the dialect topic before the turn is confirmed (speculative: true).
        self.emit(turn_id, 'dialect', event.get('turn_stamp'), text=text, speculative=True,
                  dialect=result.to_dict(), detail={'text_source': source})

    def on_transcript(self, turn_id, turn_stamp, text, event):
        self.counters['turns'] += 1
        if not text.strip():
            self.report_error('empty transcript: nothing to classify', turn_id, turn_stamp)
            return
        source = self.param('text_source')
        if source == 'auto':
            from qwen_voice_ros.dialect import source_of_event
            source = source_of_event(event)
        text_and_result = getattr(self, '_speculative', {}).pop(turn_id, None)
        if text_and_result is not None and text_and_result[0] == text:
            result = text_and_result[1]  # confirmed: the label its speculative text got
        else:
            result = self.classifier.classify(text, source=source)
        self.emit(turn_id, 'dialect', turn_stamp, text=text, dialect=result.to_dict(),
                  detail={'text_source': source})
        self.label_pub.publish(String(data=result.label))
        self.report_ok()


def main(args=None):
    run(DialectNode, args)


if __name__ == '__main__':
    main()
