"""Conversation state for the reply stage: persona, dialect instruction, bounded history.

The history keeps what the robot actually said: a reply cut off by barge-in enters it only
as far as it was spoken.  Old turns are trimmed to a token budget (oldest first), so a long
conversation never runs past the model's context.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

DIALECT_NAMES_ZH = {
    'mandarin': '普通话', 'sichuanese': '四川话', 'cantonese': '粤语', 'shanghainese': '上海话',
    'northeastern': '东北话', 'henan': '河南话', 'hunan': '湖南话', 'shaanxi': '陕西话',
}


def dialect_instruction(dialect: Optional[str], mode: str) -> str:
    """System-prompt line telling the model how to answer a speaker of ``dialect``.

    mode ``mandarin``: always answer in standard Mandarin (the TTS speaks it best);
    ``match``: answer in the user's dialect where the model can; ``off``: say nothing.
    """
    if mode == 'off' or not dialect or dialect not in DIALECT_NAMES_ZH:
        return ''
    name = DIALECT_NAMES_ZH[dialect]
    if mode == 'match' and dialect != 'mandarin':
        return '用户说的是%s。请用%s的说法简短回答。' % (name, name)
    if dialect == 'mandarin':
        return '请用简洁的普通话回答。'
    return '用户说的是%s，请理解其中的方言词，并用简洁的普通话回答。' % name


class Conversation:
    def __init__(self, persona: str = '', dialect_mode: str = 'mandarin',
                 max_history_tokens: int = 1024, max_turns: int = 16,
                 count_tokens: Optional[Callable[[str], int]] = None):
        self.persona = persona
        self.dialect_mode = dialect_mode
        self.max_history_tokens = max_history_tokens
        self.max_turns = max_turns
        self.count_tokens = count_tokens or len
        self.turns: List[Tuple[str, str]] = []  # (user, assistant as spoken)

    def messages(self, user_text: str, dialect: Optional[str] = None) -> List[Dict[str, str]]:
        system = '\n'.join(s for s in (self.persona, dialect_instruction(dialect,
                                                                         self.dialect_mode)) if s)
        out: List[Dict[str, str]] = [{'role': 'system', 'content': system}] if system else []
        for user, assistant in self._budgeted_history(user_text, system):
            out.append({'role': 'user', 'content': user})
            out.append({'role': 'assistant', 'content': assistant})
        out.append({'role': 'user', 'content': user_text})
        return out

    def commit(self, user_text: str, spoken_reply: str) -> None:
        """Record a finished (or interrupted) turn with what was actually spoken."""
        self.turns.append((user_text, spoken_reply))
        del self.turns[:-self.max_turns]

    def revise_last(self, spoken_reply: str) -> None:
        """The last reply was cut off while being played: keep only what was spoken."""
        if self.turns:
            self.turns[-1] = (self.turns[-1][0], spoken_reply)

    def clear(self) -> None:
        self.turns = []

    def _budgeted_history(self, user_text: str, system: str) -> List[Tuple[str, str]]:
        budget = self.max_history_tokens - self.count_tokens(user_text) - self.count_tokens(system)
        kept: List[Tuple[str, str]] = []
        for user, assistant in reversed(self.turns):
            cost = self.count_tokens(user) + self.count_tokens(assistant) + 8  # role markup
            if cost > budget:
                break
            budget -= cost
            kept.append((user, assistant))
        return list(reversed(kept))
