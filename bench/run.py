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
import os
import re
import sys
import time

import hits
import limits
import workload
from checks import Checker, Mismatch
from database import BENCH_DIR, BenchDatabase
from mail import InProcessSMTP, MessageCounter, free_port, loopback_sink
from measure import Stopwatch, print_profile
from processes import TrytonProcesses
from report import Run, report

DEFAULT_RESULTS = os.path.join(BENCH_DIR, 'results')


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
        self.sink = None
        self.in_process_smtp = None
        self.out_of_process = bool(args.workers or args.crons)
        self.ids = {}
        self.checks = None
        self.worker_rss = None
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
            port = free_port()
            self.db.configure('smtp://127.0.0.1:%s' % port)
            self.sink = loopback_sink(self.counter, port)
        else:
            self.db.configure('smtp://in-process.invalid:25')
            self.in_process_smtp = InProcessSMTP(
                self.counter, duplicate=self.args.fault == 'duplicate-email')

    def set_up(self):
        self.configure()
        self.db.create()
        self.db.init_pool()
        self.ids = workload.setup_models(self.db)
        workload.populate(self.db, self.n, self.ids)
        self.checks = Checker(self.db, self.ids, self.counter, self.n)
        if self.in_process_smtp:
            self.in_process_smtp.install()
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
        with Stopwatch() as watch:
            if profile:
                profile.enable()
            func()
            if profile:
                profile.disable()
        other_cpu = self.processes.cpu() - other_cpu
        phase = watch.phase(name, items, note=note,
            other_cpu=other_cpu if self.out_of_process else None)
        self.phases.append(phase)
        self.log("%s: %.2fs, %.0f/s", name, phase.seconds, phase.rate or 0)
        if profile:
            self.dump_profile(profile, name)
        return phase

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

    def wait_messages(self, total, timeout=60):
        "Wait for the messages sent after the commits of other processes"
        if not self.out_of_process:
            return
        deadline = time.monotonic() + timeout
        while self.counter.total < total and time.monotonic() < deadline:
            time.sleep(0.05)
        # Late duplicates would arrive now
        time.sleep(0.2)

    # Phases

    def run(self):
        self.started = time.monotonic()
        self.set_up()
        expect = workload.expectations(self.n)
        checks = self.checks
        if not self.args.conversions_only:
            self.limit('render', limits.raw_render(self.db, self.n))

        self.timed('enrolment', self.n + len(expect.sales), self.trigger)
        checks.check_enrolment(expect)
        if self.args.stop_after == 'enrolment':
            return
        if self.args.conversions_only:
            workload.events_in_sql(self.db, self.ids)
            self.run_conversions(expect)
            self.log("conversion counts checked")
            return

        self.timed('root e-mails', self.n, self.process)
        self.wait_messages(self.n)
        checks.check_root_sent(expect)
        checks.check_sent(expect.everyone, self.n)
        if self.args.stop_after == 'e-mails':
            return

        self.limit('commit', limits.raw_commits(self.db, self.ids))
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
        self.run_conversions(expect)
        self.log("all counts checked")
        self.worker_rss = self.processes.peak_rss()

    def run_hits(self, expect):
        "Time the pixel hits, the clicks and the unsubscribes"
        checks = self.checks
        paths = hits.recipient_paths(self.db, self.ids, expect)
        pixels = [paths[i][0] for i in sorted(expect.pixel)]
        if self.args.fault == 'lost-hit':
            # Fault injected to prove that the checks catch it
            pixels.pop()
        clicks = [paths[i][1] for i in sorted(expect.click)]
        unsubscribes = [paths[i][2] for i in sorted(expect.blocked)]

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
        self.processes.stop()
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
                self.worker_rss))


def parse_args(argv=None):
    uri = os.environ.get('TRYTOND_DATABASE_URI') or 'sqlite://'
    parser = argparse.ArgumentParser(
        description="Benchmark the marketing automation engine")
    parser.add_argument(
        '--backend', choices=['sqlite', 'postgresql'],
        help="the database backend (default: from TRYTOND_DATABASE_URI)")
    parser.add_argument(
        '-n', type=int, default=10000,
        help="the number of parties (1,000 to 100,000; default 10,000)")
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
    if not args.backend:
        args.backend = (
            'postgresql' if uri.startswith('postgresql') else 'sqlite')
    if not args.uri:
        if args.backend == 'postgresql':
            args.uri = (uri if uri.startswith('postgresql')
                else 'postgresql://postgres@127.0.0.1:5432/')
        else:
            args.uri = 'sqlite://'
    lower = 20 if args.small else 1000
    if not lower <= args.n <= 100000 or args.n % 20:
        parser.error("N must be a multiple of 20 from %s to 100,000" % lower)
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
