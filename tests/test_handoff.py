# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The hand-off of the e-mails to the SMTP server: never lost silently,
never sent twice

The unit tests replace trytond's SMTP connections with a fake and commit
for real (the messages leave at the commit); the last test kills a
trytond-cron process in the middle of a batch on PostgreSQL."""
import asyncio
import datetime as dt
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from collections import Counter
from contextlib import contextmanager
from unittest.mock import patch

import trytond.config as config
from trytond import backend
from trytond.model.exceptions import AccessButtonError
from trytond.modules.marketing_automation.smtp import wait_for_handoff
from trytond.modules.marketing_automation.testing import SMTPSink
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, activate_module
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_party, create_scenario, delete_scenario,
    email_values, enrol, marketing_user)

RECORD_ACTIVITY = 'marketing.automation.record.activity'
BIN = os.path.dirname(sys.executable)
PREFIX = "Handoff"


# The defaults of the keys the tests change
DEFAULTS = {
    'automation_handoff_background': 'False',
    'automation_handoff_chunk': '50',
    'automation_handoff_timeout': '900',
    }


@contextmanager
def marketing_config(**values):
    "Set the [marketing] keys for the block"
    if not config.has_section('marketing'):
        config.add_section('marketing')
    previous = {
        k: config.get('marketing', k, default=DEFAULTS[k]) for k in values}
    for key, value in values.items():
        config.set('marketing', key, str(value))
    try:
        yield
    finally:
        for key, value in previous.items():
            config.set('marketing', key, value)


class FakeSMTP:
    """Stand for trytond's SMTP connections: keep the recipients of the
    messages, refuse some, or lose the connection for good at one"""

    uri = 'smtp://fake'

    def __init__(self, refuse=(), lose_at=None, down=False, on_send=None):
        self.refuse = set(refuse)
        self.lose_at = lose_at
        self.down = down
        self.on_send = on_send
        self.received = []

    def __call__(self, uri=None, strict=False):
        if self.down:
            raise ConnectionRefusedError("Connection refused")
        return self

    def send_message(self, msg, from_addr=None, to_addrs=None):
        recipient, = to_addrs
        if self.on_send:
            self.on_send(recipient)
        if self.lose_at == len(self.received) + 1:
            self.down = True
            raise smtplib.SMTPServerDisconnected("Connection lost")
        if recipient in self.refuse:
            raise smtplib.SMTPRecipientsRefused({recipient: (550, b"No")})
        self.received.append(recipient)
        return {}

    def quit(self):
        pass

    def close(self):
        pass


def address(i):
    return 'handoff%s@example.com' % i


def handoffs():
    """Return {address: (state, email_handoff, tries)} of the e-mails, as
    committed"""
    with Transaction(new=True).start(DB_NAME, 0):
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        return {
            r.record.record.email: (r.state, r.email_handoff, r.tries)
            for r in RecordActivity.search([
                    ('record.scenario.name', '=', PREFIX),
                    ('activity.action', '=', 'send_email'),
                    ])}


class HandOffTestCase(unittest.TestCase):
    "The states of the hand-off as the SMTP server answers"

    @classmethod
    def setUpClass(cls):
        activate_module(['marketing_automation'])

    def setUp(self):
        with Transaction().start(DB_NAME, 0) as transaction:
            self.parties = [
                create_party('%s %s' % (PREFIX, i), address(i)).id
                for i in range(5)]
            scenario = create_scenario(
                name=PREFIX, domain='[["name", "like", "%s %%"]]' % PREFIX)
            email = create_activity(scenario, **email_values())
            self.child = create_activity(
                email, name="Opened", on='email_opened').id
            enrol(scenario)
            self.scenario = scenario.id
            transaction.commit()

    def tearDown(self):
        with Transaction().start(DB_NAME, 0) as transaction:
            delete_scenario(self.scenario, self.parties)
            transaction.commit()

    def process(self, smtp, **values):
        "Run the waiting e-mails of the scenario through smtp and commit"
        with marketing_config(automation_handoff_chunk=2, **values), \
                patch('trytond.sendmail.get_smtp_server', smtp), \
                Transaction().start(DB_NAME, 0) as transaction:
            RecordActivity = Pool().get(RECORD_ACTIVITY)
            RecordActivity.process(RecordActivity.search([
                        ('record.scenario', '=', self.scenario),
                        ('activity', '!=', self.child),
                        ('state', '=', 'waiting'),
                        ]))
            transaction.commit()

    def recover(self, timeout):
        # Also called while the e-mails are sent, in the transaction of the
        # hand-off
        with marketing_config(automation_handoff_timeout=timeout), \
                Transaction(new=True).start(DB_NAME, 0) as transaction:
            Pool().get(RECORD_ACTIVITY).recover_handoffs()
            transaction.commit()

    def archived(self):
        with Transaction().start(DB_NAME, 0):
            Email = Pool().get('ir.email')
            return sorted(e.recipients for e in Email.search([
                        ('marketing_automation_record.scenario', '=',
                            self.scenario)]))

    def children(self):
        with Transaction().start(DB_NAME, 0):
            RecordActivity = Pool().get(RECORD_ACTIVITY)
            return RecordActivity.search([
                    ('activity', '=', self.child)], count=True)

    def test_sent_in_chunks(self):
        "Each chunk is recorded sending before it is sent, then sent"
        seen = []
        smtp = FakeSMTP(on_send=lambda a: seen.append(handoffs()))
        self.process(smtp)

        order = smtp.received
        self.assertEqual(sorted(order), [address(i) for i in range(5)])
        for i, states in enumerate(seen):
            expected = {
                a: ('sent' if j // 2 < i // 2
                    else 'sending' if j // 2 == i // 2 else 'pending')
                for j, a in enumerate(order)}
            self.assertEqual(
                {a: s[1] for a, s in states.items()}, expected, order[i])
        self.assertEqual(
            set(handoffs().values()), {('done', 'sent', 0)})
        with Transaction().start(DB_NAME, 0):
            Activity = Pool().get('marketing.automation.activity')
            email, = Activity.search([
                    ('scenario', '=', self.scenario),
                    ('action', '=', 'send_email')])
            self.assertEqual(email.email_sent, 5)

    def test_server_down(self):
        "Nothing reaches a server that is down: all wait for a retry"
        smtp = FakeSMTP(down=True)
        self.process(smtp)

        self.assertEqual(smtp.received, [])
        self.assertEqual(
            set(handoffs().values()), {('waiting', None, 1)})
        self.assertEqual(self.archived(), [])
        self.assertEqual(self.children(), 0)

    def test_refused_recipient(self):
        "A refused message waits for a retry; the others are sent"
        smtp = FakeSMTP(refuse={address(2)})
        self.process(smtp)

        self.assertEqual(len(smtp.received), 4)
        states = handoffs()
        self.assertEqual(states.pop(address(2)), ('waiting', None, 1))
        self.assertEqual(set(states.values()), {('done', 'sent', 0)})
        self.assertEqual(len(self.archived()), 4)
        self.assertEqual(self.children(), 4)

    def test_connection_lost(self):
        "A connection lost for good in a chunk: what follows waits"
        smtp = FakeSMTP(lose_at=3)
        self.process(smtp)

        self.assertEqual(len(smtp.received), 2)
        states = handoffs()
        self.assertEqual(
            {a: states.pop(a) for a in smtp.received},
            dict.fromkeys(smtp.received, ('done', 'sent', 0)))
        self.assertEqual(
            list(states.values()), [('waiting', None, 1)] * 3)

    @unittest.skipIf(backend.name == 'sqlite',
        "the hand-off runs in the background on PostgreSQL only")
    def test_handed_in_background(self):
        "In the background the batch commits and the process goes on first"
        release = threading.Event()
        smtp = FakeSMTP(refuse={address(3)},
            on_send=lambda a: release.wait(30))
        # Still there when the thread connects again after the refusal
        with patch('trytond.sendmail.get_smtp_server', smtp):
            try:
                self.process(smtp, automation_handoff_background=True)

                self.assertEqual(smtp.received, [])
                states = handoffs()
                self.assertEqual({s[0] for s in states.values()}, {'done'})
                self.assertLessEqual(
                    {s[1] for s in states.values()}, {'pending', 'sending'})
            finally:
                release.set()
                wait_for_handoff()

        self.assertEqual(
            sorted(smtp.received),
            [address(i) for i in range(5) if i != 3])
        states = handoffs()
        self.assertEqual(states.pop(address(3)), ('waiting', None, 1))
        self.assertEqual(set(states.values()), {('done', 'sent', 0)})
        self.assertEqual(self.children(), 4)

    @unittest.skipIf(backend.name != 'sqlite',
        "the hand-off runs in the background on other backends")
    def test_background_ignored_on_sqlite(self):
        "On SQLite the messages leave at the commit, in the background or not"
        smtp = FakeSMTP()
        self.process(smtp, automation_handoff_background=True)

        self.assertEqual(
            sorted(smtp.received), [address(i) for i in range(5)])
        self.assertEqual(set(handoffs().values()), {('done', 'sent', 0)})

    def test_unrecorded_chunk_not_sent(self):
        "A chunk that cannot be recorded as sending is not sent"
        RecordActivity = Pool(DB_NAME).get(RECORD_ACTIVITY)
        set_email_handoff = RecordActivity.set_email_handoff.__func__
        calls = Counter()

        def failing(cls, ids, step):
            calls[step] += 1
            if step == 'sending' and calls[step] == 2:
                raise RuntimeError("database gone")
            return set_email_handoff(cls, ids, step)
        smtp = FakeSMTP()
        with patch.object(RecordActivity, 'set_email_handoff',
                classmethod(failing)), \
                self.assertLogs(
                    'trytond.modules.marketing_automation.smtp', 'CRITICAL'):
            self.process(smtp)

        self.assertEqual(len(smtp.received), 2)
        self.assertEqual(
            Counter(s[1] for s in handoffs().values()),
            {'sent': 2, 'pending': 3})

        # Never attempted: scheduled again with no risk of a duplicate
        self.recover(900)
        self.assertEqual(
            Counter(s[1] for s in handoffs().values()),
            {'sent': 2, 'pending': 3})
        self.recover(0)
        self.assertEqual(
            Counter(handoffs().values()),
            {('done', 'sent', 0): 2, ('waiting', None, 0): 3})
        self.assertEqual(self.children(), 2)
        self.assertEqual(len(self.archived()), 2)

        self.process(smtp)
        self.assertEqual(
            sorted(smtp.received), [address(i) for i in range(5)])
        self.assertEqual(
            set(handoffs().values()), {('done', 'sent', 0)})
        self.assertEqual(self.children(), 5)

    def test_recovery_during_sending(self):
        "A process slower than the timeout never sends what was taken back"
        def recover_once(recipient):
            if not smtp.received:
                self.recover(0)
        smtp = FakeSMTP(on_send=recover_once)
        self.process(smtp)

        # The first chunk was being sent, the rest was pending
        self.assertEqual(len(smtp.received), 2)
        states = handoffs()
        self.assertEqual(
            {a: states.pop(a) for a in smtp.received},
            dict.fromkeys(smtp.received, ('done', 'interrupted', 0)))
        self.assertEqual(
            list(states.values()), [('waiting', None, 0)] * 3)

        self.process(smtp)
        self.assertEqual(
            sorted(smtp.received), [address(i) for i in range(5)])

    def test_interrupted_review(self):
        "An interrupted e-mail is confirmed sent or retried by the marketer"
        self.process(FakeSMTP())
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            RecordActivity = pool.get(RECORD_ACTIVITY)
            table = RecordActivity.__table__()
            cursor = transaction.connection.cursor()
            first, second, sent = RecordActivity.search([
                    ('record.scenario', '=', self.scenario),
                    ('activity', '!=', self.child),
                    ], order=[('id', 'ASC')], limit=3)
            ids = [first.id, second.id, sent.id]
            first_address, second_address = [
                r.record.record.email for r in [first, second]]
            # As a process killed while sending them an hour ago left them
            cursor.execute(*table.update(
                    [table.email_handoff, table.write_date],
                    ['sending', dt.datetime.now() - dt.timedelta(hours=1)],
                    where=table.id.in_(ids[:2])))
            User = pool.get('res.user')
            # Users are kept: a database server keeps the one of a former run
            user, = (User.search([('login', '=', 'handoff_marketer')])
                or [marketing_user('handoff_marketer')])
            transaction.commit()
        self.recover(900)
        states = handoffs()
        self.assertEqual(states[first_address], ('done', 'interrupted', 0))
        self.assertEqual(states[second_address], ('done', 'interrupted', 0))

        with Transaction().start(DB_NAME, user.id, context={
                    '_check_access': True}) as transaction:
            pool = Pool()
            RecordActivity = pool.get(RECORD_ACTIVITY)
            Activity = pool.get('marketing.automation.activity')
            first, second, sent = RecordActivity.browse(ids)
            self.assertIn("Interrupted", first.note)
            email = first.activity
            self.assertEqual(Activity(email.id).email_sent, 3)
            # A sent e-mail cannot be sent again
            with self.assertRaises(AccessButtonError):
                RecordActivity.retry([sent])
            RecordActivity.mark_sent([first])
            RecordActivity.retry([second])
            self.assertEqual(Activity(email.id).email_sent, 4)
            transaction.commit()
        states = handoffs()
        self.assertEqual(states[first_address], ('done', 'sent', 0))
        self.assertEqual(states[second_address], ('waiting', None, 0))
        self.assertEqual(len(self.archived()), 4)
        self.assertEqual(self.children(), 4)

        smtp = FakeSMTP()
        self.process(smtp)
        self.assertEqual(smtp.received, [second_address])
        self.assertEqual(set(handoffs().values()), {('done', 'sent', 0)})


class SlowSink(SMTPSink):
    """A real SMTP server that takes its time to accept each message and
    calls on_received with their number before answering"""

    def __init__(self, delay, on_received):
        super().__init__()
        self.delay = delay
        self.on_received = on_received

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.messages.extend(envelope.rcpt_tos)
            count = len(self.messages)
        self.on_received(count)
        await asyncio.sleep(self.delay)
        return '250 Message accepted for delivery'


@unittest.skipUnless(
    backend.name == 'postgresql',
    "trytond-cron and a transaction per chunk need a database server "
    "(PostgreSQL); SQLite in memory cannot be shared with a process")
class KilledProcessTestCase(unittest.TestCase):
    "A trytond-cron killed while sending a batch loses nothing silently"
    PARTIES = 60
    CHUNK = 10
    KILL_AT = 25

    @classmethod
    def setUpClass(cls):
        activate_module(['marketing_automation'])

    def setUp(self):
        self.directory = self.enterContext(tempfile.TemporaryDirectory())
        self.process = None
        self.killed = threading.Event()
        self.sink = SlowSink(0.01, self.kill_at).start()
        self.addCleanup(self.sink.stop)
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Cron = pool.get('ir.cron')
            self.parties = [
                create_party('%s %s' % (PREFIX, i), address(i)).id
                for i in range(self.PARTIES)]
            scenario = create_scenario(
                name=PREFIX, domain='[["name", "like", "%s %%"]]' % PREFIX)
            create_activity(scenario, **email_values())
            enrol(scenario)
            self.scenario = scenario.id
            self.next_calls = {c.id: c.next_call for c in Cron.search([])}
            Cron.write(Cron.search([]), {
                    'next_call': dt.datetime.now() + dt.timedelta(days=1)})
            transaction.commit()

    def tearDown(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Email = pool.get('ir.email')
            Scenario = pool.get('marketing.automation.scenario')
            Party = pool.get('party.party')
            Cron = pool.get('ir.cron')
            Email.delete(Email.search([
                        ('marketing_automation_record.scenario', '=',
                            self.scenario)]))
            Scenario.delete([Scenario(self.scenario)])
            Party.delete(Party.browse(self.parties))
            for cron_id, next_call in self.next_calls.items():
                Cron.write([Cron(cron_id)], {'next_call': next_call})
            transaction.commit()

    def kill_at(self, count):
        "Kill the process and its children while message count is taken"
        if count == self.KILL_AT and not self.killed.is_set():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.killed.set()

    def run_cron(self, method, **marketing):
        "Run the cron of method once in trytond-cron; return its status"
        with Transaction().start(DB_NAME, 0) as transaction:
            Cron = Pool().get('ir.cron')
            Cron.write(Cron.search([('method', '=', method)]), {
                    'next_call': dt.datetime.now() - dt.timedelta(minutes=1)})
            transaction.commit()
        path = os.path.join(self.directory, 'trytond.conf')
        with open(path, 'w') as file:
            file.write(textwrap.dedent('''\
                [database]
                uri = %s
                [email]
                uri = %s
                from = shop@example.com
                [marketing]
                ''' % (os.environ['TRYTOND_DATABASE_URI'], self.sink.uri)))
            for key, value in marketing.items():
                file.write('%s = %s\n' % (key, value))
        env = {k: v for k, v in os.environ.items()
            if not k.startswith('TRYTON') and k not in {'DB_NAME', 'DB_CACHE'}}
        with open(os.path.join(self.directory, 'cron.log'), 'a') as log:
            self.process = subprocess.Popen(
                [os.path.join(BIN, 'trytond-cron'), '-c', path,
                    '-d', DB_NAME, '--once', '-n', '1'],
                env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            return self.process.wait(timeout=300)

    def states(self):
        "Return [(address, state, email_handoff)] of the record activities"
        with Transaction().start(DB_NAME, 0):
            RecordActivity = Pool().get(RECORD_ACTIVITY)
            return [
                (r.record.record.email, r.state, r.email_handoff)
                for r in RecordActivity.search([
                        ('record.scenario', '=', self.scenario)])]

    def log(self):
        with open(os.path.join(self.directory, 'cron.log')) as log:
            return log.read()

    def test_killed_while_sending(self):
        "Kill trytond-cron mid-batch, recover, process again and count"
        process = 'marketing.automation.record.activity|process'
        status = self.run_cron(
            process, automation_handoff_chunk=self.CHUNK)
        self.assertEqual(status, -signal.SIGKILL, self.log())
        self.assertEqual(len(self.sink.messages), self.KILL_AT)
        # Two chunks sent, the third being sent, the others pending
        self.assertEqual(
            Counter((s, h) for _, s, h in self.states()), {
                ('done', 'sent'): 2 * self.CHUNK,
                ('done', 'sending'): self.CHUNK,
                ('done', 'pending'): self.PARTIES - 3 * self.CHUNK,
                })

        # A process may still be sending within the timeout
        with Transaction().start(DB_NAME, 0) as transaction:
            Pool().get(RECORD_ACTIVITY).recover_handoffs()
            transaction.commit()
        self.assertEqual(
            Counter(h for _, _, h in self.states())['sending'], self.CHUNK)

        self.assertEqual(self.run_cron(
                'marketing.automation.record.activity|recover_handoffs',
                automation_handoff_timeout=0), 0, self.log())
        self.assertEqual(self.run_cron(process), 0, self.log())

        received = Counter(self.sink.messages)
        states = self.states()
        self.assertEqual(len(states), self.PARTIES)
        self.assertEqual(max(received.values()), 1, "a duplicate")
        interrupted = [a for a, s, h in states if h == 'interrupted']
        self.assertLessEqual(len(interrupted), self.CHUNK)
        for address_, state, handoff in states:
            self.assertEqual(state, 'done')
            self.assertIn(handoff, {'sent', 'interrupted'}, address_)
            if handoff == 'sent':
                self.assertEqual(received[address_], 1, address_)
        # Those of the chunk the server took before the kill
        self.assertEqual(
            sum(received[a] for a in interrupted), self.KILL_AT % self.CHUNK)

        # The review: confirm what arrived, send again what did not
        self.addCleanup(config.set, 'email', 'uri', config.get('email', 'uri'))
        config.set('email', 'uri', self.sink.uri)
        with Transaction().start(DB_NAME, 0) as transaction:
            RecordActivity = Pool().get(RECORD_ACTIVITY)
            flagged = RecordActivity.search([
                    ('record.scenario', '=', self.scenario),
                    ('email_handoff', '=', 'interrupted')])
            arrived = [r for r in flagged
                if received[r.record.record.email]]
            RecordActivity.mark_sent(arrived)
            RecordActivity.retry([r for r in flagged if r not in arrived])
            RecordActivity.process(RecordActivity.search([
                        ('record.scenario', '=', self.scenario),
                        ('state', '=', 'waiting')]))
            transaction.commit()
        received = Counter(self.sink.messages)
        self.assertEqual(
            sorted(received), sorted(address(i) for i in range(self.PARTIES)))
        self.assertEqual(set(received.values()), {1})
        self.assertEqual(
            {(s, h) for _, s, h in self.states()}, {('done', 'sent')})
