"""
Conversation memory for the voice assistant: persona, dialect instruction, token budget.

The robot speaks its reply sentence by sentence and can be interrupted (barge-in), so the
assistant turn is committed with what was actually *spoken*: :meth:`commit_assistant`
stores ``spoken_text`` (think blocks removed), never the unspoken rest of the generation.
Old turns are dropped, oldest first and a user/assistant pair at a time, until the system
prompt plus history fit ``token_budget`` tokens as counted by the backend's tokenizer.

Prompt layout for KV-cache reuse: the system prompt is the persona only, so it never
changes.  The reply-style/dialect instruction of each user turn is a system message placed
right before that user message, fixed when the turn is added: the next turn's prompt then
starts with the previous prompt and reply, whatever the next dialect label is, and the
engine prefills only the new tail.  User turns that got no reply (superseded before
anything was spoken) are merged into one group that keeps the newest ``merge_unanswered``
utterances (sent as consecutive user messages, the instruction before the newest one), so
history does not grow with unanswered turns.  When the budget is exceeded,
old turns are dropped down to ``trim_ratio`` of it, so the prefix then stays stable for a
few turns instead of shifting (and being prefilled again) on every turn.
"""
from __future__ import annotations

import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from qwen_voice_ros.llm.chat_template import strip_thinking

DEFAULT_PERSONA = ('你是家用机器人上的语音助手“小安”。用户说一句话，你用一到两句完整、口语化的话'
                   '直接回答，给出具体的内容、结果或建议。不要重复或改写用户的话，不要把问题反问回去；'
                   '做不到的事就说明原因并给个办法。不要使用列表、表情符号或 Markdown。')

# Few-shot turns placed between the system prompt and the conversation (with the default
# persona): small models (0.5B) copy the form of these much more reliably than they follow
# instructions -- a short, concrete answer that does not restate the request.
DEFAULT_EXAMPLES: Tuple[Tuple[str, str], ...] = (
    ('外面冷不冷？', '现在大约五度，挺冷的，出门记得穿厚外套。'),
    ('帮我关掉电视。', '好的，电视已经关掉了。'),
    ('侬今朝忙伐？', '不忙，我一直在家陪着你，有事随时叫我。'),
    ('你会唱歌吗？', '我会唱几首儿歌，想听的话我现在就唱给你听。'),
)

MANDARIN_INSTRUCTION = '无论用户说普通话还是方言，都请用标准、简洁的普通话回答。'
DIALECT_INSTRUCTION = '用户说的是{name}。请用{name}的口语习惯回答，用字要让{name}母语者觉得自然。'
UNKNOWN_DIALECT_INSTRUCTION = '请用用户使用的语言或方言回答。'
# Mandarin reply to a dialect speaker: name the dialect so its words are understood.
MANDARIN_FOR_DIALECT_INSTRUCTION = '用户说的是{name}，请理解其中的方言词语，并用标准、简洁的普通话回答。'

# Dialect labels as the dialect stage may report them -> the name used in the instruction.
DIALECT_NAMES = {
    'mandarin': '普通话', 'putonghua': '普通话', 'zh': '普通话', 'cmn': '普通话',
    'cantonese': '粤语（广东话）', 'yue': '粤语（广东话）',
    'sichuanese': '四川话', 'sichuan': '四川话', 'southwestern': '西南官话',
    'shanghainese': '上海话', 'wu': '吴语（上海话）',
    'dongbei': '东北话', 'northeastern': '东北话',
    'minnan': '闽南话', 'hokkien': '闽南话', 'nan': '闽南话',
    'hakka': '客家话', 'hak': '客家话',
    'tianjin': '天津话', 'henan': '河南话', 'shaanxi': '陕西话', 'hunan': '湖南话',
}


def dialect_instruction(reply_style: str, dialect: Optional[str]) -> str:
    """
    System-prompt sentence for ``reply_style`` 'mandarin' or 'dialect'.

    'dialect' follows the user's dialect when it is known and not Mandarin; otherwise the
    reply is Mandarin.  ``dialect`` is a label such as 'yue' or 'sichuanese' (or a Chinese
    name, used as is).
    """
    if reply_style not in ('mandarin', 'dialect'):
        raise ValueError("reply_style must be 'mandarin' or 'dialect', got %r" % (reply_style,))
    if not dialect or dialect.strip().lower() == 'unknown':
        return MANDARIN_INSTRUCTION
    key = dialect.strip().lower()
    name = DIALECT_NAMES.get(key, dialect.strip())
    if name == '普通话':
        return MANDARIN_INSTRUCTION
    if reply_style == 'mandarin':
        return MANDARIN_FOR_DIALECT_INSTRUCTION.format(name=name)
    if not name:
        return UNKNOWN_DIALECT_INSTRUCTION
    return DIALECT_INSTRUCTION.format(name=name)


class ConversationMemory:
    """Turns of one conversation plus the system prompt; thread-safe."""

    def __init__(self, persona: str = DEFAULT_PERSONA, reply_style: str = 'mandarin',
                 token_budget: int = 2048,
                 count_tokens: Optional[Callable[[str], int]] = None,
                 max_turns: int = 0,
                 examples: Optional[Sequence[Tuple[str, str]]] = None,
                 merge_unanswered: int = 2, trim_ratio: float = 0.75) -> None:
        """
        ``examples``: (user, assistant) pairs sent after the system prompt on every turn.

        ``None`` means :data:`DEFAULT_EXAMPLES` with the default persona and none with a
        custom one (they speak as the default persona).  ``merge_unanswered``: consecutive
        user turns without a reply become one message of the newest this many utterances
        (1 = only the newest).  ``trim_ratio``: an over-budget history is cut down to this
        fraction of the budget (1.0 = just under it).
        """
        dialect_instruction(reply_style, None)  # validates reply_style
        if examples is None:
            examples = DEFAULT_EXAMPLES if persona == DEFAULT_PERSONA else ()
        self.examples = [(str(u), str(a)) for u, a in examples]
        self.persona = persona
        self.reply_style = reply_style
        self.token_budget = int(token_budget)
        self.max_turns = int(max_turns)
        self.merge_unanswered = max(1, int(merge_unanswered))
        self.trim_ratio = min(1.0, max(0.0, float(trim_ratio)))
        self._count = count_tokens or (lambda text: max(1, len(text)))
        self._turns: List[Dict[str, str]] = []
        self._dialect: Optional[str] = None
        self._lock = threading.Lock()

    # Per-message overhead of the ChatML wrapping: <|im_start|>role\n ... <|im_end|>\n
    _WRAP_TOKENS = 5

    def set_dialect(self, dialect: Optional[str]) -> None:
        """Dialect label of the latest user utterance (from the dialect stage)."""
        with self._lock:
            self._dialect = dialect

    def system_prompt(self) -> str:
        """Return the persona: constant, so the cached prompt prefix survives every turn."""
        return self.persona.strip()

    def instruction(self) -> str:
        """Reply-style/dialect instruction for the latest dialect label."""
        with self._lock:
            dialect = self._dialect
        return dialect_instruction(self.reply_style, dialect)

    def add_user(self, text: str) -> None:
        """
        Add a user turn with the current instruction.

        If the previous turn is a user turn too (it got no reply), the two are merged into
        one group, keeping the newest ``merge_unanswered`` utterances and the newer
        instruction.  (Joined into one message, "第2句…" and "第3句…" on two lines read as a
        list the 0.5B model went on enumerating; separate messages do not.)
        """
        instruction = self.instruction()
        with self._lock:
            last = self._turns[-1] if self._turns else None
            if last is not None and last['role'] == 'user':
                pieces = (last.get('pieces') or [last['content']]) + [text]
                pieces = pieces[-self.merge_unanswered:]
                self._turns[-1] = {'role': 'user', 'content': text, 'pieces': pieces,
                                   'instruction': instruction}
                return
            self._turns.append({'role': 'user', 'content': text, 'pieces': [text],
                                'instruction': instruction})

    def commit_assistant(self, spoken_text: str) -> None:
        """
        Record the reply as far as it was spoken (think blocks removed).

        Called after playback ends or is interrupted; an empty string (interrupted before
        the first sentence) records nothing, so the next prompt just has two user turns.
        """
        text = strip_thinking(spoken_text or '').strip()
        if not text:
            return
        with self._lock:
            self._turns.append({'role': 'assistant', 'content': text})

    def revise_last_assistant(self, spoken_text: str) -> None:
        """Cut the last reply down to what was spoken before playback was interrupted."""
        text = strip_thinking(spoken_text or '').strip()
        with self._lock:
            if self._turns and self._turns[-1]['role'] == 'assistant':
                if text:
                    self._turns[-1] = {'role': 'assistant', 'content': text}
                else:
                    self._turns.pop()

    def snapshot(self):
        """Return the history as it is now, for :meth:`restore`."""
        with self._lock:
            return [dict(t) for t in self._turns], self._dialect

    def restore(self, snapshot) -> None:
        """Go back to a :meth:`snapshot` (a speculative user turn that was withdrawn)."""
        turns, dialect = snapshot
        with self._lock:
            self._turns, self._dialect = [dict(t) for t in turns], dialect

    def clear(self) -> None:
        with self._lock:
            self._turns = []

    @property
    def turns(self) -> List[Dict[str, str]]:
        """User and assistant turns as role/content dicts (instructions left out)."""
        with self._lock:
            return [{'role': t['role'], 'content': piece} for t in self._turns
                    for piece in t.get('pieces') or [t['content']]]

    def _tokens(self, turn: Dict) -> int:
        return sum(self._count(m['content']) + self._WRAP_TOKENS for m in self._render(turn))

    @staticmethod
    def _render(turn: Dict) -> List[Dict[str, str]]:
        pieces = turn.get('pieces') or [turn['content']]
        out = [{'role': turn['role'], 'content': p} for p in pieces[:-1]]
        if turn.get('instruction'):
            out.append({'role': 'system', 'content': turn['instruction']})
        return out + [{'role': turn['role'], 'content': pieces[-1]}]

    def messages(self, reserve_tokens: int = 0) -> List[Dict[str, str]]:
        """
        System message, example turns, then the newest turns that fit the budget.

        Each user turn comes after a system message with its instruction.  The budget is
        ``token_budget - reserve_tokens``, system prompt, examples and instructions
        included.  The oldest turns are dropped permanently (whole user/assistant groups,
        so history never starts with an orphan assistant reply), down to ``trim_ratio`` of
        the budget once it is exceeded; the newest user turn is always kept.
        """
        system = {'role': 'system', 'content': self.system_prompt()}
        shots: List[Dict[str, str]] = []
        for user, assistant in self.examples:
            shots += [{'role': 'user', 'content': user},
                      {'role': 'assistant', 'content': assistant}]
        budget = self.token_budget - int(reserve_tokens) - self._tokens(system) - \
            sum(self._tokens(m) for m in shots)
        with self._lock:
            turns = self._turns
            if self.max_turns > 0:
                users = [i for i, t in enumerate(turns) if t['role'] == 'user']
                if len(users) > self.max_turns:
                    del turns[:users[-self.max_turns]]
            sizes = [self._tokens(t) for t in turns]
            target = budget if sum(sizes) <= budget else int(budget * self.trim_ratio)
            while len(turns) > 1 and sum(sizes) > target:
                # Drop the oldest group: one user turn and any assistant turns after it.
                cut = 1
                while cut < len(turns) - 1 and turns[cut]['role'] != 'user':
                    cut += 1
                del turns[:cut]
                del sizes[:cut]
            history = [m for t in turns for m in self._render(t)]
            return [system] + shots + history
