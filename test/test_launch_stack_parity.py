"""launch/voice_stack.launch.py and qwen-voice-stack start the same nodes with the same parameters.

launch and launch_ros are not on PyPI, so the launch file is evaluated against minimal
stand-ins of the classes it uses that record what they were given (the real ones would be
used on a ROS install by ``ros2 launch``).  The stand-ins replace sys.modules entries only
for the duration of the test.
"""
import importlib.util
import os
import sys
import threading
import time
import types

import pytest
from qwen_voice_ros.stack import runner
from qwen_voice_ros.stack.description import NODES

pytest.importorskip('lifecycle_msgs')  # the launch file imports it

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(_Recorded):
    def perform(self, context):
        return context[self.args[0]]


def _stub_modules():
    mods = {}

    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mods[name] = mod

    class LaunchDescription(_Recorded):
        pass

    module('launch', LaunchDescription=LaunchDescription)
    module('launch.actions', **{n: type(n, (_Recorded,), {}) for n in (
        'DeclareLaunchArgument', 'EmitEvent', 'OpaqueFunction', 'RegisterEventHandler')})
    module('launch.event_handlers', OnProcessStart=type('OnProcessStart', (_Recorded,), {}))
    module('launch.events', matches_action=lambda action: ('matches', action))
    module('launch.substitutions', LaunchConfiguration=LaunchConfiguration)
    module('launch_ros')
    module('launch_ros.actions', LifecycleNode=type('LifecycleNode', (_Recorded,), {}))
    module('launch_ros.event_handlers',
           OnStateTransition=type('OnStateTransition', (_Recorded,), {}))
    module('launch_ros.events')
    module('launch_ros.events.lifecycle', ChangeState=type('ChangeState', (_Recorded,), {}))
    return mods


def _launch(launch_args):
    saved = {}
    stubs = _stub_modules()
    for name, mod in stubs.items():
        saved[name] = sys.modules.get(name)
        sys.modules[name] = mod
    try:
        spec = importlib.util.spec_from_file_location(
            'voice_stack_launch', os.path.join(REPO, 'launch', 'voice_stack.launch.py'))
        launch_file = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(launch_file)
        description = launch_file.generate_launch_description()
        declared = [a for a in description.args[0] if type(a).__name__ == 'DeclareLaunchArgument']
        context = {a.args[0]: a.kwargs['default_value'] for a in declared}
        unknown = set(launch_args) - set(context)
        assert not unknown, 'not a launch argument: %s' % unknown
        context.update(launch_args)
        opaque = [a for a in description.args[0] if type(a).__name__ == 'OpaqueFunction'][0]
        return opaque.kwargs['function'](context)
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def _from_launch(actions):
    nodes = [a for a in actions if type(a).__name__ == 'LifecycleNode']
    out = []
    for node in nodes:
        params = node.kwargs['parameters']
        files = [p for p in params if isinstance(p, str)]
        overrides = {}
        for p in params:
            if isinstance(p, dict):
                overrides.update(p)
        out.append({'name': node.kwargs['name'], 'executable': node.kwargs['executable'],
                    'namespace': node.kwargs['namespace'], 'params_files': files,
                    'overrides': overrides, 'respawn': node.kwargs['respawn']})
    return out, actions


CASES = [
    {},
    {'capture': 'false', 'hearing': 'false', 'llm_backend': 'openai_http'},
    {'namespace': 'robot1', 'use_sim_time': 'true', 'playback': 'false'},
    {'llm_model_dir': '/opt/models/qwen3-1.7b-int4', 'capture': 'false'},
]


@pytest.mark.parametrize('launch_args', CASES)
def test_launch_file_and_stack_runner_start_the_same_nodes(launch_args):
    from_launch, actions = _from_launch(_launch(launch_args))
    cli = runner.parse_args(['%s:=%s' % kv for kv in launch_args.items()])
    from_runner = runner.describe(runner.stack_from_args(cli))
    assert [n['name'] for n in from_launch] == [n['name'] for n in from_runner]
    for launched, ran in zip(from_launch, from_runner):
        assert launched['respawn'] is True
        # Identical except who drives the lifecycle: launch does, the runner lets nodes self-start.
        assert launched['overrides'].pop('autostart') is False
        assert ran['overrides'].pop('autostart') is True
        launched.pop('respawn')
        assert launched == ran
    # Every node gets configured on (re)start and activated once inactive.
    handlers = [a for a in actions if type(a).__name__ == 'RegisterEventHandler']
    assert len(handlers) == 2 * len(from_launch)
    names = {n.name for n in NODES}
    expected = {n for n in names if launch_args.get(n, 'true') == 'true'}
    assert {n['name'] for n in from_launch} == expected
    if 'llm' in expected and 'llm_backend' in launch_args:
        llm = [n for n in from_runner if n['name'] == 'llm'][0]
        assert llm['overrides']['backend'] == launch_args['llm_backend']
    if 'llm_model_dir' in launch_args:
        llm = [n for n in from_runner if n['name'] == 'llm'][0]
        assert llm['overrides']['model_dir'] == launch_args['llm_model_dir']
    if 'namespace' in launch_args:
        assert all(n['namespace'] == '/' + launch_args['namespace'] for n in from_runner)


def test_runner_rejects_unknown_switches():
    with pytest.raises(SystemExit):
        runner.parse_args(['microphone:=false'])
    cli = runner.parse_args(['llm_backend:=gpt'])
    with pytest.raises(ValueError, match='llm_backend'):
        runner.stack_from_args(cli)


def test_runner_processes_match_node_arguments():
    cli = runner.parse_args(['namespace:=r1', 'capture:=false'])
    stack = runner.stack_from_args(cli)
    sup = runner.Supervisor(stack)
    cmd = sup.command(stack[0])
    assert cmd[1:3] == ['-m', stack[0].spec.module]
    assert '__ns:=/r1' in cmd and '__node:=%s' % stack[0].name in cmd
    assert 'autostart:=true' in cmd


def test_supervisor_respawns_a_crashed_node(tmp_path, monkeypatch):
    from qwen_voice_ros.stack.description import NodeLaunch, NodeSpec
    marker = tmp_path / 'starts'
    crash = tmp_path / 'crash_once.py'
    crash.write_text('import sys\nopen(%r, "a").write("x")\nsys.exit(3)\n' % str(marker))
    monkeypatch.setenv('PYTHONPATH', str(tmp_path))
    spec = NodeSpec('crashy', 'crashy', 'crash_once', True, 'exits at once')
    sup = runner.Supervisor([NodeLaunch(spec, '', [], {})], respawn_delay=0.1,
                            out=open(os.devnull, 'w'))
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while sup.restarts['crashy'] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sup.stop()
        thread.join(timeout=5)
    assert sup.restarts['crashy'] >= 2
    assert len(marker.read_text()) >= 2  # started, crashed, started again
