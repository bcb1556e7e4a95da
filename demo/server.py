# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The moving parts of the demo: configuration, processes and outbox

Everything the demo writes lives in two directories next to this file,
both emptied at each run: ``db/`` (the SQLite database, the trytond
configuration, the admin password file and the logs of the processes) and
``outbox/`` (every e-mail received by the local SMTP server).
"""
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from trytond.modules.marketing_automation.testing import SMTPSink, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
DATABASE = 'demo'
ADMIN_EMAIL = 'admin@example.com'


def executable(name):
    "Return the path of a console script installed next to this Python"
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(candidate):
        return candidate
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(
            f"{name} is not installed next to {sys.executable}")
    return found


@dataclass
class Settings:
    "Where the demo writes and how its processes reach each other"
    directory: str = HERE
    database: str = DATABASE
    web_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    password: str = field(
        default_factory=lambda: secrets.token_urlsafe(12))
    sender: str = 'Blue Heron Coffee <hello@blueheron.example.com>'

    @property
    def db_dir(self):
        return os.path.join(self.directory, 'db')

    @property
    def outbox_dir(self):
        return os.path.join(self.directory, 'outbox')

    @property
    def config_file(self):
        return os.path.join(self.db_dir, 'trytond.conf')

    @property
    def passfile(self):
        return os.path.join(self.db_dir, 'passfile')

    @property
    def database_file(self):
        return os.path.join(self.db_dir, self.database + '.sqlite')

    @property
    def url(self):
        return f'http://127.0.0.1:{self.web_port}'

    def log(self, name):
        return os.path.join(self.db_dir, name + '.log')

    def configuration(self):
        "Return the text of the trytond configuration file"
        return '\n'.join([
                '# Written by demo/run.py: it is replaced at each run',
                '[database]',
                'uri = sqlite://',
                f'path = {self.db_dir}',
                '',
                '[web]',
                f'listen = 127.0.0.1:{self.web_port}',
                '',
                '[email]',
                f'uri = smtp://127.0.0.1:{self.smtp_port}',
                f'from = {self.sender}',
                '',
                '[marketing]',
                f'automation_base = {self.url}',
                '',
                '[queue]',
                # Queued tasks run at the end of the request or cron run
                'worker = False',
                '',
                ])

    def prepare(self):
        "Empty the directories and write the configuration and passfile"
        for path in [self.db_dir, self.outbox_dir]:
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)
        with open(self.config_file, 'w') as fp:
            fp.write(self.configuration())
        with open(self.passfile, 'w') as fp:
            fp.write(self.password + '\n')
        os.chmod(self.passfile, 0o600)
        # trytond only lists the SQLite databases whose file exists
        open(self.database_file, 'w').close()

    def environment(self):
        env = dict(os.environ)
        # The configuration file is the only source of settings
        for name in list(env):
            if name.startswith('TRYTOND_') or name == 'TRYTON_CONFIG':
                del env[name]
        env['TRYTONPASSFILE'] = self.passfile
        return env


class ProcessError(RuntimeError):
    "A process of the demo failed"

    def __init__(self, command, log):
        self.log = log
        tail = ''
        if log and os.path.exists(log):
            with open(log, errors='replace') as fp:
                tail = ''.join(fp.readlines()[-20:])
        super().__init__(
            f"{os.path.basename(command[0])} failed, see {log}\n{tail}")


def _stop(process, timeout=10):
    "Stop the process and the ones it started (its own session)"
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _run(settings, command, log_name):
    "Run the command to its end, its output going to the log"
    log = settings.log(log_name)
    with open(log, 'a') as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, env=settings.environment(),
            cwd=settings.directory,
            # Ctrl-C reaches the demo only, which stops the process itself
            start_new_session=True)
        try:
            returncode = process.wait()
        except BaseException:
            _stop(process)
            raise
    if returncode:
        raise ProcessError(command, log)


def create_database(settings, modules=('marketing_automation', 'sale')):
    """Initialise the database and activate the modules with trytond-admin

    French is loaded (and made translatable) next to English."""
    _run(settings, [
            executable('trytond-admin'), '-c', settings.config_file,
            '-d', settings.database, '--all',
            '-u', *modules, '--activate-dependencies',
            '-l', 'fr', '--email', ADMIN_EMAIL,
            ], 'admin')


def run_crons(settings):
    "Run the due crons once, as trytond-cron does every minute"
    _run(settings, [
            executable('trytond-cron'), '-c', settings.config_file,
            '-d', settings.database, '--once', '-n', '1',
            ], 'cron')


class Outbox:
    "The local SMTP server writing each message to outbox/NNNN.eml"

    def __init__(self, settings):
        self.directory = settings.outbox_dir
        self.sink = SMTPSink(port=settings.smtp_port, on_message=self._write)
        self.files = []
        self._lock = threading.Lock()

    def _write(self, raw, message):
        with self._lock:
            path = os.path.join(
                self.directory, '%04d.eml' % (len(self.files) + 1))
            with open(path, 'wb') as fp:
                fp.write(raw)
            self.files.append(path)

    def start(self):
        self.sink.start()
        return self

    def stop(self):
        self.sink.stop()

    def since(self, count):
        "Return the paths of the messages received after the first count"
        with self._lock:
            return self.files[count:]

    def __len__(self):
        with self._lock:
            return len(self.files)


class Server:
    "trytond serving JSON-RPC and the public routes of the module"

    def __init__(self, settings):
        self.settings = settings
        self.process = None
        self._log = None

    def start(self, timeout=60):
        settings = self.settings
        self._log = open(settings.log('trytond'), 'a')
        self.process = subprocess.Popen([
                executable('trytond'), '-c', settings.config_file,
                '-d', settings.database,
                '--pidfile', os.path.join(settings.db_dir, 'trytond.pid'),
                ], stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env=settings.environment(),
            cwd=settings.directory,
            # Ctrl-C reaches the demo only, which stops the server itself
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProcessError(
                    [executable('trytond')], settings.log('trytond'))
            try:
                with socket.create_connection(
                        ('127.0.0.1', settings.web_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ProcessError([executable('trytond')], settings.log('trytond'))

    def stop(self):
        process, self.process = self.process, None
        if process is not None:
            _stop(process)
        if self._log:
            self._log.close()
            self._log = None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None
