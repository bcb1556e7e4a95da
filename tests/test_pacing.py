# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Tests of pacing: send windows and the frequency cap across scenarios"
import datetime as dt
import unittest
from types import SimpleNamespace

from trytond.modules.marketing_automation.pacing import next_window_start
from trytond.pool import Pool
from trytond.tests.test_tryton import activate_module, with_transaction

from .builders import (
    create_activity, create_party, create_scenario, email_values, enrol)

# A Saturday, 10:00 UTC
SATURDAY = dt.datetime(2026, 11, 28, 10, 0)


def window(weekdays=(), start=None, end=None):
    return SimpleNamespace(
        send_weekdays=[str(d) for d in weekdays],
        send_time_from=start, send_time_to=end)


class NextWindowStartTestCase(unittest.TestCase):
    "Test when the next send window opens"

    def test_no_window(self):
        self.assertIsNone(next_window_start(window(), 'UTC', SATURDAY))

    def test_open(self):
        self.assertIsNone(next_window_start(
                window(range(7), dt.time(9), dt.time(17)), 'UTC', SATURDAY))

    def test_weekend_waits_for_monday(self):
        self.assertEqual(
            next_window_start(
                window(range(5), dt.time(9), dt.time(17)), 'UTC', SATURDAY),
            dt.datetime(2026, 11, 30, 9, 0))

    def test_after_hours_waits_for_next_day(self):
        self.assertEqual(
            next_window_start(
                window((), dt.time(8), dt.time(9, 30)), 'UTC', SATURDAY),
            dt.datetime(2026, 11, 29, 8, 0))

    def test_before_hours_waits_for_today(self):
        self.assertEqual(
            next_window_start(window((), dt.time(14)), 'UTC', SATURDAY),
            dt.datetime(2026, 11, 28, 14, 0))

    def test_time_zone(self):
        # 10:00 UTC is 11:00 in Paris in November: before noon
        self.assertEqual(
            next_window_start(
                window((), dt.time(12)), 'Europe/Paris', SATURDAY),
            dt.datetime(2026, 11, 28, 11, 0))

    def test_unknown_time_zone_is_utc(self):
        self.assertEqual(
            next_window_start(window((), dt.time(14)), 'Nowhere', SATURDAY),
            dt.datetime(2026, 11, 28, 14, 0))


class PacingTestCase(unittest.TestCase):
    "Test the pacing of the engine"

    @classmethod
    def setUpClass(cls):
        activate_module('marketing_automation')

    def scenario(self, name, transactional=False, **values):
        scenario = create_scenario(
            name=name, domain='[["name", "=", "Ann"]]', **values)
        email = create_activity(
            scenario, **email_values(transactional=transactional))
        return scenario, email

    def state(self, email):
        RecordActivity = Pool().get('marketing.automation.record.activity')
        record_activity, = RecordActivity.search(
            [('activity', '=', email.id)])
        return record_activity

    def process(self):
        RecordActivity = Pool().get('marketing.automation.record.activity')
        RecordActivity.process(RecordActivity.search([
                    ('state', '=', 'waiting'),
                    ], order=[('id', 'ASC')]))

    def set_cap(self, cap, period=dt.timedelta(days=7)):
        Configuration = Pool().get('marketing.automation.configuration')
        Configuration.write([Configuration(1)], {
                'email_cap': cap, 'email_cap_period': period})

    @with_transaction()
    def test_cap_across_scenarios(self):
        "Test the cap postpones the e-mail of a second scenario"
        create_party("Ann", 'ann@example.com')
        self.set_cap(1)
        first, first_email = self.scenario("First")
        second, second_email = self.scenario("Second")
        enrol(first)
        enrol(second)

        self.process()

        sent, postponed = self.state(first_email), self.state(second_email)
        self.assertEqual((sent.state, sent.note), ('done', None))
        self.assertEqual(postponed.state, 'waiting')
        # Both are decided in the same run
        self.assertLessEqual(
            abs(postponed.at - (sent.at + dt.timedelta(days=7))),
            dt.timedelta(seconds=2))

    @with_transaction()
    def test_cap_counts_past_emails(self):
        "Test the cap waits for the oldest e-mail of the period"
        create_party("Ann", 'ann@example.com')
        self.set_cap(1, dt.timedelta(days=7))
        first, first_email = self.scenario("First")
        enrol(first)
        self.process()
        sent = self.state(first_email)
        sent_at = sent.at - dt.timedelta(days=5)
        # As if it was sent 5 days ago
        sent.__class__.write([sent], {'at': sent_at})
        second, second_email = self.scenario("Second")
        enrol(second)

        self.process()

        self.assertEqual(
            self.state(second_email).at, sent_at + dt.timedelta(days=7))

    @with_transaction()
    def test_no_cap(self):
        "Test every e-mail goes without a cap"
        create_party("Ann", 'ann@example.com')
        first, first_email = self.scenario("First")
        second, second_email = self.scenario("Second")
        enrol(first)
        enrol(second)

        self.process()

        self.assertEqual(self.state(first_email).state, 'done')
        self.assertEqual(self.state(second_email).state, 'done')

    @with_transaction()
    def test_transactional_not_capped(self):
        "Test a transactional e-mail ignores and does not use the cap"
        create_party("Ann", 'ann@example.com')
        self.set_cap(1)
        order, order_email = self.scenario("Order", transactional=True)
        news, news_email = self.scenario("News")
        enrol(order)
        enrol(news)

        self.process()

        self.assertEqual(self.state(order_email).state, 'done')
        self.assertEqual(self.state(news_email).state, 'done')

    @with_transaction()
    def test_window_postpones(self):
        "Test an e-mail due outside the send window waits for it"
        create_party("Ann", 'ann@example.com')
        now = dt.datetime.now()
        tomorrow = (now + dt.timedelta(days=1)).weekday()
        scenario, email = self.scenario(
            "Window", send_weekdays=[str(tomorrow)])
        enrol(scenario)

        self.process()

        record_activity = self.state(email)
        self.assertEqual(record_activity.state, 'waiting')
        self.assertEqual(record_activity.at, scenario.next_send_window)
        self.assertEqual(
            record_activity.at.date(), (now + dt.timedelta(days=1)).date())
