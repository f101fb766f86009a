"""
Dialogue core: the per-turn logic of the llm and playback stages, without rclpy.

:class:`~.session.ReplySession` (dialect wait, streaming, cancel, what was spoken),
:class:`~.playback.PlaybackQueue` (supersede, cut-off, stale drop, speech start),
:class:`~.gate.HalfDuplexGate` (hearing muted or less sensitive while the robot speaks) and
:class:`~.outcomes.TurnLifecycle` (exactly one terminal outcome per turn and stage) and
:class:`~.downstream.DownstreamWatch` (a reply's turn still ends in an outcome when tts or
playback dies mid-turn).  Each
takes an injected clock, so unit tests drive them in milliseconds; the nodes are adapters.
"""
from __future__ import annotations

from qwen_voice_ros.dialogue.downstream import DownstreamWatch
from qwen_voice_ros.dialogue.gate import HalfDuplexGate
from qwen_voice_ros.dialogue.outcomes import (CANCELLED, COMPLETED, ERROR, Outcome,
                                              TurnLifecycle)
from qwen_voice_ros.dialogue.playback import PlaybackQueue
from qwen_voice_ros.dialogue.session import ReplySession, ReplyTurn

__all__ = ['CANCELLED', 'COMPLETED', 'DownstreamWatch', 'ERROR', 'HalfDuplexGate', 'Outcome',
           'PlaybackQueue', 'ReplySession', 'ReplyTurn', 'TurnLifecycle']
