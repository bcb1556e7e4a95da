#!/usr/bin/env python3
# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Compare the root e-mails of the workers with SQLite in rounds

A shared virtual machine changes speed by a quarter from one minute to the
next, more than the ratios of the worker targets leave.  Each round runs
the root e-mails of SQLite in one process, then of one and of two
trytond-worker processes on PostgreSQL (``run.py --stop-after e-mails``),
one right after the other, and divides the rates of neighbours; the
targets are judged on the median of the rounds.  The raw render of each
run (without database) is printed beside its rate: how fast the machine
was at that moment."""
import argparse
import json
import os
import statistics
import subprocess
import sys

from database import BENCH_DIR
from report import ONE_WORKER_SHARE, TWO_WORKERS_SPEED_UP

DEFAULT_RESULTS = os.path.join(BENCH_DIR, 'results')
RUN = os.path.join(BENCH_DIR, 'run.py')
# name, run.py arguments
CONFIGURATIONS = [
    ('sqlite', ['--backend', 'sqlite']),
    ('1 worker', ['--backend', 'postgresql', '--workers', '1']),
    ('2 workers', ['--backend', 'postgresql', '--workers', '2']),
    ]
# ratio, numerator, denominator, target
RATIOS = [
    ('1 worker / sqlite', '1 worker', 'sqlite', ONE_WORKER_SHARE),
    ('2 workers / 1 worker', '2 workers', '1 worker', TWO_WORKERS_SPEED_UP),
    ]


def figures(result):
    "Return the rate of the root e-mails and of the raw render of a run"
    phase, = (p for p in result['phases'] if p['phase'] == 'root e-mails')
    return {
        'rate': phase['rate'],
        'render': result['limits']['render']['rate'],
        }


def summarize(rounds):
    """Return per ratio its values per round, their median, the target and
    whether the median meets it"""
    summary = []
    for name, numerator, denominator, target in RATIOS:
        values = [r[numerator]['rate'] / r[denominator]['rate']
            for r in rounds]
        median = statistics.median(values)
        summary.append({
                'ratio': name, 'values': values, 'median': median,
                'target': target, 'met': median >= target,
                })
    return summary


def run_round(args, number):
    "Run each configuration once; return their figures by name"
    round_ = {}
    for name, options in CONFIGURATIONS:
        path = os.path.join(args.results,
            'series-%s-%s.json' % (number, name.replace(' ', '')))
        subprocess.run([sys.executable, RUN, '-n', str(args.n),
                '--stop-after', 'e-mails', '--drop', '-q', '--json', path]
            + options, check=True, stdout=subprocess.DEVNULL)
        with open(path) as file:
            round_[name] = figures(json.load(file))
        print("round %s, %-10s %7.0f/s (raw render %6.0f/s)" % (
                number, name, round_[name]['rate'], round_[name]['render']),
            flush=True)
    return round_


def report(summary):
    print("\ncores: %s" % os.cpu_count())
    print("%-22s %-28s %8s  %s" % ('ratio', 'per round', 'median', 'target'))
    for row in summary:
        print("%-22s %-28s %8.2f  >= %.2f %s" % (
                row['ratio'], ' '.join('%.2f' % v for v in row['values']),
                row['median'], row['target'],
                'met' if row['met'] else 'NOT MET'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=10000,
        help="the number of parties of each run (default 10,000)")
    parser.add_argument('--rounds', type=int, default=3,
        help="the rounds (default 3)")
    parser.add_argument('--results', default=DEFAULT_RESULTS, metavar='DIR',
        help="the directory of the JSON of each run (default: bench/results)")
    parser.add_argument('--json', metavar='FILE',
        help="write the rounds and the summary to FILE")
    args = parser.parse_args(argv)
    os.makedirs(args.results, exist_ok=True)
    rounds = [run_round(args, i + 1) for i in range(args.rounds)]
    summary = summarize(rounds)
    report(summary)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump({'n': args.n, 'cpus': os.cpu_count(),
                    'rounds': rounds, 'summary': summary}, file, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
