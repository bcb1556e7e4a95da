# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Tests of conversions: attribution, windows, once only, currencies, exit"
import datetime as dt
import unittest
from decimal import Decimal

from trytond.pool import Pool
from trytond.tests.test_tryton import activate_module, with_transaction
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_party, create_scenario, email_values, enrol,
    mark_sent, sql_write)

NOW = dt.datetime.now().replace(microsecond=0)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


class ConversionTestCase(unittest.TestCase):
    "Test the conversions of sales"

    @classmethod
    def setUpClass(cls):
        activate_module(['marketing_automation', 'sale'])

    def setUp(self):
        # Each test runs in its own transaction: the company is made there
        self.company = None

    def make_company(self, currency=None):
        from trytond.modules.company.tests import create_company
        self.company = create_company(currency=currency)
        return self.company

    def scenario(self, name="Welcome", attribution='click', **values):
        "Create a running scenario on Ann with one e-mail; return both"
        values.setdefault('domain', '[["name", "=", "Ann"]]')
        scenario = create_scenario(
            name=name, goal='sale', attribution=attribution, **values)
        email = create_activity(scenario, name=name, **email_values())
        return scenario, email

    def send(self, scenario, email, at=None, opened=None, clicked=None):
        "Enrol, mark the e-mail sent at, and opened or clicked when given"
        enrol(scenario)
        record_activity, = mark_sent(email)
        values = {'at': at or NOW - DAY}
        if opened or clicked:
            values.update(
                email_opened=True, email_opened_date=opened or clicked)
        if clicked:
            values.update(email_clicked=True, email_clicked_date=clicked)
        sql_write('marketing.automation.record.activity',
            [record_activity.id], **values)
        return record_activity

    def sale(self, party, date=None, state='confirmed',
            amount=Decimal('100'), currency=None, sale_date=None):
        "Create a sale of the party that reached state at date"
        Sale = Pool().get('sale.sale')
        sale, = Sale.create([{
                    'party': party.id,
                    'company': self.company.id,
                    'currency': (currency or self.company.currency).id,
                    'sale_date': sale_date or (date or NOW).date(),
                    }])
        sql_write('sale.sale', [sale.id], state=state,
            untaxed_amount_cache=amount, write_date=date or NOW)
        return sale

    def conversions(self):
        Conversion = Pool().get('marketing.automation.conversion')
        Conversion.compute()
        return Conversion.search([], order=[('id', 'ASC')])

    @with_transaction()
    def test_click_converts(self):
        "Test a sale after a click converts for the clicked e-mail"
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        scenario, email = self.scenario()
        touch = self.send(scenario, email, clicked=NOW - 2 * HOUR)
        sale = self.sale(ann, NOW - HOUR)

        conversion, = self.conversions()

        self.assertEqual(conversion.scenario, scenario)
        self.assertEqual(conversion.activity, email)
        self.assertEqual(conversion.record_activity, touch)
        self.assertEqual(conversion.record, touch.record)
        self.assertEqual(conversion.sale, sale)
        self.assertEqual(conversion.party, ann)
        self.assertEqual(conversion.state, 'confirmed')
        self.assertEqual(conversion.date, NOW - HOUR)
        self.assertEqual(conversion.amount, Decimal('100'))
        self.assertEqual(conversion.currency, self.company.currency)
        scenario = scenario.__class__(scenario.id)
        self.assertEqual(
            (scenario.conversion_count, scenario.conversion_revenue,
                scenario.conversion_rate),
            (1, Decimal('100.00'), 1.0))

    @with_transaction()
    def test_attribution_rules(self):
        "Test each attribution needs its touch"
        self.make_company()
        cases = {
            'send': ('send', {}),
            'open without': ('open', {}),
            'open': ('open', {'opened': NOW - 2 * HOUR}),
            'click without': ('click', {'opened': NOW - 2 * HOUR}),
            'click': ('click', {'clicked': NOW - 2 * HOUR}),
            }
        for name, (attribution, touch) in cases.items():
            party = create_party(name, 'x@example.com')
            scenario, email = self.scenario(
                name=name, attribution=attribution,
                domain='[["name", "=", "%s"]]' % name)
            self.send(scenario, email, at=NOW - 3 * HOUR, **touch)
            self.sale(party, NOW - HOUR)

        converted = {c.scenario.name for c in self.conversions()}

        self.assertEqual(converted, {'send', 'open', 'click'})

    @with_transaction()
    def test_window_edges(self):
        "Test only the sales within the window after the touch convert"
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        clicked = NOW - 10 * DAY
        scenario, email = self.scenario(goal_window=3 * DAY)
        self.send(scenario, email, at=clicked, clicked=clicked)
        before = self.sale(ann, clicked - HOUR)
        late = self.sale(ann, clicked + 3 * DAY + HOUR)
        inside = self.sale(ann, clicked + 3 * DAY - HOUR)

        conversion, = self.conversions()

        self.assertEqual(conversion.sale, inside)
        self.assertNotIn(conversion.sale, {before, late})

    @with_transaction()
    def test_goal_state(self):
        "Test the sale must reach the goal state"
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        scenario, email = self.scenario(goal_state='done')
        self.send(scenario, email, clicked=NOW - 2 * HOUR)
        self.sale(ann, NOW - HOUR, state='confirmed')
        draft = self.sale(ann, NOW - HOUR, state='draft')
        done = self.sale(ann, NOW - HOUR, state='done')

        conversion, = self.conversions()

        self.assertEqual(conversion.sale, done)
        self.assertEqual(conversion.state, 'done')
        self.assertNotEqual(conversion.sale, draft)

    @with_transaction()
    def test_enrolled_sale(self):
        "Test only the enrolled cart converts when asked"
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        cart = self.sale(ann, NOW - 3 * DAY, state='draft')
        other = self.sale(ann, NOW - 3 * DAY, state='draft')
        scenario, email = self.scenario(
            model='sale.sale', domain='[["id", "=", %d]]' % cart.id,
            goal_enrolled_sale=True, attribution='send')
        self.send(scenario, email, at=NOW - 2 * HOUR)
        sql_write('sale.sale', [other.id], state='confirmed',
            write_date=NOW - HOUR)
        self.assertEqual(self.conversions(), [])

        sql_write('sale.sale', [cart.id], state='confirmed',
            write_date=later())
        conversion, = self.conversions()
        self.assertEqual(conversion.sale, cart)

    @with_transaction()
    def test_party_sale_of_cart_scenario(self):
        "Test another sale of the cart's party converts by default"
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        cart = self.sale(ann, NOW - 3 * DAY, state='draft')
        scenario, email = self.scenario(
            model='sale.sale', domain='[["id", "=", %d]]' % cart.id,
            attribution='send')
        self.send(scenario, email, at=NOW - 2 * HOUR)
        other = self.sale(ann, NOW - HOUR)

        conversion, = self.conversions()

        self.assertEqual(conversion.sale, other)

    @with_transaction()
    def test_once_and_last_touch_wins(self):
        "Test a sale converts once, for the last touch across scenarios"
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        first, first_email = self.scenario("First")
        second, second_email = self.scenario("Second")
        self.send(first, first_email, clicked=NOW - 3 * HOUR)
        last = self.send(second, second_email, clicked=NOW - 2 * HOUR)
        self.sale(ann, NOW - HOUR)

        conversion, = self.conversions()
        self.assertEqual(conversion.record_activity, last)
        self.assertEqual(conversion.scenario, second)
        # Nothing more on the next run, even for the same sale given again
        Conversion = Pool().get('marketing.automation.conversion')
        Conversion.compute(Pool().get('sale.sale').search([]))
        self.assertEqual(self.conversions(), [conversion])

    @with_transaction()
    def test_high_water_mark(self):
        "Test a run looks only at the sales changed since the last run"
        pool = Pool()
        Conversion = pool.get('marketing.automation.conversion')
        Scenario = pool.get('marketing.automation.scenario')
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        scenario, email = self.scenario(goal_window=30 * DAY)
        self.send(scenario, email, clicked=NOW - 10 * DAY)
        self.assertEqual(self.conversions(), [])
        scenario = Scenario(scenario.id)
        self.assertIsNotNone(scenario.conversion_checked)

        # Changed before the last run (beyond the overlap): not looked at
        old = self.sale(ann, NOW - 5 * DAY)
        self.assertEqual(self.conversions(), [])
        # Unless given
        Conversion.compute([old])
        conversion, = Conversion.search([])
        self.assertEqual(conversion.sale, old)

    @with_transaction()
    def test_currencies(self):
        "Test the amount is converted at the rate of the sale date"
        from trytond.modules.currency.tests import (
            add_currency_rate, create_currency)
        euro = create_currency('EUR')
        add_currency_rate(euro, Decimal('1'))
        dollar = create_currency('USD')
        add_currency_rate(dollar, Decimal('2'), dt.date(2020, 1, 1))
        add_currency_rate(dollar, Decimal('4'), NOW.date() - 5 * DAY)
        self.make_company(currency=euro)
        ann = create_party("Ann", 'ann@example.com')
        bob = create_party("Bob", 'bob@example.com')
        cyd = create_party("Cyd", 'cyd@example.com')
        scenario, email = self.scenario(
            domain='[["name", "in", ["Ann", "Bob", "Cyd"]]]',
            attribution='send')
        enrol(scenario)
        mark_sent(email)
        self.sale(ann, later(), amount=Decimal('30'))
        self.sale(bob, later(), amount=Decimal('30'), currency=dollar,
            sale_date=NOW.date() - 10 * DAY)
        self.sale(cyd, later(), amount=Decimal('30'), currency=dollar)

        amounts = {c.party.name: c.amount for c in self.conversions()}

        self.assertEqual(amounts, {
                'Ann': Decimal('30'),
                'Bob': Decimal('15'),
                'Cyd': Decimal('7.5'),
                })
        self.assertTrue(all(
                c.currency == euro for c in self.conversions()))

    @with_transaction()
    def test_exit_on_goal(self):
        "Test a record that converts leaves the scenario"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        create_party("Bob", 'bob@example.com')
        scenario, email = self.scenario(
            domain='[["name", "in", ["Ann", "Bob"]]]',
            exit_on_goal=True, attribution='send')
        reminder = create_activity(
            email, name="Reminder", delay=dt.timedelta(days=3),
            **email_values())
        enrol(scenario)
        mark_sent(email)
        self.sale(ann, later())

        self.conversions()

        states = {
            r.record.record.name: r.state for r in RecordActivity.search(
                [('activity', '=', reminder.id)])}
        self.assertEqual(states, {'Ann': 'cancelled', 'Bob': 'waiting'})

    @with_transaction()
    def test_reporting(self):
        "Test the funnel and the reporting per activity"
        pool = Pool()
        Funnel = pool.get('marketing.automation.reporting.funnel')
        ActivityReporting = pool.get(
            'marketing.automation.reporting.conversion.activity')
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        create_party("Bob", 'bob@example.com')
        scenario, email = self.scenario(
            domain='[["name", "in", ["Ann", "Bob"]]]')
        enrol(scenario)
        sent = mark_sent(email)
        RecordActivity = pool.get('marketing.automation.record.activity')
        RecordActivity.on_email_clicked(
            [r for r in sent if r.record.record == ann])
        self.sale(ann, later(), amount=Decimal('50'))
        self.conversions()

        context = {
            'from_date': NOW.date() - DAY,
            'to_date': NOW.date() + DAY,
            'period': 'month',
            }
        with Transaction().set_context(context):
            funnel, = Funnel.search([('scenario', '=', scenario.id)])
            activity, = ActivityReporting.search(
                [('activity', '=', email.id)])
            counts = (funnel.record_count, funnel.email_sent,
                funnel.email_opened, funnel.email_clicked,
                funnel.conversion_count, activity.email_sent,
                activity.conversion_count)
            self.assertEqual(counts, (2, 2, 1, 1, 1, 2, 1))
            # Integers on both backends
            self.assertEqual({type(c) for c in counts}, {int})
            self.assertEqual(funnel.revenue, Decimal('50'))
            self.assertEqual(funnel.revenue_per_email, Decimal('25'))
            self.assertEqual(funnel.conversion_rate, 0.5)
            self.assertEqual(
                (activity.email_sent, activity.conversion_count,
                    activity.conversion_rate, activity.revenue),
                (2, 1, 0.5, Decimal('50')))
            # Read again by id, as the clients do
            self.assertEqual(
                Funnel.read([funnel.id], ['record_count'])[0][
                    'record_count'], 2)

    @with_transaction()
    def test_funnel_counts_records_as_they_enter(self):
        "Test the funnel reads the records counted per day as they enter"
        pool = Pool()
        Funnel = pool.get('marketing.automation.reporting.funnel')
        Record = pool.get('marketing.automation.record')
        EnrolledStatistics = pool.get(
            'marketing.automation.statistics.enrolled')
        create_party("Ann", 'ann@example.com')
        bob = create_party("Bob", 'bob@example.com')
        cid = create_party("Cid", 'cid@example.com')
        scenario, _ = self.scenario(domain='[["name", "in", ["Ann", "Bob"]]]')

        def record_counts(**context):
            context.setdefault('period', 'day')
            with Transaction().set_context(context):
                return [(f.date, f.record_count) for f in Funnel.search(
                        [('scenario', '=', scenario.id)])]

        def counted():
            return sum(s.record_count for s in EnrolledStatistics.search(
                    [('scenario', '=', scenario.id)]))

        enrol(scenario)
        self.assertEqual(counted(), 2)
        Record.create([{
                    'scenario': scenario.id,
                    'record': str(cid)}])
        self.assertEqual(counted(), 3)
        Record.delete(Record.search([
                    ('scenario', '=', scenario.id),
                    ('record', '=', str(bob))]))
        self.assertEqual(counted(), 2)
        other, _ = self.scenario(name="Other")
        Record.write(Record.search([
                    ('scenario', '=', scenario.id),
                    ('record', '=', str(cid))]), {'scenario': other.id})
        self.assertEqual(counted(), 1)
        Record.write(Record.search([('scenario', '=', other.id)]),
            {'scenario': scenario.id})
        self.assertEqual(counted(), 2)
        today = Record.search([('scenario', '=', scenario.id)])[0].create_date
        self.assertEqual(record_counts(), [(today.date(), 2)])
        self.assertEqual(
            record_counts(from_date=today.date() + DAY), [])

        # As when the module is updated on a database without the counts
        EnrolledStatistics.delete(EnrolledStatistics.search([]))
        self.assertEqual(record_counts(), [])
        EnrolledStatistics.fill()
        self.assertEqual(record_counts(), [(today.date(), 2)])

    @with_transaction()
    def test_variant_conversion_rate(self):
        "Test the A/B comparison adds the conversion rate"
        pool = Pool()
        VariantReporting = pool.get('marketing.automation.reporting.variant')
        self.make_company()
        ann = create_party("Ann", 'ann@example.com')
        scenario, email = self.scenario(attribution='send')
        email.variant_weight = 1
        email.save()
        other = create_activity(
            scenario, name="Other", variant_weight=1, **email_values())
        enrol(scenario)
        mark_sent(email)
        mark_sent(other)
        self.sale(ann, later())
        conversion, = self.conversions()

        rows = {r.activity: r for r in VariantReporting.search([
                    ('scenario', '=', scenario.id)])}
        converted = rows[conversion.activity]
        self.assertEqual(
            (converted.email_sent, converted.conversion_count,
                converted.conversion_rate), (1, 1, 1.0))
        self.assertEqual(
            sum(r.conversion_count for r in rows.values()), 1)


def later():
    "Return a time after the e-mails marked sent in the test"
    return dt.datetime.now() + dt.timedelta(minutes=1)
