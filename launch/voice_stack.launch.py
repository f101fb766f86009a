"""
Launch the voice stack: ``ros2 launch qwen_voice_ros voice_stack.launch.py``.

Launch arguments switch each node on or off (``capture:=false``), pick ``params_file``,
``namespace``, ``llm_backend``, ``llm_model_dir``, ``share_llm`` and ``use_sim_time``.  The
node list comes from ``qwen_voice_ros.stack.description`` (as for ``qwen-voice-stack``).
Every node is a lifecycle node: this file configures it, then activates it once it reaches
``inactive``; a crashed node is respawned and taken through the same transitions again.
With ``share_llm:=true`` the dialect and llm nodes run in one process
(``qwen-voice-dialect-llm``, one loaded model) and configure themselves (autostart).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition
from qwen_voice_ros.stack.description import NODES, PACKAGE, build_stack, default_params_file


def _lifecycle_actions(node):
    """Return the node and its actions: configure on each (re)start, activate when inactive."""
    params = list(node.params_files) + [dict(node.overrides)]
    action = LifecycleNode(package=PACKAGE, executable=node.spec.executable, name=node.name,
                           namespace=node.namespace, parameters=params, output='screen',
                           respawn=True, respawn_delay=2.0)
    configure = OnProcessStart(target_action=action, on_start=[EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(action),
        transition_id=Transition.TRANSITION_CONFIGURE))])
    activate = OnStateTransition(target_lifecycle_node=action, goal_state='inactive',
                                 entities=[EmitEvent(event=ChangeState(
                                     lifecycle_node_matcher=matches_action(action),
                                     transition_id=Transition.TRANSITION_ACTIVATE))])
    return [action, RegisterEventHandler(configure), RegisterEventHandler(activate)]


def _multi_node_actions(node):
    """Start a process of several nodes (share_llm); they configure and activate themselves."""
    from launch_ros.actions import Node  # only needed for share_llm:=true
    params = node.all_params_files() + [dict(node.overrides)]
    return [Node(package=PACKAGE, executable=node.spec.executable, namespace=node.namespace,
                 parameters=params, output='screen', respawn=True, respawn_delay=2.0)]


def _stack(context):
    value = {name: LaunchConfiguration(name).perform(context)
             for name in [n.name for n in NODES]
             + ['params_file', 'namespace', 'llm_backend', 'llm_model_dir', 'use_sim_time',
                'share_llm']}
    stack = build_stack({n.name: value[n.name] for n in NODES}, value['params_file'],
                        value['namespace'], value['llm_backend'], value['use_sim_time'],
                        autostart=False, llm_model_dir=value['llm_model_dir'],
                        share_llm=value['share_llm'])
    actions = []
    for node in stack:
        actions += _multi_node_actions(node) if node.spec.multi_node \
            else _lifecycle_actions(node)
    return actions


def generate_launch_description():
    args = [DeclareLaunchArgument(n.name, default_value=str(n.enabled).lower(),
                                  description='start %s: %s' % (n.name, n.summary))
            for n in NODES]
    args += [
        DeclareLaunchArgument('params_file', default_value=default_params_file(),
                              description='parameters YAML for all nodes'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of all nodes'),
        DeclareLaunchArgument('llm_backend', default_value='',
                              description='override the llm backend: onnx | openai_http'),
        DeclareLaunchArgument('llm_model_dir', default_value='',
                              description='llm ONNX model directory (qwen-voice-export output)'),
        DeclareLaunchArgument('share_llm', default_value='false',
                              description='dialect + llm in one process sharing one loaded '
                                          'model (qwen-voice-dialect-llm)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='follow /clock (e.g. qwen-voice-replay --clock)'),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_stack)])
