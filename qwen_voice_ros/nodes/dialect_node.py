"""Dialect node: transcript (std_msgs/String) -> dialect label (std_msgs/String) + scores event."""
from __future__ import annotations

from std_msgs.msg import String

from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


class DialectNode(VoiceNode):
    capability = 'dialect'

    def __init__(self):
        super().__init__('dialect')

    def declare(self):
        self.declare_parameter('backend', 'fast')        # markers | fast | llm | hybrid
        self.declare_parameter('llm_threshold', 0.6)
        self.declare_parameter('context_prior', '')      # '' or a label, e.g. sichuanese
        self.declare_parameter('speaker_smoothing', 0.0)
        self.declare_parameter('model_path', '')
        self.declare_parameter('llm_model_dir', '')      # hybrid: ONNX Qwen export for scoring
        # A second engine next to the llm node's: on a Jetson, whose memory CPU and GPU share,
        # budget for both or keep this on 'fast'.
        self.declare_parameter('llm_provider', 'cpu')    # tensorrt | cuda | cpu
        # few-shot prompt ~270 tokens + the sentence (cut to <= 1250 characters) + label
        self.declare_parameter('llm_max_context', 2048)
        self.declare_parameter('input_topic', 'transcript')
        self.declare_parameter('output_topic', 'dialect')
        self.classifier = None

    def load(self):
        from qwen_voice_ros.dialect import load_dialect_classifier
        stage = self.param('backend')
        scorer = None
        if stage in ('llm', 'hybrid'):
            model_dir = self.param('llm_model_dir')
            if not model_dir:
                raise ValueError('dialect backend %r needs llm_model_dir' % stage)
            from qwen_voice_ros.llm.onnx_engine import OnnxCausalLM
            scorer = OnnxCausalLM(model_dir, provider=self.param('llm_provider'),
                                  max_context=int(self.param('llm_max_context')))
        self.classifier = load_dialect_classifier(
            stage=stage, llm_threshold=float(self.param('llm_threshold')),
            context_prior=self.param('context_prior') or None,
            speaker_smoothing=float(self.param('speaker_smoothing')),
            model_path=self.param('model_path'), llm_scorer=scorer)

    def unload(self):
        self.classifier = None

    def open_io(self):
        self.label_pub = self.add_io(self.create_publisher(
            String, self.param('output_topic'), ros_io.QOS_TEXT))
        feed_event = self.subscribe_text_turns(self.param('input_topic'), 'transcript',
                                               self.on_transcript)
        self.subscribe_events(feed_event)

    def on_transcript(self, turn_id, turn_stamp, text, event):
        self.counters['turns'] += 1
        if not text.strip():
            self.report_error('empty transcript: nothing to classify', turn_id, turn_stamp)
            return
        result = self.classifier.classify(text)
        self.emit(turn_id, 'dialect', turn_stamp, text=text, dialect=result.to_dict())
        self.label_pub.publish(String(data=result.label))
        self.report_ok()


def main(args=None):
    run(DialectNode, args)


if __name__ == '__main__':
    main()
