"""
rosbag2 reading and writing (sqlite3 and mcap) with the ``rosbags`` library; no rclpy.

Messages stay serialized (CDR bytes) from bag to wire and back: the replayer publishes what
was recorded and the recorder stores what arrived, so any message type whose definition the
typestore knows can be carried.  The typestore is rosbags' ROS 2 Jazzy (or Humble) store plus
``audio_common_msgs``, whose definitions are embedded below; they must stay identical to
``third_party/audio_common_msgs/msg/*.msg`` (a test checks that), because the type hash written
into the bag is computed from them.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from qwen_voice_ros.core import events as turn_events

# Embedded copies of third_party/audio_common_msgs/msg/*.msg (keep identical).
AUDIO_COMMON_MSGS = {
    'audio_common_msgs/msg/AudioData': 'uint8[] data\n',
    'audio_common_msgs/msg/AudioDataStamped': (
        'std_msgs/Header header\n'
        'audio_common_msgs/AudioData audio\n'),
    'audio_common_msgs/msg/AudioInfo': (
        'uint8 channels       # Number of channels\n'
        'uint32 sample_rate   # Sampling rate [Hz]\n'
        'string sample_format # Audio format (e.g. S16LE)\n'
        'uint32 bitrate       # Amount of audio data per second [bits/s]\n'
        'string coding_format # Audio coding format (e.g. WAVE, MP3)\n'),
}

STORAGES = ('sqlite3', 'mcap')
DISTROS = ('jazzy', 'humble')
# Topics whose publishers latch (transient local, depth 1) even when a bag lacks QoS metadata.
LATCHED_TOPIC_SUFFIXES = ('audio_info',)

STRING_TYPE = 'std_msgs/msg/String'
EVENTS_TOPIC = 'voice/events'


class BagMessage(NamedTuple):
    """One recorded message, still serialized."""

    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


class TopicInfo(NamedTuple):
    """A bag topic: its type, message count and whether its publisher latched."""

    topic: str
    msgtype: str
    count: int
    latched: bool


_TYPESTORES = {}  # type: Dict[str, object]
_TYPESTORE_LOCK = threading.Lock()


def get_typestore(distro: str = 'jazzy'):
    """Return rosbags' typestore for ``distro`` with audio_common_msgs registered (cached)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore as _get

    if distro not in DISTROS:
        raise ValueError('unknown distro %r (use one of %s)' % (distro, ', '.join(DISTROS)))
    with _TYPESTORE_LOCK:
        store = _TYPESTORES.get(distro)
        if store is None:
            store = _get(Stores.ROS2_JAZZY if distro == 'jazzy' else Stores.ROS2_HUMBLE)
            types = {}
            for name, text in AUDIO_COMMON_MSGS.items():
                types.update(get_types_from_msg(text, name))
            store.register(types)
            _TYPESTORES[distro] = store
        return store


def register_msg_text(msgtype: str, text: str, distro: str = 'jazzy') -> None:
    """Teach the typestore a type from its .msg text (and the nested types it names)."""
    from rosbags.typesys import get_types_from_msg

    store = get_typestore(distro)
    if msgtype not in store.types:
        store.register(get_types_from_msg(text, msgtype))


def normalize_msgtype(msgtype: str) -> str:
    """Accept 'pkg/Type' or 'pkg/msg/Type' and return 'pkg/msg/Type'."""
    parts = msgtype.strip('/').split('/')
    if len(parts) == 2:
        return '%s/msg/%s' % (parts[0], parts[1])
    if len(parts) == 3:
        return '/'.join(parts)
    raise ValueError('not a message type name: %r' % msgtype)


def normalize_topic(topic: str) -> str:
    """Bags store absolute topic names; a relative name is taken relative to '/'."""
    return topic if topic.startswith('/') else '/' + topic


def topic_matches(topic: str, wanted: Optional[Sequence[str]]) -> bool:
    if not wanted:
        return True
    return normalize_topic(topic) in {normalize_topic(t) for t in wanted}


def _qos_latched(profiles) -> bool:
    """Tell whether every recorded publisher offered transient-local durability."""
    from rosbags.interfaces import QosDurability

    profiles = list(profiles or ())
    return bool(profiles) and all(
        getattr(p, 'durability', None) == QosDurability.TRANSIENT_LOCAL for p in profiles)


def is_latched_topic(topic: str) -> bool:
    return topic.rstrip('/').endswith(LATCHED_TOPIC_SUFFIXES)


def topic_infos(path) -> List[TopicInfo]:
    """List a bag's topics (types, counts, latched) without reading messages."""
    from rosbags.rosbag2 import Reader

    infos = {}  # type: Dict[str, TopicInfo]
    with Reader(Path(path)) as reader:
        for conn in reader.connections:
            ext = getattr(conn, 'ext', None)
            latched = _qos_latched(getattr(ext, 'offered_qos_profiles', ())) or is_latched_topic(
                conn.topic)
            old = infos.get(conn.topic)
            count = conn.msgcount + (old.count if old else 0)
            infos[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count,
                                          latched or bool(old and old.latched))
    return sorted(infos.values())


def read_messages(path, topics: Optional[Sequence[str]] = None) -> Iterator[BagMessage]:
    """Yield a bag's messages (optionally only ``topics``) in time order, still serialized."""
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as reader:
        connections = [c for c in reader.connections if topic_matches(c.topic, topics)]
        if not connections:
            return
        for conn, timestamp, data in reader.messages(connections=connections):
            yield BagMessage(conn.topic, conn.msgtype, int(timestamp), bytes(data))


def deserialize(msg: BagMessage, distro: str = 'jazzy'):
    """Decode a BagMessage into rosbags' message object."""
    return get_typestore(distro).deserialize_cdr(msg.data, msg.msgtype)


def serialize(message, msgtype: str, distro: str = 'jazzy') -> bytes:
    return bytes(get_typestore(distro).serialize_cdr(message, msgtype))


def string_cdr(text: str, distro: str = 'jazzy') -> bytes:
    """Serialize a std_msgs/String."""
    store = get_typestore(distro)
    return serialize(store.types[STRING_TYPE](data=text), STRING_TYPE, distro)


def make_qos(latched: bool = False, depth: int = 10, reliable: bool = True):
    """Build a rosbags Qos record (what rosbag2 stores as a publisher's offered QoS)."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)

    zero = QosTime(0, 0)  # 0 = the RMW default (no deadline, no lifespan)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=1 if latched else depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


class BagRecorder:
    """
    Write serialized messages into a new rosbag2 (thread-safe; use as a context manager).

    Every storage operation runs on one private worker thread, because sqlite3 connections
    may only be used by the thread that opened them while ``write`` is called from ROS
    callbacks.  ``write`` only queues; ``close`` drains the queue and re-raises the first
    write error.

    ``version`` 8 is the oldest metadata format rosbags writes and the one older rosbag2
    releases read most easily; 9 adds per-connection type hashes in metadata.yaml.
    """

    def __init__(self, path, storage: str = 'sqlite3', distro: str = 'jazzy',
                 version: int = 8):
        from concurrent.futures import ThreadPoolExecutor

        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ValueError('unknown storage %r (use one of %s)' % (storage, STORAGES))
        self.path = Path(path)
        self.storage = storage
        self.distro = distro
        self._store = get_typestore(distro)
        plugin = StoragePlugin.SQLITE3 if storage == 'sqlite3' else StoragePlugin.MCAP
        self._writer = Writer(self.path, version=version, storage_plugin=plugin)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='bag-writer')
        self._connections = {}  # type: Dict[str, object]
        self._counts = {}  # type: Dict[str, int]
        self._lock = threading.Lock()  # state and connections
        self._count_lock = threading.Lock()  # counts (taken by the worker, never waits on it)
        self._state = 'new'
        self._errors = []  # type: List[BaseException]

    def open(self) -> 'BagRecorder':
        with self._lock:
            if self._state == 'new':
                self._worker.submit(self._writer.open).result()
                self._state = 'open'
            elif self._state == 'closed':
                raise RuntimeError('bag %s is closed' % self.path)
        return self

    def close(self) -> None:
        with self._lock:
            if self._state != 'open':
                self._state = 'closed'
                self._worker.shutdown(wait=True)
                return
            self._state = 'closed'
        self._worker.submit(self._writer.close).result()
        self._worker.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> 'BagRecorder':
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def counts(self) -> Dict[str, int]:
        """Messages written per topic so far."""
        with self._count_lock:
            return dict(self._counts)

    def has_topic(self, topic: str) -> bool:
        with self._lock:
            return normalize_topic(topic) in self._connections

    def add_topic(self, topic: str, msgtype: str, qos=None, latched: Optional[bool] = None):
        """Declare a topic; ``qos`` is a rosbags Qos (or a list of them), default reliable."""
        topic = normalize_topic(topic)
        msgtype = normalize_msgtype(msgtype)
        if msgtype not in self._store.types:
            raise KeyError('message type %s is unknown to the typestore; register its .msg '
                           'text with register_msg_text() first' % msgtype)
        if qos is None:
            qos = [make_qos(latched=is_latched_topic(topic) if latched is None else latched)]
        elif not isinstance(qos, (list, tuple)) or (qos and not hasattr(qos[0], 'durability')):
            qos = [qos]
        self.open()
        with self._lock:
            if topic in self._connections:
                return self._connections[topic]
            conn = self._worker.submit(
                self._writer.add_connection, topic, msgtype, typestore=self._store,
                offered_qos_profiles=list(qos)).result()
            self._connections[topic] = conn
            with self._count_lock:
                self._counts[topic] = 0
            return conn

    def _write_now(self, conn, topic: str, timestamp_ns: int, data: bytes) -> None:
        try:
            self._writer.write(conn, timestamp_ns, data)
        except Exception as exc:  # noqa: BLE001 - reported by close()
            self._errors.append(exc)
            return
        with self._count_lock:
            self._counts[topic] += 1

    def write(self, topic: str, timestamp_ns: int, raw_cdr: bytes) -> None:
        """Queue one message (returns at once; safe from any thread)."""
        topic = normalize_topic(topic)
        with self._lock:
            if self._state != 'open':
                raise RuntimeError('bag %s is not open' % self.path)
            conn = self._connections[topic]
            self._worker.submit(self._write_now, conn, topic, int(timestamp_ns),
                                bytes(raw_cdr))


# A fixed, recognisable start time for generated bags (2023-11-14T22:13:20Z): far from "now",
# so a node that follows /clock visibly runs on bag time, not wall time.
DEFAULT_START_NS = 1700000000 * 10**9


def write_text_turns_bag(path, turns: Iterable[str], topic: str = 'transcript',
                         gap_s: float = 0.5, storage: str = 'sqlite3',
                         start_ns: int = DEFAULT_START_NS, with_events: bool = False,
                         events_topic: str = EVENTS_TOPIC, node: str = '/qwen_voice_replay',
                         turn_id_prefix: str = 'bag', distro: str = 'jazzy') -> List[int]:
    """
    Write a bag of std_msgs/String transcripts, one every ``gap_s`` seconds.

    With ``with_events`` each transcript is accompanied (same timestamp) by a ``transcript``
    turn event on ``events_topic`` (schema in qwen_voice_ros.core.events).  Returns the
    transcript timestamps in ns.
    """
    stamps = []
    with BagRecorder(path, storage=storage, distro=distro) as bag:
        bag.add_topic(topic, STRING_TYPE)
        if with_events:
            bag.add_topic(events_topic, STRING_TYPE)
        for index, text in enumerate(turns):
            stamp = int(start_ns + round(index * gap_s * 1e9))
            bag.write(topic, stamp, string_cdr(text, distro))
            if with_events:
                turn_id = 't-%s-%04d' % (turn_id_prefix, index + 1)
                event = turn_events.make_event(turn_id, 'transcript', node, stamp / 1e9,
                                               turn_stamp=stamp / 1e9, text=text, final=True)
                bag.write(events_topic, stamp, string_cdr(turn_events.encode(event), distro))
            stamps.append(stamp)
    return stamps


# --- message definitions for types the typestore does not know -------------------------

_ROSIDL_PRIMITIVES = {
    'boolean': 'bool', 'octet': 'byte', 'char': 'char', 'float': 'float32',
    'double': 'float64', 'long double': 'float64',
    'int8': 'int8', 'uint8': 'uint8', 'int16': 'int16', 'uint16': 'uint16',
    'int32': 'int32', 'uint32': 'uint32', 'int64': 'int64', 'uint64': 'uint64',
    'string': 'string', 'wstring': 'wstring',
}
_SEQUENCE = re.compile(r'^sequence<(.+?)(?:,\s*(\d+))?>$')
_ARRAY = re.compile(r'^(.+)\[(\d+)\]$')
_BOUNDED_STRING = re.compile(r'^(w?string)<(\d+)>$')


def rosidl_field_to_msg(field_type: str) -> Tuple[str, Optional[str]]:
    """
    Map an rclpy ``get_fields_and_field_types()`` type to .msg syntax.

    Returns (msg field type, nested 'pkg/msg/Type' or None).
    """
    seq = _SEQUENCE.match(field_type)
    if seq:
        inner, nested = rosidl_field_to_msg(seq.group(1))
        bound = seq.group(2)
        return ('%s[<=%s]' % (inner, bound) if bound else inner + '[]'), nested
    arr = _ARRAY.match(field_type)
    if arr:
        inner, nested = rosidl_field_to_msg(arr.group(1))
        return '%s[%s]' % (inner, arr.group(2)), nested
    bounded = _BOUNDED_STRING.match(field_type)
    if bounded:
        return '%s<=%s' % (bounded.group(1), bounded.group(2)), None
    if field_type in _ROSIDL_PRIMITIVES:
        return _ROSIDL_PRIMITIVES[field_type], None
    parts = field_type.split('/')
    if len(parts) == 2:
        return field_type, '%s/msg/%s' % (parts[0], parts[1])
    if len(parts) == 3:
        return '%s/%s' % (parts[0], parts[2]), field_type
    raise ValueError('cannot map field type %r' % field_type)


def msg_text_from_fields(fields: Dict[str, str]) -> Tuple[str, List[str]]:
    """Build .msg text from ``{field: rosidl type}``; also return the nested types it names."""
    lines = []
    nested = []
    for name, field_type in fields.items():
        msg_type, inner = rosidl_field_to_msg(field_type)
        lines.append('%s %s' % (msg_type, name))
        if inner:
            nested.append(inner)
    return ''.join(line + '\n' for line in lines), nested


def msgdef_text(msgtype: str, distro: str = 'jazzy') -> str:
    """Return the full message definition (ROS 2 style, with dependencies) bags store."""
    text, _ = get_typestore(distro).generate_msgdef(normalize_msgtype(msgtype), ros_version=2)
    return text
