#!/usr/bin/env python3
"""
Write ``docs/parameters.md``, the parameter reference, from the nodes' own declarations.

Every node of the stack (``qwen_voice_ros.stack.description.NODES``) is constructed in this
process, without spinning, with DDS discovery off (``ROS_AUTOMATIC_DISCOVERY_RANGE=OFF``): so
what is documented is exactly what the node declares -- its ``PARAMS``, the common
``BASE_PARAMS``, every backend's ``<backend>.<param>`` from the capability registries, and any
parameter still declared by hand in ``declare()``.  Type, default, range or choices and
description come from the ``core.params.Param`` where there is one, else from the
ParameterDescriptor.  Nothing is loaded (no model, no audio device): backends are only
imported for their ``PARAMS``.

Usage::

    python scripts/gen_param_docs.py            # rewrite docs/parameters.md
    python scripts/gen_param_docs.py --check    # exit 1 (and print a diff) if it is stale
    python scripts/gen_param_docs.py --json     # the collected declarations as JSON

The "Setting parameters" section is kept in this script (``SETTING``), so the whole file is
generated; edit the script, not the Markdown.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import sys
from typing import Any, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, 'docs', 'parameters.md')

# Declared by rclpy itself for every node, not by this project.
ROS_BUILTIN = {
    'use_sim_time': 'ROS built-in: take the time from /clock (launch argument `use_sim_time`, '
                    'e.g. with `qwen-voice-replay --clock`)',
    'start_type_description_service': 'ROS built-in: start the ~/get_type_description service',
}

_INT_OPEN = (-2 ** 31, 2 ** 31 - 1, -2 ** 63, 2 ** 63 - 1)
_FLOAT_OPEN = 1e308


# ---- collection (imports rclpy) -------------------------------------------------------------
def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'int'
    if isinstance(value, float):
        return 'float'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        items = list(value)
        return (_type_name(items[0]) if items else 'value') + '[]'
    return type(value).__name__


def _plain(value: Any) -> Any:
    """Return a parameter value as JSON-able Python (rclpy gives array('d') for arrays)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if hasattr(value, 'tolist'):
        return value.tolist()
    return list(value)


def _node_class(module_name: str):
    from qwen_voice_ros.nodes.base import VoiceNode
    module = importlib.import_module(module_name)
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, VoiceNode) and obj is not VoiceNode
             and obj.__module__ == module.__name__]
    if len(found) != 1:
        raise RuntimeError('%s: expected one VoiceNode subclass, found %s'
                           % (module_name, [c.__name__ for c in found]))
    return found[0]


def _describe_node(node) -> List[Dict[str, Any]]:
    specs = getattr(node, '_param_specs', {})
    selectors = {key: list(registry.names)
                 for key, registry in node.__dict__.get('_doc_backend_keys', [])}
    names = list(node._parameters)  # insertion order = declaration order
    rows = []
    for name, descriptor in zip(names, node.describe_parameters(names)):
        value = _plain(node.get_parameter(name).value)
        spec = specs.get(name)
        row = {'name': name, 'type': _type_name(value), 'default': value,
               'min': None, 'max': None, 'choices': None,
               'description': descriptor.description, 'builtin': name in ROS_BUILTIN,
               'backend_key': name in selectors}
        if spec is not None:
            row.update(min=spec.min, max=spec.max,
                       choices=list(spec.choices) if spec.choices else None,
                       description=spec.description)
        else:
            for ranges, open_ends in ((descriptor.integer_range, _INT_OPEN),
                                      (descriptor.floating_point_range, ())):
                for rng in ranges:
                    low, high = rng.from_value, rng.to_value
                    row['min'] = None if low in open_ends or low <= -_FLOAT_OPEN else low
                    row['max'] = None if high in open_ends or high >= _FLOAT_OPEN else high
            if name in selectors:
                row['choices'] = selectors[name]
        if name in ROS_BUILTIN and not row['description']:
            row['description'] = ROS_BUILTIN[name]
        rows.append(row)
    for key, backends in selectors.items():
        for row in rows:
            prefix = row['name'].split('.', 1)[0]
            if '.' in row['name'] and prefix in backends:
                row['backend_of'] = [key, prefix]
    return rows


def collect() -> List[Dict[str, Any]]:
    """Construct every node of the stack (not spun) and return its declared parameters."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'OFF'  # nothing leaves this process
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import rclpy

    from qwen_voice_ros.nodes import base
    from qwen_voice_ros.stack.description import NODES

    # Remember which registry each backend selector key lists (behaviour unchanged).
    declare_backend_params = base.VoiceNode.declare_backend_params

    def recording(self, registry, default, key='backend'):
        self.__dict__.setdefault('_doc_backend_keys', []).append((key, registry))
        return declare_backend_params(self, registry, default, key=key)

    base.VoiceNode.declare_backend_params = recording
    rclpy.init(args=[])
    nodes = []
    try:
        for spec in NODES:
            node = _node_class(spec.module)()
            try:
                nodes.append({'name': spec.name, 'executable': spec.executable,
                              'node_name': node.get_name(), 'summary': spec.summary,
                              'params': _describe_node(node)})
            finally:
                node.destroy_node()
    finally:
        base.VoiceNode.declare_backend_params = declare_backend_params
        rclpy.shutdown()
    return nodes


# ---- rendering (pure Python) ----------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def _code(value: Any) -> str:
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = repr(value)
    return '`%s`' % _cell(text)


def _range(row: Dict[str, Any]) -> str:
    if row.get('choices'):
        return ' \\| '.join('`%s`' % _cell(c) for c in row['choices'])
    low, high = row.get('min'), row.get('max')
    if low is not None and high is not None:
        return '%s … %s' % (_num(low), _num(high))
    if low is not None:
        return '>= %s' % _num(low)
    if high is not None:
        return '<= %s' % _num(high)
    return ''


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def _table(rows: List[Dict[str, Any]]) -> List[str]:
    out = ['| parameter | type | default | range / choices | description |',
           '|---|---|---|---|---|']
    for row in rows:
        out.append('| `%s` | %s | %s | %s | %s |' % (
            row['name'], row['type'], _code(row['default']), _range(row),
            _cell(row['description'] or '**(no description)**')))
    return out


def _signature(row: Dict[str, Any]):
    return json.dumps({k: row.get(k) for k in ('type', 'default', 'min', 'max', 'choices',
                                               'description')}, sort_keys=True)


def common_names(nodes: List[Dict[str, Any]]) -> List[str]:
    """Return the names that every node declares identically (documented once)."""
    first = nodes[0]['params']
    same = []
    for row in first:
        sigs = set()
        for node in nodes:
            match = [r for r in node['params'] if r['name'] == row['name']]
            sigs.add(_signature(match[0]) if match else None)
        if len(sigs) == 1 and None not in sigs:
            same.append(row['name'])
    return same


HEADER = """\
# Parameter reference

<!-- Generated by scripts/gen_param_docs.py from the nodes' declarations: do not edit by hand.
     Regenerate with `python scripts/gen_param_docs.py`; test/test_param_docs.py fails when
     this file is out of date. -->

Every parameter each node of the voice stack declares: the node's own, the ones every node
shares, and every backend's `<backend>.<param>` (declared for all backends of the registry,
whichever is chosen; only the chosen one's are used).  Ranges and choices are enforced: a
value outside them fails configure with one clear line at start, and is refused with a reason
when set at run time (see [Setting parameters](#setting-parameters)); the choice of a backend
selector (`backend`, `vad_backend`) is checked when the node configures.  Types are ROS
parameter types: an `int` parameter does not take `1.5`; at start (command line, YAML) a
`float` one takes `1` as `1.0`.

"""

SETTING = """\
## Setting parameters

**YAML.**  `config/voice_stack.yaml` holds the stack's parameters; keys are `/**/<node>` (the
node name: `capture`, `hearing`, `dialect`, `llm`, `tts`, `playback`) so they apply under any
namespace.  Backend parameters are written with their dot, e.g.:

```yaml
/**/llm:
  ros__parameters:
    backend: onnx
    onnx.model_dir: models/qwen3-1.7b-int4
    temperature: 0.7
/**/tts:
  ros__parameters:
    backend: kokoro
```

**Launch.**  `launch/voice_stack.launch.py` takes one `params_file` (default: the installed
`config/voice_stack.yaml`) and a few arguments for the usual overrides:

```bash
ros2 launch qwen_voice_ros voice_stack.launch.py \\
    llm_model_dir:=models/qwen3-1.7b-int4 params_file:=my_stack.yaml
# also: llm_backend:=onnx|openai_http  namespace:=robot1  use_sim_time:=true
#       capture:=false (and the other node names) to leave a node out
```

**`qwen-voice-stack`** (the same stack as plain processes, where launch_ros is missing)
takes the same `NAME:=VALUE` arguments, plus `--extra-params-file`: a YAML applied *after*
`params_file`, so it overrides only the keys it sets; repeat it to stack several files (later
ones win); the values set by arguments (`llm_model_dir:=`, `llm_backend:=`, `use_sim_time:=`)
still win over every file.  `--print` shows the resulting node list, parameter files and
overrides without starting anything.

```bash
qwen-voice-stack llm_model_dir:=models/qwen3-1.7b-int4 params_file:=my_stack.yaml
qwen-voice-stack --extra-params-file robot1.yaml --extra-params-file quiet_room.yaml
qwen-voice-stack playback:=false --print
```

A single node takes the usual ROS arguments:
`qwen-voice-llm --ros-args -p temperature:=0.3 --params-file my.yaml`.

**At run time.**  `ros2 param set /llm temperature 0.3` (or any client's SetParameters) is
checked when it is set, against the same range, choices and type as at start; a bad value is
refused with the reason and the node keeps its old value:

```text
$ ros2 param set /llm temperature 9.0
Setting parameter failed: Parameter temperature out of range Min: 0.0, Max: 5.0, value: 9.0
$ ros2 param set /llm reply_style klingon
Setting parameter failed: reply_style must be one of mandarin|dialect, got 'klingon'
```

Most parameters are read when the node configures (topics, backend choice, backend
parameters; `autostart` and `diagnostics_period_s` only at start): after changing them, run
`ros2 lifecycle set /<node> deactivate`, `cleanup`, `configure`, `activate` (or restart the
node) for them to take effect; a few are read live, as their description says.
`ros2 param describe /<node> <name>` shows the description and range documented here.
"""


def render(nodes: List[Dict[str, Any]]) -> str:
    """Render the whole Markdown document from ``collect()``'s data."""
    common = common_names(nodes)
    lines = HEADER.splitlines()
    lines += ['## Contents', '']
    lines += ['- [Common to every node](#common-to-every-node)']
    lines += ['- [%s](#%s)' % (n['name'], n['name']) for n in nodes]
    lines += ['- [Setting parameters](#setting-parameters)', '']
    lines += ['## Common to every node', '',
              'Declared by every node (`nodes/base.py`) with the same default:', '']
    rows = [r for r in nodes[0]['params'] if r['name'] in common]
    lines += _table([r for r in rows if not r['builtin']] + [r for r in rows if r['builtin']])
    lines.append('')
    for node in nodes:
        own = [r for r in node['params'] if r['name'] not in common and 'backend_of' not in r]
        lines += ['## %s' % node['name'], '',
                  'Node `%s`, console script `%s`: %s.  Also the '
                  '[common parameters](#common-to-every-node).'
                  % (node['node_name'], node['executable'], node['summary']), '']
        lines += _table(own)
        lines.append('')
        for row in own:
            if not row.get('backend_key'):
                continue
            for backend in row.get('choices') or []:
                rows = [r for r in node['params'] if r.get('backend_of') == [row['name'], backend]]
                lines += ['### %s: `%s:=%s`' % (node['name'], row['name'], backend), '']
                if rows:
                    lines += _table(rows)
                else:
                    lines.append('No parameters.')
                lines.append('')
    lines += SETTING.splitlines()
    return '\n'.join(lines).rstrip('\n') + '\n'


def missing_descriptions(nodes: List[Dict[str, Any]]) -> List[str]:
    """List ``node: parameter`` for each project parameter declared without a description."""
    return ['%s: %s' % (node['name'], row['name']) for node in nodes for row in node['params']
            if not row['builtin'] and not (row['description'] or '').strip()]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--output', default=DOC, help='default: docs/parameters.md')
    parser.add_argument('--check', action='store_true',
                        help='do not write; exit 1 with a diff if the file is out of date')
    parser.add_argument('--json', action='store_true',
                        help='print the collected declarations as JSON and exit')
    args = parser.parse_args(argv)
    nodes = collect()
    if args.json:
        print(json.dumps(nodes, ensure_ascii=False))
        return 0
    text = render(nodes)
    missing = missing_descriptions(nodes)
    if missing:
        print('parameters without a description: %s' % ', '.join(missing), file=sys.stderr)
    if args.check:
        try:
            with open(args.output, encoding='utf-8') as f:
                old = f.read()
        except FileNotFoundError:
            old = ''
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), args.output, 'generated'))
            print('%s is out of date: run python scripts/gen_param_docs.py' % args.output,
                  file=sys.stderr)
            return 1
        return 0
    with open(args.output, 'w', encoding='utf-8') as f:
        f.write(text)
    print('wrote %s (%d nodes, %d parameters)'
          % (args.output, len(nodes), sum(len(n['params']) for n in nodes)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
