"""
The voice stack as data: which nodes exist, how each is started, with which parameters.

Both ``launch/voice_stack.launch.py`` (launch_ros, on a ROS install) and ``qwen-voice-stack``
(plain processes, where launch_ros is missing) build their node list from here, so the two
start the same nodes with the same parameters.  Pure Python: no ROS imports.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

PACKAGE = 'qwen_voice_ros'


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One stage of the stack."""

    name: str            # node name (and launch argument that switches it on/off)
    executable: str      # console script, installed in lib/qwen_voice_ros and on PATH
    module: str          # python -m entry point (same main)
    enabled: bool        # on by default
    summary: str
    multi_node: bool = False  # a process of several nodes: no __node remap, nodes self-start


NODES = (
    NodeSpec('capture', 'qwen-voice-capture', 'qwen_voice_ros.nodes.capture_node', True,
             'microphone (sounddevice) or WAV file -> audio_stamped + audio_info'),
    NodeSpec('hearing', 'qwen-voice-hearing', 'qwen_voice_ros.nodes.hearing_node', True,
             'VAD -> utterance; ASR -> transcript'),
    NodeSpec('dialect', 'qwen-voice-dialect', 'qwen_voice_ros.nodes.dialect_node', True,
             'transcript -> dialect label + scores'),
    NodeSpec('llm', 'qwen-voice-llm', 'qwen_voice_ros.nodes.llm_node', True,
             'transcript (+ dialect) -> reply_sentence stream + reply'),
    NodeSpec('tts', 'qwen-voice-tts', 'qwen_voice_ros.nodes.tts_node', True,
             'reply_sentence -> tts/audio + tts/audio_info'),
    NodeSpec('playback', 'qwen-voice-playback', 'qwen_voice_ros.nodes.playback_node', True,
             'tts/audio -> speaker (sounddevice), WAV files or null'),
)

# share_llm: dialect + llm in one process (qwen-voice-dialect-llm) so the dialect node's LLM
# stage and the llm node share one loaded model (llm/engine_pool.py, docs/llm.md).
SHARED_LLM = NodeSpec('dialect_llm', 'qwen-voice-dialect-llm', 'qwen_voice_ros.nodes.dialect_llm',
                      False, 'dialect + llm nodes in one process, one loaded model',
                      multi_node=True)

LLM_BACKENDS = ('onnx', 'openai_http')
# The llm node's parameter that the ``llm_model_dir`` launch argument sets.
LLM_MODEL_DIR_PARAM = 'model_dir'


@dataclasses.dataclass
class NodeLaunch:
    """Everything needed to start one node, by launch_ros or as a process."""

    spec: NodeSpec
    namespace: str
    params_files: List[str]
    overrides: Dict[str, object]
    # one process, several nodes: parameters for one node only, by node name
    node_overrides: Dict[str, Dict[str, object]] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def ros_arguments(self) -> List[str]:
        """``--ros-args`` for a plain process: the same as launch_ros passes."""
        args = ['--ros-args']
        if not self.spec.multi_node:  # a multi-node process keeps each node's own name
            args += ['-r', '__node:=%s' % self.spec.name]
        if self.namespace:
            args += ['-r', '__ns:=%s' % self.namespace]
        for path in self.all_params_files():
            args += ['--params-file', path]
        for key, value in self.overrides.items():
            args += ['-p', '%s:=%s' % (key, _param_text(value))]
        return args

    def all_params_files(self) -> List[str]:
        """``params_files``, then a generated file with the per-node overrides (if any)."""
        return list(self.params_files) + ([self.node_params_file()] if self.node_overrides
                                          else [])

    def node_params_file(self) -> str:
        """
        Write ``node_overrides`` as a ROS params file and return its path.

        ``-p`` would set a value on every node of the process (``backend`` means different
        things to the dialect and llm nodes), so per-node values go through a YAML file
        keyed ``/**/<node>``; its name is derived from the content, rewritten each time.
        """
        import hashlib
        import json
        import tempfile
        data = {'/**/%s' % name: {'ros__parameters': dict(values)}
                for name, values in sorted(self.node_overrides.items())}
        text = json.dumps(data, sort_keys=True)  # JSON is YAML: no yaml import needed
        path = os.path.join(tempfile.gettempdir(), 'qwen_voice_%s_%s.yaml' % (
            self.spec.name, hashlib.sha256(text.encode()).hexdigest()[:12]))
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text + '\n')
        return path


def default_params_file() -> str:
    """config/voice_stack.yaml: from the source tree, else from the installed share dir."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), 'config', 'voice_stack.yaml')
    if os.path.exists(here):
        return here
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory(PACKAGE), 'config', 'voice_stack.yaml')
    except Exception:  # not installed through ament: the source-tree path is all we have
        return here


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('1', 'true', 'yes', 'on'):
        return True
    if text in ('0', 'false', 'no', 'off', ''):
        return False
    raise ValueError('not a boolean: %r' % value)


def build_stack(enabled: Optional[Dict[str, object]] = None, params_file: str = '',
                namespace: str = '', llm_backend: str = '', use_sim_time=False,
                autostart: bool = True, llm_model_dir: str = '',
                share_llm=False) -> List[NodeLaunch]:
    """
    Return the node list for the given switches; unknown switch names are an error.

    ``llm_model_dir`` (a qwen-voice-export directory) overrides the llm node's
    ``onnx.model_dir``/``model_dir`` so a launch argument picks the model without a YAML file.
    ``share_llm`` puts the dialect and llm nodes (when both are on) in one process,
    ``qwen-voice-dialect-llm``, whose nodes configure themselves (autostart) and share one
    loaded model; ``llm_model_dir`` then also becomes the dialect node's ``llm_model_dir``.
    """
    enabled = dict(enabled or {})
    unknown = set(enabled) - {n.name for n in NODES}
    if unknown:
        raise ValueError('unknown nodes %s (known: %s)'
                         % (sorted(unknown), ', '.join(n.name for n in NODES)))
    if llm_backend and llm_backend not in LLM_BACKENDS:
        raise ValueError('llm_backend %r: use one of %s' % (llm_backend, ', '.join(LLM_BACKENDS)))
    files = [params_file or default_params_file()]
    namespace = namespace.strip('/')
    namespace = '/' + namespace if namespace else ''
    stack = []
    for spec in NODES:
        if not parse_bool(enabled.get(spec.name, spec.enabled)):
            continue
        overrides: Dict[str, object] = {'use_sim_time': parse_bool(use_sim_time),
                                        'autostart': autostart}
        if spec.name == 'llm' and llm_backend:
            overrides['backend'] = llm_backend
        if spec.name == 'llm' and llm_model_dir:
            overrides[LLM_MODEL_DIR_PARAM] = os.path.abspath(os.path.expanduser(llm_model_dir))
        stack.append(NodeLaunch(spec, namespace, list(files), overrides))
    names = [n.name for n in stack]
    if parse_bool(share_llm) and 'dialect' in names and 'llm' in names:
        stack = _merge_dialect_llm(stack, llm_model_dir)
    return stack


def _merge_dialect_llm(stack: List[NodeLaunch], llm_model_dir: str) -> List[NodeLaunch]:
    """Replace the dialect and llm entries by one qwen-voice-dialect-llm process."""
    by_name = {n.name: n for n in stack}
    dialect, llm = by_name['dialect'], by_name['llm']
    shared = ('use_sim_time', 'autostart')
    per_node = {}
    for node in (dialect, llm):
        per_node[node.name] = {k: v for k, v in node.overrides.items() if k not in shared}
    if llm_model_dir:
        per_node['dialect']['llm_model_dir'] = llm.overrides[LLM_MODEL_DIR_PARAM]
    # launch_ros cannot drive two lifecycle nodes of one process: they start themselves
    overrides = {'use_sim_time': llm.overrides['use_sim_time'], 'autostart': True}
    merged = NodeLaunch(SHARED_LLM, llm.namespace, list(llm.params_files), overrides,
                        {k: v for k, v in per_node.items() if v})
    out = []
    for node in stack:
        if node.name == 'dialect':
            out.append(merged)
        elif node.name != 'llm':
            out.append(node)
    return out


def _param_text(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)
