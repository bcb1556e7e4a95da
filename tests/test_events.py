# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Tests of the events of the public routes: the statement of a hit, the
pending events and their children scheduled by the next process"""
import datetime as dt
import unittest

from trytond.modules.marketing_automation import events, links
from trytond.pool import Pool
from trytond.pyson import PYSONEncoder
from trytond.tests.test_tryton import activate_module, with_transaction

from .builders import (
    create_activity, create_event_activities, create_party, create_scenario,
    email_values, enrol, mark_sent, sql_write)

RECORD_ACTIVITY = 'marketing.automation.record.activity'
URL = 'https://shop.example/product'


class EventsTestCase(unittest.TestCase):
    "Test the events of the public routes"

    @classmethod
    def setUpClass(cls):
        activate_module('marketing_automation')

    def sent(self, count=1):
        """Return the root record activities, sent, of count parties and
        the children activities by key"""
        parties = [create_party("Party %s" % i) for i in range(count)]
        scenario = create_scenario(domain=PYSONEncoder().encode(
                [('id', 'in', [p.id for p in parties])]))
        email = create_activity(scenario, name="E-mail", **email_values())
        children = create_event_activities(email)
        enrol(scenario)
        return mark_sent(email), children

    def child(self, root, activity):
        "Return the record activity of the activity for the record of root"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        child, = RecordActivity.search([
                ('record', '=', root.record.id),
                ('activity', '=', activity.id),
                ])
        return child

    def pending(self, root=None):
        "Return the (opened, clicked) of the pending events, of root if given"
        Event = Pool().get('marketing.automation.record.activity.event')
        domain = [('record_activity', '=', root.id)] if root else []
        return [(e.email_opened, e.email_clicked)
            for e in Event.search(domain, order=[('id', 'ASC')])]

    def link_clicks(self, activity):
        LinkClick = Pool().get('marketing.automation.link.click')
        return [(c.url, c.date) for c in LinkClick.search(
                [('activity', '=', activity.id)])]

    def process(self):
        Pool().get(RECORD_ACTIVITY).process()

    @with_transaction()
    def test_open(self):
        "Test an open sets the flag and its date once and is pending once"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), children = self.sent()

        hit = RecordActivity.record_hit(root.uuid, ['email_opened'])
        again = RecordActivity.record_hit(root.uuid, ['email_opened'])

        self.assertEqual((hit, again), (root, root))
        root = RecordActivity(root.id)
        self.assertTrue(root.email_opened)
        self.assertFalse(root.email_clicked)
        self.assertIsNotNone(root.email_opened_date)
        self.assertEqual(self.pending(root), [(True, False)])
        # The children wait for the next process
        self.assertIsNone(self.child(root, children['opened']).at)
        self.assertEqual(
            self.child(root, children['not_opened']).state, 'waiting')

    @with_transaction()
    def test_open_applied(self):
        "Test the process schedules the children at the event plus delay"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), children = self.sent()
        RecordActivity.record_hit(root.uuid, ['email_opened'])
        opened_date = dt.datetime(2026, 1, 2, 3, 4, 5)
        sql_write(RECORD_ACTIVITY, [root.id], email_opened_date=opened_date)

        self.process()

        self.assertEqual(self.pending(), [])
        opened = self.child(root, children['opened'])
        self.assertEqual(opened.at, opened_date + dt.timedelta(days=1))
        self.assertEqual(opened.state, 'waiting')
        self.assertEqual(
            self.child(root, children['not_opened']).state, 'cancelled')
        self.assertIsNone(self.child(root, children['clicked']).at)
        self.assertEqual(
            self.child(root, children['not_clicked']).state, 'waiting')

    @with_transaction()
    def test_click(self):
        "Test a click opens, clicks, counts each click and is pending once"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), children = self.sent()
        events_ = ['email_opened', 'email_clicked']

        RecordActivity.record_hit(root.uuid, events_, URL)
        RecordActivity.record_hit(root.uuid, events_, URL)

        root = RecordActivity(root.id)
        self.assertTrue(root.email_opened)
        self.assertTrue(root.email_clicked)
        self.assertEqual(root.email_opened_date, root.email_clicked_date)
        self.assertEqual(self.pending(root), [(True, True)])
        self.assertEqual(
            self.link_clicks(root.activity),
            [(URL, dt.date.today())] * 2)

        self.process()

        for key in ['opened', 'clicked']:
            self.assertEqual(
                self.child(root, children[key]).at,
                root.email_opened_date + dt.timedelta(days=1))
        for key in ['not_opened', 'not_clicked']:
            self.assertEqual(
                self.child(root, children[key]).state, 'cancelled')

    @with_transaction()
    def test_not_sent(self):
        "Test a hit of an e-mail not sent counts the click only"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), _ = self.sent()
        RecordActivity.write([root], {'state': 'waiting'})

        hit = RecordActivity.record_hit(
            root.uuid, ['email_opened', 'email_clicked'], URL)

        self.assertEqual(hit, root)
        root = RecordActivity(root.id)
        self.assertFalse(root.email_opened)
        self.assertFalse(root.email_clicked)
        self.assertEqual(self.pending(), [])
        self.assertEqual(len(self.link_clicks(root.activity)), 1)

    @with_transaction()
    def test_unknown(self):
        "Test a hit of an unknown or malformed token records nothing"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), _ = self.sent()
        for token in [links.new_token(), root.uuid.upper(), '', None, 42,
                root.record.uuid]:
            with self.subTest(token=token):
                self.assertIsNone(RecordActivity.record_hit(
                        token, ['email_opened', 'email_clicked'], URL))
        self.assertFalse(RecordActivity(root.id).email_opened)
        self.assertEqual(self.pending(), [])
        self.assertEqual(self.link_clicks(root.activity), [])

    @with_transaction()
    def test_batches(self):
        "Test the pending events are applied in batches, each once"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        roots, children = self.sent(5)
        for root in roots:
            RecordActivity.record_hit(root.uuid, ['email_opened'])
        RecordActivity.record_hit(
            roots[0].uuid, ['email_opened', 'email_clicked'], URL)

        self.assertEqual(events.apply_pending(batch_size=2), 6)
        self.assertEqual(events.apply_pending(batch_size=2), 0)

        for root in roots:
            self.assertIsNotNone(self.child(root, children['opened']).at)
        self.assertIsNotNone(self.child(roots[0], children['clicked']).at)
        self.assertIsNone(self.child(roots[1], children['clicked']).at)

    @with_transaction()
    def test_negative_due(self):
        "Test a negative child due after an unapplied event is cancelled"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), children = self.sent()
        not_opened = self.child(root, children['not_opened'])
        sql_write(RECORD_ACTIVITY, [not_opened.id],
            at=dt.datetime.now() - dt.timedelta(minutes=1))
        RecordActivity.record_hit(root.uuid, ['email_opened'])

        # A batch of the queue runs before the next process applies it
        RecordActivity.process([not_opened])

        self.assertEqual(RecordActivity(not_opened.id).state, 'cancelled')
        self.process()
        self.assertIsNotNone(self.child(root, children['opened']).at)
        self.assertEqual(RecordActivity(not_opened.id).state, 'cancelled')

    @with_transaction()
    def test_negative_due_without_event(self):
        "Test a negative child whose event did not happen runs"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), children = self.sent()
        not_opened = self.child(root, children['not_opened'])
        sql_write(RECORD_ACTIVITY, [not_opened.id],
            at=dt.datetime.now() - dt.timedelta(minutes=1))

        RecordActivity.process([not_opened])

        self.assertEqual(RecordActivity(not_opened.id).state, 'done')
        # Its positive sibling will never run
        self.assertEqual(
            self.child(root, children['opened']).state, 'cancelled')

    @with_transaction()
    def test_button_after_hit(self):
        "Test the button after a hit changes nothing more"
        RecordActivity = Pool().get(RECORD_ACTIVITY)
        (root,), children = self.sent()
        RecordActivity.record_hit(root.uuid, ['email_opened'])
        date = RecordActivity(root.id).email_opened_date

        RecordActivity.on_email_opened([RecordActivity(root.id)])
        self.process()

        self.assertEqual(RecordActivity(root.id).email_opened_date, date)
        self.assertEqual(
            self.child(root, children['opened']).at,
            date + dt.timedelta(days=1))
