"""
LLM stage: ask Qwen3 which of the 8 labels fits, by scoring the label continuations.

Instead of free generation (slow, needs parsing) the prompt is scored once per candidate: the
scorer returns the total log-probability of each label's Chinese name as the assistant's reply,
and a softmax over the (length-normalised) log-probabilities gives the scores.  Any object with
``score_continuations(messages, continuations) -> list[float]`` works (the project's Qwen engine).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

from .markers import DIALECT_LABELS

LABEL_NAMES = {
    'mandarin': '普通话', 'sichuanese': '四川话', 'cantonese': '粤语', 'shanghainese': '上海话',
    'northeastern': '东北话', 'henan': '河南话', 'hunan': '湖南话', 'shaanxi': '陕西话',
}

SYSTEM_PROMPT = (
    '你是汉语方言识别助手。判断用户给出的一句话是用哪种方言说的，只回答方言名称，'
    '从以下选项中选一个：普通话、四川话、粤语、上海话、东北话、河南话、湖南话、陕西话。'
    '注意：只有出现方言特有的词语或语法时才判为方言；"阿拉伯""中午""整理""可以"等是普通话。')

FEW_SHOT = (
    ('今天天气怎么样？', 'mandarin'),
    ('你在搞啥子嘛，快点过来。', 'sichuanese'),
    ('你食咗饭未呀？', 'cantonese'),
    ('侬今朝夜到吃啥？', 'shanghainese'),
    ('这事儿咋整啊？', 'northeastern'),
    ('你弄啥嘞？中不中？', 'henan'),
    ('你在搞么子咯？', 'hunan'),
    ('额今天不想去咧。', 'shaanxi'),
)


def build_messages(text: str, context_hint: Optional[str] = None) -> List[Dict[str, str]]:
    """Chat messages: system instruction, few-shot pairs, then the sentence to classify."""
    system = SYSTEM_PROMPT
    if context_hint:
        system += '已知信息：说话人来自%s地区（仅供参考，内容不符时以内容为准）。' % context_hint
    messages = [{'role': 'system', 'content': system}]
    for example, label in FEW_SHOT:
        messages.append({'role': 'user', 'content': '句子：' + example})
        messages.append({'role': 'assistant', 'content': LABEL_NAMES[label]})
    messages.append({'role': 'user', 'content': '句子：' + text})
    return messages


class LLMStage(object):
    """Turns a continuation scorer into 8-label probabilities."""

    def __init__(self, scorer, length_normalise: bool = True):
        if not hasattr(scorer, 'score_continuations'):
            raise ValueError('llm_scorer needs a score_continuations(messages, continuations) '
                             'method')
        self.scorer = scorer
        self.length_normalise = length_normalise

    def probabilities(self, text: str, context_hint: Optional[str] = None) -> List[float]:
        continuations = [LABEL_NAMES[label] for label in DIALECT_LABELS]
        logps = list(self.scorer.score_continuations(build_messages(text, context_hint),
                                                     continuations))
        if len(logps) != len(continuations):
            raise ValueError('scorer returned %d scores for %d continuations'
                             % (len(logps), len(continuations)))
        if self.length_normalise:
            # Label names are 2-3 characters; per-character averaging removes the length bias.
            logps = [lp / max(1, len(c)) for lp, c in zip(logps, continuations)]
        return softmax(logps)


def softmax(values: Sequence[float]) -> List[float]:
    finite = [v if v == v and v != float('-inf') else -1e9 for v in values]
    top = max(finite)
    exps = [math.exp(v - top) for v in finite]
    total = sum(exps)
    return [v / total for v in exps]
