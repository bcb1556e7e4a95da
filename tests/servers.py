# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""A real trytond server on an SQLite database file, for the tests that
talk to it over HTTP as recipients and providers do"""
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trytond.modules.marketing_automation.testing import free_port

BIN = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 60
# What a script run by Server.script starts with: the configuration of the
# server, its pool and the data builders
SCRIPT_HEAD = '''
import sys
import trytond.config as config
config.update_etc(sys.argv[1])
from trytond.pool import Pool
from trytond.transaction import Transaction

from tests.builders import (
    create_activity, create_party, create_scenario, email_values, enrol,
    process_due)

database = sys.argv[2]
Pool.start()
pool = Pool(database)
with Transaction().start(database, 0, readonly=True):
    pool.init()
'''


@dataclass
class Server:
    "A running trytond server and how to reach it"
    base: str
    config: Path
    database: str
    database_path: Path
    env: dict
    log: Path
    process: subprocess.Popen

    def script(self, body, *args):
        """Run the body of a script after SCRIPT_HEAD, with the configuration
        file, the database name and args as arguments"""
        return run([sys.executable, '-c', SCRIPT_HEAD + body,
                str(self.config), self.database, *args], self.env, cwd=ROOT)


def query(database_path, sql, *args):
    "Return the rows of an SQL query on an SQLite database file"
    with sqlite3.connect(database_path) as connection:
        return connection.execute(sql, args).fetchall()


def run(args, env, **kwargs):
    "Run a command; fail with its output unless it succeeds"
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=600,
        **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def wait(predicate, process=None, log=None, timeout=TIMEOUT):
    "Wait until predicate() is true; fail if the process ends first"
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or (
                process is not None and process.poll() is not None):
            raise AssertionError(log.read_text() if log else "timeout")
        time.sleep(0.2)


def answers(url):
    "Tell if the server answers at url, whatever the status"
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError as error:
        error.close()
        return True
    except OSError:
        return False


@contextmanager
def trytond_server(
        directory, database, modules, email_uri, email_from, marketing=()):
    """Create the database with the modules activated and serve it

    marketing are more lines of the [marketing] section than the base of
    the links."""
    (directory / 'db').mkdir()
    database_path = directory / 'db' / (database + '.sqlite')
    database_path.touch()
    (directory / 'passfile').write_text('a-long-admin-password\n')
    port = free_port()
    base = 'http://127.0.0.1:%s' % port
    config = directory / 'trytond.conf'
    config.write_text('\n'.join([
                '[database]',
                'uri = sqlite://',
                'path = %s' % (directory / 'db'),
                '[web]',
                'listen = 127.0.0.1:%s' % port,
                '[email]',
                'uri = %s' % email_uri,
                'from = %s' % email_from,
                '[marketing]',
                'automation_base = %s' % base,
                *marketing,
                '']))
    env = {k: v for k, v in os.environ.items()
        if not k.startswith('TRYTON') and k not in {'DB_NAME', 'DB_CACHE'}}
    env['TRYTONPASSFILE'] = str(directory / 'passfile')
    admin = [os.path.join(BIN, 'trytond-admin'), '-c', str(config),
        '-d', database]
    log_path = directory / 'trytond.log'
    process = None
    with open(log_path, 'w') as log:
        try:
            run(admin + ['--all', '--email', 'admin@example.com'], env)
            run(admin + ['-u', *modules, '--activate-dependencies'], env)
            process = subprocess.Popen(
                [os.path.join(BIN, 'trytond'), '-c', str(config),
                    '-d', database],
                env=env, stdout=log, stderr=subprocess.STDOUT)
            wait(lambda: answers(base + '/m/empty.gif'), process, log_path)
            yield Server(
                base=base, config=config, database=database,
                database_path=database_path, env=env, log=log_path,
                process=process)
        finally:
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
