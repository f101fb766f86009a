"""
The lifecycle node every stage is built on: parameters, diagnostics, turn events.

A stage subclasses :class:`VoiceNode` and fills in four hooks: ``declare()`` its parameters,
``load()`` its backend on configure (raise to fail configure with the message),
``open_io()`` its topics, ``unload()`` on cleanup.  With ``autostart`` (default true) the node
configures and activates itself, so ``ros2 run`` and ``qwen-voice-stack`` need no lifecycle
manager; the launch file turns it off and drives the transitions itself.
"""
from __future__ import annotations

import functools
import traceback
from typing import Any, Dict, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, State, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from std_msgs.msg import String

from qwen_voice_ros.core import events, turns
from qwen_voice_ros.core.params import Param
from qwen_voice_ros.nodes import ros_io

OK, WARN, ERROR = 0, 1, 2

# Parameters every node has (the stage's own come from its ``PARAMS``).
BASE_PARAMS = (
    Param('autostart', True, 'configure and activate on start (no lifecycle manager needed)'),
    Param('events_topic', 'voice/events', 'topic of the per-turn JSON events'),
    Param('diagnostics_period_s', 1.0, 'period of /diagnostics messages', min=0.05, max=60.0),
    Param('turn_announced_grace_s', 3.0, 'how long a text input waits for its event once '
          'another node has announced that stage (a slow announcer must not split a turn)',
          min=0.0, max=30.0),
)


class VoiceNode(LifecycleNode):
    """Base class: see the module docstring."""

    capability = 'voice'
    default_turn_grace_s = 0.25

    def __init__(self, node_name: str, **kwargs):
        super().__init__(node_name, **kwargs)
        # Every parameter declared from a Param is checked when declared (a bad override
        # fails configure with one clear line, no traceback) and whenever it is set.
        self._param_specs: Dict[str, Param] = {}
        self.param_problems = []
        self.add_on_set_parameters_callback(self._check_set_parameters)
        self.declare_params(BASE_PARAMS)
        # How long a plain text input waits for its producer's event before it starts a
        # new turn (its producer publishes no events, e.g. a user's own node).
        self.declare_params([Param('turn_grace_s', float(self.default_turn_grace_s),
                                   'how long a text input waits for its producer\'s event '
                                   'before it starts a new turn', min=0.0, max=30.0)])
        self.declare_params(getattr(self, 'PARAMS', ()))
        self.declare()
        self.ids = events.TurnIdFactory()
        self.active = False
        self.counters: Dict[str, int] = {'turns': 0, 'errors': 0}
        self._health = (WARN, 'unconfigured')
        self._last_error = ''
        self._io = []  # publishers/subscriptions/timers created in open_io, destroyed on cleanup
        from diagnostic_msgs.msg import DiagnosticArray
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics',
                                               ros_io.QOS_DIAGNOSTICS)
        self.events_pub = None
        period = float(self.get_parameter('diagnostics_period_s').value)
        self.create_timer(period, self.publish_diagnostics)
        if self.get_parameter('autostart').value:
            self._autostart = self.create_timer(0.0, self._do_autostart)

    # ---- hooks for subclasses -------------------------------------------------------------
    def declare(self) -> None:
        """Declare parameters."""

    def load(self) -> None:
        """Load the backend (configure).  Raise an exception to fail configure."""

    def open_io(self) -> None:
        """Create publishers and subscriptions (configure, after load)."""

    def unload(self) -> None:
        """Free the backend (cleanup / shutdown)."""

    def diagnostic_values(self) -> Dict[str, Any]:
        """Extra key/values for /diagnostics."""
        return {}

    # ---- helpers ----------------------------------------------------------------------------
    def param(self, name: str):
        return self.get_parameter(name).value

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def stamp(self):
        return self.get_clock().now().to_msg()

    def declare_params(self, params) -> None:
        """Declare parameters from core.params.Param: descriptor, range, set-time check."""
        from rclpy.exceptions import (InvalidParameterTypeException,
                                      InvalidParameterValueException)
        for param in params:
            self._param_specs[param.name] = param
            desc = ros_io.descriptor(param)
            try:
                self.declare_parameter(param.name, param.default, desc)
                continue
            except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
                override = getattr(self, '_parameter_overrides', {}).get(param.name)
                value = override.value if override is not None else None
                problem = param.check(value) if value is not None else str(exc)
            if isinstance(param.default, float) and isinstance(value, int) \
                    and not isinstance(value, bool) and param.check(float(value)) is None:
                # temperature:=1 is an integer on the command line: take it as 1.0.
                self.declare_parameter(param.name, float(value), desc, ignore_override=True)
                continue
            self.declare_parameter(param.name, param.default, desc, ignore_override=True)
            self.param_problems.append(problem or '%s: %s' % (param.name, value))

    def _check_set_parameters(self, parameters):
        from rcl_interfaces.msg import SetParametersResult
        problems = []
        for parameter in parameters:
            spec = self._param_specs.get(parameter.name)
            if spec is not None:
                problem = spec.check(parameter.value)
                if problem:
                    problems.append(problem)
        if problems:
            self.counters['rejected_parameters'] = self.counters.get('rejected_parameters', 0) + 1
            return SetParametersResult(successful=False, reason='; '.join(problems))
        return SetParametersResult(successful=True)

    def add_lifecycle_publisher(self, msg_type, topic: str, qos):
        """Create a publisher that publishes only while the node is active (lifecycle)."""
        return self.add_io(self.create_lifecycle_publisher(msg_type, topic, qos))

    def start_worker(self, name: str, loop, max_restarts: int = 5):
        """
        Run ``loop()`` on a daemon thread, supervised.

        An exception escaping ``loop`` is reported (log, /diagnostics, ``worker_restarts``)
        and the loop starts again; after ``max_restarts`` the node goes to ERROR health
        instead of claiming to serve with a dead worker.
        """
        import threading

        def supervised():
            restarts = 0
            while True:
                try:
                    loop()
                    return
                except Exception as exc:
                    if self.events_pub is None and not self.active:
                        return  # torn down (cleanup/shutdown): the node is gone, not the worker
                    restarts += 1
                    self.counters['worker_restarts'] = \
                        self.counters.get('worker_restarts', 0) + 1
                    self.get_logger().error('worker %s raised:\n%s'
                                            % (name, traceback.format_exc()))
                    if restarts > max_restarts:
                        self._last_error = 'worker %s died: %r' % (name, exc)
                        self.set_health(ERROR, 'worker %s died %d times (last: %r); restart '
                                        'the node' % (name, restarts, exc))
                        return
                    self.report_error('worker %s raised %r; restarted' % (name, exc))
        thread = threading.Thread(target=supervised, name=name, daemon=True)
        thread.start()
        return thread

    def declare_backend_params(self, registry, default: str, key: str = 'backend') -> None:
        """
        Declare ``key`` (the backend choice) and every backend's ``<name>.<param>``.

        The parameters come from each backend class's ``PARAMS`` (core.params), so a new
        backend needs a registry line, not a change here.  ``create_backend`` reads them back.
        """
        from rcl_interfaces.msg import ParameterDescriptor
        self.declare_parameter(key, default, ParameterDescriptor(
            description='%s backend: %s' % (registry.capability, ' | '.join(registry.names))))
        for name in registry.names:
            self.declare_params([param._replace(name='%s.%s' % (name, param.name))
                                 for param in registry.params(name)])

    def create_backend(self, registry, key: str = 'backend'):
        """Build the chosen backend from its ``<name>.<param>`` values (validated)."""
        name = self.param(key)
        try:
            params = registry.params(name)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        values = {p.name: self.param('%s.%s' % (name, p.name)) for p in params}
        return registry.create(name, values)

    def add_io(self, entity):
        self._io.append(entity)
        return entity

    # Every subscription and timer callback runs guarded: an exception becomes an error
    # diagnostic (counted in ``callback_errors``), never a dead node (issue 8).
    def create_subscription(self, msg_type, topic, callback, *args, **kwargs):
        return super().create_subscription(msg_type, topic,
                                           self.guarded(callback, 'subscription %s' % topic),
                                           *args, **kwargs)

    def create_timer(self, timer_period_sec, callback, *args, **kwargs):
        return super().create_timer(timer_period_sec, self.guarded(callback, 'timer'),
                                    *args, **kwargs)

    def guarded(self, callback, where: str):
        """Wrap a callback so an exception is reported on /diagnostics instead of raised."""
        @functools.wraps(callback)
        def guarded_callback(*args):
            try:
                return callback(*args)
            except Exception as exc:
                self.callback_failed(where, exc)
        return guarded_callback

    def callback_failed(self, where: str, exc: BaseException) -> None:
        """Report an exception that escaped a callback (traceback logged once per place)."""
        try:
            self.counters['callback_errors'] = self.counters.get('callback_errors', 0) + 1
            logged = self.__dict__.setdefault('_tracebacks_logged', set())
            if where not in logged and len(logged) < 64:
                logged.add(where)
                self.get_logger().error('%s raised:\n%s' % (where, traceback.format_exc()))
            self.report_error('%s raised %s: %s' % (where, type(exc).__name__,
                                                    str(exc)[:300]))
        except Exception:  # reporting must never raise out of a callback either
            pass

    def emit(self, turn_id: str, stage: str, turn_stamp: Optional[float] = None, **fields):
        """Publish one turn event; returns the event dict."""
        event = events.make_event(turn_id, stage, self.get_fully_qualified_name(), self.now_s(),
                                  turn_stamp, **fields)
        if self.events_pub is not None:
            self.events_pub.publish(String(data=events.encode(event)))
        return event

    def subscribe_events(self, callback):
        """Subscribe to the events topic; malformed events are counted, not fatal."""
        def on_msg(msg):
            try:
                event = events.decode(msg.data)
            except events.EventError as exc:
                self.counters['bad_events'] = self.counters.get('bad_events', 0) + 1
                self._last_bad_event = str(exc)[:200]
                self.get_logger().debug('ignoring malformed event: %s' % exc)
                return
            callback(event)
        return self.add_io(self.create_subscription(String, self.param('events_topic'), on_msg,
                                                    ros_io.QOS_EVENTS))

    def subscribe_text_turns(self, topic: str, stage: str, callback, on_reattribute=None):
        """
        Plain text input attributed to turns (see core.turns.TextTurnMatcher).

        ``callback(turn_id, turn_stamp, text, event_or_None)`` runs once per message.  Text
        from a producer that publishes no events starts a new turn here, and this node
        announces it with a ``stage`` event so later consumers share the turn id (they wait
        longer: ``turn_grace_s`` grows down the pipeline).  Returns ``feed_event`` which the
        caller must pass every event to.  A text that got a new id before a late event
        came is re-attributed: ``on_reattribute(old_id, new_id, event)``, not a second turn.
        """
        matcher = turns.TextTurnMatcher(
            stage, self.now_s, id_factory=self.ids, grace_s=float(self.param('turn_grace_s')),
            announced_grace_s=float(self.param('turn_announced_grace_s')))
        me = self.get_fully_qualified_name()

        def deliver(resolved):
            for turn_id, turn_stamp, text, event, replaces in resolved:
                if not self.active:
                    continue
                if replaces:
                    if on_reattribute is not None:
                        on_reattribute(replaces, turn_id, event)
                    continue
                if event is None:
                    event = self.emit(turn_id, stage, turn_stamp, text=text,
                                      detail={'announced': 'producer publishes no events'})
                try:
                    callback(turn_id, turn_stamp, text, event)
                except Exception as exc:  # a bug on one turn must not kill the node
                    self.get_logger().error(traceback.format_exc())
                    self.report_error('%s failed: %r' % (self.capability, exc), turn_id,
                                      turn_stamp)

        def feed_event(event):
            if event.get('node') != me:
                deliver(matcher.on_event(event))

        def on_text(msg):
            if len(msg.data) > events.MAX_TEXT_CHARS:  # its events would be rejected downstream
                self.counters['bad_input'] = self.counters.get('bad_input', 0) + 1
                self.report_error('%s: a text of %d characters is longer than %d; ignored'
                                  % (topic, len(msg.data), events.MAX_TEXT_CHARS))
                return
            deliver(matcher.on_text(msg.data))

        self.add_io(self.create_subscription(String, topic, on_text, ros_io.QOS_TEXT))
        self.add_io(self.create_timer(0.02, lambda: deliver(matcher.poll())))
        return feed_event

    @property
    def health(self):
        """(level, message) as last published on /diagnostics."""
        return self._health

    def set_health(self, level: int, message: str) -> None:
        changed = (level, message) != self._health
        self._health = (level, message)
        if changed:
            self.publish_diagnostics()

    def report_error(self, message: str, turn_id: str = '', turn_stamp: Optional[float] = None,
                     stage: str = '') -> None:
        """Bad input or a failed backend call: log, /diagnostics, error event; keep serving."""
        self.counters['errors'] += 1
        self._last_error = message
        self.get_logger().error(message)
        if turn_id:
            self.emit(turn_id, 'error', turn_stamp, error=message,
                      detail={'stage': stage or self.capability})
        self.set_health(WARN, 'last turn failed: %s' % message)

    def report_ok(self, message: str = 'serving') -> None:
        if self._health[0] != OK or self._health[1] != message:
            self.set_health(OK, message)

    def publish_diagnostics(self) -> None:
        level, message = self._health
        values = dict(self.counters)
        values['state'] = 'active' if self.active else 'inactive'
        if self._last_error:
            values['last_error'] = self._last_error
        if getattr(self, '_last_bad_event', ''):
            values['last_bad_event'] = self._last_bad_event
        try:
            values.update(self.diagnostic_values())
        except Exception as exc:  # diagnostics must never take the node down
            values['diagnostic_values_error'] = repr(exc)
        self._diag_pub.publish(ros_io.diagnostic_array(
            self.stamp(), '%s: %s' % (self.get_fully_qualified_name(), self.capability),
            self.get_fully_qualified_name(), level, message, values))

    # ---- lifecycle --------------------------------------------------------------------------
    def _do_autostart(self):
        self.destroy_timer(self._autostart)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            if self.param_problems:
                raise ValueError('invalid parameters: %s' % '; '.join(self.param_problems))
            self.load()
        except Exception as exc:
            message = 'configure failed: %s' % exc
            self.get_logger().error(message)
            self.get_logger().debug(traceback.format_exc())
            self._last_error = str(exc)
            self.set_health(ERROR, message)
            return TransitionCallbackReturn.FAILURE
        self.events_pub = self.add_lifecycle_publisher(String, self.param('events_topic'),
                                                       ros_io.QOS_EVENTS)
        self.open_io()
        self.set_health(WARN, 'configured (inactive)')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.active = True
        self.set_health(OK, 'serving')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.active = False
        self.set_health(WARN, 'inactive')
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self.set_health(WARN, 'unconfigured')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        self.active = False
        try:
            self.unload()
        finally:
            for entity in reversed(self._io):
                if isinstance(entity, Subscription):
                    self.destroy_subscription(entity)
                elif isinstance(entity, LifecyclePublisher):
                    self.destroy_lifecycle_publisher(entity)
                elif isinstance(entity, Publisher):
                    self.destroy_publisher(entity)
                elif isinstance(entity, Timer):
                    self.destroy_timer(entity)
            self._io = []
            self.events_pub = None


def run(node_class, args=None) -> None:
    """Console-script entry point shared by every node."""
    rclpy.init(args=args)
    node = node_class()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node._teardown()
        finally:
            node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
