"""
Bags of spoken requests: voiced user turns as microphone audio (no rclpy).

``write_speech_bag`` writes what a microphone would have recorded: ``audio_common_msgs``
AudioDataStamped chunks (S16LE mono, 32 ms each, ``header.stamp`` = the chunk's first sample
in bag time) on ``audio_stamped`` with a latched AudioInfo on ``audio_info``, speech separated
by quiet room noise.  ``voice`` speaks a request with the offline neural TTS (Kokoro, from the
registry pack) or espeak-ng.  Used by ``bench/make_speech_bag.py``, ``bench/e2e_latency.py``
and the README demo (``qwen_voice_ros.stack.demo``).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from qwen_voice_ros.replay import bags

AUDIO_TYPE = 'audio_common_msgs/msg/AudioDataStamped'
INFO_TYPE = 'audio_common_msgs/msg/AudioInfo'
RATE = 16000

# (request, dialect label): what users say to the robot, in several dialects (dialect words,
# read by a Mandarin voice: a spoken dialect corpus is not available offline).
REQUESTS: Tuple[Tuple[str, str], ...] = (
    ('你好，请介绍一下你自己。', 'mandarin'),
    ('今天巴适得很，我们去耍嘛。', 'sichuanese'),
    ('侬今朝夜饭吃啥？', 'shanghainese'),
    ('俺们那嘎达冬天贼拉冷。', 'northeastern'),
    ('你食咗饭未呀？', 'cantonese'),
    ('明天北京的天气怎么样？', 'mandarin'),
    ('你吃饭没得？我饿惨了。', 'sichuanese'),
    ('咱俩唠唠嗑呗，你整啥呢？', 'northeastern'),
    ('请帮我把灯打开。', 'mandarin'),
    ('阿拉去白相好伐？', 'shanghainese'),
)
DEMO_REQUESTS = (REQUESTS[0], REQUESTS[1], REQUESTS[3], REQUESTS[5])


def voice(text: str, tts: str = 'kokoro', voice_name: str = '') -> np.ndarray:
    """Speak ``text``; return float32 mono at 16 kHz (Kokoro, else espeak-ng with a reason)."""
    from qwen_voice_ros.audio.pcm import resample
    if tts == 'kokoro':
        from qwen_voice_ros.tts.kokoro import synthesize
        speech = synthesize(text, voice=voice_name or 'jf_alpha')
    elif tts == 'espeak':
        from qwen_voice_ros.tts import create_tts
        engine = create_tts('espeak')
        engine.load()
        speech = engine.synthesize(text)
    else:
        raise ValueError('tts %r: use kokoro or espeak' % tts)
    return resample(np.asarray(speech.audio, dtype=np.float32), speech.sample_rate, RATE)


def kokoro_unavailable() -> str:
    """'' when the offline Kokoro pack can speak here, else why not."""
    try:
        from qwen_voice_ros.tts import kokoro
        kokoro.pack_model_path()
    except Exception as exc:  # pack missing or checksum refused
        return str(exc) or repr(exc)
    return ''


def _audio_msg(store, pcm: bytes, stamp_ns: int, frame_id: str = ''):
    types = store.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 10**9),
                                                   nanosec=int(stamp_ns % 10**9)),
        frame_id=frame_id)
    return types[AUDIO_TYPE](header=header, audio=types['audio_common_msgs/msg/AudioData'](
        data=np.frombuffer(pcm, dtype=np.uint8)))


def layout(clips: Sequence[np.ndarray], lead_s: float = 1.0, gap_s: float = 10.0,
           tail_s: float = 1.0, noise_dbfs: float = -70.0, seed: int = 0
           ) -> Tuple[np.ndarray, List[Dict[str, float]]]:
    """Concatenate clips with quiet noise between them; return (audio, timeline in seconds)."""
    rng = np.random.default_rng(seed)
    level = 10.0 ** (noise_dbfs / 20.0)

    def noise(seconds: float) -> np.ndarray:
        return (rng.standard_normal(int(round(seconds * RATE))) * level).astype(np.float32)

    parts = [noise(lead_s)]
    timeline = []
    t = lead_s
    for i, clip in enumerate(clips):
        clip = np.asarray(clip, dtype=np.float32)
        duration = len(clip) / float(RATE)
        timeline.append({'speech_start_s': round(t, 3), 'speech_end_s': round(t + duration, 3)})
        parts.append(clip + noise(duration)[:len(clip)])
        t += duration
        pause = gap_s if i < len(clips) - 1 else tail_s
        parts.append(noise(pause))
        t += pause
    return np.concatenate(parts), timeline


def write_speech_bag(path, clips: Sequence[np.ndarray], audio_topic: str = 'audio_stamped',
                     info_topic: str = 'audio_info', storage: str = 'sqlite3',
                     chunk_ms: int = 32, lead_s: float = 1.0, gap_s: float = 10.0,
                     tail_s: float = 1.0, start_ns: int = bags.DEFAULT_START_NS,
                     distro: str = 'jazzy') -> List[Dict[str, float]]:
    """Write the clips as microphone audio (see the module docstring); return the timeline."""
    from qwen_voice_ros.audio.pcm import encode_s16le
    audio, timeline = layout(clips, lead_s, gap_s, tail_s)
    store = bags.get_typestore(distro)
    info = store.types[INFO_TYPE](channels=1, sample_rate=RATE, sample_format='S16LE',
                                  bitrate=RATE * 16, coding_format='WAVE')
    chunk = int(RATE * chunk_ms / 1000)
    with bags.BagRecorder(str(path), storage=storage, distro=distro) as bag:
        bag.add_topic(info_topic, INFO_TYPE, latched=True)
        bag.add_topic(audio_topic, AUDIO_TYPE)
        bag.write(info_topic, start_ns, bags.serialize(info, INFO_TYPE, distro))
        for offset in range(0, len(audio), chunk):
            stamp = start_ns + int(round(offset * 1e9 / RATE))
            pcm = encode_s16le(audio[offset:offset + chunk])
            bag.write(audio_topic, stamp, bags.serialize(_audio_msg(store, pcm, stamp),
                                                         AUDIO_TYPE, distro))
    return timeline


def make_request_bag(path, requests: Sequence[Tuple[str, str]] = REQUESTS,
                     tts: str = 'kokoro', voices: Sequence[str] = ('jf_alpha', 'jm_kumo'),
                     truth_path: Optional[str] = None, progress=None,
                     **bag_args: Any) -> Dict[str, Any]:
    """Voice each request and write the bag plus its truth file (``truth.json`` beside it)."""
    clips = []
    for i, (text, _label) in enumerate(requests):
        if progress:
            progress('voicing %d/%d (%s): %s' % (i + 1, len(requests), tts, text))
        clips.append(voice(text, tts, voices[i % len(voices)] if tts == 'kokoro' else ''))
    timeline = write_speech_bag(path, clips, **bag_args)
    truth = {'format': 'qwen_voice_ros/truth/v1', 'tts': tts,
             'bag_start_ns': int(bag_args.get('start_ns', bags.DEFAULT_START_NS)),
             'audio_topic': bags.normalize_topic(bag_args.get('audio_topic', 'audio_stamped')),
             'turns': [dict(transcript=text, dialect=label, **span)
                       for (text, label), span in zip(requests, timeline)]}
    truth_path = truth_path or os.path.join(os.path.dirname(os.path.abspath(str(path))),
                                            os.path.basename(str(path).rstrip('/'))
                                            + '.truth.json')
    with open(truth_path, 'w', encoding='utf-8') as f:
        json.dump(truth, f, ensure_ascii=False, indent=1)
    truth['path'] = truth_path
    return truth


def write_info_bag(path, info_topic: str = 'audio_info', storage: str = 'sqlite3',
                   start_ns: int = bags.DEFAULT_START_NS, distro: str = 'jazzy') -> None:
    """Write a bag holding only the latched AudioInfo (primes the format, records)."""
    store = bags.get_typestore(distro)
    info = store.types[INFO_TYPE](channels=1, sample_rate=RATE, sample_format='S16LE',
                                  bitrate=RATE * 16, coding_format='WAVE')
    with bags.BagRecorder(str(path), storage=storage, distro=distro) as bag:
        bag.add_topic(info_topic, INFO_TYPE, latched=True)
        bag.write(info_topic, start_ns, bags.serialize(info, INFO_TYPE, distro))


def make_turn_bags(folder, requests: Sequence[Tuple[str, str]] = DEMO_REQUESTS,
                   tts: str = 'kokoro', voices: Sequence[str] = ('jf_alpha', 'jm_kumo'),
                   progress=None) -> Dict[str, Any]:
    """
    Voice each request into its own bag (``request_NN``), plus ``format`` (AudioInfo only).

    For playing requests one at a time (the demo).  ``truth.json`` lists the requests without
    bag timing (each bag starts at its own time).  Returns the truth dict with ``bags``.
    """
    os.makedirs(str(folder), exist_ok=True)
    write_info_bag(os.path.join(str(folder), 'format'))
    paths = []
    for i, (text, _label) in enumerate(requests):
        if progress:
            progress('voicing %d/%d (%s): %s' % (i + 1, len(requests), tts, text))
        clip = voice(text, tts, voices[i % len(voices)] if tts == 'kokoro' else '')
        path = os.path.join(str(folder), 'request_%02d' % (i + 1))
        write_speech_bag(path, [clip], lead_s=0.3, tail_s=2.0)
        paths.append(path)
    truth = {'format': 'qwen_voice_ros/truth/v1', 'tts': tts,
             'turns': [{'transcript': text, 'dialect': label} for text, label in requests]}
    truth_path = os.path.join(str(folder), 'truth.json')
    with open(truth_path, 'w', encoding='utf-8') as f:
        json.dump(truth, f, ensure_ascii=False, indent=1)
    truth.update(path=truth_path, bags=paths, format_bag=os.path.join(str(folder), 'format'))
    return truth
