# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Tests of the results of the activities: the records skipped counted by
reason, the e-mails bounced and the clicks per link destination"""
import datetime as dt
import itertools
from http import HTTPStatus

from sql import Null

from trytond.modules.marketing_automation import engine, links
from trytond.pool import Pool
from trytond.pyson import Eval, PYSONEncoder
from trytond.tests.test_tryton import (
    DB_NAME, DBTestCase, RouteTestCase, with_transaction)
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_party, create_scenario, email_values, enrol,
    mark_sent, path_of, process_due)
from .test_inbound import (
    BOUNCE_ADDRESS, REPORT_ACTION, handed_to_smtp, marketing_settings, rewrite,
    sample)

SKIPPED = [
    'record_count_skipped', 'record_count_skipped_no_address',
    'record_count_skipped_opted_out', 'record_count_skipped_suppressed',
    'record_count_skipped_condition', 'record_count_skipped_other']
SHOP = 'https://shop.example/'
NEWS = 'https://shop.example/news?a=1&b=2'
HTML = (
    '<html><body><p>${record.name}</p>'
    '<a href="%s">Shop</a><a href="%s">News</a></body></html>' % (
        SHOP, NEWS.replace('&', '&amp;')))
_counter = itertools.count()


def counts(activity, names=SKIPPED):
    "Return the statistics of the activity named"
    activity = activity.__class__(activity.id)
    return {n: getattr(activity, n) for n in names}


def reason_of(activity, party):
    "Return the state and skip reason of the record activity of the party"
    RecordActivity = Pool().get('marketing.automation.record.activity')
    record_activity, = RecordActivity.search([
            ('activity', '=', activity.id),
            ('record.record', '=', str(party)),
            ])
    return record_activity.state, record_activity.skip_reason


class SkipReasonTestCase(DBTestCase):
    "Test the reasons of the records skipped and their counts"
    module = 'marketing_automation'

    def campaign(self):
        """Return the e-mail activity and the parties of a campaign where
        each party but Ann is skipped for another reason"""
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        Suppression = pool.get('marketing.automation.suppression')
        Unsubscribed = pool.get(
            'party.party-unsubscribed-marketing.automation.scenario')
        parties = {
            'ann': create_party("Ann", 'ann@example.com'),
            'bob': create_party("Bob"),
            'cid': create_party("Cid", 'not an address'),
            'dan': create_party("Dan", 'dan@example.com'),
            'eve': create_party("Eve", 'eve@example.com'),
            'fay': create_party("Fay", 'fay@example.com'),
            'gil': create_party("Gil", 'gil@example.com'),
            }
        scenario = create_scenario(unsubscribable=True)
        email = create_activity(scenario, **email_values(
                condition=PYSONEncoder().encode(Eval('self.name') != "Gil")))
        enrol(scenario)
        Consent.record([parties['dan'].id], True, 'page')
        # Through another record of the scenario
        Unsubscribed.create(
            [{'party': parties['eve'].id, 'scenario': scenario.id}])
        Suppression.suppress(['fay@example.com'], 'hard_bounce')
        return email, parties

    @with_transaction()
    def test_reasons(self):
        "Test each record skipped keeps the reason of its note"
        email, parties = self.campaign()

        process_due()

        self.assertEqual(
            {k: reason_of(email, p) for k, p in parties.items()}, {
                'ann': ('done', None),
                'bob': ('done', 'no_address'),
                'cid': ('done', 'invalid_address'),
                'dan': ('done', 'opted_out'),
                'eve': ('done', 'unsubscribed'),
                'fay': ('done', 'suppressed'),
                'gil': ('done', 'condition_false'),
                })
        self.assertEqual(counts(email, SKIPPED + ['email_sent']), {
                'record_count_skipped': 6,
                'record_count_skipped_no_address': 2,
                'record_count_skipped_opted_out': 2,
                'record_count_skipped_suppressed': 1,
                'record_count_skipped_condition': 1,
                'record_count_skipped_other': 0,
                'email_sent': 1,
                })

    @with_transaction()
    def test_notes_without_reason(self):
        """Test the notes of older rows and of other modules' actions count
        as other"""
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        create_party("Ann", 'ann@example.com')
        create_party("Bob", 'bob@example.com')
        scenario = create_scenario()
        email = create_activity(scenario, **email_values())
        enrol(scenario)
        ann, bob = RecordActivity.search([], order=[('id', 'ASC')])

        # An action of another module returns plain texts
        engine.mark_done([ann.id], {ann.id: "Not for today"})
        # A row of an older version: a note without reason
        engine.mark_done([bob.id], {bob.id: engine.Note('opted_out', "Old")})
        table = RecordActivity.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.skip_reason], [Null], where=table.id == bob.id))
        engine.clear_cache()

        self.assertEqual(
            [(r.note, r.skip_reason) for r in RecordActivity.browse(
                    [ann.id, bob.id])],
            [("Not for today", 'other'), ("Old", None)])
        self.assertEqual(counts(email)['record_count_skipped'], 2)
        self.assertEqual(counts(email)['record_count_skipped_other'], 2)

    @with_transaction()
    def test_sent_has_no_reason(self):
        "Test an e-mail sent after being skipped loses its reason"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        create_party("Ann", 'ann@example.com')
        scenario = create_scenario()
        email = create_activity(scenario, **email_values())
        enrol(scenario)
        ann, = RecordActivity.search([])
        engine.mark_done([ann.id], {ann.id: engine.Note('other', "Skip")})

        engine.mark_done([ann.id], {})
        engine.clear_cache()

        ann = RecordActivity(ann.id)
        self.assertEqual((ann.note, ann.skip_reason), (None, None))
        self.assertEqual(counts(email, ['email_sent'])['email_sent'], 1)

    @with_transaction()
    def test_reporting(self):
        "Test the activity reporting counts the skipped by reason per period"
        pool = Pool()
        Reporting = pool.get('marketing.automation.reporting.activity')
        email, _ = self.campaign()
        process_due()
        today = dt.date.today()
        names = SKIPPED + ['record_count', 'email_sent', 'email_bounced']

        with Transaction().set_context(
                from_date=today, to_date=today, period='day'):
            row, = Reporting.search([('activity', '=', email.id)])
            self.assertEqual(row.date, today)
            self.assertEqual({n: getattr(row, n) for n in names}, {
                    'record_count': 7,
                    'record_count_skipped': 6,
                    'record_count_skipped_no_address': 2,
                    'record_count_skipped_opted_out': 2,
                    'record_count_skipped_suppressed': 1,
                    'record_count_skipped_condition': 1,
                    'record_count_skipped_other': 0,
                    'email_sent': 1,
                    'email_bounced': 0,
                    })
        with Transaction().set_context(
                from_date=today + dt.timedelta(days=1), period='day'):
            self.assertEqual(
                Reporting.search([('activity', '=', email.id)]), [])


class BouncedTestCase(DBTestCase):
    "Test the e-mails whose bounce came back through inbound_email"
    module = 'marketing_automation'
    extras = ['inbound_email']

    def receive(self, raw):
        "Receive the data as the webhook of an inbox does"
        pool = Pool()
        Inbox = pool.get('inbound.email.inbox')
        Email = pool.get('inbound.email')
        inbox = Inbox(name="Bounces", rules=[{'action': REPORT_ACTION}])
        inbox.save()
        email_, = Email.from_webhook(inbox, raw, 'raw')
        with marketing_settings(automation_bounce_address=BOUNCE_ADDRESS):
            inbox.process(email_)

    @with_transaction()
    def test_bounced(self):
        "Test a bounce flags its e-mail, a delay does not"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Reporting = pool.get('marketing.automation.reporting.activity')
        for name in ["Ann", "Bob", "Cid"]:
            create_party(name, '%s@example.com' % name.lower())
        scenario = create_scenario()
        email = create_activity(scenario, **email_values())
        enrol(scenario)
        with marketing_settings(automation_bounce_address=BOUNCE_ADDRESS), \
                handed_to_smtp():
            process_due()
        ann, bob, cid = RecordActivity.search([], order=[('id', 'ASC')])

        self.receive(rewrite(sample('postfix_hard'), token=ann.uuid))
        self.receive(rewrite(sample('microsoft_soft'), token=bob.uuid))
        self.receive(rewrite(sample('postfix_delayed'), token=cid.uuid))

        self.assertEqual(
            [bool(r.email_bounced) for r in RecordActivity.browse(
                    [ann.id, bob.id, cid.id])],
            [True, True, False])
        self.assertEqual(
            counts(email, ['email_sent', 'email_bounced']),
            {'email_sent': 3, 'email_bounced': 2})
        with Transaction().set_context(period='month'):
            row, = Reporting.search([('activity', '=', email.id)])
            self.assertEqual((row.email_sent, row.email_bounced), (3, 2))


def create_campaign():
    """Create and commit a scenario on a party with an e-mail of two links
    done as if sent; return the secret, the activity and the tokens"""
    with Transaction().start(DB_NAME, 0) as transaction:
        Configuration = Pool().get('ir.configuration')
        n = next(_counter)
        party = create_party("Party %s" % n)
        scenario = create_scenario(
            name="Scenario %s" % n,
            domain=PYSONEncoder().encode([('id', '=', party.id)]))
        email = create_activity(scenario, **email_values(
                name="E-mail %s" % n, email_template=HTML))
        enrol(scenario)
        root, = mark_sent(email)
        secret = Configuration.get_marketing_automation_secret()
        transaction.commit()
        return secret, email.id, root.uuid


class LinkClickTestCase(RouteTestCase):
    "Test the clicks counted per link destination"
    module = 'marketing_automation'

    def click(self, secret, token, url, method='get'):
        path = path_of(links.click_url(DB_NAME, token, url, secret))
        return getattr(self.client(), method)(path)

    def reporting(self, activity_id, **context):
        "Return the (url, date, clicks) of the activity in the context"
        with Transaction().start(DB_NAME, 0, readonly=True, context=context):
            Reporting = Pool().get('marketing.automation.reporting.link')
            return sorted(
                (r.url, r.date, r.clicks) for r in Reporting.search([
                        ('activity', '=', activity_id)]))

    def test_clicks_per_link(self):
        "Test the genuine clicks are counted per link and period"
        secret, activity_id, token = create_campaign()
        _, other_id, other_token = create_campaign()
        today = dt.date.today()

        for url in [SHOP, NEWS, SHOP, SHOP]:
            response = self.click(secret, token, url)
            self.assertEqual(response.status_code, HTTPStatus.FOUND)
        self.click(secret, other_token, NEWS)
        # Not counted: a forged signature, a HEAD and an unknown token
        response = self.click('forged', token, 'https://evil.example/')
        self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
        response = self.click(secret, token, SHOP, method='head')
        self.assertEqual(response.status_code, HTTPStatus.FOUND)
        response = self.click(secret, '0' * 32, SHOP)
        self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)

        self.assertEqual(self.reporting(activity_id, period='day'), [
                (SHOP, today, 3), (NEWS, today, 1)])
        self.assertEqual(
            self.reporting(other_id, period='day'), [(NEWS, today, 1)])
        self.assertEqual(
            self.reporting(activity_id, period='day',
                from_date=today + dt.timedelta(days=1)), [])

    def test_periods(self):
        "Test the clicks are grouped by period between the context dates"
        _, activity_id, _ = create_campaign()
        with Transaction().start(DB_NAME, 0) as transaction:
            LinkClick = Pool().get('marketing.automation.link.click')
            table = LinkClick.__table__()
            cursor = transaction.connection.cursor()
            for date in [dt.date(2025, 1, 5), dt.date(2025, 1, 20),
                    dt.date(2025, 1, 20), dt.date(2025, 2, 1)]:
                cursor.execute(*table.insert(
                        [table.activity, table.url, table.date],
                        [[activity_id, SHOP, date]]))
            transaction.commit()

        self.assertEqual(self.reporting(activity_id, period='month',
                from_date=dt.date(2025, 1, 1), to_date=dt.date(2025, 2, 28)),
            [(SHOP, dt.date(2025, 1, 1), 3), (SHOP, dt.date(2025, 2, 1), 1)])
        self.assertEqual(self.reporting(activity_id, period='day',
                from_date=dt.date(2025, 1, 6), to_date=dt.date(2025, 1, 31)),
            [(SHOP, dt.date(2025, 1, 20), 2)])
        self.assertEqual(self.reporting(activity_id, period='year',
                to_date=dt.date(2025, 1, 20)),
            [(SHOP, dt.date(2025, 1, 1), 3)])
