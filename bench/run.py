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
5. a second enrolment and a second execution, which must find nothing.

It checks the outcome after every phase, record by record (nobody enrolled
twice, no e-mail sent twice, blocked records get nothing, each event
reached exactly the expected records) and exits with status 1 on the first
mismatch. In the same run, it measures two practical limits without the
engine: rendering the template and building the MIME message without
database, and committing one-row updates on the same database.

On PostgreSQL, ``--workers K`` runs the phases 2 and 4 on K real
``trytond-worker`` processes (``[queue] worker = True``) and ``--crons 2``
runs the phases 1, 2 and 4 from two ``trytond-cron`` processes at once.

See doc/benchmark.rst.
"""
import argparse
import ctypes
import ctypes.util
import datetime as dt
import gc
import hashlib
import html
import io
import json
import os
import platform
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from email.generator import BytesGenerator
from email.utils import getaddresses, make_msgid
from types import SimpleNamespace
from urllib.parse import urlsplit

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
DEFAULT_RESULTS = os.path.join(BENCH_DIR, 'results')
MODULE_DIR = os.path.join(ROOT, 'marketing_automation')
BIN_DIR = os.path.dirname(os.path.abspath(sys.executable))

BASE_URL = 'http://bench.example.com'
SENDER = 'Bench Shop <news@bench.example.com>'
DESTINATION = (
    'https://shop.example.com/nouveaut\u00e9s'
    '?utm_source=bench&utm_medium=email#top')
TITLE = "News for ${record.name}"
TEMPLATE = """<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml"
    xmlns:py="http://genshi.edgewall.org/">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>
<title>News</title>
</head>
<body style="font-family: sans-serif">
<h1>Hello ${record.name},</h1>
<p>Our new collection is out: light jackets, linen shirts and the shoes
you asked for. Members get free delivery until the end of the month.</p>
<p py:if="record.name">This selection was made for ${record.name}.</p>
<table>
<tr><td>Jackets</td><td>from 49 EUR</td></tr>
<tr><td>Shirts</td><td>from 29 EUR</td></tr>
<tr><td>Shoes</td><td>from 59 EUR</td></tr>
</table>
<p><a href="https://shop.example.com/nouveaut\u00e9s?utm_source=bench\
&amp;utm_medium=email#top">See what is new</a></p>
<p><a href="https://shop.example.com/members">Become a member</a></p>
<p><a href="mailto:help@shop.example.com">Write to us</a></p>
<p style="font-size: small">You receive this e-mail as a customer of
Bench Shop. <a href="unsubscribe">Unsubscribe</a></p>
</body>
</html>
"""

# Which party (by its number i = 1..N) does what
SALE_EVERY = 10


def opens_pixel(i):
    return i % 2 == 0


def clicks(i):
    return i % 4 == 1


def unsubscribes(i):
    # Half of them opened (and the "opened" child waits for them): blocked
    # records must get nothing more
    return i % 20 == 0


TARGETS = [
    # phase, minimum rate (items/s)
    ('enrolment', 50000),
    ('root e-mails', 500),
    ('pixel hits', 300),
    ('clicks', 300),
    ('children', 1000),
    ]
RAW_RENDER_SHARE = 0.5
PEAK_RSS_MB = 300
SCALING = 0.8


class Mismatch(Exception):
    "A count or a state is not what the workload implies"


def check(condition, message, *args):
    if not condition:
        raise Mismatch(message % args if args else message)


def check_set(name, actual, expected):
    actual, expected = set(actual), set(expected)
    if actual != expected:
        missing = sorted(expected - actual)
        extra = sorted(actual - expected)
        raise Mismatch(
            '%s: %s expected, %s found; missing %s%s; unexpected %s%s' % (
                name, len(expected), len(actual),
                missing[:10], '...' if len(missing) > 10 else '',
                extra[:10], '...' if len(extra) > 10 else ''))


# Memory

def release_memory():
    "Give back to the system the memory the process freed (glibc)"
    # The checks between the phases load large sets of rows: the peak of a
    # phase must not count what they left in the allocator
    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library('c')).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def reset_peak_rss():
    "Reset the peak resident set size of the process (Linux)"
    release_memory()
    try:
        with open('/proc/self/clear_refs', 'w') as fp:
            fp.write('5')
        return True
    except OSError:
        return False


def _status_kb(pid, key):
    try:
        with open('/proc/%s/status' % pid) as fp:
            for line in fp:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mb(pid='self'):
    "Return the peak resident set size of the process in MB"
    kb = _status_kb(pid, 'VmHWM')
    if kb is None and pid == 'self':
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if kb is not None else None


def descendants(pid):
    "Return the ids of the processes descending from pid (Linux)"
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as fp:
                stat = fp.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    result, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            result.append(child)
            todo.append(child)
    return result


def processes_cpu(pids):
    "Return the CPU seconds used so far by the processes (Linux)"
    total = 0
    for pid in pids:
        try:
            with open('/proc/%s/stat' % pid) as fp:
                fields = fp.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf('SC_CLK_TCK')


# SMTP sinks

class MessageCounter:
    "Count the messages received per recipient"

    def __init__(self):
        self.lock = threading.Lock()
        self.recipients = Counter()
        self.total = 0
        self.size = 0

    def add(self, recipients, size):
        with self.lock:
            self.total += 1
            self.size += size
            for recipient in recipients:
                self.recipients[recipient.lower()] += 1


def flatten(msg):
    "Return the bytes of the message as smtplib sends them"
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=msg.policy).flatten(msg, linesep='\r\n')
    return buffer.getvalue()


class InProcessSMTP:
    """Stand for trytond.sendmail.get_smtp_server: an SMTP connection that
    flattens each message as smtplib does and counts it, without network"""

    def __init__(self, counter, duplicate=False):
        self.counter = counter
        self.uri = 'smtp://in-process'
        self.duplicate = duplicate

    def __call__(self, uri=None, strict=False):
        return self

    def send_message(self, msg, from_addr=None, to_addrs=None):
        if not to_addrs:
            to_addrs = [a for _, a in getaddresses(msg.get_all('To', []))]
        elif isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        size = len(flatten(msg))
        self.counter.add(to_addrs, size)
        if self.duplicate:
            # Fault injected to prove that the checks catch it
            self.duplicate = False
            self.counter.add(to_addrs, size)
        return {}

    def quit(self):
        pass

    def close(self):
        pass


def free_port():
    "Return a TCP port of the loopback interface that is free now"
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def loopback_sink(counter, port):
    "Return a started SMTP server on 127.0.0.1 counting into counter"
    # Imported once trytond is configured: the module imports its backend
    from trytond.modules.marketing_automation.testing import SMTPSink

    class CountingSink(SMTPSink):

        async def handle_DATA(self, server, session, envelope):
            counter.add(envelope.rcpt_tos, len(envelope.content))
            return '250 Message accepted for delivery'

    return CountingSink(port=port).start()


# Database

def module_hash(backend_name):
    "Return a hash of what the schema of the bench database depends on"
    import trytond
    digest = hashlib.sha1()
    digest.update(('%s %s %s' % (
                trytond.__version__, backend_name, platform.python_version())
            ).encode())
    for path in [os.path.join(ROOT, 'tryton.cfg')] + sorted(
            os.path.join(dirpath, name)
            for dirpath, dirnames, names in os.walk(MODULE_DIR)
            if '__pycache__' not in dirpath
            for name in names if not name.endswith(('.pyc', '.pyo'))):
        digest.update(os.path.relpath(path, ROOT).encode())
        with open(path, 'rb') as fp:
            digest.update(fp.read())
    return digest.hexdigest()[:12]


class Postgres:
    "Administration of the PostgreSQL server (create, copy, drop)"

    def __init__(self, uri):
        self.uri = urlsplit(uri)

    def connect(self):
        from urllib.parse import unquote

        import psycopg
        params = {'dbname': 'postgres', 'autocommit': True}
        for key, value in [
                ('host', self.uri.hostname), ('port', self.uri.port),
                ('user', self.uri.username),
                ('password', self.uri.password)]:
            if value:
                params[key] = unquote(str(value))
        return psycopg.connect(**params)

    def databases(self):
        with self.connect() as conn:
            return [n for n, in conn.execute(
                    'SELECT datname FROM pg_database')]

    def drop(self, name):
        with self.connect() as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def rename(self, name, new_name):
        "Rename the database unless new_name exists (built concurrently)"
        import psycopg
        with self.connect() as conn:
            try:
                conn.execute('ALTER DATABASE "%s" RENAME TO "%s"' % (
                        name, new_name))
            except psycopg.errors.DuplicateDatabase:
                pass

    def create(self, name, template=None):
        with self.connect() as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
            if template:
                conn.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (
                        name, template))
            else:
                conn.execute('CREATE DATABASE "%s"' % name)


# Timing

class Phase:
    "A measured phase"

    def __init__(
            self, name, items, seconds, rss, note='', cpu=None,
            other_cpu=None):
        self.name = name
        self.items = items
        self.seconds = seconds
        self.rss = rss
        self.note = note
        # CPU time of this process: steadier than the wall clock on a
        # shared machine, meaningful when the work runs in this process
        self.cpu = cpu
        # CPU time of the trytond-worker and trytond-cron processes
        self.other_cpu = other_cpu

    @property
    def rate(self):
        return self.items / self.seconds if self.seconds else None

    def to_dict(self):
        return {
            'phase': self.name,
            'items': self.items,
            'seconds': round(self.seconds, 4),
            'rate': round(self.rate, 1) if self.rate is not None else None,
            'peak_rss_mb': round(self.rss, 1) if self.rss else None,
            'cpu_seconds': round(self.cpu, 4) if self.cpu is not None
            else None,
            'workers_cpu_seconds': round(self.other_cpu, 2)
            if self.other_cpu is not None else None,
            'note': self.note,
            }


class Bench:

    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.backend = args.backend
        self.database = args.database or 'bench_%s' % self.n
        self.phases = []
        self.limits = {}
        self.counter = MessageCounter()
        self.processes = []
        self.sink = None
        self.in_process_smtp = None
        self.out_of_process = bool(args.workers or args.crons)
        self.results = os.path.abspath(args.results)
        os.makedirs(self.results, exist_ok=True)
        self.config_file = os.path.join(
            self.results, self.database + '.conf')
        self.ids = {}
        self.record_number = {}
        self.template_name = None

    # Set-up

    def log(self, message, *args):
        if not self.args.quiet:
            print('[%7.1fs] %s' % (
                    time.monotonic() - self.started, message % args),
                file=sys.stderr, flush=True)

    def write_config(self):
        args = self.args
        if self.out_of_process:
            self.sink_port = free_port()
            email_uri = 'smtp://127.0.0.1:%s' % self.sink_port
        else:
            email_uri = 'smtp://in-process.invalid:25'
        lines = [
            '[database]',
            'uri = %s' % args.uri,
            'path = %s' % self.results,
            '',
            '[queue]',
            'worker = %s' % bool(args.workers),
            '',
            '[email]',
            'uri = %s' % email_uri,
            'from = %s' % SENDER,
            '',
            '[marketing]',
            'automation_base = %s' % BASE_URL,
            'email_from = %s' % SENDER,
            ]
        if args.process_batch:
            lines.append('automation_process_batch = %s' % args.process_batch)
        if args.enrol_batch:
            lines.append('automation_enrol_batch = %s' % args.enrol_batch)
        os.makedirs(self.results, exist_ok=True)
        with open(self.config_file, 'w') as fp:
            fp.write('\n'.join(lines) + '\n')
        import trytond.config as config
        config.update_etc(self.config_file)
        if self.out_of_process:
            self.sink = loopback_sink(self.counter, self.sink_port)

    def run_admin(self, database, *arguments):
        passfile = os.path.join(self.results, 'admin.pass')
        with open(passfile, 'w') as fp:
            fp.write('admin\n')
        env = dict(os.environ, TRYTONPASSFILE=passfile)
        log = os.path.join(self.results, self.template_name + '.log')
        with open(log, 'a') as fp:
            subprocess.run(
                [os.path.join(BIN_DIR, 'trytond-admin'),
                    '-c', self.config_file, '-d', database, *arguments],
                env=env, stdout=fp, stderr=subprocess.STDOUT, check=True)

    def ensure_template(self):
        """Build once the activated database that each run copies

        It is built under a name of its own then renamed, so that a
        concurrent run never copies a template being built."""
        from trytond import backend
        self.template_name = 'bench_tpl_%s' % module_hash(backend.name)
        building = '%s_build_%s' % (self.template_name, os.getpid())
        if self.backend == 'sqlite':
            path = os.path.join(self.results, self.template_name + '.sqlite')
            for name in os.listdir(self.results):
                if (name.startswith('bench_tpl_')
                        and not name.startswith(self.template_name)):
                    os.remove(os.path.join(self.results, name))
            if os.path.exists(path):
                return
            self.log("build the template database %s", self.template_name)
            build_path = os.path.join(self.results, building + '.sqlite')
            open(build_path, 'w').close()
            try:
                self._admin_template(building)
                # Everything in the main file before it is renamed
                connection = sqlite3.connect(build_path)
                connection.execute('PRAGMA journal_mode = DELETE')
                connection.close()
                os.replace(build_path, path)
            finally:
                for suffix in ['', '-wal', '-shm', '-journal']:
                    if os.path.exists(build_path + suffix):
                        os.remove(build_path + suffix)
        else:
            postgres = Postgres(self.args.uri)
            existing = postgres.databases()
            for name in existing:
                if (name.startswith('bench_tpl_')
                        and not name.startswith(self.template_name)):
                    postgres.drop(name)
            if self.template_name in existing:
                return
            self.log("build the template database %s", self.template_name)
            postgres.create(building)
            try:
                self._admin_template(building)
                postgres.rename(building, self.template_name)
            finally:
                postgres.drop(building)

    def _admin_template(self, database):
        self.run_admin(
            database, '--all', '--email', 'admin@bench.example.com',
            '-u', 'marketing_automation', 'sale', '--activate-dependencies')

    def create_database(self):
        self.ensure_template()
        self.log("create %s from %s", self.database, self.template_name)
        if self.backend == 'sqlite':
            path = os.path.join(self.results, self.database + '.sqlite')
            for suffix in ['', '-wal', '-shm', '-journal']:
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
            shutil.copyfile(
                os.path.join(self.results, self.template_name + '.sqlite'),
                path)
        else:
            Postgres(self.args.uri).create(
                self.database, template=self.template_name)

    def drop_database(self):
        from trytond import backend
        from trytond.pool import Pool
        backend.Database(self.database).close()
        Pool.stop(self.database)
        if self.backend == 'sqlite':
            path = os.path.join(self.results, self.database + '.sqlite')
            for suffix in ['', '-wal', '-shm']:
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
        else:
            Postgres(self.args.uri).drop(self.database)

    def init_pool(self):
        from trytond.pool import Pool
        from trytond.transaction import Transaction
        self.pool = Pool(self.database)
        with Transaction().start(self.database, 0, readonly=True):
            self.pool.init()

    # SQL helpers

    def sql(self, query, params=(), fetch=True):
        "Run query in a transaction of its own and return the rows"
        from trytond.transaction import Transaction
        if self.backend == 'sqlite':
            query = query.replace('%s', '?')
        with Transaction().start(self.database, 0) as transaction:
            cursor = transaction.connection.cursor()
            cursor.execute(query, params)
            rows = cursor.fetchall() if fetch else None
        return rows

    def table(self, model):
        return '"%s"' % self.pool.get(model)._table

    # Data

    def populate(self):
        "Insert the parties, their e-mail address and the sales in SQL"
        from trytond.transaction import Transaction
        n = self.n
        now = dt.datetime.now()
        param = '?' if self.backend == 'sqlite' else '%s'
        if self.backend == 'sqlite':
            series = (
                'WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL '
                'SELECT i + 1 FROM seq WHERE i < %d) ' % n)
            source = 'seq'
        else:
            series = ''
            source = 'generate_series(1, %d) AS seq(i)' % n
        party = self.table('party.party')
        mechanism = self.table('party.contact_mechanism')
        sale = self.table('sale.sale')
        start = time.perf_counter()
        with Transaction().start(self.database, 0) as transaction:
            cursor = transaction.connection.cursor()
            cursor.execute(
                series + 'INSERT INTO %s '
                '(name, code, code_alnum, code_digit, active, '
                'create_uid, create_date) '
                "SELECT 'Bench Party ' || i, 'BENCH' || i, 'BENCH' || i, "
                'i, %s, 0, %s FROM %s' % (party, param, param, source),
                (True, now))
            cursor.execute(
                'INSERT INTO %s '
                '(party, type, value, value_compact, active, sequence, '
                'create_uid, create_date) '
                "SELECT id, 'email', 'bench-' || code_digit || '@example.com',"
                " 'bench-' || code_digit || '@example.com', %s, 10, 0, %s "
                'FROM %s WHERE name LIKE %s' % (
                    mechanism, param, param, party, param),
                (True, now, 'Bench Party %'))
            cursor.execute(
                'INSERT INTO %s '
                '(company, currency, party, state, invoice_method, '
                'shipment_method, invoice_state, shipment_state, reference, '
                'create_uid, create_date) '
                "SELECT %s, %s, id, 'draft', 'order', 'order', 'none', "
                "'none', 'BENCH' || code_digit, 0, %s "
                'FROM %s WHERE name LIKE %s AND mod(code_digit, %s) = 0'
                % (sale, param, param, param, party, param, param),
                (self.ids['company'], self.ids['currency'], now,
                    'Bench Party %', SALE_EVERY))
        self.log("%s parties, e-mail addresses and %s sales inserted in "
            "%.1fs", n, n // SALE_EVERY, time.perf_counter() - start)

    def setup_models(self):
        "Create the company, the scenarios and their activities"
        from decimal import Decimal

        from trytond.pyson import Eval, PYSONEncoder
        from trytond.transaction import Transaction
        pool = self.pool
        Currency = pool.get('currency.currency')
        Party = pool.get('party.party')
        Company = pool.get('company.company')
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        Cron = pool.get('ir.cron')
        ModelData = pool.get('ir.model.data')
        User = pool.get('res.user')
        with Transaction().start(self.database, 0):
            admin, = User.search([('login', '=', 'admin')])
            admin_id = admin.id
        # As the administrator: the e-mails are rendered with the rights of
        # the author of the activity
        with Transaction().start(self.database, admin_id) as transaction:
            currency, = Currency.create([{
                        'name': "Euro", 'code': 'EUR', 'symbol': "\u20ac",
                        'rounding': Decimal('0.01'), 'digits': 2,
                        }])
            party, = Party.create([{'name': "Bench Shop"}])
            company, = Company.create([{
                        'party': party.id, 'currency': currency.id}])
            self.ids['currency'] = currency.id
            self.ids['company'] = company.id

            scenario, = Scenario.create([{
                        'name': "Bench news",
                        'model': 'party.party',
                        'domain': PYSONEncoder().encode(
                            [('name', 'like', 'Bench Party %')]),
                        'unsubscribable': True,
                        }])
            root, = Activity.create([{
                        'name': "News",
                        'parent': str(scenario),
                        'action': 'send_email',
                        'email_title': TITLE,
                        'email_template': TEMPLATE,
                        }])
            opened, clicked, not_clicked = Activity.create([{
                        'name': "Opened",
                        'parent': str(root),
                        'on': 'email_opened',
                        'condition': PYSONEncoder().encode(
                            Eval('self', {}).get('active', False)),
                        }, {
                        'name': "Clicked",
                        'parent': str(root),
                        'on': 'email_clicked',
                        }, {
                        'name': "Not clicked",
                        'parent': str(root),
                        'on': 'email_clicked_not',
                        'delay': dt.timedelta(days=2),
                        }])
            sale_scenario, = Scenario.create([{
                        'name': "Bench orders",
                        'model': 'sale.sale',
                        'domain': PYSONEncoder().encode(
                            [('state', '=', 'draft')]),
                        }])
            follow_up, = Activity.create([{
                        'name': "Follow-up",
                        'parent': str(sale_scenario),
                        'delay': dt.timedelta(days=30),
                        }])
            Scenario.run([scenario, sale_scenario])
            self.ids.update({
                    'scenario': scenario.id,
                    'sale_scenario': sale_scenario.id,
                    'root': root.id,
                    'opened': opened.id,
                    'clicked': clicked.id,
                    'not_clicked': not_clicked.id,
                    'follow_up': follow_up.id,
                    })

            # Only the crons of the benchmark run, when it says so
            crons = Cron.search([])
            far = dt.datetime.now() + dt.timedelta(days=365)
            Cron.write(crons, {'active': False, 'next_call': far})
            trigger = Cron(ModelData.get_id(
                    'marketing_automation', 'cron_scenario_trigger'))
            process = Cron(ModelData.get_id(
                    'marketing_automation', 'cron_record_activity_process'))
            triggers = [trigger] + Cron.copy([trigger])
            processes = [process] + Cron.copy([process])
            Cron.write(triggers + processes, {
                    'active': True, 'next_call': far})
            self.ids['trigger_crons'] = [c.id for c in triggers]
            self.ids['process_crons'] = [c.id for c in processes]
            transaction.commit()

    # Expected outcome

    def expectations(self):
        numbers = range(1, self.n + 1)
        everyone = set(numbers)
        pixel = {i for i in numbers if opens_pixel(i)}
        click = {i for i in numbers if clicks(i)}
        blocked = {i for i in numbers if unsubscribes(i)}
        opened = pixel | click
        return SimpleNamespace(
            everyone=everyone, pixel=pixel, click=click, blocked=blocked,
            opened=opened,
            sales={i for i in numbers if i % SALE_EVERY == 0},
            opened_child_done=opened - blocked,
            opened_child_waiting=opened & blocked,
            clicked_child_done=click - blocked,
            clicked_child_waiting=click & blocked,
            not_clicked_done=everyone - click - blocked,
            not_clicked_waiting=blocked - click,
            )

    # State of the database

    def load_record_numbers(self):
        "Map the records of the scenario to the number of their party"
        record = self.table('marketing.automation.record')
        party = self.table('party.party')
        rows = self.sql(
            'SELECT r.id, p.code_digit, r.blocked FROM %s AS r '
            'JOIN %s AS p ON r.record = %s || p.id '
            'WHERE r.scenario = %%s' % (
                record, party, "'party.party,'" if self.backend == 'sqlite'
                else "'party.party,'::varchar"),
            (self.ids['scenario'],))
        self.record_number = {r: i for r, i, _ in rows}
        return rows

    def activity_states(self, activity):
        "Return the numbers of the parties per state of the activity"
        table = self.table('marketing.automation.record.activity')
        rows = self.sql(
            'SELECT record, state, at IS NULL, email_opened, email_clicked '
            'FROM %s WHERE activity = %%s' % table, (activity,))
        result = SimpleNamespace(
            rows=len(rows), states={}, unscheduled=set(), scheduled=set(),
            opened=set(), clicked=set(), records=Counter())
        for record, state, no_at, opened, clicked in rows:
            i = self.record_number.get(record, ('?', record))
            result.records[i] += 1
            result.states.setdefault(state, set()).add(i)
            if state == 'waiting':
                (result.unscheduled if no_at else result.scheduled).add(i)
            if opened:
                result.opened.add(i)
            if clicked:
                result.clicked.add(i)
        duplicates = [i for i, c in result.records.items() if c > 1]
        check(not duplicates,
            "activity %s runs several times for the same records: %s",
            activity, duplicates[:10])
        return result

    def check_sent(self, expected, total):
        "Check that each expected party got exactly one e-mail"
        counter = self.counter
        addresses = {'bench-%s@example.com' % i for i in expected}
        twice = [a for a, c in counter.recipients.items() if c > 1]
        check(not twice, "e-mails sent twice to %s", twice[:10])
        check_set('e-mail recipients', counter.recipients, addresses)
        check(counter.total == total,
            "%s e-mails sent, %s expected", counter.total, total)

    def check_enrolment(self, expect, first=True):
        record = self.table('marketing.automation.record')
        rows = self.sql(
            'SELECT scenario, COUNT(*), COUNT(DISTINCT record) FROM %s '
            'GROUP BY scenario' % record)
        counts = {s: (c, d) for s, c, d in rows}
        check(counts.get(self.ids['scenario']) == (self.n, self.n),
            "party scenario: %s records (distinct), %s expected",
            counts.get(self.ids['scenario']), self.n)
        sales = len(expect.sales)
        check(counts.get(self.ids['sale_scenario']) == (sales, sales),
            "sale scenario: %s records (distinct), %s expected",
            counts.get(self.ids['sale_scenario']), sales)
        self.load_record_numbers()
        root = self.activity_states(self.ids['root'])
        check_set('root activities scheduled' if first else 'root activities',
            root.scheduled if first else root.records, expect.everyone)
        follow_up = self.activity_states(self.ids['follow_up'])
        check(follow_up.rows == len(expect.sales)
            and len(follow_up.scheduled) == len(expect.sales),
            "sale follow-ups: %s scheduled of %s rows, %s expected",
            len(follow_up.scheduled), follow_up.rows, len(expect.sales))

    def check_root_sent(self, expect):
        root = self.activity_states(self.ids['root'])
        check_set('root activities done', root.states.get('done', ()),
            expect.everyone)
        for name in ['opened', 'clicked']:
            child = self.activity_states(self.ids[name])
            check_set('%s children waiting for the event' % name,
                child.unscheduled, expect.everyone)
        child = self.activity_states(self.ids['not_clicked'])
        check_set('not clicked children scheduled', child.scheduled,
            expect.everyone)
        email = self.table('ir.email')
        (count,), = self.sql(
            'SELECT COUNT(*) FROM %s WHERE marketing_automation_activity = %%s'
            % email, (self.ids['root'],))
        check(count == self.n, "%s e-mails archived, %s expected",
            count, self.n)

    # Limits without the engine

    def measure_raw_render(self):
        "Render the template and build the message without database"
        from trytond.modules.marketing_automation import (
            links, mime, rendering, sandbox)
        count = min(max(self.n // 10, 500), 3000)
        secret = 'bench-secret-' * 4
        database = self.database
        reset_peak_rss()
        start = time.perf_counter()
        cpu = time.process_time()
        size = 0
        for i in range(count):
            record_token = '%032x' % (i + 1)
            token = '%032x' % (10 ** 9 + i)
            context = {
                # Templates read the fields of a record as the keys of a
                # dictionary
                'record': {
                    'name': 'Bench Party %s' % i,
                    'rec_name': 'Bench Party %s' % i},
                **sandbox.helpers(),
                }
            title = rendering.render_title(TITLE, context)
            body = rendering.render_html(
                TEMPLATE, context,
                link_for=lambda url: links.click_url(
                    database, token, url, secret),
                unsubscribe_for=lambda next_url: links.unsubscribe_url(
                    database, record_token, next_url),
                pixel_url=links.open_url(database, token))
            msg = mime.build_message(
                from_addr=SENDER, to_addr='Bench Party %s <bench-%s@%s>' % (
                    i, i, 'example.com'),
                subject=title, html=body,
                unsubscribe_url=links.unsubscribe_url(database, record_token))
            msg['Message-ID'] = make_msgid(domain='bench.example.com')
            size += len(flatten(msg))
        seconds = time.perf_counter() - start
        phase = Phase(
            'raw render + MIME (no database)', count, seconds, peak_rss_mb(),
            note='%.1f KB per message' % (size / count / 1024),
            cpu=time.process_time() - cpu)
        self.limits['render'] = phase
        self.log("%s: %.0f/s", phase.name, phase.rate)
        return phase

    def measure_raw_commits(self):
        "Commit one-row updates on the database without the engine"
        from trytond import backend
        table = self.table('marketing.automation.record.activity')
        ids = [i for i, in self.sql(
                'SELECT id FROM %s WHERE activity = %%s ORDER BY id'
                % table, (self.ids['root'],))][:2000]
        query = 'UPDATE %s SET write_date = %%s WHERE id = %%s' % table
        if self.backend == 'sqlite':
            query = query.replace('%s', '?')
        database = backend.Database(self.database).connect()
        connection = database.get_connection()
        reset_peak_rss()
        start = time.perf_counter()
        cpu = time.process_time()
        try:
            for id_ in ids:
                cursor = connection.cursor()
                cursor.execute(query, (dt.datetime.now(), id_))
                connection.commit()
        finally:
            database.put_connection(connection)
        seconds = time.perf_counter() - start
        phase = Phase(
            'raw one-row update commits', len(ids), seconds, peak_rss_mb(),
            cpu=time.process_time() - cpu)
        self.limits['commit'] = phase
        self.log("%s: %.0f/s", phase.name, phase.rate)
        return phase

    def measure_empty_hits(self):
        "Hit the pixel route with unknown tokens: a transaction, no event"
        import secrets

        from trytond.modules.marketing_automation import links
        count = min(max(self.n // 10, 300), 2000)
        prefix = links.open_url(self.database, 'x')[len(BASE_URL):]
        prefix = prefix[:prefix.rindex('/') + 1]
        paths = ['%s%s.gif' % (prefix, secrets.token_hex(16))
            for _ in range(count)]

        def gif(path, response):
            check(response.mimetype == 'image/gif',
                "pixel answered %s", response.mimetype)
        reset_peak_rss()
        start = time.perf_counter()
        cpu = time.process_time()
        self.hit(paths, 'get', 200, gif)
        seconds = time.perf_counter() - start
        phase = Phase(
            'pixel hits of unknown tokens', count, seconds, peak_rss_mb(),
            cpu=time.process_time() - cpu,
            note='one transaction, no event')
        self.limits['empty hits'] = phase
        self.log("%s: %.0f/s", phase.name, phase.rate)
        return phase

    # Phases

    def timed(self, name, items, func, note=''):
        "Run func as the phase name and record its figures"
        profile = None
        if self.args.profile and self.args.profile in name:
            import cProfile
            profile = cProfile.Profile()
        reset_peak_rss()
        self.log("%s: %s items", name, items)
        start = time.perf_counter()
        cpu = time.process_time()
        other_cpu = self.others_cpu()
        if profile:
            profile.enable()
        func()
        if profile:
            profile.disable()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        other_cpu = self.others_cpu() - other_cpu
        phase = Phase(name, items, seconds, peak_rss_mb(), note=note, cpu=cpu,
            other_cpu=other_cpu if self.out_of_process else None)
        self.phases.append(phase)
        self.log("%s: %.2fs, %.0f/s", name, seconds, phase.rate or 0)
        if profile:
            self.dump_profile(profile, name)
        return phase

    def others_cpu(self):
        "Return the CPU seconds used by the worker and cron processes"
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        pids = [p for process, _ in self.processes
            for p in [process.pid] + descendants(process.pid)]
        return usage.ru_utime + usage.ru_stime + processes_cpu(pids)

    def dump_profile(self, profile, name):
        import pstats
        path = os.path.join(self.results, '%s-%s.prof' % (
                self.database, re.sub(r'\W+', '_', name)))
        profile.dump_stats(path)
        stream = io.StringIO()
        stats = pstats.Stats(profile, stream=stream)
        stats.sort_stats('cumulative').print_stats(40)
        stats.sort_stats('tottime').print_stats(25)
        print(stream.getvalue(), file=sys.stderr)
        self.log("profile written to %s", path)

    def in_transaction(self, func):
        "Call func in a transaction as the cron does, then the queued tasks"
        from trytond.transaction import Transaction
        from trytond.worker import run_task
        with Transaction().start(
                self.database, 0, context={'_skip_warnings': True}
                ) as transaction:
            func()
        while transaction.tasks:
            run_task(self.pool, transaction.tasks.pop())

    def trigger(self):
        if self.args.crons:
            self.run_crons('trigger_crons')
        else:
            Scenario = self.pool.get('marketing.automation.scenario')
            self.in_transaction(Scenario.trigger)

    def process(self):
        if self.args.crons:
            self.run_crons('process_crons')
        else:
            RecordActivity = self.pool.get(
                'marketing.automation.record.activity')
            self.in_transaction(RecordActivity.process)
        if self.args.workers:
            self.wait_queue()

    def run_crons(self, key):
        "Run the crons of key from as many trytond-cron processes at once"
        cron = self.table('ir.cron')
        ids = self.ids[key][:self.args.crons]
        past = dt.datetime.now() - dt.timedelta(minutes=1)
        placeholders = ', '.join(['%s'] * len(ids))
        self.sql('UPDATE %s SET next_call = %%s WHERE id IN (%s)' % (
                cron, placeholders), (past, *ids), fetch=False)
        processes = []
        for k in range(len(ids)):
            log = open(os.path.join(
                    self.results, '%s-cron-%s.log' % (self.database, k)),
                'a')
            processes.append((subprocess.Popen(
                        [os.path.join(BIN_DIR, 'trytond-cron'),
                            '-c', self.config_file, '-d', self.database,
                            '--once', '-n', '1', '-v'],
                        stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True), log))
        for process, log in processes:
            status = process.wait()
            log.close()
            check(status == 0, "trytond-cron exited with %s", status)
        rows = self.sql('SELECT COUNT(*) FROM %s WHERE id IN (%s) '
            'AND next_call <= %%s' % (cron, placeholders),
            (*ids, dt.datetime.now()))
        check(rows[0][0] == 0, "%s crons did not run", rows[0][0])

    def start_workers(self):
        for k in range(self.args.workers):
            log = open(os.path.join(
                    self.results, '%s-worker-%s.log' % (self.database, k)),
                'a')
            process = subprocess.Popen(
                [os.path.join(BIN_DIR, 'trytond-worker'),
                    '-c', self.config_file, '-d', self.database,
                    '-n', '1', '-v'],
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            self.processes.append((process, log))
        # Tasks that do nothing: the workers are ready once they ran them
        from trytond.transaction import Transaction
        RecordActivity = self.pool.get('marketing.automation.record.activity')
        with Transaction().start(self.database, 0):
            for _ in range(self.args.workers * 2):
                RecordActivity.__queue__.process(RecordActivity.browse([]))
        self.wait_queue(timeout=120)
        self.log("%s trytond-worker processes ready", self.args.workers)

    def wait_queue(self, timeout=3600):
        "Wait until the workers finished every task"
        queue = self.table('ir.queue')
        deadline = time.monotonic() + timeout
        while True:
            (pending,), = self.sql(
                'SELECT COUNT(*) FROM %s WHERE finished_at IS NULL' % queue)
            if not pending:
                break
            for process, _ in self.processes:
                check(process.poll() is None,
                    "trytond-worker %s exited with %s",
                    process.pid, process.returncode)
            check(time.monotonic() < deadline,
                "%s tasks still pending after %ss", pending, timeout)
            time.sleep(0.05)

    def wait_messages(self, total, timeout=60):
        "Wait for the messages sent after the commits of other processes"
        if not self.out_of_process:
            return
        deadline = time.monotonic() + timeout
        while self.counter.total < total and time.monotonic() < deadline:
            time.sleep(0.05)
        # Late duplicates would arrive now
        time.sleep(0.2)

    def stop_processes(self):
        for process, log in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
        self.processes = []

    # Hits

    def collect_links(self, expect):
        """Read the pixel, click and unsubscribe URLs of the sent e-mails

        The e-mails are archived without their tokens: those of the record
        and of its root record activity are put back."""
        from trytond.modules.marketing_automation.links import REDACTED
        email = self.table('ir.email')
        record = self.table('marketing.automation.record')
        record_activity = self.table('marketing.automation.record.activity')
        wanted = expect.pixel | expect.click | expect.blocked
        pixel = re.compile(r'<img src="([^"]*/o/[^"]*\.gif)"')
        click = re.compile(r'<a href="([^"]*/c/[^"]*)"')
        unsubscribe = re.compile(r'<a href="([^"]*/unsubscribe\?[^"]*)"')
        address = re.compile(r'bench-(\d+)@example\.com')
        result = {}
        last = 0
        while True:
            rows = self.sql(
                'SELECT e.id, e.recipients, e.body, r.uuid, a.uuid '
                'FROM %s AS e '
                'JOIN %s AS r ON r.id = e.marketing_automation_record '
                'JOIN %s AS a ON a.record = r.id '
                'AND a.activity = e.marketing_automation_activity '
                'WHERE e.marketing_automation_activity = %%s AND e.id > %%s '
                'ORDER BY e.id LIMIT 5000' % (
                    email, record, record_activity),
                (self.ids['root'], last))
            if not rows:
                break
            for id_, recipients, body, record_token, token in rows:
                last = id_
                check(record_token not in body and token not in body,
                    "tokens archived in the e-mail %s", id_)
                body = body.replace(
                    '/o/%s.gif' % REDACTED, '/o/%s.gif' % token).replace(
                    '/c/%s?' % REDACTED, '/c/%s?' % token).replace(
                    'r=%s' % REDACTED, 'r=%s' % record_token)
                i = int(address.search(recipients).group(1))
                if i not in wanted:
                    continue
                # Only the URLs to hit are kept
                urls = []
                for pattern, hits in [
                        (pixel, expect.pixel), (click, expect.click),
                        (unsubscribe, expect.blocked)]:
                    match = pattern.search(body)
                    check(match, "no %s link in the e-mail of %s",
                        pattern.pattern, i)
                    url = html.unescape(match.group(1))
                    check(url.startswith(BASE_URL + '/m/'),
                        "unexpected URL %s", url)
                    urls.append(url[len(BASE_URL):] if i in hits else None)
                check(i not in result, "two e-mails for %s", i)
                result[i] = tuple(urls)
        check_set('e-mails with links', result, wanted)
        return result

    def hit(self, paths, method, expect_status, check_response):
        from werkzeug.test import Client

        from trytond.wsgi import app
        client = Client(app)
        open_ = getattr(client, method)
        for path in paths:
            if method == 'post':
                response = open_(
                    path, data={'List-Unsubscribe': 'One-Click'})
            else:
                response = open_(path)
            if response.status_code != expect_status:
                raise Mismatch('%s %s answered %s: %s' % (
                        method.upper(), path, response.status,
                        response.get_data(as_text=True)[:300]))
            check_response(path, response)
            response.close()

    def run_hits(self, expect):
        from werkzeug.urls import iri_to_uri
        links = self.collect_links(expect)
        pixels = [links[i][0] for i in sorted(expect.pixel)]
        if self.args.fault == 'lost-hit':
            # Fault injected to prove that the checks catch it
            pixels.pop()
        clicks_ = [links[i][1] for i in sorted(expect.click)]
        unsubscribe = [links[i][2] for i in sorted(expect.blocked)]
        location = iri_to_uri(DESTINATION)

        def gif(path, response):
            check(response.mimetype == 'image/gif',
                "pixel answered %s", response.mimetype)

        def redirected(path, response):
            check(response.headers.get('Location') == location,
                "click redirected to %s instead of %s",
                response.headers.get('Location'), location)

        def plain(path, response):
            check(response.mimetype == 'text/plain',
                "one-click unsubscribe answered %s", response.mimetype)

        self.timed('pixel hits', len(pixels),
            lambda: self.hit(pixels, 'get', 200, gif))
        root = self.activity_states(self.ids['root'])
        check_set('e-mails opened after the pixel hits', root.opened,
            expect.pixel)
        opened = self.activity_states(self.ids['opened'])
        check_set('opened children scheduled', opened.scheduled, expect.pixel)

        self.timed('clicks', len(clicks_),
            lambda: self.hit(clicks_, 'get', 302, redirected))
        root = self.activity_states(self.ids['root'])
        check_set('e-mails opened after the clicks', root.opened,
            expect.opened)
        check_set('e-mails clicked', root.clicked, expect.click)
        opened = self.activity_states(self.ids['opened'])
        check_set('opened children scheduled', opened.scheduled,
            expect.opened)
        clicked = self.activity_states(self.ids['clicked'])
        check_set('clicked children scheduled', clicked.scheduled,
            expect.click)
        not_clicked = self.activity_states(self.ids['not_clicked'])
        check_set('not clicked children cancelled',
            not_clicked.states.get('cancelled', ()), expect.click)

        self.timed('unsubscribes', len(unsubscribe),
            lambda: self.hit(unsubscribe, 'post', 200, plain))
        rows = self.load_record_numbers()
        check_set('blocked records', [i for _, i, b in rows if b],
            expect.blocked)
        unsubscribed = self.table(
            'party.party-unsubscribed-marketing.automation.scenario')
        party = self.table('party.party')
        rows = self.sql(
            'SELECT p.code_digit FROM %s AS u JOIN %s AS p ON u.party = p.id '
            'WHERE u.scenario = %%s' % (unsubscribed, party),
            (self.ids['scenario'],))
        check_set('parties unsubscribed', [i for i, in rows], expect.blocked)

        # Repeated events change nothing more
        before = [self.activity_states(self.ids[k]).__dict__
            for k in ['root', 'opened', 'clicked', 'not_clicked']]
        repeat = max(len(pixels) // 100, 5)
        self.hit(pixels[:repeat], 'get', 200, gif)
        self.hit(clicks_[:repeat], 'get', 302, redirected)
        self.hit(unsubscribe[:repeat], 'post', 200, plain)
        after = [self.activity_states(self.ids[k]).__dict__
            for k in ['root', 'opened', 'clicked', 'not_clicked']]
        check(before == after, "repeated events changed the activities")

    def make_negative_due(self):
        table = self.table('marketing.automation.record.activity')
        self.sql(
            "UPDATE %s SET at = %%s WHERE activity = %%s AND state = 'waiting'"
            % table, (dt.datetime.now() - dt.timedelta(seconds=1),
                self.ids['not_clicked']), fetch=False)

    def check_children(self, expect):
        opened = self.activity_states(self.ids['opened'])
        check_set('opened children done', opened.states.get('done', ()),
            expect.opened_child_done)
        check_set('opened children waiting (blocked)',
            opened.states.get('waiting', ()), expect.opened_child_waiting
            | (expect.everyone - expect.opened))
        clicked = self.activity_states(self.ids['clicked'])
        check_set('clicked children done', clicked.states.get('done', ()),
            expect.clicked_child_done)
        not_clicked = self.activity_states(self.ids['not_clicked'])
        check_set('not clicked children done',
            not_clicked.states.get('done', ()), expect.not_clicked_done)
        check_set('not clicked children waiting (blocked)',
            not_clicked.states.get('waiting', ()), expect.not_clicked_waiting)
        check_set('not clicked children cancelled',
            not_clicked.states.get('cancelled', ()), expect.click)
        follow_up = self.activity_states(self.ids['follow_up'])
        check(not follow_up.states.get('done'),
            "sale follow-ups ran before their delay")

    # Run

    def run(self):
        self.started = time.monotonic()
        self.worker_rss = None
        args = self.args
        self.write_config()
        self.create_database()
        self.init_pool()
        self.setup_models()
        self.populate()
        expect = self.expectations()
        import trytond.sendmail as sendmail
        if not self.out_of_process:
            self.in_process_smtp = InProcessSMTP(
                self.counter, duplicate=args.fault == 'duplicate-email')
            self.saved_smtp = sendmail.get_smtp_server
            sendmail.get_smtp_server = self.in_process_smtp
        if args.workers:
            self.start_workers()

        self.measure_raw_render()
        n_children = (len(expect.opened_child_done)
            + len(expect.clicked_child_done) + len(expect.not_clicked_done))

        self.timed('enrolment', self.n + len(expect.sales), self.trigger)
        self.check_enrolment(expect)
        if args.stop_after == 'enrolment':
            return

        self.timed('root e-mails', self.n, self.process)
        self.wait_messages(self.n)
        self.check_root_sent(expect)
        self.check_sent(expect.everyone, self.n)
        if args.stop_after == 'e-mails':
            return

        self.measure_raw_commits()
        self.measure_empty_hits()
        self.run_hits(expect)

        self.make_negative_due()
        self.timed('children', n_children, self.process)
        self.check_children(expect)
        self.check_sent(expect.everyone, self.n)

        self.timed('second enrolment', 0, self.trigger,
            note='must find nobody')
        self.check_enrolment(expect, first=False)
        self.timed('second execution', 0, self.process,
            note='must find nothing due')
        self.wait_messages(self.n)
        self.check_children(expect)
        self.check_sent(expect.everyone, self.n)
        self.log("all counts checked")

        if self.processes:
            peaks = [peak_rss_mb(p) for proc, _ in self.processes
                for p in [proc.pid] + descendants(proc.pid)]
            peaks = [p for p in peaks if p]
            self.worker_rss = max(peaks) if peaks else None

    def cleanup(self):
        self.stop_processes()
        if self.sink:
            self.sink.stop()
        if self.in_process_smtp:
            import trytond.sendmail as sendmail
            sendmail.get_smtp_server = self.saved_smtp
        if self.args.drop and self.template_name:
            try:
                self.drop_database()
            except Exception as exception:
                print("could not drop %s: %s" % (self.database, exception),
                    file=sys.stderr)
            for name in os.listdir(self.results):
                if (name == self.database + '.conf'
                        or (name.startswith(self.database + '-')
                            and name.endswith('.log'))):
                    os.remove(os.path.join(self.results, name))

    # Report

    def targets(self, compare=None):
        "Return (label, value, target, met) of the targets"
        result = []
        phases = {p.name: p for p in self.phases}
        for name, minimum in TARGETS:
            phase = phases.get(name)
            if phase and phase.rate is not None:
                result.append((
                        '%s >= %s/s' % (name, minimum),
                        '%.0f/s' % phase.rate, phase.rate >= minimum))
        render = self.limits.get('render')
        mails = phases.get('root e-mails')
        if render and mails and render.rate:
            share = mails.rate / render.rate
            result.append((
                    'root e-mails >= %d%% of raw render'
                    % (RAW_RENDER_SHARE * 100),
                    '%.0f%%' % (share * 100), share >= RAW_RENDER_SHARE))
        peak = max((p.rss for p in self.phases if p.rss), default=None)
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

    def report(self):
        args = self.args
        rows = [p for p in self.phases] + [
            self.limits[k] for k in ['render', 'commit', 'empty hits']
            if k in self.limits]
        print()
        print('marketing_automation benchmark: %s, N=%s, workers=%s, '
            'crons=%s, process batch=%s, enrol batch=%s' % (
                self.backend, self.n, args.workers, args.crons or 0,
                args.process_batch or 500, args.enrol_batch or 10000))
        header = ('phase', 'items', 'seconds', 'items/s', 'peak RSS MB',
            'CPU s', 'items/CPU s')
        widths = (32, 8, 9, 10, 12, 8, 12)
        line = '  '.join('%-*s' % (w, h) if i == 0 else '%*s' % (w, h)
            for i, (w, h) in enumerate(zip(widths, header)))
        print(line)
        print('-' * len(line))
        for phase in rows:
            print('  '.join([
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
                        ]) + ('  (%s)' % phase.note if phase.note else ''))
        if self.worker_rss:
            print('peak RSS of the worker processes: %.0f MB'
                % self.worker_rss)
        if self.out_of_process:
            print('CPU seconds of the trytond-worker/trytond-cron processes: '
                + ', '.join('%s %.1f' % (p.name, p.other_cpu)
                    for p in self.phases if p.other_cpu))
        compare = None
        if args.compare:
            with open(args.compare) as fp:
                other = json.load(fp)
            compare = {p['phase']: p['rate'] for p in other['phases']}
        targets = self.targets(compare)
        print()
        if self.backend == 'sqlite' and not self.out_of_process:
            print('targets (they apply to SQLite, one process, N=100,000):')
        else:
            print('targets (for reference only: they apply to SQLite, one '
                'process, N=100,000):')
        for label, value, met in targets:
            print('  %-48s %10s  %s' % (label, value, 'met' if met
                    else 'NOT MET'))
        if args.json:
            data = {
                'backend': self.backend,
                'n': self.n,
                'workers': args.workers,
                'crons': args.crons or 0,
                'process_batch': args.process_batch or 500,
                'enrol_batch': args.enrol_batch or 10000,
                'database': self.database,
                'date': dt.datetime.now().isoformat(timespec='seconds'),
                'python': platform.python_version(),
                'cpus': os.cpu_count(),
                'smtp': ('loopback SMTP server (aiosmtpd)'
                    if self.out_of_process else
                    'in-process (trytond.sendmail.get_smtp_server patched)'),
                'phases': [p.to_dict() for p in self.phases],
                'limits': {k: v.to_dict() for k, v in self.limits.items()},
                'worker_peak_rss_mb': self.worker_rss,
                'targets': [
                    {'target': label, 'value': value, 'met': met}
                    for label, value, met in targets],
                'counts_checked': True,
                }
            with open(args.json, 'w') as fp:
                json.dump(data, fp, indent=2)
                fp.write('\n')
        return all(met for _, _, met in targets)


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
