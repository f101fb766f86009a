"""
Backend parameters declared by the backends themselves (nav2-plugin style).

Each capability (hearing's VAD and ASR, tts, llm, ...) keeps one registry: backend name ->
``'module:Class'``, imported only when needed so heavy dependencies stay inside the backend
that uses them.  A backend class lists its parameters in ``PARAMS``; the node declares each
as ``<backend>.<param>`` with a ParameterDescriptor built from the same :class:`Param`, and
passes the chosen backend's values to its constructor as keyword arguments.  Adding a
backend touches its module, one registry line, config and docs -- never the node.

Pure Python (no rclpy): unit tests and docs generation use it directly.
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple


class Param(NamedTuple):
    """One parameter of a backend (or node): name, default, meaning and allowed values."""

    name: str
    default: Any
    description: str
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[Tuple[str, ...]] = None

    def check(self, value: Any) -> Optional[str]:
        """Return why ``value`` is not allowed, or None if it is."""
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                return '%s must be a bool, got %r' % (self.name, value)
            return None
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return '%s must be a number, got %r' % (self.name, value)
            if kind is int and not isinstance(value, int):
                return '%s must be an integer, got %r' % (self.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                return '%s must be finite, got %r' % (self.name, value)
            if self.min is not None and value < self.min:
                return '%s must be >= %s, got %r' % (self.name, self.min, value)
            if self.max is not None and value > self.max:
                return '%s must be <= %s, got %r' % (self.name, self.max, value)
            return None
        if kind is str:
            if not isinstance(value, str):
                return '%s must be a string, got %r' % (self.name, value)
            if self.choices is not None and value not in self.choices:
                return '%s must be one of %s, got %r' % (self.name, '|'.join(self.choices),
                                                         value)
        return None


class ParamError(ValueError):
    """A parameter value is out of range or of the wrong type."""


def check_all(params: Sequence[Param], values: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate ``values`` (missing keys take defaults); raise ParamError listing problems."""
    out, problems = {}, []
    for param in params:
        value = values.get(param.name, param.default)
        problem = param.check(value)
        if problem:
            problems.append(problem)
        out[param.name] = value
    if problems:
        raise ParamError('; '.join(problems))
    return out


class Registry:
    """Backends of one capability: name -> 'module:Class' (lazy import)."""

    def __init__(self, capability: str, entries: Mapping[str, str]):
        self.capability = capability
        self._entries = dict(entries)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(self._entries)

    def load_class(self, name: str):
        """Import and return the backend class; raise KeyError with the choices."""
        if name not in self._entries:
            raise KeyError('unknown %s backend %r (available: %s)'
                           % (self.capability, name, ', '.join(self._entries)))
        module, _, attr = self._entries[name].partition(':')
        return getattr(importlib.import_module(module), attr)

    def params(self, name: str) -> Tuple[Param, ...]:
        """Return the backend's declared parameters (its class attribute ``PARAMS``)."""
        return tuple(getattr(self.load_class(name), 'PARAMS', ()))

    def create(self, name: str, values: Mapping[str, Any]):
        """Build backend ``name`` from ``values`` (unprefixed), validated against PARAMS."""
        cls = self.load_class(name)
        kwargs = check_all(getattr(cls, 'PARAMS', ()), values)
        return cls(**kwargs)
