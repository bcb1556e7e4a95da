#!/usr/bin/env python3
# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Benchmark the retention: prune N rows and check what stays

It copies the activated template database of the benchmark, fills in SQL a
stopped scenario (an A/B split and a reminder) whose records were sent
e-mails 100 to 129 days ago, with their archived e-mails, clicks per link
and conversions: about N rows to prune.  Beside them stay a record in a
hundred of that scenario whose reminder still waits, and a running
scenario of recent e-mails.  It reads every statistic and report, times
the cron's pruning (a transaction per batch), then checks that every
prunable row is gone, every other one is there and the statistics and
reports are the same; it exits with status 1 on a mismatch."""
import argparse
import datetime as dt
import json
import logging
import os
import sys
import time

from database import BENCH_DIR, BenchDatabase, choose_database
from measure import peak_rss_mb, reset_peak_rss

DEFAULT_RESULTS = os.path.join(BENCH_DIR, 'results')
RETENTION_DAYS = 90
# Each record of the pruned scenario gives 2 record activities, 1.08
# archived e-mails, 0.2 clicks and 0.02 conversions
ROWS_PER_RECORD = 3.3
DAYS = 30
BODY = '<html><body>%s</body></html>' % (
    '<p>Hello, news of the shop.</p>' * 50)
PRUNED_MODELS = [
    'marketing.automation.record.activity', 'ir.email', 'ir.email.address',
    'marketing.automation.link.click', 'marketing.automation.conversion']
REPORTS = [
    'marketing.automation.reporting.scenario',
    'marketing.automation.reporting.activity',
    'marketing.automation.reporting.link',
    'marketing.automation.reporting.variant',
    'marketing.automation.reporting.conversion.activity',
    'marketing.automation.reporting.funnel',
    ]


class Mismatch(Exception):
    pass


class BatchTimes(logging.Handler):
    "Collect the durations of the batches the retention logs"

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.durations = []

    def emit(self, record):
        if record.msg.startswith('pruned a batch'):
            self.durations.append(record.args[0])


class PruneBench:

    def __init__(self, args):
        self.args = args
        self.started = time.monotonic()
        self.db = BenchDatabase(args, self.log)
        self.figures = {'backend': args.backend, 'n': args.n}

    def log(self, message, *args):
        if not self.args.quiet:
            print('[%7.1fs] %s' % (
                    time.monotonic() - self.started, message % args),
                file=sys.stderr, flush=True)

    def run(self):
        import trytond.config as config
        self.db.configure('smtp://127.0.0.1:1')
        config.set('marketing', 'automation_retention_days',
            str(RETENTION_DAYS))
        config.set('marketing', 'automation_retention_batch',
            str(self.args.batch))
        self.db.create()
        self.db.init_pool()
        self.fill()
        self.db.analyze()
        kept = self.kept_rows()
        total = self.all_rows()
        before = self.statistics()
        if self.args.explain:
            self.explain()
        self.prune()
        self.check(kept, total, before)

    def transaction(self):
        from trytond.transaction import Transaction
        return Transaction().start(self.db.name, 0)

    def sql(self, cursor, query, params=None):
        "Execute the query, with %s for the params and %% for % if any"
        if params is None:
            cursor.execute(query)
            return
        query = self.db.paramstyle(query)
        if self.args.backend == 'sqlite':
            query = query.replace('%%', '%')
        cursor.execute(query, params)

    # The data

    def fill(self):
        "Create the scenarios in the ORM and their rows in SQL"
        from trytond.modules.company.tests import create_company
        pool = self.db.pool
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        Party = pool.get('party.party')
        Sale = pool.get('sale.sale')
        started = time.monotonic()
        records = max(round(self.args.n / ROWS_PER_RECORD), 100)
        with self.transaction() as transaction:
            cursor = transaction.connection.cursor()
            company = create_company()
            party, = Party.create([{'name': "Customer"}])
            email = {
                'action': 'send_email', 'email_title': "News",
                'email_template': '<html><body><p>News</p></body></html>'}
            pruned, kept = Scenario.create([{
                        'name': "Pruned", 'model': 'party.party',
                        'domain': '[]', 'goal': 'sale',
                        'attribution': 'send',
                        'goal_window': dt.timedelta(days=7),
                        }, {
                        'name': "Kept", 'model': 'party.party',
                        'domain': '[]',
                        }])
            variant_a, variant_b, recent = Activity.create([
                    {'name': "A", 'parent': str(pruned), 'variant_weight': 1,
                        **email},
                    {'name': "B", 'parent': str(pruned), 'variant_weight': 1,
                        **email},
                    {'name': "Recent", 'parent': str(kept), **email},
                    ])
            reminder, = Activity.create([{
                        'name': "Reminder", 'parent': str(variant_a),
                        'on': 'email_opened',
                        'delay': dt.timedelta(days=1), **email}])
            # The states as the buttons would: no enrolment is triggered
            table = Scenario.__table__()
            cursor.execute(*table.update([table.state], ['stopped'],
                    where=table.id == pruned.id))
            cursor.execute(*table.update([table.state], ['running'],
                    where=table.id == kept.id))
            sale, = Sale.create([{
                        'party': party.id, 'company': company.id,
                        'currency': company.currency.id}])
            ids = {
                'pruned': pruned.id, 'kept': kept.id, 'a': variant_a.id,
                'b': variant_b.id, 'reminder': reminder.id,
                'recent': recent.id, 'sale': sale.id,
                'currency': company.currency.id, 'party': party.id}
            self.ids = ids
            now = dt.datetime.now().replace(microsecond=0)
            for day in range(DAYS):
                self.fill_day(cursor, ids, records, day,
                    now - dt.timedelta(days=100 + day))
            self.fill_recent(cursor, ids, max(records // 20, 5), now)
            self.fill_conversions(cursor, ids)
            # The records went in by SQL: count them as the enrolment does
            pool.get('marketing.automation.statistics.enrolled').fill()
        self.figures['records'] = records
        self.figures['fill_s'] = round(time.monotonic() - started, 1)
        self.log("filled %s records in %.1f s", records,
            self.figures['fill_s'])

    def tables(self):
        return {m: self.db.table(m) for m in [
                'marketing.automation.record',
                'marketing.automation.record.activity', 'ir.email',
                'ir.email.address', 'marketing.automation.link.click',
                'marketing.automation.conversion', 'sale.sale']}

    def fill_day(self, cursor, ids, records, day, at):
        "Insert the records of the day of the pruned scenario and their rows"
        t = self.tables()
        count = records // DAYS + (1 if day < records % DAYS else 0)
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.record'] + ' '
            '(scenario, record, uuid, blocked, create_uid, create_date) '
            'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL '
            'SELECT i + 1 FROM n WHERE i < %s) '
            "SELECT %s, 'party.party,' || (i + %s), "
            "'bench-' || %s || '-' || i, (i %% 20 = 0), 0, %s FROM n",
            (count, ids['pruned'], day * 1000000, day, at))
        self.sql(cursor,
            'SELECT MIN(id), MAX(id) FROM ' + t['marketing.automation.record']
            + ' WHERE scenario = %s AND create_date = %s',
            (ids['pruned'], at))
        low, high = cursor.fetchone()
        k = 'r.id %% 20'
        sent = '(%s < 15)' % k
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.record.activity'] + ' '
            '(record, activity, at, state, email_handoff, email_opened, '
            'email_clicked, email_bounced, note, skip_reason, tries, uuid, '
            'create_uid, create_date, write_date) '
            'SELECT r.id, CASE WHEN r.id %% 2 = 1 THEN %s ELSE %s END, %s, '
            "CASE WHEN " + k + " = 19 THEN 'cancelled' "
            "WHEN " + k + " = 18 THEN 'failed' ELSE 'done' END, "
            "CASE WHEN " + sent + " THEN 'sent' END, "
            '(' + sent + ' AND ' + k + ' %% 2 = 0), '
            '(' + sent + ' AND ' + k + ' %% 4 = 0), '
            '(' + k + ' = 13), '
            "CASE WHEN " + k + " IN (15, 16, 17) THEN 'Skipped' END, "
            "CASE " + k + " WHEN 15 THEN 'no_address' "
            "WHEN 16 THEN 'opted_out' WHEN 17 THEN 'suppressed' END, "
            "0, 'bench-a-' || r.id, 0, %s, %s "
            'FROM ' + t['marketing.automation.record'] + ' AS r '
            'WHERE r.id BETWEEN %s AND %s',
            (ids['a'], ids['b'], at, at, at, low, high))
        # The reminder: cancelled, sent, or still waiting for 1 in 100
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.record.activity'] + ' '
            '(record, activity, at, state, email_handoff, email_opened, '
            'email_clicked, email_bounced, tries, uuid, create_uid, '
            'create_date, write_date) '
            'SELECT r.id, %s, %s, '
            "CASE WHEN r.id %% 100 = 7 THEN 'waiting' "
            "WHEN r.id %% 3 <> 0 THEN 'cancelled' ELSE 'done' END, "
            "CASE WHEN r.id %% 100 <> 7 AND r.id %% 3 = 0 THEN 'sent' END, "
            "(r.id %% 6 = 0), FALSE, FALSE, 0, 'bench-b-' || r.id, 0, %s, %s "
            'FROM ' + t['marketing.automation.record'] + ' AS r '
            'WHERE r.id BETWEEN %s AND %s',
            (ids['reminder'], at, at, at, low, high))
        self.fill_emails(cursor, low, high, at)
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.link.click'] + ' '
            '(activity, url, date, create_uid, create_date) '
            "SELECT activity, 'https://shop.example/' || (id %% 3), %s, 0, %s "
            'FROM ' + t['marketing.automation.record.activity'] + ' '
            'WHERE record BETWEEN %s AND %s AND email_clicked',
            (at.date(), at, low, high))

    def fill_emails(self, cursor, low, high, at):
        "Archive an e-mail for each record activity sent of the records"
        t = self.tables()
        self.sql(cursor,
            'INSERT INTO ' + t['ir.email'] + ' '
            '(recipients, subject, body, resource, '
            'marketing_automation_record, marketing_automation_activity, '
            'create_uid, create_date) '
            "SELECT 'p' || ra.record || '@example.com', 'News', %s, "
            "r.record, ra.record, ra.activity, 0, %s "
            'FROM ' + t['marketing.automation.record.activity'] + ' AS ra '
            'JOIN ' + t['marketing.automation.record'] + ' AS r '
            'ON r.id = ra.record '
            "WHERE ra.record BETWEEN %s AND %s AND ra.email_handoff = 'sent'",
            (BODY, at, low, high))
        self.sql(cursor,
            'INSERT INTO ' + t['ir.email.address'] + ' '
            '(email, address, create_uid, create_date) '
            'SELECT id, recipients, 0, %s FROM ' + t['ir.email'] + ' '
            'WHERE marketing_automation_record BETWEEN %s AND %s',
            (at, low, high))

    def fill_recent(self, cursor, ids, count, now):
        "Insert the records of the running scenario, sent yesterday"
        t = self.tables()
        at = now - dt.timedelta(days=1)
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.record'] + ' '
            '(scenario, record, uuid, blocked, create_uid, create_date) '
            'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL '
            'SELECT i + 1 FROM n WHERE i < %s) '
            "SELECT %s, 'party.party,' || i, 'bench-kept-' || i, FALSE, 0, "
            '%s FROM n',
            (count, ids['kept'], at))
        self.sql(cursor,
            'SELECT MIN(id), MAX(id) FROM ' + t['marketing.automation.record']
            + ' WHERE scenario = %s', (ids['kept'],))
        low, high = cursor.fetchone()
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.record.activity'] + ' '
            '(record, activity, at, state, email_handoff, email_opened, '
            'email_clicked, email_bounced, tries, uuid, create_uid, '
            'create_date, write_date) '
            "SELECT r.id, %s, %s, 'done', 'sent', (r.id %% 2 = 0), "
            "(r.id %% 4 = 0), FALSE, 0, 'bench-k-' || r.id, 0, %s, %s "
            'FROM ' + t['marketing.automation.record'] + ' AS r '
            'WHERE r.id BETWEEN %s AND %s',
            (ids['recent'], at, at, at, low, high))
        self.fill_emails(cursor, low, high, at)
        self.sql(cursor,
            'INSERT INTO ' + t['marketing.automation.link.click'] + ' '
            '(activity, url, date, create_uid, create_date) '
            "SELECT activity, 'https://shop.example/', %s, 0, %s "
            'FROM ' + t['marketing.automation.record.activity'] + ' '
            'WHERE record BETWEEN %s AND %s AND email_clicked',
            (at.date(), at, low, high))

    def fill_conversions(self, cursor, ids):
        """Convert one record in 50 of the pruned scenario, with a copy of
        the sale each"""
        t = self.tables()
        self.sql(cursor,
            'SELECT ra.record, ra.id, ra.activity, ra.at '
            'FROM ' + t['marketing.automation.record.activity'] + ' AS ra '
            'JOIN ' + t['marketing.automation.record'] + ' AS r '
            'ON r.id = ra.record '
            "WHERE r.scenario = %s AND r.id %% 50 = 0 "
            "AND ra.activity IN (%s, %s) AND ra.email_handoff = 'sent' "
            'ORDER BY ra.id',
            (ids['pruned'], ids['a'], ids['b']))
        touches = cursor.fetchall()
        self.sql(cursor, 'SELECT * FROM ' + t['sale.sale'] + ' WHERE id = %s',
            (ids['sale'],))
        columns = [c[0] for c in cursor.description if c[0] != 'id']
        quoted = ', '.join('"%s"' % c for c in columns)
        self.sql(cursor,
            'SELECT MAX(id) FROM ' + t['sale.sale'], ())
        last, = cursor.fetchone()
        self.sql(cursor,
            'INSERT INTO ' + t['sale.sale'] + ' (' + quoted + ') '
            'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL '
            'SELECT i + 1 FROM n WHERE i < %s) '
            'SELECT ' + quoted + ' FROM ' + t['sale.sale'] + ', n '
            'WHERE id = %s',
            (len(touches), ids['sale']))
        self.sql(cursor,
            'SELECT id FROM ' + t['sale.sale'] + ' WHERE id > %s '
            'ORDER BY id', (last or 0,))
        sales = [i for i, in cursor]
        rows = [
            (ids['pruned'], activity, record, record_activity, sale,
                ids['party'], at + dt.timedelta(days=2), 10 + record % 90,
                ids['currency'], at)
            for (record, record_activity, activity, at), sale
            in zip(touches, sales)]
        cursor.executemany(self.db.paramstyle(
                'INSERT INTO ' + t['marketing.automation.conversion'] + ' '
                '(scenario, activity, record, record_activity, sale, party, '
                'date, state, amount, currency, create_uid, create_date) '
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 'confirmed', %s, %s, "
                '0, %s)'),
            rows)

    # The checks

    def ids_of(self, cursor, model, where=''):
        self.sql(cursor, 'SELECT id FROM ' + self.db.table(model) + where)
        return {i for i, in cursor}

    def all_rows(self):
        with self.transaction() as transaction:
            cursor = transaction.connection.cursor()
            return {m: len(self.ids_of(cursor, m)) for m in PRUNED_MODELS}

    def kept_rows(self):
        "Return the ids of the rows that must stay, by model"
        t = self.tables()
        kept_records = (
            'SELECT r.id FROM ' + t['marketing.automation.record'] + ' AS r '
            'WHERE r.scenario = %d OR r.id %% 100 = 7' % self.ids['kept'])
        with self.transaction() as transaction:
            cursor = transaction.connection.cursor()
            kept = {
                'marketing.automation.record.activity': self.ids_of(
                    cursor, 'marketing.automation.record.activity',
                    ' WHERE record IN (%s)' % kept_records),
                'ir.email': self.ids_of(cursor, 'ir.email',
                    ' WHERE marketing_automation_record IN (%s)'
                    % kept_records),
                'marketing.automation.link.click': self.ids_of(
                    cursor, 'marketing.automation.link.click',
                    " WHERE date >= '%s'" % (dt.date.today()
                        - dt.timedelta(days=RETENTION_DAYS))),
                'marketing.automation.conversion': self.ids_of(
                    cursor, 'marketing.automation.conversion',
                    ' WHERE record IN (%s)' % kept_records),
                }
            kept['ir.email.address'] = self.ids_of(
                cursor, 'ir.email.address',
                ' WHERE email IN (SELECT id FROM %s '
                'WHERE marketing_automation_record IN (%s))' % (
                    t['ir.email'], kept_records))
        return kept

    def statistics(self):
        "Return every statistic and report of the scenarios"
        from trytond.transaction import Transaction
        pool = self.db.pool
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        started = time.monotonic()
        result = {}
        with self.transaction():
            scenario_fields = [
                'record_count', 'record_count_blocked', 'block_rate',
                'email_sent', 'conversion_count', 'conversion_rate',
                'conversion_revenue']
            activity_fields = [
                n for n, f in Activity._fields.items()
                if n.startswith(('record_count', 'email_'))
                and n not in {'email_from', 'email_title', 'email_template'}]
            result['scenarios'] = Scenario.read(
                [self.ids['pruned'], self.ids['kept']], scenario_fields)
            result['activities'] = Activity.read(
                sorted(self.ids[k] for k in ['a', 'b', 'reminder', 'recent']),
                activity_fields)
            today = dt.date.today()
            for period in ['day', 'month']:
                context = {
                    'from_date': today - dt.timedelta(days=200),
                    'to_date': today, 'period': period}
                with Transaction().set_context(context):
                    for name in REPORTS:
                        Report = pool.get(name)
                        names = [
                            n for n in Report._fields
                            if n not in {
                                'id', 'create_uid', 'create_date',
                                'write_uid', 'write_date', 'rec_name',
                                'activity_action', 'last_modified_at'}]
                        rows = Report.read(
                            [r.id for r in Report.search([])], names)
                        result[name, period] = sorted(
                            (tuple(sorted(
                                        (k, v) for k, v in r.items()
                                        if k != 'id'))
                                for r in rows), key=repr)
        self.log("read the statistics in %.1f s", time.monotonic() - started)
        return result

    def explain(self):
        """Write the plans of the statements of a batch of each kind, run
        on the full tables then rolled back"""
        from explain import StatementRecorder, write_plans

        from trytond.modules.marketing_automation.retention import (
            retention_cutoff)
        pool = self.db.pool
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        recorder = StatementRecorder()
        recorder.install()
        try:
            with self.transaction() as transaction, recorder.record('prune'):
                cutoff = retention_cutoff()
                for scenario_id, scenario_cutoff in (
                        PrunedStatistics._scenario_cutoffs(cutoff)):
                    PrunedStatistics.prune_records(
                        scenario_id, scenario_cutoff, 0, self.args.batch)
                PrunedStatistics.prune_link_clicks(
                    cutoff.date(), 0, self.args.batch)
                transaction.rollback()
        finally:
            recorder.uninstall()
        plans, rows = recorder.explain(self.db)
        failures = write_plans(plans, rows, self.args.explain,
            'Retention, N=%s' % self.args.n)
        self.figures['sequential_scans'] = [t for _, t in failures]
        self.log("%s statements explained in %s, %s scanning a big table",
            len(plans), self.args.explain, len(failures))

    def prune(self):
        pool = self.db.pool
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        times = BatchTimes()
        logger = logging.getLogger(
            'trytond.modules.marketing_automation.retention')
        logger.addHandler(times)
        logger.setLevel(logging.DEBUG)
        reset_peak_rss()
        rss_before = peak_rss_mb()
        started = time.monotonic()
        with self.transaction():
            # As the cron: each batch commits on its own
            PrunedStatistics.prune()
        seconds = time.monotonic() - started
        logger.removeHandler(times)
        self.figures.update({
                'prune_s': round(seconds, 2),
                'batches': len(times.durations),
                'longest_batch_ms': round(max(times.durations, default=0), 1),
                'rss_before_mb': round(rss_before or 0, 1),
                'peak_rss_mb': round(peak_rss_mb() or 0, 1),
                })

    def check(self, kept, total, before):
        after_total = self.all_rows()
        pruned = {m: total[m] - after_total[m] for m in PRUNED_MODELS}
        self.figures['rows'] = total
        self.figures['pruned'] = pruned
        # The addresses go with their e-mails: not counted in the rows
        counted = sum(
            v for m, v in pruned.items() if m != 'ir.email.address')
        self.figures['pruned_rows'] = counted
        self.figures['rows_per_s'] = round(
            counted / self.figures['prune_s']) if self.figures[
            'prune_s'] else None
        with self.transaction() as transaction:
            cursor = transaction.connection.cursor()
            for model in PRUNED_MODELS:
                left = self.ids_of(cursor, model)
                if left != kept[model]:
                    raise Mismatch('%s: %s prunable rows left, %s kept rows '
                        'gone' % (model, len(left - kept[model]),
                            len(kept[model] - left)))
        after = self.statistics()
        for key in before:
            if after[key] != before[key]:
                raise Mismatch('the statistics %s changed' % (key,))
        if counted < total['marketing.automation.record.activity'] // 2:
            raise Mismatch('too few rows pruned: %s' % counted)
        self.figures['counts_checked'] = True

    def report(self):
        f = self.figures
        print('Retention, %s: %s rows pruned (%s) in %.2f s: %s rows/s, '
            '%s batches, longest batch %.1f ms, peak RSS %.0f MB '
            '(%.0f MB before)' % (
                f['backend'], f['pruned_rows'], ', '.join(
                    '%s %s' % (m.split('.')[-1], v)
                    for m, v in f['pruned'].items()),
                f['prune_s'], f['rows_per_s'], f['batches'],
                f['longest_batch_ms'], f['peak_rss_mb'], f['rss_before_mb']))
        if self.args.json:
            with open(self.args.json, 'w') as fp:
                json.dump(f, fp, indent=2)

    def cleanup(self):
        if self.args.drop and self.db.pool is not None:
            self.db.drop()
            self.db.remove_files()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Benchmark the pruning of old marketing data")
    parser.add_argument(
        '--backend', choices=['sqlite', 'postgresql'],
        help="the database backend (default: from TRYTOND_DATABASE_URI)")
    parser.add_argument(
        '-n', type=int, default=1000000,
        help="the rows to prune, about (default 1,000,000)")
    parser.add_argument(
        '--batch', type=int, default=1000,
        help="[marketing] automation_retention_batch: the records per batch "
        "(default 1,000)")
    parser.add_argument(
        '--database', help="the database name (default: prune_<n>)")
    parser.add_argument(
        '--results', default=DEFAULT_RESULTS, metavar='DIR',
        help="the directory of the SQLite databases, configurations and "
        "logs (default: bench/results)")
    parser.add_argument(
        '--uri', help="the database URI (default: TRYTOND_DATABASE_URI or "
        "postgresql://postgres@127.0.0.1:5432/ for --backend postgresql)")
    parser.add_argument(
        '--json', metavar='FILE', help="write the figures to FILE")
    parser.add_argument(
        '--explain', metavar='FILE',
        help="EXPLAIN the statements of a batch of each kind, run on the "
        "full tables then rolled back, and write the plans to FILE "
        "(PostgreSQL)")
    parser.add_argument(
        '--drop', action='store_true', help="drop the database at the end")
    parser.add_argument('-q', '--quiet', action='store_true')
    args = parser.parse_args(argv)
    choose_database(args)
    if args.n < 1000 or args.batch < 1:
        parser.error("N must be at least 1,000 and the batch positive")
    if args.explain and args.backend != 'postgresql':
        parser.error("--explain needs PostgreSQL")
    args.database = args.database or 'prune_%s' % args.n
    # What BenchDatabase.configure reads of the arguments of bench/run.py
    args.workers = args.crons = 0
    args.foreground_handoff = False
    args.process_batch = args.enrol_batch = None
    return args


def main(argv=None):
    args = parse_args(argv)
    bench = PruneBench(args)
    try:
        bench.run()
    except Mismatch as exception:
        print('\nMISMATCH: %s' % exception, file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    bench.report()
    return 0


if __name__ == '__main__':
    sys.exit(main())
