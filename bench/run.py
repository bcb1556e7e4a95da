#!/usr/bin/env python3
# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Benchmark of the marketing automation engine.

It builds a database of N parties (with an e-mail address) and N/10 sales,
a running scenario on the parties with a root e-mail activity and
"opened", "clicked" and "not clicked" children, and a scenario on the sales
whose root waits a month. Then it times each phase separately:

1. enrolment (``Scenario.trigger``),
2. sending the root e-mails (``RecordActivity.process``),
3. N/2 pixel hits, N/4 clicks and N/20 one-click unsubscribes, each one a
   real request through trytond's WSGI application (one transaction),
4. the children, after the negative ones were made due,
5. a second enrolment and a second execution, which must find nothing,
6. with N/10 sales confirmed after the e-mails, the computation of the
   conversions, a second one which must find nothing new, and the query of
   the funnel.

``--conversions-only`` skips the phases 2 to 5: the root e-mails are
marked sent, opened and clicked in SQL as the workload says, to time the
phase 6 at large N in a minute.

It checks the outcome after every phase, record by record (nobody enrolled
twice, no e-mail sent twice, blocked records get nothing, each event
reached exactly the expected records) and exits with status 1 on the first
mismatch. In the same run, it measures three practical limits without the
engine: rendering the template and building the MIME message without
database, committing one-row updates on the same database and requests
that find nothing to do.

``--server K`` drives the phase 3 over real HTTP instead: trytond runs as
in production, ``trytond.application:app`` in K gunicorn worker processes,
and ``--clients C`` concurrent clients (load.py, a process of its own)
make the requests. In the same run and the same way, the floor of the
pixel hits is as many pixel hits of unknown tokens, and that of the clicks
as many genuinely signed clicks of unknown tokens; the report gives the
rate of each hit phase as a share of its floor, and of the clicks as a
share of the pixels' floor too.

On PostgreSQL, ``--workers K`` runs the phases 2 and 4 on K real
``trytond-worker`` processes (``[queue] worker = True``) and ``--crons 2``
runs the phases 1, 2 and 4 from two ``trytond-cron`` processes at once.

This file holds the command line and the sequence of the phases; the
other modules of this directory hold the database (database.py), the
workload (workload.py), the checks (checks.py), the requests (hits.py),
the SMTP sinks (mail.py), the trytond processes (processes.py), the
measures (measure.py, limits.py) and the report (report.py). See
doc/benchmark.rst.
"""
import argparse
import contextlib
import os
import re
import sys
import time

import hits
import limits
import workload
from checks import Checker, Mismatch
from database import BENCH_DIR, BenchDatabase, choose_database
from explain import StatementRecorder, write_plans
from mail import InProcessSMTP, MessageCounter, SinkProcess, free_port
from measure import (
    ServerCPU, Stopwatch, machine_cpu, merge, print_profile, processes_cpu)
from processes import TrytonProcesses
from report import Run, report
from server import TrytonServer

DEFAULT_RESULTS = os.path.join(BENCH_DIR, 'results')
# The hits over HTTP are timed in slices, each after a slice of its floor
HIT_SLICES = 4


class Bench:
    "The phases of a run, in their order"

    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.db = BenchDatabase(args, self.log)
        self.phases = []
        self.limits = {}
        self.counter = MessageCounter()
        self.processes = TrytonProcesses(self.db)
        self.server = None
        self.sink = None
        self.in_process_smtp = None
        self.out_of_process = bool(args.workers or args.crons)
        self.ids = {}
        self.checks = None
        self.worker_rss = None
        self.recorder = StatementRecorder() if args.explain else None
        self.seq_scans = None
        self.started = time.monotonic()

    def log(self, message, *args):
        if not self.args.quiet:
            print('[%7.1fs] %s' % (
                    time.monotonic() - self.started, message % args),
                file=sys.stderr, flush=True)

    # Set-up

    def configure(self):
        "Configure trytond and start the SMTP sink the e-mails go to"
        if self.out_of_process:
            # In a process of its own, measured apart
            self.sink = SinkProcess(free_port(), self.db.results).start()
            self.counter = self.sink
            self.db.configure(self.sink.uri)
        else:
            self.db.configure('smtp://in-process.invalid:25')
            self.in_process_smtp = InProcessSMTP(
                self.counter, duplicate=self.args.fault == 'duplicate-email')

    def set_up(self):
        self.configure()
        self.db.create()
        self.db.init_pool()
        self.ids = workload.setup_models(
            self.db, waiting=self.args.waiting is not None)
        workload.populate(self.db, self.n, self.ids)
        if self.args.waiting is not None:
            workload.populate_waiting(self.db, self.args.waiting)
            self.db.analyze()
        self.checks = Checker(
            self.db, self.ids, self.counter, self.n, self.args.waiting)
        if self.in_process_smtp:
            self.in_process_smtp.install()
        if self.recorder:
            self.recorder.install()
        if self.args.workers:
            self.processes.start_workers(self.args.workers)
            self.log("%s trytond-worker processes ready", self.args.workers)

    # Measures

    def timed(self, name, items, func, note=''):
        "Run func as the phase name and record its figures"
        profile = None
        if self.args.profile and self.args.profile in name:
            import cProfile
            profile = cProfile.Profile()
        self.log("%s: %s items", name, items)
        other_cpu = self.processes.cpu()
        sink_cpu = self.sink_cpu()
        machine = machine_cpu()
        server_cpu = ServerCPU(self.db.backend_pids)
        recording = (self.recorder.record(name) if self.recorder
            else contextlib.nullcontext())
        with server_cpu, recording, Stopwatch() as watch:
            if profile:
                profile.enable()
            func()
            if profile:
                profile.disable()
        other_cpu = self.processes.cpu() - other_cpu
        sink_cpu = self.sink_cpu() - sink_cpu
        if machine:
            machine = tuple(e - s for s, e in zip(machine, machine_cpu()))
        phase = watch.phase(name, items, note=note,
            other_cpu=other_cpu if self.out_of_process else None,
            database_cpu=server_cpu.seconds
            if self.db.backend == 'postgresql' else None,
            sink_cpu=sink_cpu if self.sink else None,
            machine_cpu=machine)
        self.phases.append(phase)
        self.log("%s: %.2fs, %.0f/s", name, phase.seconds, phase.rate or 0)
        if profile:
            self.dump_profile(profile, name)
        return phase

    def sink_cpu(self):
        "Return the CPU seconds used so far by the SMTP sink's process"
        return processes_cpu(self.sink.pids()) if self.sink else 0

    def dump_profile(self, profile, name):
        path = os.path.join(self.db.results, '%s-%s.prof' % (
                self.db.name, re.sub(r'\W+', '_', name)))
        profile.dump_stats(path)
        print_profile(profile)
        self.log("profile written to %s", path)

    def limit(self, key, phase):
        "Record the phase as the limit key"
        self.limits[key] = phase
        self.log("%s: %.0f/s", phase.name, phase.rate)

    # The engine, as the crons run it

    def in_transaction(self, func):
        "Call func in a transaction as the cron does, then the queued tasks"
        from trytond.transaction import Transaction
        from trytond.worker import run_task
        with Transaction().start(
                self.db.name, 0, context={'_skip_warnings': True}
                ) as transaction:
            func()
        while transaction.tasks:
            run_task(self.db.pool, transaction.tasks.pop())

    def trigger(self):
        if self.args.crons:
            self.processes.run_crons(
                self.ids['trigger_crons'][:self.args.crons])
        else:
            Scenario = self.db.pool.get('marketing.automation.scenario')
            self.in_transaction(Scenario.trigger)

    def process(self):
        if self.args.crons:
            self.processes.run_crons(
                self.ids['process_crons'][:self.args.crons])
        else:
            RecordActivity = self.db.pool.get(
                'marketing.automation.record.activity')
            self.in_transaction(RecordActivity.process)
        if self.args.workers:
            self.processes.wait_queue()

    def wait_messages(self, total, timeout=60, settle=0.2):
        "Wait for the messages sent after the commits of other processes"
        if not self.out_of_process:
            return
        deadline = time.monotonic() + timeout
        while self.counter.total < total and time.monotonic() < deadline:
            time.sleep(0.01)
        # Late duplicates would arrive now
        time.sleep(settle)

    def send_roots(self):
        "Process the root e-mails until the SMTP server has them all"
        self.process()
        # Handed in the background, the last batch is still being sent
        self.wait_messages(self.n, settle=0)

    # Phases

    def run(self):
        self.started = time.monotonic()
        self.set_up()
        expect = workload.expectations(self.n)
        checks = self.checks
        if not self.args.conversions_only:
            self.limit('render', limits.raw_render(self.db, self.n))

        self.timed('enrolment', self.n + len(expect.sales)
            + (self.args.waiting or 0), self.trigger)
        checks.check_enrolment(expect)
        checks.check_waiting()
        if self.args.waiting is not None:
            # As autovacuum does within a minute of the enrolment
            self.db.analyze()
        if self.args.stop_after == 'enrolment':
            return
        if self.args.conversions_only:
            workload.events_in_sql(self.db, self.ids)
            self.run_conversions(expect)
            self.log("conversion counts checked")
            return

        self.timed('root e-mails', self.n, self.send_roots)
        self.wait_messages(self.n)
        checks.check_root_sent(expect)
        checks.check_sent(expect.everyone, self.n)
        checks.check_waiting()
        if self.args.waiting is not None:
            # As autovacuum does after the e-mails changed that many rows
            self.db.analyze()
        if self.args.stop_after == 'e-mails':
            return

        self.limit('commit', limits.raw_commits(self.db, self.ids))
        if self.args.server:
            self.run_server_hits(expect)
        else:
            self.limit('empty hits', limits.empty_hits(self.db, self.n))
            self.run_hits(expect)

        workload.make_negative_due(self.db, self.ids)
        n_children = (len(expect.opened_child_done)
            + len(expect.clicked_child_done) + len(expect.not_clicked_done))
        self.timed('children', n_children, self.process)
        checks.check_children(expect)
        checks.check_sent(expect.everyone, self.n)

        self.timed('second enrolment', 0, self.trigger,
            note='must find nobody')
        checks.check_enrolment(expect, first=False)
        self.timed('second execution', 0, self.process,
            note='must find nothing due')
        self.wait_messages(self.n)
        checks.check_children(expect)
        checks.check_sent(expect.everyone, self.n)
        checks.check_waiting()
        self.run_conversions(expect)
        checks.check_waiting()
        self.log("all counts checked")
        self.worker_rss = self.processes.peak_rss()
        if self.recorder:
            self.explain()

    def explain(self):
        "EXPLAIN the statements of the phases and write their plans"
        self.recorder.uninstall()
        plans, rows = self.recorder.explain(self.db)
        self.seq_scans = write_plans(plans, rows, self.args.explain,
            'Plans of the statements of the phases: %s, N=%s, W=%s' % (
                self.db.name, self.n, self.args.waiting or 0))
        self.log("%s plans written to %s, %s with a sequential scan of a "
            "big table", len(plans), self.args.explain, len(self.seq_scans))

    def hit_paths(self, expect):
        "Return the paths of the pixel hits, the clicks and the unsubscribes"
        paths = hits.recipient_paths(self.db, self.ids, expect)
        pixels = [paths[i][0] for i in sorted(expect.pixel)]
        if self.args.fault == 'lost-hit':
            # Fault injected to prove that the checks catch it
            pixels.pop()
        clicks = [paths[i][1] for i in sorted(expect.click)]
        unsubscribes = [paths[i][2] for i in sorted(expect.blocked)]
        return pixels, clicks, unsubscribes

    def run_hits(self, expect):
        "Time the pixel hits, the clicks and the unsubscribes"
        checks = self.checks
        pixels, clicks, unsubscribes = self.hit_paths(expect)

        self.timed('pixel hits', len(pixels),
            lambda: hits.hit_pixels(pixels))
        checks.check_pixel_hits(expect)
        self.timed('clicks', len(clicks), lambda: hits.hit_clicks(clicks))
        checks.check_clicks(expect)
        self.timed('unsubscribes', len(unsubscribes),
            lambda: hits.hit_unsubscribes(unsubscribes))
        checks.check_unsubscribes(expect)

        # Repeated events change nothing more
        before = checks.events_snapshot()
        repeat = max(len(pixels) // 100, 5)
        hits.hit_pixels(pixels[:repeat])
        hits.hit_clicks(clicks[:repeat])
        hits.hit_unsubscribes(unsubscribes[:repeat])
        checks.check_events_unchanged(before)

    def start_server(self):
        self.server = TrytonServer(self.db, self.args.server, free_port())
        self.server.start()
        self.log("trytond served by %s gunicorn workers on port %s",
            self.args.server, self.server.port)

    def run_server_hits(self, expect):
        """Time the floor, the pixel hits, the clicks and the unsubscribes
        over HTTP from concurrent clients"""
        checks = self.checks
        clients = self.args.clients
        pixels, clicks, unsubscribes = self.hit_paths(expect)
        self.start_server()
        # Not timed: the first requests of each worker process load and
        # cache what the next ones reuse
        for name, paths in [('pixel hits', pixels), ('clicks', clicks)]:
            limits.server_floor(self.db, self.server, name,
                min(len(paths), 20 * clients), clients)

        def phase(name, kind, paths):
            self.log("%s: %s items over HTTP", name, len(paths))
            phase = hits.load_phase(
                self.server, self.db, name, kind, paths, clients)
            self.log("%s: %.2fs, %.0f/s", name, phase.seconds, phase.rate)
            return phase

        def interleaved(name, kind, paths):
            """Time the hits in slices, each right after the floor of as
            many requests: the speed of a shared machine drifts by more
            than the targets leave within a minute"""
            floors, loads = [], []
            slices = min(HIT_SLICES, len(paths))
            for start in range(slices):
                some = paths[start::slices]
                floors.append(limits.server_floor(
                        self.db, self.server, name, len(some), clients))
                loads.append(phase(name, kind, some))
            self.log("%s: per slice %s of its floor", name, ', '.join(
                    '%.0f%%' % (h.rate / f.rate * 100)
                    for h, f in zip(loads, floors)))
            self.phases.append(merge(name, loads,
                    note='%s clients, %s slices' % (clients, slices)))
            self.limit('floor of the %s' % name, merge(floors[0].name,
                    floors, note='no event, %s clients, a slice before '
                    'each slice of the hits' % clients))

        interleaved('pixel hits', 'pixel', pixels)
        checks.check_pixel_hits(expect)
        interleaved('clicks', 'click', clicks)
        checks.check_clicks(expect)
        self.phases.append(phase('unsubscribes', 'unsubscribe', unsubscribes))
        checks.check_unsubscribes(expect)

        before = checks.events_snapshot()
        repeat = max(len(pixels) // 100, 5)
        for kind, some in [('pixel', pixels), ('click', clicks),
                ('unsubscribe', unsubscribes)]:
            hits.check_load('repeated %s' % kind, hits.load(
                    self.server, kind, some[:repeat], clients))
        checks.check_events_unchanged(before)
        self.server.stop()

    def run_conversions(self, expect):
        "Time the conversions of the sales confirmed after the e-mails"
        Conversion = self.db.pool.get('marketing.automation.conversion')
        workload.confirm_sales(self.db, self.n, self.ids)
        self.timed('conversions', len(expect.confirmed_sales),
            lambda: self.in_transaction(Conversion.compute))
        self.checks.check_conversions(expect)
        self.timed('second conversions', 0,
            lambda: self.in_transaction(Conversion.compute),
            note='must find nothing new')
        self.checks.check_conversions(expect)
        funnel = []
        self.timed('funnel query', 1, lambda: funnel.extend(self.funnel()))
        self.checks.check_funnel(funnel, expect)

    def funnel(self):
        "Read the funnel of this month as the client's list does"
        import datetime as dt

        from trytond.transaction import Transaction
        Funnel = self.db.pool.get('marketing.automation.reporting.funnel')
        today = dt.date.today()
        context = {
            'from_date': today - dt.timedelta(days=1),
            'to_date': today + dt.timedelta(days=1),
            'period': 'month',
            }
        with Transaction().start(
                self.db.name, 0, readonly=True, context=context):
            return Funnel.search_read([], fields_names=[
                    'scenario', 'date', 'record_count', 'email_sent',
                    'email_opened', 'email_clicked', 'conversion_count',
                    'conversion_rate', 'revenue', 'revenue_per_email'])

    def cleanup(self):
        if self.recorder:
            self.recorder.uninstall()
        self.processes.stop()
        if self.server:
            self.server.stop()
        if self.sink:
            self.sink.stop()
        if self.in_process_smtp:
            self.in_process_smtp.uninstall()
        if self.args.drop and self.db.template_name:
            try:
                self.db.drop()
            except Exception as exception:
                print("could not drop %s: %s" % (self.db.name, exception),
                    file=sys.stderr)
            self.db.remove_files()

    def report(self):
        return report(Run(
                self.args, self.db.name, self.phases, self.limits,
                self.worker_rss, seq_scans=self.seq_scans))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Benchmark the marketing automation engine")
    parser.add_argument(
        '--backend', choices=['sqlite', 'postgresql'],
        help="the database backend (default: from TRYTOND_DATABASE_URI)")
    parser.add_argument(
        '-n', type=int, default=10000,
        help="the number of parties (1,000 to 100,000; default 10,000)")
    parser.add_argument(
        '--waiting', type=int, metavar='W',
        help="also enrol W parties (up to 900,000) in a scenario of their "
        "own whose root e-mail waits a month; 0 creates the scenario only "
        "(the reference run of a comparison)")
    parser.add_argument(
        '--explain', metavar='FILE',
        help="record the SQL statements of the phases run in this process, "
        "EXPLAIN them at the end and write the plans to FILE; a "
        "sequential scan of a big table fails a target (PostgreSQL)")
    parser.add_argument(
        '--json', metavar='FILE', help="write the figures to FILE")
    parser.add_argument(
        '--workers', type=int, default=0, choices=[0, 1, 2],
        help="run the queue on as many trytond-worker processes "
        "(PostgreSQL)")
    parser.add_argument(
        '--crons', type=int, default=0, choices=[0, 2],
        help="run trigger and process from two trytond-cron processes at "
        "once (PostgreSQL)")
    parser.add_argument(
        '--foreground-handoff', action='store_true',
        help="with --workers or --crons, hand the e-mails to the SMTP server "
        "before the next batch, not in the background (the comparison)")
    parser.add_argument(
        '--server', type=int, default=0, metavar='K',
        help="make the hits over HTTP to trytond.application:app served by "
        "K gunicorn worker processes, and measure their floor the same way")
    parser.add_argument(
        '--clients', type=int, default=32, metavar='C',
        help="the concurrent HTTP clients of --server (default 32)")
    parser.add_argument(
        '--database', help="the database name (default: bench_<n>)")
    parser.add_argument(
        '--results', default=DEFAULT_RESULTS, metavar='DIR',
        help="the directory of the SQLite databases, configurations and "
        "logs (default: bench/results)")
    parser.add_argument(
        '--uri', help="the database URI (default: TRYTOND_DATABASE_URI or "
        "postgresql://postgres@127.0.0.1:5432/ for --backend postgresql)")
    parser.add_argument(
        '--process-batch', type=int,
        help="[marketing] automation_process_batch")
    parser.add_argument(
        '--enrol-batch', type=int, help="[marketing] automation_enrol_batch")
    parser.add_argument(
        '--compare', metavar='FILE',
        help="the JSON of a run to compare the rates with (e.g. N=10,000)")
    parser.add_argument(
        '--profile', metavar='PHASE',
        help="profile the phases whose name contains PHASE with cProfile")
    parser.add_argument(
        '--stop-after', choices=['enrolment', 'e-mails'],
        help="stop after this phase (to profile it)")
    parser.add_argument(
        '--conversions-only', action='store_true',
        help="mark the e-mails sent, opened and clicked in SQL and time "
        "only the conversions and the funnel")
    parser.add_argument(
        '--strict', action='store_true',
        help="also exit with status 3 when a target is not met")
    parser.add_argument(
        '--drop', action='store_true', help="drop the database at the end")
    parser.add_argument(
        '--small', action='store_true',
        help="allow N below 1,000 (for the tests)")
    parser.add_argument('-q', '--quiet', action='store_true')
    parser.add_argument(
        '--fault', choices=['duplicate-email', 'lost-hit'],
        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    choose_database(args)
    lower = 20 if args.small else 1000
    if not lower <= args.n <= 100000 or args.n % 20:
        parser.error("N must be a multiple of 20 from %s to 100,000" % lower)
    if args.waiting is not None and not 0 <= args.waiting <= 900000:
        parser.error("W must be from 0 to 900,000")
    if args.explain and args.backend != 'postgresql':
        parser.error("--explain needs PostgreSQL")
    if args.server < 0 or args.clients < 1:
        parser.error("K must be positive and C at least 1")
    if (args.workers or args.crons) and args.backend != 'postgresql':
        parser.error("--workers and --crons need PostgreSQL")
    return args


def main(argv=None):
    args = parse_args(argv)
    bench = Bench(args)
    try:
        bench.run()
    except Mismatch as exception:
        print('\nMISMATCH: %s' % exception, file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    met = bench.report()
    if args.strict and not met:
        return 3
    return 0


if __name__ == '__main__':
    sys.exit(main())
