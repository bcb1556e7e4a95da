# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Concurrent cron runs on PostgreSQL enrol and send exactly once"
import threading
import unittest

import trytond.config as config
from trytond import backend
from trytond.modules.marketing_automation.testing import SMTPSink
from trytond.pool import Pool
from trytond.tests.test_tryton import DB_NAME, activate_module
from trytond.transaction import Transaction

from .builders import delete_scenario

PARTIES = 60


@unittest.skipUnless(
    backend.name == 'postgresql',
    "concurrent transactions need PostgreSQL (SQLite serializes writers)")
class ConcurrencyTestCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        activate_module(['marketing_automation'])
        cls.smtp = SMTPSink().start()
        cls.previous_uri = config.get('email', 'uri')
        config.set('email', 'uri', cls.smtp.uri)

    @classmethod
    def tearDownClass(cls):
        config.set('email', 'uri', cls.previous_uri)
        cls.smtp.stop()

    def setUp(self):
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Party = pool.get('party.party')
            Scenario = pool.get('marketing.automation.scenario')
            Activity = pool.get('marketing.automation.activity')
            parties = Party.create([{
                        'name': 'Concurrent %s' % i,
                        'contact_mechanisms': [('create', [{
                                        'type': 'email',
                                        'value': 'c%s@example.com' % i,
                                        }])],
                        } for i in range(PARTIES)])
            self.party_ids = [p.id for p in parties]
            scenario, = Scenario.create([{
                        'name': "Concurrent",
                        'model': 'party.party',
                        'domain': '[["name", "like", "Concurrent %"]]',
                        }])
            Activity.create([{
                        'name': "Mail",
                        'parent': str(scenario),
                        'action': 'send_email',
                        'email_title': "Hello ${record.name}",
                        'email_template': '<html><body>Hi</body></html>',
                        }])
            Scenario.run([scenario])
            self.scenario_id = scenario.id
            transaction.commit()
        self.smtp.pop()

    def tearDown(self):
        with Transaction().start(DB_NAME, 0) as transaction:
            delete_scenario(self.scenario_id, self.party_ids)
            transaction.commit()

    def run_concurrently(self, function, count=2):
        "Run function in count transactions started together"
        barrier = threading.Barrier(count)
        errors = []

        def target():
            try:
                for attempt in range(10):
                    with Transaction().start(DB_NAME, 0) as transaction:
                        if not attempt:
                            # Both snapshots are taken before either commits
                            Pool().get('ir.model').search([], limit=1)
                            barrier.wait(timeout=30)
                        try:
                            function()
                            transaction.commit()
                            return
                        except backend.DatabaseOperationalError:
                            transaction.rollback()
                raise AssertionError("too many retries")
            except Exception as exception:
                errors.append(exception)
        threads = [threading.Thread(target=target) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        self.assertEqual(errors, [])

    def test_concurrent_trigger(self):
        "Test two concurrent triggers enrol each record once"
        def trigger():
            Pool().get('marketing.automation.scenario').trigger()
        self.run_concurrently(trigger)

        with Transaction().start(DB_NAME, 0):
            pool = Pool()
            Record = pool.get('marketing.automation.record')
            RecordActivity = pool.get('marketing.automation.record.activity')
            records = Record.search([('scenario', '=', self.scenario_id)])
            self.assertEqual(len(records), PARTIES)
            self.assertEqual(len({r.record for r in records}), PARTIES)
            self.assertEqual(RecordActivity.search([
                        ('record.scenario', '=', self.scenario_id),
                        ], count=True), PARTIES)

    def test_concurrent_process(self):
        "Test two concurrent process runs send each e-mail once"
        with Transaction().start(DB_NAME, 0) as transaction:
            Pool().get('marketing.automation.scenario').trigger()
            transaction.commit()
        with Transaction().start(DB_NAME, 0):
            RecordActivity = Pool().get(
                'marketing.automation.record.activity')
            ids = [r.id for r in RecordActivity.search([
                        ('record.scenario', '=', self.scenario_id)])]

        def process():
            RecordActivity = Pool().get(
                'marketing.automation.record.activity')
            RecordActivity.process(RecordActivity.browse(ids))
        self.run_concurrently(process)

        messages = self.smtp.pop()
        recipients = [m['To'] for m in messages]
        self.assertEqual(len(recipients), PARTIES)
        self.assertEqual(len(set(recipients)), PARTIES)
        with Transaction().start(DB_NAME, 0):
            RecordActivity = Pool().get(
                'marketing.automation.record.activity')
            self.assertEqual(
                {r.state for r in RecordActivity.browse(ids)}, {'done'})
