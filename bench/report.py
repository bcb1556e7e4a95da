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
# A trigger reads every record of the domains: the cost of the second
# enrolment is per record enrolled
PER_RECORD_ENROLLED = {'second enrolment'}
# CPU seconds below which the figures of /proc are noise
CPU_RESOLUTION = 0.05
PEAK_RSS_MB = 300
SCALING = 0.8
# With --server, the hits over HTTP as a share of their floor measured the
# same way (the requests of their route with unknown tokens)
FLOOR_SHARE = 0.8
FLOOR_PHASES = ['pixel hits', 'clicks']
# The floor of the other phases over HTTP
DEFAULT_FLOOR = 'pixel hits'
LIMITS = ['render', 'commit', 'empty hits', 'floor of the pixel hits',
    'floor of the clicks']
COLUMNS = [
    # header, width
    ('phase', 32), ('items', 8), ('seconds', 9), ('items/s', 10),
    ('peak RSS MB', 12), ('CPU s', 8), ('items/CPU s', 12),
    ('DB CPU s', 9)]


class Run:
    "What a run measured"

    def __init__(self, args, database, phases, limits, worker_rss=None,
            seq_scans=None):
        self.args = args
        self.database = database
        self.phases = phases
        self.limits = limits
        self.worker_rss = worker_rss
        # The (statement, tables) of --explain scanning a big table
        self.seq_scans = seq_scans
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
    for name in FLOOR_PHASES:
        phase, floor = phases.get(name), floor_of(run, name)
        if phase and phase.rate and floor and floor.rate:
            share = phase.rate / floor.rate
            result.append((
                    '%s >= %d%% of their floor' % (name, FLOOR_SHARE * 100),
                    '%.0f%%' % (share * 100), share >= FLOOR_SHARE))
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
    if run.seq_scans is not None:
        result.append((
                'no sequential scan of a big table (EXPLAIN)',
                '%d' % len(run.seq_scans), not run.seq_scans))
    if compare and getattr(run.args, 'waiting', None):
        result.extend(waiting_targets(run, compare))
    elif compare and run.args.workers and (
            compare.get('workers') != run.args.workers):
        result.extend(workers_targets(run, compare))
    elif compare:
        compare = {p['phase']: p['rate'] for p in compare['phases']}
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


# Root e-mails with one trytond-worker (PostgreSQL) against one process
# (SQLite), then two workers against one
ONE_WORKER_SHARE = 0.7
TWO_WORKERS_SPEED_UP = 1.7
# The CPU of the processes of a run: (label, key of the JSON)
CPU_KINDS = [
    ('bench', 'cpu_seconds'),
    ('workers/crons', 'workers_cpu_seconds'),
    ('SMTP sink', 'sink_cpu_seconds'),
    ('PostgreSQL', 'database_cpu_seconds'),
    ]


def workers_targets(run, compare):
    """Root e-mails of --workers 1 against one process, of --workers 2
    against --workers 1 (the JSON of the compared run)"""
    phase = {p.name: p for p in run.phases}.get('root e-mails')
    other = {p['phase']: p for p in compare['phases']}.get('root e-mails')
    if not phase or not phase.rate or not other or not other['rate']:
        return []
    ratio = phase.rate / other['rate']
    if not compare.get('workers'):
        return [(
                'root e-mails >= %d%% of %s, one process' % (
                    ONE_WORKER_SHARE * 100, compare['backend']),
                '%.0f%%' % (ratio * 100), ratio >= ONE_WORKER_SHARE)]
    return [(
            'root e-mails >= %.1fx %s worker(s) (%s cores)' % (
                TWO_WORKERS_SPEED_UP, compare['workers'], os.cpu_count()),
            '%.2fx' % ratio, ratio >= TWO_WORKERS_SPEED_UP)]


def print_cpu_by_process(run):
    """Print where the time of the phases goes: CPU seconds per 1,000 items
    of each kind of process, of the other processes of the machine, and
    the idle time of its cores"""
    phases = [p.to_dict() for p in run.phases
        if p.items and p.machine_cpu and p.seconds >= 1]
    if not phases:
        return
    print()
    print('where the time goes: seconds per 1,000 items (%s cores: the wall '
        'clock offers %s CPU seconds per second)' % (
            os.cpu_count(), os.cpu_count()))
    labels = ['wall clock'] + [k for k, _ in CPU_KINDS] + [
        'other processes', 'idle']
    print('  %-16s' % 'phase' + ''.join('%16s' % l for l in labels))
    for phase in phases:
        per = 1000 / phase['items']
        ours = [phase.get(k) for _, k in CPU_KINDS]
        other = phase['machine_busy_cpu_seconds'] - sum(c or 0 for c in ours)
        values = [phase['seconds']] + ours + [
            max(other, 0), phase['machine_idle_cpu_seconds']]
        print('  %-16s' % phase['phase'][:16] + ''.join(
                '%16s' % ('%.3f' % (v * per) if v is not None else '-')
                for v in values))


def cost(phase):
    """Return the CPU seconds of a phase (dictionary of the JSON): this
    process, the trytond-worker/cron processes and the database server"""
    return sum(phase.get(k) or 0 for k in [
            'cpu_seconds', 'workers_cpu_seconds', 'database_cpu_seconds'])


def cost_items(phase, phases):
    """Return the CPU seconds of the phase, never below the resolution of
    the clocks, and the items they are divided by"""
    items = phase['items'] or 1
    if phase['phase'] in PER_RECORD_ENROLLED:
        items = phases['enrolment']['items']
    return max(cost(phase), CPU_RESOLUTION), items


def waiting_comparison(run, compare):
    """Return per phase (name, wall clock ratio, CPU ratio) of the rates
    of this run to those of the compared run: above 1 when faster

    The phases without items compare their seconds."""
    these = {p.name: p.to_dict() for p in run.phases}
    others = {p['phase']: p for p in compare['phases']}
    result = []
    for name, phase in these.items():
        other = others.get(name)
        if not other:
            continue
        wall = ((phase['items'] or 1) / max(phase['seconds'], 1e-3)) / (
            (other['items'] or 1) / max(other['seconds'], 1e-3))
        mine, my_items = cost_items(phase, these)
        theirs, their_items = cost_items(other, others)
        result.append((name, wall, (my_items / mine) / (their_items / theirs)))
    return result


def waiting_targets(run, compare):
    "The steps' costs and the memory do not grow with the waiting rows"
    result = []
    for name, wall, cpu in waiting_comparison(run, compare):
        result.append((
                '%s CPU rate >= %d%% of W=%s' % (
                    name, SCALING * 100, compare.get('waiting') or 0),
                '%.0f%%' % (cpu * 100), cpu >= SCALING))
    peak = max((p.rss for p in run.phases if p.rss), default=None)
    other = max((p['peak_rss_mb'] for p in compare['phases']
            if p['peak_rss_mb']), default=None)
    if peak and other:
        result.append((
                'peak RSS <= %d%% of W=%s' % (
                    100 / SCALING, compare.get('waiting') or 0),
                '%.0f%%' % (peak / other * 100), peak * SCALING <= other))
    if run.worker_rss and compare.get('worker_peak_rss_mb'):
        ratio = run.worker_rss / compare['worker_peak_rss_mb']
        result.append((
                'workers peak RSS <= %d%% of W=%s' % (
                    100 / SCALING, compare.get('waiting') or 0),
                '%.0f%%' % (ratio * 100), ratio * SCALING <= 1))
    return result


def print_comparison(run, compare):
    "Print per phase the ratios of the rates to those of the compared run"
    print()
    print('compared with %s (N=%s, W=%s): rate of this run / rate of that '
        'one' % (compare.get('database'), compare.get('n'),
            compare.get('waiting') or 0))
    print('  %-32s %12s %12s' % ('phase', 'wall clock', 'CPU'))
    for name, wall, cpu in waiting_comparison(run, compare):
        print('  %-32s %11.0f%% %11.0f%%' % (name, wall * 100, cpu * 100))


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
            '%*s' % (widths[7], '%.2f' % phase.database_cpu
                if getattr(phase, 'database_cpu', None) is not None
                else '-'),
            ]) + ('  (%s)' % phase.note if phase.note else '')


def floor_of(run, name, own=True):
    """Return the floor phase over HTTP of the hit phase named name: that
    of its route if own, else that of the pixel hits"""
    if not getattr(run.args, 'server', 0):
        return None
    floor = run.limits.get('floor of the %s' % name) if own else None
    return floor or run.limits.get('floor of the %s' % DEFAULT_FLOOR)


def floor_cpu_shares(run, own=True):
    """Return (phase, share) of the hits over HTTP: the CPU seconds of the
    server and database processes per request of the floor divided by
    those per hit; steadier than the rates on a shared machine"""
    def cost(phase):
        return ((phase.cpu or 0) + (phase.database_cpu or 0)) / phase.items
    shares = []
    for phase in run.phases:
        if phase.name not in {'pixel hits', 'clicks', 'unsubscribes'}:
            continue
        floor = floor_of(run, phase.name, own)
        if floor and floor.items and cost(floor) and phase.items and cost(
                phase):
            shares.append((phase.name, cost(floor) / cost(phase)))
    return shares


def print_floor_cpu_shares(run):
    "Print the CPU shares and the clicks as a share of the pixels' floor"
    shares = floor_cpu_shares(run)
    if shares:
        print('CPU of the server and database per request of their floor / '
            'per hit: ' + ', '.join(
                '%s %.0f%%' % (name, share * 100) for name, share in shares))
    phases = {p.name: p for p in run.phases}
    clicks, floor = phases.get('clicks'), floor_of(run, 'clicks', own=False)
    if clicks and clicks.rate and floor and floor.rate:
        shares = dict(floor_cpu_shares(run, own=False))
        print('clicks as a share of the floor of the pixel hits: rate '
            '%.0f%%, CPU per request %.0f%%' % (
                clicks.rate / floor.rate * 100,
                shares.get('clicks', 0) * 100))


def print_table(run):
    args = run.args
    print()
    print('marketing_automation benchmark: %s, N=%s, W=%s, workers=%s, '
        'crons=%s, process batch=%s, enrol batch=%s' % (
            args.backend, args.n, getattr(args, 'waiting', None) or 0,
            args.workers, args.crons or 0,
            args.process_batch or 500, args.enrol_batch or 10000))
    if args.workers or args.crons:
        print('hand-off to the SMTP server: %s' % (
                'before the next batch'
                if getattr(args, 'foreground_handoff', False)
                else 'in the background, during the next batch'))
    if getattr(args, 'server', 0):
        print('hits over HTTP: trytond.application:app in %s gunicorn '
            'worker processes, %s concurrent clients; the CPU of the hit '
            'phases is that of the server processes' % (
                args.server, args.clients))
    line = '  '.join('%-*s' % (w, h) if i == 0 else '%*s' % (w, h)
        for i, (h, w) in enumerate(COLUMNS))
    print(line)
    print('-' * len(line))
    for phase in run.phases + [
            run.limits[k] for k in LIMITS if k in run.limits]:
        print(phase_line(phase))
    if getattr(args, 'server', 0):
        print_floor_cpu_shares(run)
    if run.worker_rss:
        print('peak RSS of the worker processes: %.0f MB' % run.worker_rss)
    if run.out_of_process:
        print('CPU seconds of the trytond-worker/trytond-cron processes: '
            + ', '.join('%s %.1f' % (p.name, p.other_cpu)
                for p in run.phases if p.other_cpu))
        print_cpu_by_process(run)


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
        'waiting': getattr(args, 'waiting', None),
        'workers': args.workers,
        'crons': args.crons or 0,
        'foreground_handoff': getattr(args, 'foreground_handoff', False),
        'server': getattr(args, 'server', 0),
        'clients': getattr(args, 'clients', None),
        'floor_cpu_shares': {
            name: round(share, 3) for name, share in floor_cpu_shares(run)},
        'pixel_floor_cpu_shares': {
            name: round(share, 3)
            for name, share in floor_cpu_shares(run, own=False)},
        'process_batch': args.process_batch or 500,
        'enrol_batch': args.enrol_batch or 10000,
        'database': run.database,
        'date': dt.datetime.now().isoformat(timespec='seconds'),
        'python': platform.python_version(),
        'cpus': os.cpu_count(),
        'smtp': ('loopback SMTP server (bench/sink.py, its own process)'
            if run.out_of_process else
            'in-process (trytond.sendmail.get_smtp_server patched)'),
        'phases': [p.to_dict() for p in run.phases],
        'limits': {k: v.to_dict() for k, v in run.limits.items()},
        'worker_peak_rss_mb': run.worker_rss,
        'sequential_scans': [
            {'statement': statement, 'tables': tables}
            for statement, tables in run.seq_scans or []],
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
            compare = json.load(fp)
        if getattr(run.args, 'waiting', None):
            print_comparison(run, compare)
    if run.seq_scans:
        print()
        print('sequential scans of big tables (see %s):' % run.args.explain)
        for statement, tables in run.seq_scans:
            print('  %s: %s' % (', '.join(tables), statement[:300]))
    results = targets(run, compare)
    print_targets(run, results)
    if run.args.json:
        write_json(run, results, run.args.json)
    return all(met for _, _, met in results)
