"""
LLM node: transcript -> streamed reply sentences + full reply (std_msgs/String) + events.

Generation runs on a worker thread so the node keeps receiving: a newer turn cancels the
running one within one decode step / network read (barge-in), and the cut-off reply enters
the conversation only as far as playback reported it spoken.
"""
from __future__ import annotations

import queue
import threading
from typing import Dict, Optional

from std_msgs.msg import String

from qwen_voice_ros.core.turns import TurnTracker
from qwen_voice_ros.nodes import ros_io
from qwen_voice_ros.nodes.base import VoiceNode, run


class _Turn:
    def __init__(self, turn_id, turn_stamp, text, deadline):
        self.turn_id = turn_id
        self.turn_stamp = turn_stamp
        self.text = text
        self.deadline = deadline
        self.dialect: Optional[str] = None
        self.cancel = threading.Event()
        self.sentences = []


class LLMNode(VoiceNode):
    capability = 'llm'
    default_turn_grace_s = 0.5  # after the dialect node (0.25 s), which announces first

    def __init__(self):
        super().__init__('llm')

    def declare(self):
        p = self.declare_parameter
        p('backend', 'onnx')               # onnx | openai_http
        p('model_dir', '')                 # onnx: a qwen-voice-export directory
        p('provider', 'cpu')               # onnx: tensorrt | cuda | cpu
        p('trt_cache_dir', '')
        p('base_url', 'http://127.0.0.1:8000/v1')  # openai_http
        p('model', '')
        p('api_key', '')
        p('stream', True)
        p('enable_thinking', False)
        p('max_new_tokens', 256)
        p('temperature', 0.7)
        p('top_p', 0.8)
        p('top_k', 20)
        p('min_p', 0.0)
        p('repetition_penalty', 1.05)
        p('seed', -1)
        p('timeout_s', 30.0)
        p('persona', '')                   # '' = the built-in robot-assistant persona
        p('reply_style', 'mandarin')       # mandarin | dialect (answer in the user's dialect)
        p('dialect_wait_s', 0.3)           # wait this long for the turn's dialect label
        p('history_token_budget', 1536)    # system prompt + history, in model tokens
        p('first_min_chars', 6)
        p('input_topic', 'transcript')
        p('reply_topic', 'reply')
        p('sentence_topic', 'reply_sentence')
        self.backend = None

    def load(self):
        from qwen_voice_ros.llm import create_backend
        from qwen_voice_ros.llm.memory import DEFAULT_PERSONA, ConversationMemory
        names = ('model_dir', 'provider', 'trt_cache_dir', 'base_url', 'model', 'api_key',
                 'stream')
        backend = create_backend(self.param('backend'), **{n: self.param(n) for n in names})
        backend.load()
        self.backend = backend
        self.memory = ConversationMemory(self.param('persona') or DEFAULT_PERSONA,
                                         self.param('reply_style'),
                                         int(self.param('history_token_budget')),
                                         count_tokens=backend.count_tokens)

    def unload(self):
        if getattr(self, '_queue', None) is not None:
            self._queue.put(None)
            self._worker.join(timeout=5.0)
            self._queue = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def options(self):
        from qwen_voice_ros.llm.base import GenerationOptions
        seed = int(self.param('seed'))
        return GenerationOptions(
            max_new_tokens=int(self.param('max_new_tokens')),
            temperature=float(self.param('temperature')), top_p=float(self.param('top_p')),
            top_k=int(self.param('top_k')), min_p=float(self.param('min_p')),
            repetition_penalty=float(self.param('repetition_penalty')),
            seed=None if seed < 0 else seed, enable_thinking=bool(self.param('enable_thinking')),
            timeout_s=float(self.param('timeout_s')))

    def open_io(self):
        self.reply_pub = self.add_io(self.create_publisher(String, self.param('reply_topic'),
                                                           ros_io.QOS_TEXT))
        self.sentence_pub = self.add_io(self.create_publisher(
            String, self.param('sentence_topic'), ros_io.QOS_TEXT))
        self.tracker = TurnTracker()
        self.waiting: Dict[str, _Turn] = {}
        self.current: Optional[_Turn] = None
        self.last_finished: Optional[_Turn] = None  # its audio may still be playing
        self.spoken_seq: Dict[str, int] = {}
        self.saw_playback = False
        self._queue: 'queue.Queue[Optional[_Turn]]' = queue.Queue()
        self._worker = threading.Thread(target=self._work, name='llm-worker', daemon=True)
        self._worker.start()
        feed_event = self.subscribe_text_turns(self.param('input_topic'), 'transcript',
                                               self.on_transcript)

        def on_event(event):
            feed_event(event)
            self.on_event(event)
        self.subscribe_events(on_event)
        self.add_io(self.create_timer(0.02, self._release_waiting))

    def on_event(self, event):
        stage, turn_id = event['stage'], event['turn_id']
        if stage == 'dialect' and turn_id in self.waiting:
            self.waiting[turn_id].dialect = event.get('dialect', {}).get('label')
            self._start(self.waiting.pop(turn_id))
        elif stage == 'playback':
            self.saw_playback = True
            self.spoken_seq[turn_id] = max(self.spoken_seq.get(turn_id, -1),
                                           int(event.get('seq', -1)))
        elif stage in ('utterance', 'transcript') and event['node'] != \
                self.get_fully_qualified_name():
            # A new user turn began: whatever we are saying for an older turn is stale.
            if self.tracker.observe(turn_id, float(event.get('turn_stamp', event['stamp']))):
                self._cancel_older(turn_id)

    def on_transcript(self, turn_id, turn_stamp, text, event):
        self.counters['turns'] += 1
        if not text.strip():
            self.report_error('empty transcript: no reply generated', turn_id, turn_stamp)
            return
        self.tracker.observe(turn_id, turn_stamp)
        self._cancel_older(turn_id)
        turn = _Turn(turn_id, turn_stamp, text.strip(),
                     self.now_s() + float(self.param('dialect_wait_s')))
        self.waiting[turn_id] = turn

    def _release_waiting(self):
        now = self.now_s()
        for turn_id in [t for t, turn in self.waiting.items() if turn.deadline <= now]:
            self._start(self.waiting.pop(turn_id))

    def _start(self, turn: _Turn):
        if self.tracker.is_stale(turn.turn_id):
            return
        self.current = turn
        self._queue.put(turn)

    def _cancel_older(self, turn_id: str):
        current = self.current
        if current is not None and current.turn_id != turn_id and not current.cancel.is_set():
            current.cancel.set()
        last = self.last_finished
        if last is not None and last.turn_id != turn_id:
            self.last_finished = None
            played = self.spoken_seq.get(last.turn_id, -1) + 1
            if self.saw_playback and played < len(last.sentences):
                # Generation had finished, but the user cut in while it was being played.
                spoken = ''.join(last.sentences[:played])
                self.memory.revise_last_assistant(spoken)
                self.emit(last.turn_id, 'cancelled', last.turn_stamp, text=spoken,
                          detail={'reason': 'barge-in during playback',
                                  'sentences_generated': len(last.sentences)})
        for stale in [t for t in self.waiting if t != turn_id and self.tracker.is_stale(t)]:
            self.waiting.pop(stale)

    def _work(self):
        from qwen_voice_ros.llm.sentences import SentenceSplitter
        from qwen_voice_ros.llm.thinking import ThinkFilter
        while True:
            turn = self._queue.get()
            if turn is None:
                return
            if turn.cancel.is_set():
                continue
            think = ThinkFilter()
            splitter = SentenceSplitter(first_min_chars=int(self.param('first_min_chars')))
            self.memory.set_dialect(turn.dialect)
            self.memory.add_user(turn.text)
            messages = self.memory.messages()
            error = None
            try:
                for delta in self.backend.stream_chat(messages, self.options(), turn.cancel):
                    if turn.cancel.is_set():
                        break
                    spoken, _thought = think.feed(delta)
                    for sentence in splitter.feed(spoken):
                        self._publish_sentence(turn, sentence)
                if not turn.cancel.is_set():
                    spoken, _thought = think.flush()
                    for sentence in splitter.feed(spoken) + splitter.flush():
                        self._publish_sentence(turn, sentence)
            except Exception as exc:  # LLMError and anything a backend throws
                error = str(exc) or repr(exc)
            if error is not None:
                self.report_error('reply failed: %s' % error, turn.turn_id, turn.turn_stamp)
            elif turn.cancel.is_set():
                self._finish_cancelled(turn)
            else:
                self._finish(turn, think.spoken.strip(), think.thinking)

    def _publish_sentence(self, turn: _Turn, sentence: str):
        seq = len(turn.sentences)
        turn.sentences.append(sentence)
        self.emit(turn.turn_id, 'reply_sentence', turn.turn_stamp, text=sentence, seq=seq,
                  final=False)
        self.sentence_pub.publish(String(data=sentence))

    def _finish(self, turn: _Turn, reply: str, thinking: str):
        self.emit(turn.turn_id, 'reply', turn.turn_stamp, text=reply, seq=len(turn.sentences),
                  final=True, thinking=thinking or None, dialect={'label': turn.dialect}
                  if turn.dialect else None, detail={'backend': self.backend.name})
        self.reply_pub.publish(String(data=reply))
        self.memory.commit_assistant(reply)
        self.last_finished = turn
        self.report_ok()

    def _finish_cancelled(self, turn: _Turn):
        if self.saw_playback:
            spoken = turn.sentences[:self.spoken_seq.get(turn.turn_id, -1) + 1]
        else:
            spoken = turn.sentences  # no playback in the graph: what was published counts
        self.memory.commit_assistant(''.join(spoken))
        self.emit(turn.turn_id, 'cancelled', turn.turn_stamp, text=''.join(spoken),
                  detail={'reason': 'barge-in', 'sentences_generated': len(turn.sentences)})


def main(args=None):
    run(LLMNode, args)


if __name__ == '__main__':
    main()
