# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""trytond served as in production: trytond.application:app under gunicorn

gunicorn runs K pre-forked synchronous worker processes, each importing
trytond.application, which loads the pool of the databases named by
TRYTOND_DATABASE_NAMES before accepting requests.  The server gets a
session of its own, so that stopping it stops its workers; its output goes
to <database>-server.log in the results directory.

With BENCH_SERVER_PROFILE=1 in the environment, each worker runs under
cProfile and writes <database>-server-<pid>.prof in the results directory
when it stops."""
import os
import signal
import socket
import subprocess
import time

from checks import check
from database import BIN_DIR
from measure import cpu_by_process, descendants, peak_rss_mb, processes_cpu

HOST = '127.0.0.1'
# The host of the links of the e-mails (workload.BASE_URL)
VIRTUAL_HOST = 'bench.example.com'
READY_PATH = '/m/empty.gif'
PROFILE_HOOKS = """
import cProfile
import os


def post_worker_init(worker):
    worker.profile = cProfile.Profile()
    worker.profile.enable()


def worker_exit(server, worker):
    worker.profile.disable()
    worker.profile.dump_stats(os.path.join(
            %r, '%s-server-%%s.prof' %% os.getpid()))
"""


def control_socket_options():
    "Return the options disabling the control socket of recent gunicorns"
    # Shared by the servers of the runs at the same time, in $HOME
    from gunicorn.config import KNOWN_SETTINGS
    if any(s.name == 'control_socket_disable' for s in KNOWN_SETTINGS):
        return ['--no-control-socket']
    return []


class TrytonServer:
    "Start, wait for, measure and stop trytond under gunicorn"

    def __init__(self, db, processes, port):
        self.db = db
        self.processes = processes
        self.port = port
        self.process = None
        self.log = None

    def start(self, timeout=180):
        "Start the server and wait until every worker answers"
        self.log = open(os.path.join(
                self.db.results, '%s-server.log' % self.db.name), 'a')
        env = dict(os.environ,
            TRYTOND_CONFIG=self.db.config_file,
            TRYTOND_DATABASE_NAMES=self.db.name)
        options = control_socket_options()
        if os.environ.get('BENCH_SERVER_PROFILE'):
            hooks = os.path.join(
                self.db.results, '%s-profile.py' % self.db.name)
            with open(hooks, 'w') as fp:
                fp.write(PROFILE_HOOKS % (self.db.results, self.db.name))
            options += ['--config', hooks]
        self.process = subprocess.Popen([
                os.path.join(BIN_DIR, 'gunicorn'),
                '--workers', str(self.processes),
                '--worker-class', 'sync',
                '--bind', '%s:%s' % (HOST, self.port),
                # The clients connect all at once
                '--backlog', '2048',
                '--timeout', '120',
                '--graceful-timeout', '10',
                '--error-logfile', '-',
                *options,
                'trytond.application:app'],
            env=env, cwd=self.db.results, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout):
        """Wait until every worker loaded the pool: the server answers and
        its K workers are idle"""
        deadline = time.monotonic() + timeout
        while True:
            check(self.process.poll() is None,
                "the trytond server exited with %s (see its log)",
                self.process.returncode)
            check(time.monotonic() < deadline,
                "the trytond server is not ready after %ss", timeout)
            if self.ping() == 200 and self.workers_idle():
                return
            time.sleep(0.2)

    def workers_idle(self):
        "Tell if the K workers run and none of them works for a moment"
        workers = self.pids()[1:]
        if len(workers) != self.processes:
            return False
        before = cpu_by_process(workers)
        time.sleep(0.5)
        after = cpu_by_process(workers)
        return len(after) == self.processes and all(
            after[p] - before.get(p, 0) < 0.05 for p in after)

    def ping(self):
        "Return the status of a request of the empty GIF or None"
        try:
            with socket.create_connection((HOST, self.port), timeout=30) as s:
                s.sendall(('GET %s HTTP/1.1\r\nHost: %s\r\n'
                        'Connection: close\r\n\r\n' % (
                            READY_PATH, VIRTUAL_HOST)).encode())
                head = s.recv(64)
        except OSError:
            return None
        parts = head.split(b' ', 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    def pids(self):
        "Return the ids of the master and worker processes"
        if not self.process:
            return []
        return [self.process.pid] + descendants(self.process.pid)

    def cpu(self):
        "Return the CPU seconds used so far by the running processes"
        return processes_cpu(self.pids())

    def peak_rss(self):
        "Return the largest peak RSS of the workers in MB or None"
        peaks = [p for p in map(peak_rss_mb, self.pids()[1:]) if p]
        return max(peaks) if peaks else None

    def stop(self):
        "Stop the master and its workers gracefully, then for good"
        if not self.process:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()
        self.process = None
