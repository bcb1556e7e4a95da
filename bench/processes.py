# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The trytond-worker and trytond-cron processes of a run (PostgreSQL)

The processes get a session of their own, so that stopping one stops its
children; their output goes to <database>-worker-K.log and
<database>-cron-K.log in the results directory."""
import datetime as dt
import os
import resource
import signal
import subprocess
import time

from checks import check
from database import BIN_DIR
from measure import descendants, peak_rss_mb, processes_cpu


class TrytonProcesses:
    "Start, wait for and measure the trytond processes of the database"

    def __init__(self, db):
        self.db = db
        self.running = []

    def popen(self, command, log_name, *arguments):
        log = open(os.path.join(self.db.results, '%s-%s.log' % (
                    self.db.name, log_name)), 'a')
        process = subprocess.Popen(
            [os.path.join(BIN_DIR, command),
                '-c', self.db.config_file, '-d', self.db.name, *arguments],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return process, log

    def run_crons(self, cron_ids):
        "Run each cron from its own trytond-cron process, all at once"
        cron = self.db.table('ir.cron')
        past = dt.datetime.now() - dt.timedelta(minutes=1)
        placeholders = ', '.join(['%s'] * len(cron_ids))
        self.db.sql('UPDATE %s SET next_call = %%s WHERE id IN (%s)' % (
                cron, placeholders), (past, *cron_ids), fetch=False)
        crons = [self.popen('trytond-cron', 'cron-%s' % k,
                '--once', '-n', '1', '-v') for k in range(len(cron_ids))]
        for process, log in crons:
            status = process.wait()
            log.close()
            check(status == 0, "trytond-cron exited with %s", status)
        rows = self.db.sql('SELECT COUNT(*) FROM %s WHERE id IN (%s) '
            'AND next_call <= %%s' % (cron, placeholders),
            (*cron_ids, dt.datetime.now()))
        check(rows[0][0] == 0, "%s crons did not run", rows[0][0])

    def start_workers(self, count):
        "Start count trytond-worker processes and wait until they are ready"
        for k in range(count):
            self.running.append(self.popen(
                    'trytond-worker', 'worker-%s' % k, '-n', '1', '-v'))
        # Tasks that do nothing: the workers are ready once they ran them
        from trytond.transaction import Transaction
        RecordActivity = self.db.pool.get(
            'marketing.automation.record.activity')
        with Transaction().start(self.db.name, 0):
            for _ in range(count * 2):
                RecordActivity.__queue__.process(RecordActivity.browse([]))
        self.wait_queue(timeout=120)

    def wait_queue(self, timeout=3600):
        """Wait until the workers finished every task and handed every
        e-mail to the SMTP server"""
        queue = self.db.table('ir.queue')
        # The messages leave after the commit of the task that finishes it
        record_activity = self.db.table(
            'marketing.automation.record.activity')
        deadline = time.monotonic() + timeout
        while True:
            (pending,), = self.db.sql(
                'SELECT COUNT(*) FROM %s WHERE finished_at IS NULL' % queue)
            if not pending:
                (pending,), = self.db.sql('SELECT COUNT(*) FROM %s '
                    "WHERE email_handoff IN ('pending', 'sending')"
                    % record_activity)
            if not pending:
                break
            for process, _ in self.running:
                check(process.poll() is None,
                    "trytond-worker %s exited with %s",
                    process.pid, process.returncode)
            check(time.monotonic() < deadline,
                "%s tasks still pending after %ss", pending, timeout)
            time.sleep(0.05)

    def pids(self):
        "Return the ids of the running processes and of their children"
        return [p for process, _ in self.running
            for p in [process.pid] + descendants(process.pid)]

    def cpu(self):
        "Return the CPU seconds used by the worker and cron processes"
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime + processes_cpu(self.pids())

    def peak_rss(self):
        "Return the largest peak RSS of the running processes in MB or None"
        peaks = [p for p in map(peak_rss_mb, self.pids()) if p]
        return max(peaks) if peaks else None

    def stop(self):
        for process, log in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, log in self.running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
        self.running = []
