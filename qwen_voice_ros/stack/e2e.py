"""
The whole turn from speech: start the stack, play a bag of microphone audio, report.

Used by ``bench/e2e_latency.py`` and the README demo (``qwen_voice_ros.stack.demo``):

1. writes a parameter file: hearing listens on the bag's audio topic (capture off) with the
   offline Whisper pack, the llm node on the given export, TTS on Kokoro (offline pack),
   playback into WAV files in real time;
2. starts ``qwen-voice-stack`` (plus, optionally, the monitor) and waits until every node
   reports serving or an error on /diagnostics;
3. plays the bag with ``qwen-voice-replay`` (its recorded timing; ``--clock`` and
   ``use_sim_time`` with ``sim_time``) and records every topic the stack publishes;
4. stops the stack and builds :mod:`qwen_voice_ros.replay.turn_report` from the recording.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from qwen_voice_ros.replay import bags


# What a --clock run records, and waits for a publisher on before playing (see run()).
SIM_RECORD_TOPICS = ('voice/events', '/diagnostics', 'transcript', 'dialect', 'reply_sentence',
                     'reply', 'tts/audio')


def bag_audio_duration_s(bag: str, audio_topic: str) -> float:
    infos = {i.topic: i for i in bags.topic_infos(bag)}
    if bags.normalize_topic(audio_topic) not in infos:
        raise ValueError('%s has no topic %s (topics: %s)' % (
            bag, bags.normalize_topic(audio_topic), ', '.join(sorted(infos))))
    stamps = [m.timestamp_ns for m in bags.read_messages(bag, [audio_topic])]
    return (max(stamps) - min(stamps)) / 1e9 if stamps else 0.0


def asr_model_dir(explicit: str = '') -> str:
    """Return the Whisper directory: ``explicit``, else the offline pack (assembled once)."""
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    try:
        from qwen_voice_ros.asr import offline_pack
        return offline_pack.ensure_pack()
    except Exception as exc:  # no pack here: the hearing node will say ASR is not configured
        print('[e2e] offline Whisper pack unavailable (%s); hearing will report ASR not '
              'configured' % exc, file=sys.stderr, flush=True)
        return ''


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def params_yaml(params: Dict[str, Dict[str, Any]]) -> str:
    """``{node: {param: value}}`` -> a ROS 2 parameter file (keys ``/**/node``)."""
    lines = []
    for node, values in params.items():
        lines += ['/**/%s:' % node, '  ros__parameters:']
        lines += ['    %s: %s' % (k, _yaml_value(v)) for k, v in values.items()]
    return '\n'.join(lines) + '\n'


def stack_params(audio_topic: str, info_topic: str, wav_dir: str, asr_dir: str,
                 llm_model_dir: str = '', tts: str = 'kokoro', max_new_tokens: int = 48,
                 min_silence_ms: int = 0) -> Dict[str, Dict[str, Any]]:
    """
    Return the parameters of a run from audio: only what the run itself needs.

    Topics, the Whisper pack, the LLM export, playback into WAV files in real time and a
    shorter reply.  Every latency choice (hangover, speculative ASR, greedy Whisper without
    temperature retries, the short first clause, engine threads) is the nodes' own default
    in ``config/voice_stack.yaml`` / the node parameters, so what is measured here is what a
    user of ``qwen-voice-stack`` or the launch file gets (docs/latency.md).
    """
    hearing = {'audio_topic': bags.normalize_topic(audio_topic).lstrip('/'),
               'info_topic': bags.normalize_topic(info_topic).lstrip('/'),
               'backend': 'faster_whisper', 'faster_whisper.model_dir': asr_dir}
    if min_silence_ms:
        hearing['min_silence_ms'] = int(min_silence_ms)
    params = {'hearing': hearing,
              'tts': {'backend': tts},
              'playback': {'sink': 'wav', 'wav_dir': wav_dir, 'realtime': True}}
    llm = {'max_new_tokens': int(max_new_tokens)}
    if llm_model_dir:
        llm['model_dir'] = os.path.abspath(os.path.expanduser(llm_model_dir))
        llm['onnx.model_dir'] = llm['model_dir']
    params['llm'] = llm
    return params


def run(bag: str, out_dir: str, audio_topic: str = 'audio_stamped',
        info_topic: str = 'audio_info', llm_model_dir: str = '', asr_dir: str = '',
        tts: str = 'kokoro', max_new_tokens: int = 48, tail_s: float = 25.0,
        sim_time: bool = False, monitor: bool = False, ready_timeout_s: float = 600.0,
        min_silence_ms: int = 0, stack_args: Sequence[str] = (), truth: Optional[str] = None,
        extra_params: Optional[Dict[str, Dict[str, Any]]] = None,
        log=print, turn_bags: Sequence[str] = (), turn_timeout_s: float = 120.0
        ) -> Dict[str, Any]:
    """
    Run the stack on ``bag`` and return the turn report (also written to out_dir).

    With ``turn_bags`` (one request each), ``bag`` only primes the format (its AudioInfo) and
    records; the requests are played one at a time, each once the previous turn ended (its
    reply played, or an error / cancel, or ``turn_timeout_s``): every request gets answered
    however slow the machine, which a fixed gap cannot promise (the demo).
    """
    from qwen_voice_ros.replay import turn_report
    from qwen_voice_ros.stack import demo

    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    wav_dir = os.path.join(out_dir, 'wav')
    os.makedirs(wav_dir, exist_ok=True)
    recorded = os.path.join(out_dir, 'recorded')
    if os.path.exists(recorded):
        raise ValueError('%s exists: use a new output folder' % recorded)
    audio_s = sum(bag_audio_duration_s(b, audio_topic) for b in turn_bags) if turn_bags \
        else bag_audio_duration_s(bag, audio_topic)
    params = stack_params(audio_topic, info_topic, wav_dir, asr_dir or asr_model_dir(),
                          llm_model_dir, tts, max_new_tokens, min_silence_ms)
    for node, values in (extra_params or {}).items():
        params.setdefault(node, {}).update(values)
    params_path = os.path.join(out_dir, 'stack_params.yaml')
    with open(params_path, 'w', encoding='utf-8') as f:
        f.write(params_yaml(params))
    args = ['capture:=false'] + list(stack_args)
    if sim_time:
        args.append('use_sim_time:=true')
    py = sys.executable
    stack_log = open(os.path.join(out_dir, 'stack.log'), 'w')
    stack = subprocess.Popen([py, '-m', 'qwen_voice_ros.stack.runner', '--no-respawn',
                              '--extra-params-file', params_path] + args,
                             stdout=stack_log, stderr=subprocess.STDOUT)
    procs = [stack]
    if monitor:
        procs.append(subprocess.Popen([py, '-m', 'qwen_voice_ros.stack.monitor']))
    try:
        started = time.monotonic()
        if not sim_time:
            late = demo.wait_until_settled(demo.node_fqns(args), ready_timeout_s)
            waiting = '; still starting: ' + ', '.join(late) if late else ''
            log('[e2e] stack ready in %.1f s%s' % (time.monotonic() - started, waiting))
        what = '%d requests one at a time' % len(turn_bags) if turn_bags else bag
        log('[e2e] playing %s (%.1f s of audio on %s)%s' % (
            what, audio_s, bags.normalize_topic(audio_topic), ' with --clock' if sim_time
            else ''))
        played = [info_topic] if turn_bags else [audio_topic, info_topic]
        replay = [py, '-m', 'qwen_voice_ros.replay.cli', bag, '--topics'] + played + [
                  '--record', recorded, '--tail-s', str(tail_s),
                  '--wait-for-subscribers', '1', '--wait-subscribers-s', '20']
        if sim_time:
            # Nodes on use_sim_time stand still until /clock ticks (not even autostart runs):
            # the replay ticks it at the bag's start while it waits for every stage's output
            # topic to have a publisher (each node creates them once configured).
            replay += ['--clock', '100', '--wait-subscribers-s', str(ready_timeout_s),
                       '--record-topics'] + list(SIM_RECORD_TOPICS)
        if turn_bags:
            replay[replay.index('--tail-s') + 1] = str(24 * 3600)
            recorder = subprocess.Popen(replay, stdout=subprocess.DEVNULL)
            try:
                play_one_by_one(turn_bags, audio_topic, turn_timeout_s, tail_s, log)
            finally:
                recorder.send_signal(2)  # the recording is closed on SIGINT
                recorder.wait(timeout=60)
            code = 0
        else:
            code = subprocess.call(replay, stdout=subprocess.DEVNULL)
        if code != 0:
            log('[e2e] qwen-voice-replay exited with %d' % code)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(2)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        stack_log.close()
    report = turn_report.build(recorded, truth)
    report.update(speculation_summary(recorded))
    report['audio_s'] = round(audio_s, 3)
    report['wav_dir'] = wav_dir
    report['stack_log'] = os.path.join(out_dir, 'stack.log')
    with open(os.path.join(out_dir, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, ensure_ascii=False, indent=1)
    return report


def speculation_summary(recorded: str) -> Dict[str, Any]:
    """
    Summarize what the speculative reply did in a recording (docs/latency.md).

    ``user_turns``: turns less the speculative turns the hearing node withdrew (speech
    resumed inside the hangover: not a request of their own, their text is part of the next
    turn's); ``speculative_*_turns``: announced / confirmed / withdrawn turns;
    ``first_sentence_held_s``: per confirmed turn, how long its first sentence waited for
    the confirmation (0: it came after); ``reused_tokens`` / ``prompt_tokens`` per turn, in
    order (the first turn's shows whether the system-prompt warm-up was hit).
    """
    from qwen_voice_ros.replay import report as basic
    events, _bad = basic.read_events(recorded)
    return speculation_of_events(events)


def speculation_of_events(events: List[Dict[str, Any]]) -> Dict[str, Any]:
    """:func:`speculation_summary` of decoded events."""
    announced = {e['turn_id'] for e in events if e['stage'] == 'speculative_transcript'}
    withdrawn = {e['turn_id'] for e in events if e['stage'] == 'cancelled'
                 and e.get('speculative') is True and '/hearing' in str(e.get('node'))}
    confirmed = {e['turn_id'] for e in events if e['stage'] == 'transcript'
                 and (e.get('detail') or {}).get('confirms_speculative') is True}
    replies = [e for e in events if e['stage'] == 'reply' and '/llm' in str(e.get('node'))]
    held = [(e.get('detail') or {}).get('first_sentence_held_s') for e in replies]
    turns = {e['turn_id'] for e in events}
    return {'user_turns': len(turns - withdrawn),
            'speculative_announced_turns': len(announced),
            'speculative_confirmed_turns': len(confirmed),
            'speculative_withdrawn_turns': len(withdrawn),
            'first_sentence_held_s': [h for h in held if h is not None],
            'reused_tokens': [(e.get('detail') or {}).get('reused_tokens') for e in replies],
            'prompt_tokens': [(e.get('detail') or {}).get('prompt_tokens') for e in replies]}


class EventWatcher(object):
    """Collect ``voice/events`` in a thread of this process (own rclpy context)."""

    def __init__(self):
        import threading

        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        from qwen_voice_ros.core import events as turn_events
        from qwen_voice_ros.nodes import ros_io
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node('voice_e2e_watch', context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self.events: List[Dict[str, Any]] = []
        self._lock = threading.Lock()

        def on_event(msg):
            try:
                event = turn_events.decode(msg.data)
            except turn_events.EventError:
                return
            with self._lock:
                self.events.append(event)
        self._node.create_subscription(String, 'voice/events', on_event, ros_io.QOS_EVENTS)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self._running:
            self._executor.spin_once(timeout_sec=0.1)

    def snapshot(self) -> List[Dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self._executor.shutdown()
        self._node.destroy_node()
        self._context.try_shutdown()


def turn_finished(events: List[Dict[str, Any]]) -> bool:
    """Tell whether a turn's events show its end: reply fully played, an error or a cancel."""
    stages = [e['stage'] for e in events]
    if 'error' in stages or 'cancelled' in stages:
        return True
    replies = [e for e in events if e['stage'] == 'reply']
    if not replies:
        return False
    sentences = int(replies[0].get('seq') or 1)
    return stages.count('playback') >= sentences


def play_one_by_one(turn_bags: Sequence[str], audio_topic: str, timeout_s: float,
                    quiet_s: float, log=print) -> None:
    """Play each bag, then wait until the turn it started is over (see :func:`run`)."""
    watcher = EventWatcher()
    py = sys.executable
    try:
        for index, bag in enumerate(turn_bags, 1):
            known = {e['turn_id'] for e in watcher.snapshot()}
            log('[e2e] request %d/%d' % (index, len(turn_bags)))
            subprocess.call([py, '-m', 'qwen_voice_ros.replay.cli', bag, '--topics',
                             audio_topic, '--wait-for-subscribers', '1'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout_s
            heard_by = time.monotonic() + max(15.0, quiet_s)
            while time.monotonic() < deadline:
                events = watcher.snapshot()
                new = [e for e in events if e['turn_id'] not in known]
                ids = [e['turn_id'] for e in new]
                if not ids and time.monotonic() > heard_by:
                    log('[e2e] request %d: no turn started (nothing heard)' % index)
                    break
                if ids and all(turn_finished([e for e in new if e['turn_id'] == turn])
                               for turn in set(ids)):
                    break
                time.sleep(0.2)
            else:
                log('[e2e] request %d: turn not over after %.0f s; next request'
                    % (index, timeout_s))
            # The hearing node's half-duplex gate stays raised a moment after playback.
            time.sleep(1.0)
    finally:
        watcher.close()


def reply_wavs(wav_dir: str, turn_ids: List[str], out_dir: str) -> Dict[str, str]:
    """Join each turn's played chunks (``<turn>_<seq>.wav``) into one ``reply_NN.wav``."""
    from qwen_voice_ros.audio import wavfile
    import numpy as np
    out = {}
    names = sorted(os.listdir(wav_dir)) if os.path.isdir(wav_dir) else []
    for n, turn_id in enumerate(turn_ids, 1):
        chunks = []
        for name in names:
            if name.startswith(turn_id + '_') and name.endswith('.wav'):
                try:
                    seq = int(name[len(turn_id) + 1:-4])
                except ValueError:
                    continue
                chunks.append((seq, os.path.join(wav_dir, name)))
        if not chunks:
            continue
        audio, rate = [], 16000
        for _seq, path in sorted(chunks):
            data, rate = wavfile.read_wav(path)
            audio.append(np.asarray(data, dtype=np.float32).reshape(-1))
        target = os.path.join(out_dir, 'reply_%02d.wav' % n)
        wavfile.write_wav(target, np.concatenate(audio), rate)
        out[turn_id] = target
    return out
