#!/usr/bin/env python3
"""
Full fuzz run of issue 8: every subscription of every node, and the event decoder.

Runs ``test/test_fuzz_subscriptions.py`` and ``test/test_events_validation.py`` under
pytest with ``QWEN_VOICE_FUZZ=full`` (CI runs a tenth of the cases) and sums what the tests
report: messages delivered per node and topic, callbacks that raised, bad events counted,
and whether the next real turn was answered end to end afterwards.

    python bench/fuzz_subscriptions.py [--json] [--ci]

The last line with ``--json`` is one JSON object: cases, messages_by_node, escaped (always
0 when the tests pass), callback_errors, bad_events, next_turn_answered, passed, seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ['test/test_events_validation.py', 'test/test_fuzz_subscriptions.py']


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--json', action='store_true', help='print a JSON summary last')
    parser.add_argument('--ci', action='store_true', help='the CI profile (a tenth)')
    args = parser.parse_args(argv)
    fd, report = tempfile.mkstemp(prefix='fuzz-', suffix='.jsonl')
    os.close(fd)
    env = dict(os.environ, QWEN_VOICE_FUZZ='ci' if args.ci else 'full',
               QWEN_VOICE_FUZZ_REPORT=report)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           '-o', 'log_cli=false'] + TESTS, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - start
    rows = []
    with open(report, encoding='utf-8') as f:
        rows = [json.loads(line) for line in f if line.strip()]
    os.unlink(report)
    log_path = report[:-len('.jsonl')] + '.log'
    with open(log_path, 'w', encoding='utf-8') as f:
        f.write(proc.stdout)
    lines = [line for line in proc.stdout.splitlines()
             if not line.startswith(('[ERROR]', '[INFO]', '[WARN', '[DEBUG]'))]
    print('\n'.join([line[:2000] for line in lines if line.startswith('E ')][:20]
                    + lines[-6:]))
    print('pytest log: %s' % log_path)
    by_node = {row['node']: row['messages'] for row in rows}
    summary = {
        'profile': 'ci' if args.ci else 'full',
        'cases': sum(by_node.values()),
        'messages_by_node': by_node,
        'by_topic': {row['node']: row.get('by_topic', {}) for row in rows if 'by_topic' in row},
        'callback_errors': sum(row['counters'].get('callback_errors', 0) for row in rows),
        'bad_events': sum(row['counters'].get('bad_events', 0) for row in rows),
        'bad_input': sum(row['counters'].get('bad_input', 0) for row in rows),
        'escaped': 0 if proc.returncode == 0 else None,
        'next_turn_answered': 'test_next_turn_answered_after_fuzz FAILED' not in proc.stdout
        and proc.returncode == 0,
        'passed': proc.returncode == 0,
        'exit_code': proc.returncode,
        'seconds': round(seconds, 1),
    }
    for row in rows:
        if 'seconds' in row:
            print('%-10s %6d messages in %5.1f s  %s'
                  % (row['node'], row['messages'], row['seconds'], row['counters']))
    print('cases: %d (%s profile), passed: %s, %.0f s' % (summary['cases'], summary['profile'],
                                                          summary['passed'], seconds))
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0 if proc.returncode == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
