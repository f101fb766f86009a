"""
qwen-voice-report: the whole turn, stage by stage, from a recorded bag (no rclpy).

    qwen-voice-report BAG [--truth truth.json] [--json] [--plot out.png]

Reads ``voice/events`` and ``/diagnostics`` from a bag recorded while the stack answered
(``qwen-voice-replay --record``, ``bench/e2e_latency.py``, ``ros2 bag record``) and prints one
row per turn: transcript, dialect, reply and the latency of every stage, then p50/p95 per
stage.  All figures are differences of stamps made by the stack's nodes on their ROS clocks
(one clock: wall time, or ``/clock`` for all nodes under ``use_sim_time``); the turn starts at
the end of the user's speech as the hearing node received it (``turn_stamp``).

Stages (seconds; ``*_s`` keys in the JSON rows' ``stages``):

=================  ===========================================================================
eos_detect         end of speech -> the VAD closed the utterance (its silence hangover)
asr                utterance closed -> transcript published
dialect            transcript -> dialect label
llm_sentence       dialect label -> first reply sentence (prefill + first clause)
llm_ttft           LLM request -> first token (the llm node's ``detail.ttft_s``)
llm_tok_per_s      decode speed of the reply (``detail.tok_per_s``; tokens per second)
tts_synth          first reply sentence -> its synthesised audio chunk
playout            first TTS audio chunk -> playback started it
first_sentence     end of speech -> first reply sentence
first_tts_audio    end of speech -> first synthesised audio chunk
first_audio        end of speech -> first audio out (playback started the first chunk)
first_audio_true   the same from the *true* end of speech: a truth file's ``speech_end_s``
                   placed on the clock by the replay's ``replay_info.json`` (needs both)
turn_start_err     the turn's start minus the true end of speech (checks the hearing clock)
=================  ===========================================================================

A turn is *answered* when its first audio went out.  For every other turn the reason is
printed: an error event, a barge-in, a stage whose node reported itself not configured on
/diagnostics, a stage with no node in the graph, no subscriber on the replayed input (from
the replay's ``replay_info.json`` in the recorded bag), or a recording that ended too early.

With ``--truth`` (format in docs/latency.md: a JSON list, or ``{"turns": [...]}``, of
``{"transcript": str, "dialect": str}``, optionally with ``"turn_id"``; matched by turn id when
given, else by order) each turn also gets its character error rate and dialect hit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qwen_voice_ros.replay import report as basic

STAGES = ('eos_detect', 'asr', 'dialect', 'llm_sentence', 'llm_ttft', 'llm_tok_per_s',
          'tts_synth', 'playout', 'first_sentence', 'first_tts_audio', 'first_audio',
          'first_audio_true', 'turn_start_err')
STAGE_TITLES = {
    'eos_detect': 'end-of-speech detection', 'asr': 'ASR', 'dialect': 'dialect',
    'llm_sentence': 'LLM to first sentence', 'tts_synth': 'TTS of first sentence',
    'playout': 'TTS audio to audio out',
    'llm_ttft': 'LLM time to first token', 'llm_tok_per_s': 'LLM tokens/s',
    'first_sentence': 'first sentence', 'first_tts_audio': 'first TTS audio',
    'first_audio': 'first audio out',
    'first_audio_true': 'first audio, true end',
    'turn_start_err': 'turn start - true end'}
# Which node is next once a turn reached a stage: (event stage reached, next capability).
PIPELINE = (('utterance', 'hearing'), ('transcript', 'dialect'), ('dialect', 'llm'),
            ('reply_sentence', 'tts'), ('tts_audio', 'playback'))
NEXT_OUTPUT = {'hearing': 'transcript', 'dialect': 'dialect label', 'llm': 'reply',
               'tts': 'TTS audio', 'playback': 'audio out'}
DIAGNOSTICS_TOPIC = '/diagnostics'
REPLAY_INFO = 'replay_info.json'
# A turn_stamp this far from its own events' stamps was made on another clock.
CLOCK_MISMATCH_S = 300.0


# ---- numbers ---------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Interpolate the q-th (0..100) percentile linearly; None when empty."""
    data = sorted(float(v) for v in values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def _punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ('P', 'Z', 'S', 'C')


def normalize_text(text: str) -> str:
    """Compare transcripts by characters: NFKC, no punctuation/space, simplified Chinese."""
    text = unicodedata.normalize('NFKC', text or '').lower()
    try:
        import opencc
        text = opencc.OpenCC('t2s').convert(text)
    except Exception:  # opencc missing: compare as written
        pass
    return ''.join(ch for ch in text if not _punct(ch))


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (normalised)."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / float(len(ref))


# ---- turns -----------------------------------------------------------------------------------
def _first(events: List[Dict[str, Any]], stage: str) -> Optional[Dict[str, Any]]:
    chosen = None
    for event in events:
        if event['stage'] != stage:
            continue
        if chosen is None or float(event['stamp']) < float(chosen['stamp']):
            chosen = event
    return chosen


def _detail(event: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    detail = (event or {}).get('detail')
    return detail if isinstance(detail, dict) else {}


def audio_out_stamp(event: Dict[str, Any]) -> float:
    """When a ``playback_start`` / ``playback`` event's chunk started playing (node clock)."""
    if event['stage'] == 'playback_start':
        return float(event['stamp'])
    detail = _detail(event)
    if 'started' in detail:
        return float(detail['started'])
    # Older playback nodes stamp the end of the chunk: a real-time sink took its duration.
    return float(event['stamp']) - float(event.get('duration_s') or 0.0)


def turn_start(events: List[Dict[str, Any]]) -> Tuple[Optional[float], str]:
    """
    Return (the turn's start on the nodes' clock, a note when it had to be repaired).

    The start is the ``turn_stamp`` the turn's first stage gave it: the end of speech as the
    hearing node received it, or the transcript's arrival for a text turn.  A ``turn_stamp``
    on another clock than the event stamps (an old hearing node copied the bag's audio
    stamps) is replaced by the utterance event's own stamp, and the note says so.
    """
    # speech_start's turn_stamp is the onset of speech, not its end: not the turn's start.
    stamped = [e for e in events if 'turn_stamp' in e and e['stage'] != 'speech_start']
    utterance = [e for e in stamped if e['stage'] == 'utterance']
    stamped = utterance or stamped
    if not stamped:
        first = min(events, key=lambda e: float(e['stamp'])) if events else None
        return (float(first['stamp']) if first else None), 'no turn_stamp: first event'
    ordered = sorted(stamped, key=lambda e: float(e['stamp']))
    start = float(ordered[0]['turn_stamp'])
    if abs(float(ordered[0]['stamp']) - start) <= CLOCK_MISMATCH_S:
        return start, ''
    utterance = _first(events, 'utterance') or ordered[0]
    return (float(utterance['stamp']),
            'turn_stamp %.1f s away from the node clock: measured from the %s event'
            % (float(ordered[0]['stamp']) - start, utterance['stage']))


def stage_latencies(events: List[Dict[str, Any]], start: Optional[float]) -> Dict[str, float]:
    """Every stage's figure for one turn (see the module docstring); missing ones left out."""
    out: Dict[str, float] = {}
    first = {stage: _first(events, stage) for stage in
             ('utterance', 'transcript', 'dialect', 'reply_sentence', 'reply', 'tts_audio')}
    starts = [e for e in events if e['stage'] == 'playback_start']
    playbacks = starts or [e for e in events if e['stage'] == 'playback']

    def since(stamp: Optional[float], origin: Optional[float], key: str) -> None:
        if stamp is not None and origin is not None:
            out[key] = round(float(stamp) - float(origin), 4)

    def stamp(stage):
        return float(first[stage]['stamp']) if first[stage] is not None else None

    if first['utterance'] is not None:
        if float(first['utterance']['stamp']) != start:  # else: start repaired from it
            since(stamp('utterance'), start, 'eos_detect')
        since(stamp('transcript'), stamp('utterance'), 'asr')
    elif first['transcript'] is not None and 'asr_s' in _detail(first['transcript']):
        out['asr'] = float(_detail(first['transcript'])['asr_s'])
    since(stamp('dialect'), stamp('transcript'), 'dialect')
    llm = _detail(first['reply']) or _detail(first['reply_sentence'])
    if 'ttft_s' in llm:
        out['llm_ttft'] = float(llm['ttft_s'])
    if llm.get('tok_per_s') is not None:
        out['llm_tok_per_s'] = float(llm['tok_per_s'])
    since(stamp('reply_sentence'), stamp('dialect'), 'llm_sentence')
    since(stamp('tts_audio'), stamp('reply_sentence'), 'tts_synth')
    since(stamp('reply_sentence'), start, 'first_sentence')
    since(stamp('tts_audio'), start, 'first_tts_audio')
    if playbacks:
        audio_out = min(audio_out_stamp(e) for e in playbacks)
        since(audio_out, stamp('tts_audio'), 'playout')
        since(audio_out, start, 'first_audio')
    return out


def first_audio_stamp(events: List[Dict[str, Any]]) -> Optional[float]:
    """Node-clock time the turn's first audio went out, if it did."""
    starts = [e for e in events if e['stage'] == 'playback_start']
    playbacks = starts or [e for e in events if e['stage'] == 'playback']
    return min(audio_out_stamp(e) for e in playbacks) if playbacks else None


def _turns_by_id(events: List[Dict[str, Any]]) -> List[Tuple[str, List[Dict[str, Any]]]]:
    grouped: Dict[str, List[Dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(str(event['turn_id']), []).append(event)
    return sorted(grouped.items(), key=lambda kv: min(float(e['stamp']) for e in kv[1]))


def latest_health(diagnostics: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Return per capability (``/llm: llm`` -> ``llm``) the last status seen."""
    health: Dict[str, Dict[str, Any]] = {}
    for status in diagnostics:
        name = str(status.get('name', ''))
        capability = name.split(':', 1)[1].strip() if ':' in name else name.strip('/')
        entry = health.setdefault(capability, {'node': name.split(':', 1)[0], 'level': 0,
                                               'message': '', 'not_configured': ''})
        entry['level'] = int(status.get('level', 0))
        entry['message'] = str(status.get('message', ''))
        if entry['level'] >= 2 and 'configure failed' in entry['message']:
            entry['not_configured'] = entry['message']
        elif entry['level'] == 0:
            entry['not_configured'] = ''
    return health


def why_unanswered(events: List[Dict[str, Any]], health: Dict[str, Dict[str, Any]],
                   ended: bool = True, next_turn: Optional[float] = None) -> str:
    """
    Say in one line why a turn has no audio out.

    ``next_turn``: when the user's next turn began (node clock); a newer turn supersedes
    this one, and nodes drop its pending output (barge-in).
    """
    errors = [e for e in events if e['stage'] == 'error']
    if errors:
        e = errors[0]
        where = _detail(e).get('stage') or e.get('node', '?')
        return 'error in %s: %s' % (where, e.get('error') or 'error')
    cancelled = [e for e in events if e['stage'] == 'cancelled']
    if cancelled and cancelled[0].get('speculative') is True:  # docs/latency.md
        return 'speculative turn withdrawn: %s' % (_detail(cancelled[0]).get('reason') or '?')
    if cancelled:
        by = _detail(cancelled[0]).get('by_turn')
        return 'cancelled (barge-in%s)' % (' by %s' % by if by else '')
    stages = {e['stage'] for e in events}
    reached = [stage for stage, _cap in PIPELINE if stage in stages]
    capability = 'hearing'
    for stage, cap in PIPELINE:
        if stage in stages:
            capability = cap
    if 'tts_audio' in stages or 'playback_start' in stages:
        capability = 'playback'
    info = health.get(capability)
    output = NEXT_OUTPUT[capability]
    if info is None:
        return 'no %s: no %s node in the graph (nothing on /diagnostics from it)' % (
            output, capability)
    if info.get('not_configured'):
        return 'no %s: stage not configured: %s %s' % (output, info['node'],
                                                       info['not_configured'])
    if info['level'] >= 2:
        return 'no %s: %s reports ERROR: %s' % (output, info['node'], info['message'])
    last = reached[-1] if reached else 'start'
    if next_turn is not None:
        first_stamp = min(float(e['stamp']) for e in events)
        return ('no %s after %s: superseded by the next turn, which began %.1f s after this '
                'one (an older turn\'s pending output is dropped)'
                % (output, last, next_turn - first_stamp))
    if ended:
        return 'no %s after %s (recording ended first? a longer --tail-s)' % (output, last)
    return 'no %s yet after %s' % (output, last)


def build_turn_rows(events: List[Dict[str, Any]], diagnostics: List[Dict[str, Any]]
                    ) -> List[Dict[str, Any]]:
    """One row per turn, in order of its first event."""
    health = latest_health(diagnostics)
    basic_rows = {row['turn_id']: row for row in basic.summarize_events(events)}
    rows = []
    grouped = _turns_by_id(events)
    starts = [min(float(e['stamp']) for e in mine if e['stage'] in (
        'speech_start', 'utterance', 'transcript')) if any(e['stage'] in (
            'speech_start', 'utterance', 'transcript') for e in mine) else None
        for _turn_id, mine in grouped]
    for index, (turn_id, mine) in enumerate(grouped):
        later = [s for s in starts[index + 1:] if s is not None]
        start, note = turn_start(mine)
        base = basic_rows[turn_id]
        stages = stage_latencies(mine, start)
        row = {'turn_id': turn_id, 'turn_start': start, 'transcript': base['transcript'],
               'dialect': base['dialect'], 'dialect_confidence': base['dialect_confidence'],
               'reply': base['reply'], 'tts_chunks': base['tts_chunks'],
               'tts_audio_s': base['tts_audio_s'], 'stages': stages,
               'answered': 'first_audio' in stages, 'errors': base['errors'],
               'cancelled': base['cancelled'], 'events': len(mine), 'clock_note': note,
               'first_audio_stamp': first_audio_stamp(mine)}
        row['why'] = '' if row['answered'] else why_unanswered(
            mine, health, next_turn=min(later) if later else None)
        rows.append(row)
    return rows


# ---- truth -----------------------------------------------------------------------------------
def load_truth(path: str) -> List[Dict[str, Any]]:
    """Read a truth file: a JSON list (or ``{"turns": [...]}``) of per-turn references."""
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    start_ns = None
    if isinstance(data, dict):
        start_ns = data.get('bag_start_ns')
        data = data.get('turns', [])
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise ValueError('%s: expected a list of {"transcript", "dialect"} objects' % path)
    if start_ns is not None:
        data = [dict(t, bag_start_ns=t.get('bag_start_ns', start_ns)) for t in data]
    return data


def true_end_on_clock(ref: Dict[str, Any], replay_info: Dict[str, Any],
                      audio_out: Optional[float]) -> Optional[float]:
    """
    Place a reference turn's true end of speech on the nodes' clock; None when unknown.

    Bag time ``t`` went out at ``play_started_wall_s + (t - bag_first_ns) / rate`` (wall clock);
    nodes on ``use_sim_time`` with ``--clock`` ran on bag time itself.  The one of the two that
    puts the turn's first audio out 0-120 s later is the nodes' clock.
    """
    if 'speech_end_s' not in ref or 'bag_start_ns' not in ref or audio_out is None:
        return None
    end_ns = int(ref['bag_start_ns']) + int(round(float(ref['speech_end_s']) * 1e9))
    candidates = [end_ns / 1e9]  # sim time
    if 'play_started_wall_s' in replay_info and 'bag_first_ns' in replay_info:
        wall = float(replay_info['play_started_wall_s']) + (
            end_ns - int(replay_info['bag_first_ns'])) / 1e9 / float(replay_info.get('rate', 1))
        candidates.insert(0, wall)
    for candidate in candidates:
        if 0.0 <= audio_out - candidate <= 120.0:
            return candidate
    return None


def apply_truth(rows: List[Dict[str, Any]], truth: List[Dict[str, Any]],
                replay_info: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Add ``ref_transcript``/``cer``/``ref_dialect``/``dialect_ok`` to rows; return totals."""
    by_id = {str(t['turn_id']): t for t in truth if t.get('turn_id')}
    # By order: only turns that heard something (a spurious VAD blip still counts, as it
    # would for a user: it shifts the pairing and the CER shows it).
    spoken = [r for r in rows if r['transcript'] is not None or r['stages'].get('eos_detect')
              is not None]
    ordered = iter([t for t in truth if not t.get('turn_id')])
    matched: List[Tuple[Dict[str, Any], Dict[str, Any]]] = []
    for row in (rows if by_id else spoken):
        ref = by_id.get(row['turn_id']) if by_id else next(ordered, None)
        if ref is not None:
            matched.append((row, ref))
    errors, chars, hits, labelled = 0, 0, 0, 0
    for row, ref in matched:
        end = true_end_on_clock(ref, replay_info or {}, row.get('first_audio_stamp'))
        if end is not None:
            row['stages']['first_audio_true'] = round(row['first_audio_stamp'] - end, 4)
            if row.get('turn_start') is not None:
                row['stages']['turn_start_err'] = round(row['turn_start'] - end, 4)
        if 'transcript' in ref:
            row['ref_transcript'] = ref['transcript']
            hyp = row['transcript'] or ''
            row['cer'] = round(cer(ref['transcript'], hyp), 4)
            n = len(normalize_text(ref['transcript']))
            errors += edit_distance(normalize_text(ref['transcript']), normalize_text(hyp))
            chars += n
        if ref.get('dialect'):
            row['ref_dialect'] = ref['dialect']
            row['dialect_ok'] = row['dialect'] == ref['dialect']
            labelled += 1
            hits += int(row['dialect_ok'])
    return {'truth_turns': len(truth), 'matched_turns': len(matched),
            'cer': round(errors / float(chars), 4) if chars else None,
            'dialect_accuracy': round(hits / float(labelled), 4) if labelled else None,
            'missing_turns': max(0, len(truth) - len(matched))}


# ---- the bag ---------------------------------------------------------------------------------
def read_diagnostics(path, topic: str = DIAGNOSTICS_TOPIC) -> List[Dict[str, Any]]:
    """Every DiagnosticStatus in the bag as ``{name, level, message}``, in time order."""
    from qwen_voice_ros.replay import bags
    out = []
    for msg in bags.read_messages(path, [topic]):
        try:
            array = bags.deserialize(msg)
        except Exception:  # not a DiagnosticArray: nothing to learn from it
            continue
        for status in array.status:
            level = status.level
            level = level[0] if isinstance(level, (bytes, bytearray)) else int(level)
            out.append({'name': status.name, 'level': level, 'message': status.message,
                        'stamp_ns': msg.timestamp_ns})
    return out


def read_replay_info(path) -> Dict[str, Any]:
    """Read the replay tool's notes beside the recorded bag (subscribers at start), if any."""
    info = os.path.join(str(path), REPLAY_INFO)
    if not os.path.isfile(info):
        return {}
    try:
        with open(info, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def graph_reasons(replay_info: Dict[str, Any], health: Dict[str, Dict[str, Any]],
                  n_events: int) -> List[str]:
    """Reasons that hold for the whole run (no subscriber, nodes not configured, no events)."""
    reasons = []
    for topic, count in sorted((replay_info.get('subscribers') or {}).items()):
        if not count:
            reasons.append('no subscriber on %s when the replay started: what was played '
                           'there reached no node' % topic)
    for capability, info in sorted(health.items()):
        if info.get('not_configured'):
            reasons.append('stage not configured: %s %s' % (info['node'],
                                                            info['not_configured']))
    if not n_events:
        if not health:
            reasons.append('no voice/events and no /diagnostics recorded: is the stack '
                           'running on this ROS_DOMAIN_ID?')
        else:
            reasons.append('no voice/events recorded: no stage produced a turn')
    return reasons


def summarize(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """p50/p95 (and n) per stage over the turns that have it."""
    stats: Dict[str, Any] = {}
    for stage in STAGES:
        values = [r['stages'][stage] for r in rows if stage in r['stages']]
        stats[stage] = {'n': len(values), 'p50': _round(percentile(values, 50)),
                        'p95': _round(percentile(values, 95))}
    return stats


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def build(path, truth_path: Optional[str] = None, events_topic: str = '') -> Dict[str, Any]:
    """Build the full report of one recorded bag, as a JSON-able dict."""
    from qwen_voice_ros.replay import bags
    events, malformed = basic.read_events(path, events_topic or bags.EVENTS_TOPIC)
    diagnostics = read_diagnostics(path)
    rows = build_turn_rows(events, diagnostics)
    return assemble(rows, diagnostics, read_replay_info(path), len(events), malformed,
                    load_truth(truth_path) if truth_path else None, bag=str(path))


def assemble(rows, diagnostics, replay_info, n_events, malformed, truth=None,
             bag: str = '') -> Dict[str, Any]:
    health = latest_health(diagnostics)
    totals = apply_truth(rows, truth, replay_info) if truth is not None else None
    stats = summarize(rows)
    report = {'bag': bag, 'turns': len(rows),
              'answered_turns': sum(1 for r in rows if r['answered']),
              'first_audio_p50_s': stats['first_audio']['p50'],
              'first_audio_p95_s': stats['first_audio']['p95'],
              'stages': stats, 'events': n_events, 'malformed': malformed,
              'reasons': graph_reasons(replay_info, health, n_events),
              'health': {k: {'node': v['node'], 'level': v['level'], 'message': v['message']}
                         for k, v in sorted(health.items())},
              'rows': rows}
    if totals is not None:
        report.update(totals)
        if report['missing_turns']:
            report['reasons'].append('%d of %d reference turns produced no turn here'
                                     % (report['missing_turns'], len(truth)))
    return report


# ---- output ----------------------------------------------------------------------------------
def format_report(report: Dict[str, Any], text_width: int = 22) -> str:
    fit = basic._fit
    cols = [('#', 3), ('transcript', text_width), ('dialect', 14), ('reply', text_width)]
    short = ('eos', 'asr', 'dial', 'llm', 'ttft', 'tok/s', 'tts', 'play', 'sent1', 'tts1',
             'out1', 'out1*', 'start')
    cols += [(s, 5) for s in short]
    lines = ['  '.join(fit(name, w) for name, w in cols).rstrip()]
    notes = []
    for i, row in enumerate(report['rows'], 1):
        dialect = row['dialect'] or '-'
        if 'dialect_ok' in row:
            dialect += ' ok' if row['dialect_ok'] else ' X'
        transcript = row['transcript'] or '-'
        if 'cer' in row:
            transcript = '%s (%.2f)' % (transcript, row['cer'])
        reply = row['reply'] if row['reply'] is not None else '-'
        cells = [str(i), transcript, dialect, reply]
        cells += [('%.0f' if s == 'llm_tok_per_s' else '%.2f') % row['stages'][s]
                  if s in row['stages'] else '-' for s in STAGES]
        lines.append('  '.join(fit(c, w) for c, (_, w) in zip(cells, cols)).rstrip())
        if row['why']:
            notes.append('  #%d %s not answered: %s' % (i, row['turn_id'], row['why']))
        if row['clock_note']:
            notes.append('  #%d %s clock: %s' % (i, row['turn_id'], row['clock_note']))
    lines += notes
    lines.append('')
    lines.append('%-26s %6s %8s %8s' % ('stage (s from end of speech)', 'n', 'p50', 'p95'))
    for stage in STAGES:
        s = report['stages'][stage]
        fmt = (lambda v: '-' if v is None else '%.3f' % v)
        lines.append('%-26s %6d %8s %8s' % (STAGE_TITLES[stage], s['n'], fmt(s['p50']),
                                            fmt(s['p95'])))
    lines.append('%d turns, %d answered (first audio out); %d events, %d malformed'
                 % (report['turns'], report['answered_turns'], report['events'],
                    report['malformed']))
    if report.get('cer') is not None or report.get('dialect_accuracy') is not None:
        lines.append('truth: %d reference turns, %d matched; CER %s; dialect accuracy %s'
                     % (report['truth_turns'], report['matched_turns'],
                        report['cer'], report['dialect_accuracy']))
    for reason in report['reasons']:
        lines.append('why: ' + reason)
    return '\n'.join(lines)


def plot(report: Dict[str, Any], out_path: str) -> str:
    """Write a timeline per turn and a first-audio histogram (matplotlib, no display)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = report['rows']
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(3.5, 0.45 * len(rows) + 1.5)),
                                   gridspec_kw={'width_ratios': [2.2, 1]})
    segments = (('eos_detect', 'VAD hangover', '#9e9e9e'), ('asr', 'ASR', '#42a5f5'),
                ('dialect', 'dialect', '#ab47bc'), ('first_sentence', 'LLM to 1st sentence',
                                                    '#ffa726'),
                ('first_tts_audio', 'TTS', '#66bb6a'), ('first_audio', 'to audio out',
                                                        '#ef5350'))
    used = set()
    for y, row in enumerate(rows):
        st = row['stages']
        eos = st.get('eos_detect', 0.0)  # unknown when the start was repaired: 0
        ends = {'eos_detect': st.get('eos_detect'),
                'asr': _sum(eos, st.get('asr')),
                'dialect': _sum(eos, st.get('asr'), st.get('dialect'))}
        ends.update({k: st.get(k) for k in ('first_sentence', 'first_tts_audio',
                                            'first_audio')})
        left = 0.0
        for key, label, colour in segments:
            end = ends.get(key)
            if end is None or end < left:
                continue
            ax1.barh(y, end - left, left=left, color=colour,
                     label=None if label in used else label)
            used.add(label)
            left = end
        if not row['answered']:
            ax1.text(left + 0.05, y, 'not answered', va='center', fontsize=8)
    ax1.set_yticks(range(len(rows)))
    ax1.set_yticklabels(['#%d' % (i + 1) for i in range(len(rows))])
    ax1.invert_yaxis()
    ax1.set_xlabel('seconds after end of speech')
    ax1.set_title('timeline per turn')
    if used:
        ax1.legend(fontsize=8, loc='lower right')
    values = [r['stages']['first_audio'] for r in rows if 'first_audio' in r['stages']]
    if values:
        ax2.hist(values, bins=min(20, max(5, len(values))), color='#ef5350')
        p50 = report['first_audio_p50_s']
        ax2.axvline(p50, color='k', linestyle='--', label='p50 %.2f s' % p50)
        ax2.legend(fontsize=8)
    ax2.yaxis.get_major_locator().set_params(integer=True)
    ax2.set_xlabel('first audio out, s after end of speech')
    ax2.set_ylabel('turns')
    ax2.set_title('latency histogram (%d answered of %d)' % (len(values), len(rows)))
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def _sum(*values) -> Optional[float]:
    if any(v is None for v in values):
        return None
    return float(sum(values))


def compact_json(report: Dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, separators=(',', ':'))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='qwen-voice-report',
        description='Per-turn table and per-stage p50/p95 latencies of a recorded bag.')
    parser.add_argument('bag', help='rosbag2 folder with voice/events (and /diagnostics)')
    parser.add_argument('--truth', help='truth.json: reference transcript and dialect per turn')
    parser.add_argument('--json', action='store_true',
                        help='last line: the report as one JSON object')
    parser.add_argument('--plot', metavar='OUT_PNG', help='timeline + latency histogram')
    parser.add_argument('--events-topic', default='', help='default voice/events')
    args = parser.parse_args(argv)
    try:
        report = build(args.bag, args.truth, args.events_topic)
    except (OSError, ValueError) as exc:
        print('qwen-voice-report: %s' % exc, file=sys.stderr)
        return 2
    print(format_report(report), flush=True)
    if args.plot:
        print('plot: %s' % plot(report, args.plot))
    if args.json:
        print(compact_json(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
