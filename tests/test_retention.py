# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Tests of the retention: what is pruned, what stays, and the statistics
and reports that count the same before and after"""
import datetime as dt
import json
import unittest
from decimal import Decimal

import trytond.config as config
from trytond.pool import Pool
from trytond.tests.test_tryton import activate_module, with_transaction
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_party, create_scenario, email_values, enrol,
    sql_write)

NOW = dt.datetime.now().replace(microsecond=0)
DAY = dt.timedelta(days=1)
RETENTION_DAYS = 10
# Older than the retention and the goal window, within the 30 days of the
# trends
OLD = NOW - 20 * DAY
RECENT = NOW - DAY
RECORD_ACTIVITY = 'marketing.automation.record.activity'

# The outcome of the e-mail of each party: its state and values
OUTCOMES = [
    ('sent', {}),
    ('opened', {'email_opened': True, 'email_opened_date': OLD}),
    ('clicked', {
            'email_opened': True, 'email_opened_date': OLD,
            'email_clicked': True, 'email_clicked_date': OLD}),
    ('bounced', {'email_bounced': True}),
    ('unsubscribed', {'email_opened': True, 'email_opened_date': OLD}),
    ('no_address', {
            'note': "No address", 'skip_reason': 'no_address',
            'email_handoff': None}),
    ('opted_out', {
            'note': "Opted out", 'skip_reason': 'opted_out',
            'email_handoff': None}),
    ('suppressed', {
            'note': "Suppressed", 'skip_reason': 'suppressed',
            'email_handoff': None}),
    ('condition', {
            'note': "Condition", 'skip_reason': 'condition_false',
            'email_handoff': None}),
    ('other', {'note': "Gone", 'skip_reason': None, 'email_handoff': None}),
    ('cancelled', {'state': 'cancelled', 'email_handoff': None}),
    ('failed', {'state': 'failed', 'tries': 3, 'email_handoff': None}),
    ]
# The parties whose data must stay and why
KEPT = ['waiting', 'recent', 'interrupted', 'pending']

PRUNED_MODELS = [
    RECORD_ACTIVITY, 'ir.email', 'marketing.automation.link.click',
    'marketing.automation.conversion']
REPORTS = {
    'marketing.automation.reporting.scenario': 'scenario',
    'marketing.automation.reporting.activity': 'activity',
    'marketing.automation.reporting.link': 'activity',
    'marketing.automation.reporting.variant': 'activity',
    'marketing.automation.reporting.conversion.activity': 'activity',
    'marketing.automation.reporting.funnel': 'scenario',
    }


def count_rows(model):
    Model = Pool().get(model)
    table = Model.__table__()
    cursor = Transaction().connection.cursor()
    cursor.execute(*table.select(table.id))
    return {i for i, in cursor}


def prune():
    Pool().get('marketing.automation.statistics.pruned').prune(commit=False)


class RetentionTestCase(unittest.TestCase):
    "Test the pruning of the old data"

    @classmethod
    def setUpClass(cls):
        activate_module(['marketing_automation', 'sale'])

    def setUp(self):
        retention = config.getint(
            'marketing', 'automation_retention_days', default=0)
        self.addCleanup(self.retention, retention)

    @staticmethod
    def retention(days):
        "Set the retention days (0 is off, as without the option)"
        if not config.has_section('marketing'):
            config.add_section('marketing')
        config.set('marketing', 'automation_retention_days', str(days))

    def campaign(self, state='running'):
        """Return the scenario of an A/B split whose e-mails had every
        outcome 20 days ago, with clicks, sales and archives, and the record
        of each party by name"""
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get(RECORD_ACTIVITY)
        Email = pool.get('ir.email')
        LinkClick = pool.get('marketing.automation.link.click')
        Conversion = pool.get('marketing.automation.conversion')
        Sale = pool.get('sale.sale')
        Scenario = pool.get('marketing.automation.scenario')
        from trytond.modules.company.tests import create_company
        company = create_company()

        names = [n for n, _ in OUTCOMES] + KEPT
        for name in names:
            create_party(name, name + '@example.com')
        scenario = create_scenario(
            domain=json.dumps([['name', 'in', names]]),
            goal='sale', attribution='send', goal_window=7 * DAY)
        variant_a = create_activity(
            scenario, name="A", variant_weight=1, **email_values())
        variant_b = create_activity(
            scenario, name="B", variant_weight=1, **email_values())
        child = create_activity(
            variant_a, name="Reminder", on='email_opened', delay=DAY,
            **email_values())
        records = {r.record.name: r for r in enrol(scenario)}
        # Not the random split: B sends nothing (no trend), A the rest
        skipped = [n for n, v in OUTCOMES if 'note' in v or 'state' in v]
        for variant, names in [
                (variant_a, set(records) - set(skipped)),
                (variant_b, skipped)]:
            sql_write(RECORD_ACTIVITY, [
                    r.id for r in RecordActivity.search([
                            ('record', 'in', [records[n].id for n in names]),
                            ])],
                activity=variant.id)
        rows = {r.record.record.name: r for r in RecordActivity.search([])}
        for index, (name, values) in enumerate(OUTCOMES):
            values = {
                'state': 'done', 'email_handoff': 'sent',
                'at': OLD - index % 3 * DAY, **values}
            sql_write(RECORD_ACTIVITY, [rows[name].id], **values)
        for name in KEPT:
            sql_write(RECORD_ACTIVITY, [rows[name].id],
                state='done', email_handoff='sent', at=OLD)
        # An event reminder still waits for the record
        RecordActivity.create([{
                    'record': records['waiting'].id, 'activity': child.id,
                    'state': 'waiting'}])
        sql_write(RECORD_ACTIVITY, [rows['interrupted'].id],
            email_handoff='interrupted', note="Interrupted")
        sql_write(RECORD_ACTIVITY, [rows['pending'].id],
            state='waiting', email_handoff='pending')
        Record.write([records['unsubscribed']], {'blocked': True})
        old_ids = [r.id for n, r in rows.items() if n != 'recent']
        sql_write(RECORD_ACTIVITY, old_ids, create_date=OLD, write_date=OLD)
        sql_write(RECORD_ACTIVITY, [rows['recent'].id], write_date=RECENT)

        for name, row in rows.items():
            email = Email(
                recipients=name + '@example.com', subject="Hello",
                body="<p>Hello</p>", resource=records[name].record,
                marketing_automation_record=records[name],
                marketing_automation_activity=row.activity,
                addresses=[{'address': name + '@example.com'}])
            email.save()
        for day, url, count in [
                (OLD.date(), 'https://shop.example/', 3),
                (OLD.date() - DAY, 'https://shop.example/news', 2),
                (RECENT.date(), 'https://shop.example/', 1)]:
            LinkClick.create([{
                        'activity': rows['clicked'].activity.id,
                        'url': url,
                        'date': day,
                        }] * count)
        for name, date, amount in [
                ('clicked', OLD, Decimal('40.5')),
                ('opened', OLD + DAY, Decimal('19.25')),
                ('recent', RECENT, Decimal('10'))]:
            party = records[name].record
            sale, = Sale.create([{
                        'party': party.id, 'company': company.id,
                        'currency': company.currency.id,
                        'sale_date': date.date()}])
            sql_write('sale.sale', [sale.id], state='confirmed',
                untaxed_amount_cache=amount, write_date=date,
                create_date=date)
            Conversion.create([{
                        'scenario': scenario.id,
                        'activity': rows[name].activity.id,
                        'record': records[name].id,
                        'record_activity': rows[name].id,
                        'sale': sale.id, 'party': party.id, 'date': date,
                        'state': 'confirmed', 'amount': amount,
                        'currency': company.currency.id}])
        if state == 'stopped':
            Scenario.stop([scenario])
        return scenario, records, rows

    def statistics(self, scenario):
        "Return every statistic and report of the scenario"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        # Fresh instances: the function fields are cached per transaction
        Transaction().counter += 1
        scenario_fields = [
            'record_count', 'record_count_blocked', 'block_rate',
            'block_rate_trend', 'email_sent', 'conversion_count',
            'conversion_rate', 'conversion_revenue']
        activity_fields = [
            n for n, f in Activity._fields.items()
            if n.startswith(('record_count', 'email_'))
            and n not in {'email_from', 'email_title', 'email_template'}]
        result = {
            'scenario': Scenario.read([scenario.id], scenario_fields),
            'activities': Activity.read(
                [a.id for a in Activity.search(
                        [('scenario', '=', scenario.id)],
                        order=[('id', 'ASC')])],
                activity_fields),
            }
        for period in ['day', 'month', 'year']:
            context = {
                'from_date': (NOW - 60 * DAY).date(),
                'to_date': NOW.date(), 'period': period}
            with Transaction().set_context(context):
                for name, key in REPORTS.items():
                    Report = pool.get(name)
                    names = [
                        n for n, f in Report._fields.items()
                        if n not in {
                            'id', 'create_uid', 'create_date', 'write_uid',
                            'write_date', 'rec_name', 'activity_action',
                            'last_modified_at'}]
                    rows = Report.read(
                        [r.id for r in Report.search([])], names)
                    # The ids of the rows of the pruned data change
                    result[name, period] = sorted(
                        (tuple(sorted(
                                    (k, v) for k, v in r.items()
                                    if k != 'id'))
                            for r in rows), key=repr)
        # The reports on part of the days
        with Transaction().set_context(
                from_date=(OLD - DAY).date(), to_date=OLD.date(),
                period='day'):
            for name in ['marketing.automation.reporting.activity',
                    'marketing.automation.reporting.link']:
                Report = pool.get(name)
                result[name, 'part'] = sorted(
                    (r.activity.id, str(r.date), getattr(r, 'url', None),
                        getattr(r, 'record_count', None), r.clicks
                        if hasattr(r, 'clicks') else r.email_sent)
                    for r in Report.search([]))
        return result

    def assert_counts_kept(self, state):
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Record = pool.get('marketing.automation.record')
        scenario, records, rows = self.campaign(state=state)
        before = self.statistics(scenario)
        records_before = count_rows('marketing.automation.record')

        self.retention(RETENTION_DAYS)
        prune()

        after = self.statistics(scenario)
        self.assertEqual(after.keys(), before.keys())
        for key in before:
            self.assertEqual(after[key], before[key], key)
        # The figures are not all zero: the test compares something
        activities = {a['id']: a for a in before['activities']}
        self.assertGreater(
            sum(a['email_sent'] for a in activities.values()), 3)
        self.assertEqual(
            before['scenario'][0]['conversion_count'], 3)

        # With the reminder waiting for its record
        kept = {r.id for n in KEPT for r in records[n].activities}
        self.assertEqual(len(kept), len(KEPT) + 1)
        self.assertEqual(count_rows(RECORD_ACTIVITY), kept)
        Email = pool.get('ir.email')
        self.assertEqual(
            sorted(e.marketing_automation_record.record.name
                for e in Email.browse(count_rows('ir.email'))),
            sorted(KEPT))
        self.assertEqual(len(count_rows('marketing.automation.link.click')),
            1)
        Conversion = pool.get('marketing.automation.conversion')
        conversion, = Conversion.browse(
            count_rows('marketing.automation.conversion'))
        self.assertEqual(conversion.record, records['recent'])
        # The addresses of the archives went with them
        address = pool.get('ir.email.address').__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*address.select(address.email))
        self.assertEqual(
            {e for e, in cursor}, count_rows('ir.email'))
        # The records stay: the scenario may run again
        self.assertEqual(
            count_rows('marketing.automation.record'), records_before)

        # Pruning again changes nothing
        prune()
        self.assertEqual(self.statistics(scenario), before)

        # The enrolment does not enrol the pruned records again
        if state == 'stopped':
            Scenario.draft([scenario])
        enrol(scenario)
        self.assertEqual(
            count_rows('marketing.automation.record'), records_before)
        self.assertEqual(count_rows(RECORD_ACTIVITY), kept)
        self.assertEqual(Record.search(
                [('scenario', '=', scenario.id)], count=True),
            len(records))

    @with_transaction()
    def test_running_scenario(self):
        "Test the finished records of a running scenario keep their counts"
        self.assert_counts_kept('running')

    @with_transaction()
    def test_stopped_scenario(self):
        "Test the finished records of a stopped scenario keep their counts"
        self.assert_counts_kept('stopped')

    @with_transaction()
    def test_off_by_default(self):
        "Test nothing is pruned without a retention"
        self.campaign()
        existing = {m: count_rows(m) for m in PRUNED_MODELS}
        self.retention(0)
        prune()
        self.assertEqual(
            {m: count_rows(m) for m in PRUNED_MODELS}, existing)

    @with_transaction()
    def test_goal_window(self):
        "Test the touches within the goal window before the cutoff stay"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        scenario, records, rows = self.campaign()
        existing = count_rows(RECORD_ACTIVITY)
        # 20 days ago is within 15 days and a window of 7 days
        self.retention(15)
        prune()
        self.assertEqual(count_rows(RECORD_ACTIVITY), existing)

        Scenario.write([scenario], {'goal': None})
        prune()
        self.assertLess(
            len(count_rows(RECORD_ACTIVITY)), len(existing))

    @with_transaction()
    def test_old_sales_do_not_convert(self):
        "Test a sale older than the retention converts no more"
        pool = Pool()
        RecordActivity = pool.get(RECORD_ACTIVITY)
        Activity = pool.get('marketing.automation.activity')
        Conversion = pool.get('marketing.automation.conversion')
        Sale = pool.get('sale.sale')
        scenario, records, rows = self.campaign()
        self.retention(RETENTION_DAYS)
        prune()
        conversions = count_rows('marketing.automation.conversion')
        # The sale of a pruned conversion written again after a new touch
        sale, = Sale.search([('party.name', '=', 'clicked')])
        reminder, = Activity.search([('name', '=', "Reminder")])
        touch, = RecordActivity.create([{
                    'record': records['clicked'].id,
                    'activity': reminder.id, 'state': 'done'}])
        sql_write(RECORD_ACTIVITY, [touch.id],
            email_handoff='sent', at=RECENT)
        sql_write('sale.sale', [sale.id], write_date=NOW)
        Conversion.compute([sale])
        self.assertEqual(
            count_rows('marketing.automation.conversion'), conversions)

        # Without retention, the sale converts again
        self.retention(0)
        Conversion.compute([sale])
        self.assertEqual(
            len(count_rows('marketing.automation.conversion')),
            len(conversions) + 1)
