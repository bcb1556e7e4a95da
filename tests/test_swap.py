# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The swap of Tryton's own module for ours on a database that used it

A virtual environment of its own (cached under .cache/official-venv) gets
the official module.  There a database is built, a running scenario sends
real e-mails through SMTP, a few of them are opened and clicked, and the
e-mail of a last party is left in the queue of the workers.  Then our module
updates the same database, and: the queued task runs, the links of the
e-mails sent before work with our routes, the waiting activities go on and
the statistics keep the events recorded before.

The database is an SQLite file, or a PostgreSQL database of its own when
TRYTOND_DATABASE_URI is a PostgreSQL URI."""
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

import pytest

from trytond.modules.marketing_automation.links import location
from trytond.modules.marketing_automation.testing import SMTPSink

from .builders import MessageLinks, email_values, path_of
from .test_public_surface import REQUIREMENT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENVS = os.path.join(ROOT, '.cache', 'official-venv')
DATABASE_URI = os.environ.get('TRYTOND_DATABASE_URI', 'sqlite://')
BACKEND = urlsplit(DATABASE_URI).scheme
OUR_BIN = os.path.dirname(sys.executable)
TIMEOUT = 300
SHOP_URL = 'https://shop.example/offer?a=1&b=é#top'
TEMPLATE = (
    '<html><body><p>Hello ${record.name}</p>'
    '<a href="https://shop.example/offer?a=1&amp;b=é#top">Offer</a> '
    '<a href="unsubscribe|https://shop.example/bye">Unsubscribe</a>'
    '</body></html>')
THANKS = '<html><body><p>Thanks ${record.name}</p></body></html>'
NAMES = ['Ann', 'Bob', 'Carol', 'Dave', 'Eve', 'Fay']
# Enrolled last: the official module queues its e-mail, which no worker
# sends before the swap
LATE = 'Gus'

# A Python process with a pool on the database of the configuration, which
# runs the commands it reads as JSON lines and answers each with one line.
# It runs in either virtual environment: it uses trytond's API and
# tests.builders only (its working directory is ROOT).
DRIVER = r'''
import datetime
import functools
import json
import os
import sys
import traceback

import trytond.config as config

config.update_etc(sys.argv[1])

from werkzeug.test import Client

from trytond.pool import Pool
from trytond.transaction import Transaction
from trytond.worker import run_task
from trytond.wsgi import app

from tests import builders

# The answers use a copy of stdout: what the code prints goes to stderr
answers = os.fdopen(os.dup(1), 'w')
os.dup2(2, 1)
database = sys.argv[2]
Pool.start()
pool = Pool(database)
with Transaction().start(database, 0, readonly=True):
    pool.init()
client = Client(app)


def transactional(function):
    @functools.wraps(function)
    def wrapper(queue='run', **kwargs):
        with Transaction().start(database, 0) as transaction:
            result = function(**kwargs)
        # As trytond-cron does, the queued tasks run after the commit,
        # unless they are left in the queue as a backlog of the workers
        while transaction.tasks:
            task_id = transaction.tasks.pop()
            if queue == 'run':
                run_task(pool, task_id)
        return result
    return wrapper


@transactional
def build(function, args=(), kwargs=None):
    return getattr(builders, function)(*args, **(kwargs or {})).id


@transactional
def call(model, method, ids):
    Model = pool.get(model)
    getattr(Model, method)(Model.browse(ids))


@transactional
def read(model, domain, fields):
    return pool.get(model).search_read(
        domain, order=[('id', 'ASC')], fields_names=fields)


@transactional
def cron(xml_id):
    Cron = pool.get('ir.cron')
    ModelData = pool.get('ir.model.data')
    Cron(ModelData.get_id('marketing_automation', xml_id)).run_once()


def worker():
    "Run the tasks waiting in the queue as trytond-worker does"
    Queue = pool.get('ir.queue')
    pending = [('dequeued_at', '=', None), ('finished_at', '=', None)]
    with Transaction().start(database, 0, readonly=True):
        tasks = [(t.id, t.data['method'])
            for t in Queue.search(pending, order=[('id', 'ASC')])]
    for task_id, _ in tasks:
        run_task(pool, task_id)
    # A task that fails is finished without being dequeued
    with Transaction().start(database, 0, readonly=True):
        failed = Queue.search([
                ('id', 'in', [i for i, _ in tasks]),
                ('dequeued_at', '=', None),
                ])
    return {'methods': [m for _, m in tasks], 'failed': [t.id for t in failed]}


def request(method, path, data=None):
    response = client.open(path, method=method, data=data)
    return {
        'status': response.status_code,
        'headers': dict(response.headers),
        'body': response.get_data().decode('utf-8', 'replace'),
        }


def module():
    import trytond.modules.marketing_automation as module
    return module.__file__


def decode(value):
    if set(value) == {'timedelta'}:
        return datetime.timedelta(seconds=value['timedelta'])
    return value


COMMANDS = {f.__name__: f for f in [
        build, call, read, cron, worker, request, module]}
for line in sys.stdin:
    command = json.loads(line, object_hook=decode)
    try:
        answer = {'result': COMMANDS[command.pop('command')](**command)}
    except Exception:
        answer = {'error': traceback.format_exc()}
    answers.write(json.dumps(answer, default=str) + '\n')
    answers.flush()
'''


def _environ(**values):
    "Return the environment of the subprocesses: no test setting of trytond"
    env = {k: v for k, v in os.environ.items()
        if not k.startswith('TRYTON')
        and k not in {'DB_NAME', 'DB_CACHE', 'PYTHONPATH'}}
    env.update(values)
    return env


def _pip(python, *args):
    return subprocess.run(
        [python, '-m', 'pip', *args, '--disable-pip-version-check',
            '--no-input'],
        env=_environ(), capture_output=True, text=True, timeout=900)


def _official_requirements():
    requirements = [REQUIREMENT]
    if BACKEND == 'postgresql':
        requirements += ['psycopg[binary]', 'psycopg-pool']
    return requirements


def official_venv(tmp_path):
    """Return the bin directory of a virtual environment with the official
    module, created with the Python of ours and cached by requirements"""
    requirements = _official_requirements()
    key = hashlib.sha1(json.dumps(
            [sys.version, sys.base_prefix, requirements]).encode()
        ).hexdigest()[:16]
    path = os.path.join(VENVS, key)
    python = os.path.join(path, 'bin', 'python')
    stamp = os.path.join(path, '.installed')
    os.makedirs(VENVS, exist_ok=True)
    # Concurrent runs wait for the one creating it
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(stamp):
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(
                [sys.executable, '-m', 'venv', path], check=True,
                env=_environ(), timeout=300)
            install = _pip(python, 'install', '-q', *requirements)
            if install.returncode:
                shutil.rmtree(path, ignore_errors=True)
                probe = _pip(sys.executable, 'download', '--no-deps',
                    '--dest', str(tmp_path), REQUIREMENT)
                if probe.returncode:
                    pytest.skip("The package index cannot be reached: %s"
                        % (probe.stderr.strip().splitlines() or ['?'])[-1])
                raise AssertionError(install.stderr)
            with open(stamp, 'w') as file:
                file.write('\n'.join(requirements) + '\n')
    return os.path.dirname(python)


class Remote:
    "The driver process in a virtual environment, called with commands"

    def __init__(self, label, bin_, config, database):
        self.log = config.parent / ('%s.log' % label)
        self._log_file = open(self.log, 'w')
        self.process = subprocess.Popen(
            [os.path.join(bin_, 'python'), '-c', DRIVER, str(config),
                database],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log_file, text=True, env=_environ(), cwd=ROOT)

    def __call__(self, command, **arguments):
        self.process.stdin.write(json.dumps(
                {'command': command, **arguments}, default=_encode) + '\n')
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], TIMEOUT)
        line = self.process.stdout.readline() if ready else ''
        if not line:
            raise AssertionError("no answer to %s:\n%s" % (
                    command, self.log.read_text()))
        answer = json.loads(line)
        if 'error' in answer:
            raise AssertionError(answer['error'])
        return answer['result']

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self._log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


def _encode(value):
    if isinstance(value, dt.timedelta):
        return {'timedelta': value.total_seconds()}
    raise TypeError(value)


@contextlib.contextmanager
def database(directory):
    "Give the name of a new empty database of the backend, dropped at end"
    if BACKEND == 'sqlite':
        name = 'swap'
        (directory / 'db').mkdir()
        (directory / 'db' / (name + '.sqlite')).touch()
        yield name
        return
    import psycopg
    name = 'test_swap_%s' % os.getpid()
    uri = urlsplit(DATABASE_URI)
    params = {'dbname': 'postgres', 'autocommit': True}
    for key, value in [
            ('host', uri.hostname), ('port', uri.port),
            ('user', uri.username), ('password', uri.password)]:
        if value:
            params[key] = unquote(str(value))

    def drop(connection):
        connection.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    with psycopg.connect(**params) as connection:
        drop(connection)
        connection.execute('CREATE DATABASE "%s"' % name)
    try:
        yield name
    finally:
        with psycopg.connect(**params) as connection:
            drop(connection)


def write_config(directory, sink):
    config = directory / 'trytond.conf'
    path = 'path = %s' % (directory / 'db') if BACKEND == 'sqlite' else ''
    config.write_text(textwrap.dedent('''\
        [database]
        uri = %s
        %s
        [email]
        uri = %s
        from = shop@example.com
        [marketing]
        automation_base = http://marketing.example
        [web]
        shortener_base = http://marketing.example
        ''') % (DATABASE_URI, path, sink.uri))
    return config


def admin(bin_, config, name, *args):
    "Run trytond-admin of the virtual environment on the database"
    passfile = config.parent / 'passfile'
    passfile.write_text('a-long-admin-password\n')
    result = subprocess.run(
        [os.path.join(bin_, 'trytond-admin'), '-c', str(config), '-d', name,
            *args],
        env=_environ(TRYTONPASSFILE=str(passfile)),
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def wait_messages(sink, count):
    "Return the messages received, by address, once there are count"
    deadline = time.monotonic() + TIMEOUT
    while len(sink.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    messages = sink.pop()
    assert len(messages) == count, [str(m['To']) for m in messages]
    return {m['To'].addresses[0].addr_spec: m for m in messages}


def _address(name):
    return '%s@example.com' % name.lower()


def create_parties(remote, names):
    for name in names:
        remote('build', function='create_party', args=[name, _address(name)])


def create_scenario(remote):
    """Create the parties and the running scenario: a root e-mail, its
    thanks when opened, an activity when clicked and a reminder when not
    opened after 30 days; return the ids"""
    create_parties(remote, NAMES)
    scenario = remote('build', function='create_scenario',
        kwargs={'name': "Welcome", 'unsubscribable': True})
    root = remote('build', function='create_activity',
        args=['marketing.automation.scenario,%s' % scenario],
        kwargs=email_values(name="Welcome e-mail", email_template=TEMPLATE))
    parent = 'marketing.automation.activity,%s' % root
    children = {key: remote('build', function='create_activity',
            args=[parent], kwargs=values) for key, values in [
            ('opened', email_values(name="Thanks", on='email_opened',
                    email_title="Thanks", email_template=THANKS)),
            ('clicked', {'name': "Clicked", 'on': 'email_clicked'}),
            ('not_opened', email_values(name="Reminder",
                    on='email_opened_not', delay=dt.timedelta(days=30))),
            ]}
    remote('call', model='marketing.automation.scenario', method='run',
        ids=[scenario])
    return {'scenario': scenario, 'root': root, **children}


def record_activities(remote, activity):
    "Return the record activities of the activity by party name"
    parties = {p['id']: p['name'] for p in remote(
            'read', model='party.party', domain=[], fields=['name'])}
    records = {r['id']: parties[int(r['record'].split(',')[1])]
        for r in remote('read', model='marketing.automation.record',
            domain=[], fields=['record'])}
    return {records[r['record']]: r for r in remote(
            'read', model='marketing.automation.record.activity',
            domain=[('activity', '=', activity)],
            fields=['record', 'state', 'at', 'email_opened',
                'email_clicked'])}


def statistics(remote, ids):
    "Return the counts of the root activity, its reporting and the scenario"
    counts = ['record_count', 'email_opened', 'email_clicked']
    activity, = remote('read', model='marketing.automation.activity',
        domain=[('id', '=', ids['root'])], fields=counts)
    reports = remote('read', model='marketing.automation.reporting.activity',
        domain=[('activity', '=', ids['root'])], fields=counts)
    scenario, = remote('read', model='marketing.automation.scenario',
        domain=[('id', '=', ids['scenario'])],
        fields=['record_count', 'record_count_blocked'])
    return {
        'activity': {k: activity[k] for k in counts},
        'reporting': {k: sum(r[k] for r in reports) for k in counts},
        'scenario': {k: v for k, v in scenario.items() if k != 'id'},
        }


def pixel_url(message):
    image, = MessageLinks(message).images
    return image


def link_url(message, text):
    "Return the href of the link of the message whose URL contains text"
    href, = [h for h in MessageLinks(message).hrefs if text in h]
    return href


def use_official(bin_, config, name, sink):
    """Build the database with the official module, send the e-mails,
    record events and leave the last e-mail queued; return the ids, the
    messages by address, the statistics and the reminders by party name"""
    admin(bin_, config, name, '--all', '--email', 'admin@example.com')
    admin(bin_, config, name, '-u', 'marketing_automation',
        '--activate-dependencies')
    with Remote('official', bin_, config, name) as official:
        assert official('module').startswith(os.path.dirname(bin_))
        ids = create_scenario(official)
        official('cron', xml_id='cron_scenario_trigger')
        official('cron', xml_id='cron_record_activity_process')
        messages = wait_messages(sink, len(NAMES))

        # Ann opens her e-mail and Bob clicks the link of his
        pixel = official('request', method='GET',
            path=path_of(pixel_url(messages[_address('Ann')])))
        assert pixel['status'] == HTTPStatus.MOVED_PERMANENTLY, pixel
        click = official('request', method='GET',
            path=path_of(link_url(messages[_address('Bob')], '/s/')))
        assert click['status'] == HTTPStatus.MOVED_PERMANENTLY, click

        create_parties(official, [LATE])
        official('cron', xml_id='cron_scenario_trigger')
        official('cron', xml_id='cron_record_activity_process', queue='keep')
        assert not sink.messages
        return (ids, messages, statistics(official, ids),
            record_activities(official, ids['not_opened']))


def check_old_pixel(ours, message):
    "The old pixel leads to our GIF"
    redirect = ours('request', method='GET', path=path_of(pixel_url(message)))
    assert redirect['status'] == HTTPStatus.MOVED_PERMANENTLY, redirect
    gif = ours('request', method='GET',
        path=path_of(redirect['headers']['Location']))
    assert gif['status'] == HTTPStatus.OK, gif
    assert gif['headers']['Content-Type'] == 'image/gif'
    assert gif['body'].startswith('GIF89a')


def check_old_click(ours, message):
    "The old tracked link redirects to the destination"
    click = ours('request', method='GET',
        path=path_of(link_url(message, '/s/')))
    assert click['status'] == HTTPStatus.MOVED_PERMANENTLY, click
    assert click['headers']['Location'] == location(SHOP_URL)


def check_old_unsubscribe(ours, message, flags):
    "The old unsubscribe link shows the page (GET) and unsubscribes (POST)"
    path = path_of(link_url(message, '/unsubscribe'))
    page = ours('request', method='GET', path=path)
    assert page['status'] == HTTPStatus.OK, page
    assert page['headers']['Content-Type'].startswith('text/html')
    assert '<form' in page['body']
    assert flags() == {'blocked': False, 'unsubscribed': False}
    done = ours('request', method='POST', path=path)
    # The next page is the one written in the template of the e-mail
    assert done['status'] == HTTPStatus.SEE_OTHER, done
    assert done['headers']['Location'] == 'https://shop.example/bye'
    assert flags() == {'blocked': True, 'unsubscribed': True}


def check_new_pixel(ours, message):
    "The pixel of an e-mail sent by our module is ours"
    url = pixel_url(message)
    assert '/o/' in url
    gif = ours('request', method='GET', path=path_of(url))
    assert gif['status'] == HTTPStatus.OK, gif
    assert gif['body'].startswith('GIF89a')


def unsubscribe_flags(ours, ids, name):
    "Return whether the record of the party is blocked and unsubscribed"
    party, = ours('read', model='party.party', domain=[('name', '=', name)],
        fields=['marketing_scenario_unsubscribed'])
    record, = ours('read', model='marketing.automation.record',
        domain=[('record', '=', 'party.party,%s' % party['id'])],
        fields=['blocked'])
    return {
        'blocked': record['blocked'],
        'unsubscribed': (
            ids['scenario'] in party['marketing_scenario_unsubscribed']),
        }


def names_where(record_activities, **values):
    "Return the names of the record activities with the values"
    return {n for n, r in record_activities.items()
        if all(r[k] == v for k, v in values.items())}


def test_swap(tmp_path):
    "Test our module takes over a database of the official module"
    official_bin = official_venv(tmp_path)
    with SMTPSink() as sink, database(tmp_path) as name:
        config = write_config(tmp_path, sink)
        ids, messages, before, reminders = use_official(
            official_bin, config, name, sink)
        assert before['activity'] == before['reporting'] == {
            'record_count': 6, 'email_opened': 1, 'email_clicked': 1}
        assert before['scenario'] == {
            'record_count': 7, 'record_count_blocked': 0}

        update = admin(
            OUR_BIN, config, name, '-v', '-u', 'marketing_automation')
        assert not [line for line in update.stderr.splitlines()
            if ' WARNING ' in line or ' ERROR ' in line
            or 'Traceback' in line], update.stderr

        with Remote('ours', OUR_BIN, config, name) as ours:
            assert ours('module').startswith(ROOT)
            modules = ours('read', model='ir.module',
                domain=[('name', 'in', [
                            'marketing_automation', 'web_shortener'])],
                fields=['state'])
            assert [m['state'] for m in modules] == ['activated'] * 2

            # The batch queued by the official module: Gus's e-mail, Ann's
            # thanks for opening and Bob's activity for clicking
            assert ours('worker') == {'methods': ['do'], 'failed': []}
            queued = wait_messages(sink, 2)
            assert {a: str(m['Subject']) for a, m in queued.items()} == {
                _address('Ann'): "Thanks", _address(LATE): "Hello Gus"}
            check_new_pixel(ours, queued[_address(LATE)])

            check_old_pixel(ours, messages[_address('Carol')])
            check_old_click(ours, messages[_address('Dave')])
            check_old_unsubscribe(ours, messages[_address('Eve')],
                lambda: unsubscribe_flags(ours, ids, 'Eve'))
            sent = record_activities(ours, ids['root'])
            assert names_where(sent, email_opened=True) == {
                'Ann', 'Carol', 'Dave', LATE}
            assert names_where(sent, email_clicked=True) == {'Bob', 'Dave'}

            ours('cron', xml_id='cron_record_activity_process')
            thanks = wait_messages(sink, 3)
            assert set(thanks) == {
                _address(n) for n in ['Carol', 'Dave', LATE]}
            assert names_where(record_activities(ours, ids['clicked']),
                state='done') == {'Bob', 'Dave'}
            after_reminders = record_activities(ours, ids['not_opened'])
            assert names_where(after_reminders, state='waiting') == {
                'Bob', 'Eve', 'Fay'}
            assert after_reminders['Fay'] == reminders['Fay']

            after = statistics(ours, ids)
            # Counted for the funnel when the update created the counts
            enrolled = ours('read',
                model='marketing.automation.statistics.enrolled',
                domain=[('scenario', '=', ids['scenario'])],
                fields=['record_count'])
        assert after['activity'] == after['reporting'] == {
            'record_count': before['activity']['record_count'] + 1,
            'email_opened': before['activity']['email_opened'] + 3,
            'email_clicked': before['activity']['email_clicked'] + 1,
            }
        assert after['scenario'] == {
            'record_count': before['scenario']['record_count'],
            'record_count_blocked': 1,
            }
        assert sum(e['record_count'] for e in enrolled) == (
            before['scenario']['record_count'])
