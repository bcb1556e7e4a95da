# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The table, the targets and the JSON of a run"""
import datetime as dt
import json
import os
import platform

TARGETS = [
    # phase, minimum rate (items/s)
    ('enrolment', 50000),
    ('root e-mails', 500),
    ('pixel hits', 300),
    ('clicks', 300),
    ('children', 1000),
    ]
# phase, maximum seconds
MAX_SECONDS = [
    ('conversions', 1.0),
    ('funnel query', 1.0),
    ]
RAW_RENDER_SHARE = 0.5
PEAK_RSS_MB = 300
SCALING = 0.8
LIMITS = ['render', 'commit', 'empty hits']
COLUMNS = [
    # header, width
    ('phase', 32), ('items', 8), ('seconds', 9), ('items/s', 10),
    ('peak RSS MB', 12), ('CPU s', 8), ('items/CPU s', 12)]


class Run:
    "What a run measured"

    def __init__(self, args, database, phases, limits, worker_rss=None):
        self.args = args
        self.database = database
        self.phases = phases
        self.limits = limits
        self.worker_rss = worker_rss
        self.out_of_process = bool(args.workers or args.crons)


def targets(run, compare=None):
    "Return (label, value, met) of the targets"
    result = []
    phases = {p.name: p for p in run.phases}
    for name, minimum in TARGETS:
        phase = phases.get(name)
        if phase and phase.rate is not None:
            result.append((
                    '%s >= %s/s' % (name, minimum),
                    '%.0f/s' % phase.rate, phase.rate >= minimum))
    for name, maximum in MAX_SECONDS:
        phase = phases.get(name)
        if phase:
            result.append((
                    '%s <= %ss' % (name, maximum),
                    '%.2fs' % phase.seconds, phase.seconds <= maximum))
    render = run.limits.get('render')
    mails = phases.get('root e-mails')
    if render and mails and render.rate:
        share = mails.rate / render.rate
        result.append((
                'root e-mails >= %d%% of raw render'
                % (RAW_RENDER_SHARE * 100),
                '%.0f%%' % (share * 100), share >= RAW_RENDER_SHARE))
    peak = max((p.rss for p in run.phases if p.rss), default=None)
    if peak:
        result.append((
                'peak RSS <= %s MB' % PEAK_RSS_MB, '%.0f MB' % peak,
                peak <= PEAK_RSS_MB))
    if compare:
        for name, _ in TARGETS:
            other = compare.get(name)
            phase = phases.get(name)
            if other and phase and phase.rate:
                ratio = phase.rate / other
                result.append((
                        '%s rate >= %d%% of the compared run'
                        % (name, SCALING * 100),
                        '%.0f%%' % (ratio * 100), ratio >= SCALING))
    return result


def phase_line(phase):
    "Return the line of the table of the phase"
    widths = [w for _, w in COLUMNS]
    return '  '.join([
            '%-*s' % (widths[0], phase.name),
            '%*d' % (widths[1], phase.items),
            '%*.2f' % (widths[2], phase.seconds),
            '%*s' % (widths[3], '%.0f' % phase.rate
                if phase.rate else '-'),
            '%*s' % (widths[4], '%.0f' % phase.rss
                if phase.rss else '-'),
            '%*s' % (widths[5], '%.2f' % phase.cpu
                if phase.cpu is not None else '-'),
            '%*s' % (widths[6], '%.0f' % (phase.items / phase.cpu)
                if phase.cpu and phase.items else '-'),
            ]) + ('  (%s)' % phase.note if phase.note else '')


def print_table(run):
    args = run.args
    print()
    print('marketing_automation benchmark: %s, N=%s, workers=%s, '
        'crons=%s, process batch=%s, enrol batch=%s' % (
            args.backend, args.n, args.workers, args.crons or 0,
            args.process_batch or 500, args.enrol_batch or 10000))
    line = '  '.join('%-*s' % (w, h) if i == 0 else '%*s' % (w, h)
        for i, (h, w) in enumerate(COLUMNS))
    print(line)
    print('-' * len(line))
    for phase in run.phases + [
            run.limits[k] for k in LIMITS if k in run.limits]:
        print(phase_line(phase))
    if run.worker_rss:
        print('peak RSS of the worker processes: %.0f MB' % run.worker_rss)
    if run.out_of_process:
        print('CPU seconds of the trytond-worker/trytond-cron processes: '
            + ', '.join('%s %.1f' % (p.name, p.other_cpu)
                for p in run.phases if p.other_cpu))


def print_targets(run, targets):
    print()
    if run.args.backend == 'sqlite' and not run.out_of_process:
        print('targets (they apply to SQLite, one process, N=100,000):')
    else:
        print('targets (for reference only: they apply to SQLite, one '
            'process, N=100,000):')
    for label, value, met in targets:
        print('  %-48s %10s  %s' % (label, value, 'met' if met
                else 'NOT MET'))


def write_json(run, targets, path):
    args = run.args
    data = {
        'backend': args.backend,
        'n': args.n,
        'workers': args.workers,
        'crons': args.crons or 0,
        'process_batch': args.process_batch or 500,
        'enrol_batch': args.enrol_batch or 10000,
        'database': run.database,
        'date': dt.datetime.now().isoformat(timespec='seconds'),
        'python': platform.python_version(),
        'cpus': os.cpu_count(),
        'smtp': ('loopback SMTP server (aiosmtpd)'
            if run.out_of_process else
            'in-process (trytond.sendmail.get_smtp_server patched)'),
        'phases': [p.to_dict() for p in run.phases],
        'limits': {k: v.to_dict() for k, v in run.limits.items()},
        'worker_peak_rss_mb': run.worker_rss,
        'targets': [
            {'target': label, 'value': value, 'met': met}
            for label, value, met in targets],
        'counts_checked': True,
        }
    with open(path, 'w') as fp:
        json.dump(data, fp, indent=2)
        fp.write('\n')


def report(run):
    "Print the table and the targets, write the JSON; tell if all are met"
    print_table(run)
    compare = None
    if run.args.compare:
        with open(run.args.compare) as fp:
            other = json.load(fp)
        compare = {p['phase']: p['rate'] for p in other['phases']}
    results = targets(run, compare)
    print_targets(run, results)
    if run.args.json:
        write_json(run, results, run.args.json)
    return all(met for _, _, met in results)
