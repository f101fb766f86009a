"""
Qwen ChatML prompt rendering in plain Python (no jinja2 on the robot).

:func:`render_chat` reproduces the published Qwen3 chat template (``QWEN3_JINJA_TEMPLATE``,
tool calls left out) character for character, including ``enable_thinking``: with thinking
off the generation prompt ends in an empty think block, and reasoning in assistant turns
before the last user query is dropped from the history.  ``flavor='chatml'`` is the plain
Qwen2/2.5 layout (no think handling, no default system prompt).
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

IM_START = '<|im_start|>'
IM_END = '<|im_end|>'
THINK_OPEN = '<think>'
THINK_CLOSE = '</think>'
EMPTY_THINK = '<think>\n\n</think>\n\n'

# The Qwen3 template as published with the Qwen3 checkpoints, minus the tools branches
# (we never pass tools).  Used by tests to check render_chat against transformers.
QWEN3_JINJA_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and message.content is string"
    " and not(message.content.startswith('<tool_response>')"
    " and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n"
    "        {%- set ns.last_query_index = index %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message.content is string %}\n"
    "        {%- set content = message.content %}\n"
    "    {%- else %}\n"
    "        {%- set content = '' %}\n"
    "    {%- endif %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is string %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in content %}\n"
    "                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n')"
    ".split('<think>')[-1].lstrip('\\n') %}\n"
    "                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n'"
    " + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "            {%- endif %}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
)


def _is_tool_response(text: str) -> bool:
    return text.startswith('<tool_response>') and text.endswith('</tool_response>')


def split_thinking(text: str) -> Tuple[str, str]:
    """Split a raw reply into (reasoning, answer) the way the Qwen3 template does."""
    if THINK_CLOSE not in text:
        return '', text
    reasoning = text.split(THINK_CLOSE)[0].rstrip('\n').split(THINK_OPEN)[-1].lstrip('\n')
    answer = text.split(THINK_CLOSE)[-1].lstrip('\n')
    return reasoning, answer


def render_chat(messages: List[Dict[str, str]], add_generation_prompt: bool = True,
                enable_thinking: bool = False, flavor: str = 'qwen3') -> str:
    """
    Render ``messages`` to the prompt text the model was trained on.

    ``enable_thinking`` follows the Qwen3 switch: False (our default for a voice robot)
    appends the empty think block so the model answers directly.
    """
    if flavor not in ('qwen3', 'chatml'):
        raise ValueError('unknown chat template flavor %r' % (flavor,))
    if not messages:
        raise ValueError('render_chat needs at least one message')
    for message in messages:
        if message.get('role') not in ('system', 'user', 'assistant', 'tool'):
            raise ValueError('bad chat role %r' % (message.get('role'),))
    if flavor == 'chatml':
        parts = [IM_START + m['role'] + '\n' + _content(m) + IM_END + '\n' for m in messages]
        if add_generation_prompt:
            parts.append(IM_START + 'assistant\n')
        return ''.join(parts)

    out = []
    if messages[0]['role'] == 'system':
        out.append(IM_START + 'system\n' + _content(messages[0]) + IM_END + '\n')
    last_query_index = len(messages) - 1
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        content = message.get('content')
        if message['role'] == 'user' and isinstance(content, str) \
                and not _is_tool_response(content):
            last_query_index = index
            break
    for index, message in enumerate(messages):
        content = _content(message)
        role = message['role']
        is_last = index == len(messages) - 1
        if role == 'user' or (role == 'system' and index != 0):
            out.append(IM_START + role + '\n' + content + IM_END + '\n')
        elif role == 'assistant':
            reasoning = message.get('reasoning_content')
            if not isinstance(reasoning, str):
                reasoning = ''
                if THINK_CLOSE in content:
                    reasoning, content = split_thinking(content)
            if index > last_query_index and (is_last or reasoning):
                out.append(IM_START + role + '\n' + THINK_OPEN + '\n' + reasoning.strip('\n')
                           + '\n' + THINK_CLOSE + '\n\n' + content.lstrip('\n'))
            else:
                out.append(IM_START + role + '\n' + content)
            out.append(IM_END + '\n')
        elif role == 'tool':
            if index == 0 or messages[index - 1]['role'] != 'tool':
                out.append(IM_START + 'user')
            out.append('\n<tool_response>\n' + content + '\n</tool_response>')
            if is_last or messages[index + 1]['role'] != 'tool':
                out.append(IM_END + '\n')
    if add_generation_prompt:
        out.append(IM_START + 'assistant\n')
        if not enable_thinking:
            out.append(EMPTY_THINK)
    return ''.join(out)


def _content(message: Dict[str, str]) -> str:
    content = message.get('content')
    return content if isinstance(content, str) else ''


_THINK_BLOCK = re.compile(r'<think>.*?(</think>\s*|$)', re.S)


def strip_thinking(text: str) -> str:
    """Remove ``<think>...</think>`` blocks (and an unterminated trailing one) from text."""
    return _THINK_BLOCK.sub('', text).lstrip('\n') if THINK_OPEN in text else text


def flavor_for_model_type(model_type: Optional[str]) -> str:
    """Template flavor for a config.json ``model_type``: Qwen3 family or plain ChatML."""
    return 'qwen3' if (model_type or '').startswith('qwen3') else 'chatml'
