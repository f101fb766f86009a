"""ROS message helpers shared by the nodes: QoS profiles, audio and diagnostics messages."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

from qwen_voice_ros.audio.pcm import AudioFormat, encode_s16le

# Audio and text: reliable (a lost chunk is a hole in speech), bounded queues.
QOS_AUDIO = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
QOS_TEXT = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
QOS_EVENTS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
# AudioInfo: latched, so a subscriber that starts late still learns the stream format.
QOS_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
QOS_DIAGNOSTICS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             history=HistoryPolicy.KEEP_LAST,
                             durability=DurabilityPolicy.VOLATILE)


def audio_msgs():
    """``audio_common_msgs.msg``, with a clear error where the package is missing."""
    try:
        import audio_common_msgs.msg as msgs
    except ImportError:
        raise ImportError('audio_common_msgs is not installed: apt install '
                          'ros-$ROS_DISTRO-audio-common-msgs (or run scripts/setup-env)') from None
    return msgs


def info_msg(fmt: AudioFormat):
    msg = audio_msgs().AudioInfo()
    msg.channels = fmt.channels
    msg.sample_rate = fmt.sample_rate
    msg.sample_format = fmt.sample_format
    msg.bitrate = fmt.bitrate
    msg.coding_format = 'WAVE'
    return msg


def format_from_info(msg) -> AudioFormat:
    return AudioFormat(sample_rate=int(msg.sample_rate), channels=int(msg.channels),
                       sample_format=msg.sample_format or 'S16LE',
                       coding_format=msg.coding_format or 'WAVE')


def audio_stamped(audio: np.ndarray, stamp, turn_id: str = ''):
    """float32 mono -> AudioDataStamped (S16LE); ``frame_id`` carries the turn id."""
    msgs = audio_msgs()
    msg = msgs.AudioDataStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = turn_id
    msg.audio.data = encode_s16le(audio)
    return msg


def payload_bytes(msg) -> bytes:
    data = msg.audio.data if hasattr(msg, 'audio') else msg.data
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, np.ndarray):
        return data.tobytes()
    return bytes(bytearray(data))  # rclpy gives array('B') or a list of ints


def diagnostic_level(status) -> int:
    """DiagnosticStatus.level as an int (rclpy gives a one-byte ``bytes``)."""
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def diagnostic_array(stamp, name: str, hardware_id: str, level: int, message: str,
                     values: Optional[Dict[str, object]] = None):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    status = DiagnosticStatus()
    status.level = bytes([level]) if isinstance(DiagnosticStatus().level, bytes) else level
    status.name = name
    status.hardware_id = hardware_id
    status.message = message[:500]
    status.values = [KeyValue(key=str(k), value=str(v)) for k, v in (values or {}).items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array


def descriptor(param):
    """Build a ParameterDescriptor (description, range) from a core.params.Param."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    text = param.description
    if param.choices:
        text += ' (%s)' % ' | '.join(param.choices)
    desc = ParameterDescriptor(description=text)
    if isinstance(param.default, bool):
        return desc
    if isinstance(param.default, int) and (param.min is not None or param.max is not None):
        desc.integer_range = [IntegerRange(
            from_value=int(param.min if param.min is not None else -2 ** 31),
            to_value=int(param.max if param.max is not None else 2 ** 31 - 1), step=0)]
    elif isinstance(param.default, float) and (param.min is not None or param.max is not None):
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(param.min if param.min is not None else -1e308),
            to_value=float(param.max if param.max is not None else 1e308), step=0.0)]
    return desc
