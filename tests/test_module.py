# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
import logging
import traceback
from contextlib import contextmanager
from unittest.mock import patch

import trytond.config as config
from trytond.model.exceptions import ValidationError
from trytond.modules.marketing_automation import engine
from trytond.modules.marketing_automation.exceptions import (
    ConditionError, DomainError, EventError, ParentError, TemplateError)
from trytond.pool import Pool
from trytond.pyson import Eval, PYSONEncoder
from trytond.tests.test_tryton import ModuleTestCase, with_transaction
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_event_activities, create_party, create_scenario,
    email_values, enrol, mark_sent, marketing_user, process_due)


class MarketingAutomationTestCase(ModuleTestCase):
    "Test Marketing Automation module"
    module = 'marketing_automation'
    extras = ['sale', 'web_shortener', 'inbound_email']

    @with_transaction()
    def test_scenario_valid_domain(self):
        "Test a valid scenario domain is accepted"
        scenario = create_scenario(domain='[["name", "ilike", "A%"]]')
        self.assertEqual(scenario.get_domain(), [['name', 'ilike', 'A%']])

    @with_transaction()
    def test_scenario_invalid_domain(self):
        "Test invalid scenario domains are refused"
        for domain in [
                '[["name", "=",',  # not JSON
                '[["no_such_field", "=", 1]]',
                '[["name", "no operator", 1]]',
                ]:
            with self.subTest(domain=domain):
                with self.assertRaises(DomainError):
                    create_scenario(domain=domain)

    @with_transaction()
    def test_scenario_draft_record_count(self):
        "Test draft scenario counts the records matching the domain"
        pool = Pool()
        Party = pool.get('party.party')
        Party.create([{'name': "Ann"}, {'name': "Anna"}, {'name': "Bob"}])
        scenario = create_scenario(domain='[["name", "like", "Ann%"]]')
        self.assertEqual(scenario.record_count, 2)
        self.assertEqual(scenario.block_rate, 0)

    @with_transaction()
    def test_activity_condition(self):
        "Test activity condition must be PYSON"
        scenario = create_scenario()
        activity = create_activity(
            scenario, condition='{"__class__": "Eval", "v": "self.name", '
            '"d": ""}')
        self.assertTrue(activity.condition)
        with self.assertRaises(ConditionError):
            create_activity(scenario, condition='{"__class__": ')

    @with_transaction()
    def test_activity_condition_get_of_self(self):
        "Test a condition reading a field with Eval('self', {}).get()"
        pool = Pool()
        Party = pool.get('party.party')
        scenario = create_scenario()
        activity = create_activity(
            scenario, condition=PYSONEncoder().encode(
                Eval('self', {}).get('name') == "Ann"))
        ann, bob = Party.create([{'name': "Ann"}, {'name': "Bob"}])
        self.assertTrue(activity.match(ann))
        self.assertFalse(activity.match(bob))
        with self.assertRaises(ConditionError):
            create_activity(scenario, condition=PYSONEncoder().encode(
                    Eval('self', {}).get('no_such_field') == "Ann"))

    @with_transaction()
    def test_activity_template_syntax(self):
        "Test Genshi syntax errors are refused in title and template"
        scenario = create_scenario()
        for values in [
                email_values(email_title="Hello ${record.name"),
                email_values(email_template='<html><body><p></body>'),
                email_values(
                    email_template='<html xmlns:py="http://genshi.edgewall'
                    '.org/"><body py:for="">x</body></html>'),
                ]:
            with self.subTest(values=values):
                with self.assertRaises(TemplateError):
                    create_activity(scenario, **values)

    @with_transaction()
    def test_activity_template_sandbox(self):
        "Test sandbox violations are refused in title and template"
        scenario = create_scenario()
        for values in [
                email_values(
                    email_title="${record.__class__.__subclasses__()}"),
                email_values(
                    email_template='<html><body>'
                    '${().__class__.__bases__[0].__subclasses__()}'
                    '</body></html>'),
                email_values(
                    email_template='<html xmlns:xi="http://www.w3.org/2001/'
                    'XInclude"><body><xi:include href="/etc/passwd" '
                    'parse="text"/></body></html>'),
                ]:
            with self.subTest(values=values):
                with self.assertRaises(TemplateError):
                    create_activity(scenario, **values)

    @with_transaction()
    def test_activity_event_parent(self):
        "Test events are only allowed under an e-mail activity"
        scenario = create_scenario()
        with self.assertRaises(EventError):
            create_activity(scenario, on='email_opened')
        parent = create_activity(scenario)
        with self.assertRaises(EventError):
            create_activity(parent, on='email_clicked')
        mail = create_activity(scenario, **email_values())
        child = create_activity(mail, on='email_clicked')
        self.assertEqual(
            (child.event, bool(child.negative)), ('email_clicked', False))
        self.assertEqual(child.parent_action, 'send_email')
        self.assertEqual(child.scenario, scenario)

    @with_transaction()
    def test_activity_negative_delay(self):
        "Test a negative event needs a delay"
        scenario = create_scenario()
        mail = create_activity(scenario, **email_values())
        # The client also sees the delay as required
        with self.assertRaises(ValidationError):
            create_activity(mail, on='email_opened_not')
        child = create_activity(
            mail, on='email_opened_not', delay=dt.timedelta(days=1))
        self.assertEqual(child.on, 'email_opened_not')

    @with_transaction()
    def test_activity_delay_positive(self):
        "Test the delay cannot be negative"
        scenario = create_scenario()
        with self.assertRaises(ValidationError):
            create_activity(scenario, delay=dt.timedelta(hours=-1))

    @with_transaction()
    def test_activity_parent_other_scenario(self):
        "Test an activity cannot move under another scenario"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        scenario1 = create_scenario()
        scenario2 = create_scenario()
        activity = create_activity(scenario1)
        other = create_activity(scenario2)
        with self.assertRaises(ParentError):
            Activity.write([activity], {'parent': str(other)})
        with self.assertRaises(ParentError):
            Activity.write([activity], {'parent': str(scenario2)})

    @with_transaction()
    def test_delete_scenario_deletes_activities(self):
        "Test deleting a scenario deletes its activities"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        scenario = create_scenario()
        root = create_activity(scenario, **email_values())
        create_activity(root, on='email_opened')
        self.assertEqual(Activity.search([], count=True), 2)
        Scenario.delete([scenario])
        self.assertEqual(Activity.search([], count=True), 0)

    @with_transaction()
    def test_delete_activity_deletes_children(self):
        "Test deleting an activity deletes its descendants"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        scenario = create_scenario()
        root = create_activity(scenario, **email_values())
        child = create_activity(root, on='email_opened')
        create_activity(child)
        Activity.delete([root])
        self.assertEqual(Activity.search([], count=True), 0)

    @with_transaction()
    def test_enrolment(self):
        "Test enrolment is done once and skips unsubscribed parties"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Unsubscribed = pool.get(
            'party.party-unsubscribed-marketing.automation.scenario')
        parties = Party.create([{'name': "P%s" % i} for i in range(25)])
        scenario = create_scenario(domain='[["name", "like", "P%"]]')
        root = create_activity(
            scenario, **email_values(delay=dt.timedelta(hours=1)))
        Unsubscribed.create([{'party': parties[0].id, 'scenario': scenario}])
        Scenario.run([scenario])

        # Small batches exercise the loop
        scenario.enrol(batch_size=7)
        scenario.enrol(batch_size=7)
        Scenario.trigger()

        records = Record.search([])
        self.assertEqual(len(records), 24)
        self.assertNotIn(parties[0], [r.record for r in records])
        self.assertEqual(len({r.uuid for r in records}), 24)
        self.assertTrue(all(len(r.uuid) == 32 for r in records))
        record_activities = RecordActivity.search([])
        self.assertEqual(len(record_activities), 24)
        self.assertEqual(
            {(r.activity, r.state) for r in record_activities},
            {(root, 'waiting')})
        self.assertTrue(all(
                r.at > dt.datetime.now() + dt.timedelta(minutes=59)
                for r in record_activities))

    @with_transaction()
    def test_trigger_skips_failing_scenario(self):
        "Test a scenario failing at run time does not stop the others"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        Record = pool.get('marketing.automation.record')
        Party.create([{'name': "Ann"}])
        broken = create_scenario()
        working = create_scenario()
        Scenario.run([broken, working])
        # Bypass the validation as a domain may break after an upgrade
        table = Scenario.__table__()
        Transaction().connection.cursor().execute(*table.update(
                [table.domain], ['[["no_such_field", "=", 1]]'],
                where=table.id == broken.id))
        Scenario.trigger()
        self.assertEqual(Record.search([], count=True), 1)
        self.assertEqual(Record.search([])[0].scenario, working)

    def enrol_one(self, scenario):
        "Enrol a new party in the scenario and return its record"
        party = create_party("Enrolled")
        record, = [r for r in enrol(scenario) if r.record == party]
        return record

    def record_activities(self, record):
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        return {
            r.activity.name: r for r in RecordActivity.search([
                    ('record', '=', record.id)])}

    @with_transaction()
    def test_process_stopped_and_blocked(self):
        "Test stopped scenarios and blocked records run nothing"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        scenario = create_scenario(domain='[["name", "=", "Enrolled"]]')
        create_activity(scenario, name="Root")
        record = self.enrol_one(scenario)
        root = self.record_activities(record)['Root']

        Scenario.stop([scenario])
        RecordActivity.process([root])
        self.assertEqual(RecordActivity(root.id).state, 'waiting')

        Scenario.draft([scenario])
        Scenario.run([scenario])
        Record.block([record])
        RecordActivity.process([root])
        self.assertEqual(RecordActivity(root.id).state, 'waiting')

        Record.write([record], {'blocked': False})
        RecordActivity.process([root])
        self.assertEqual(RecordActivity(root.id).state, 'done')
        # Acted on once only
        RecordActivity.process([root])
        self.assertEqual(RecordActivity(root.id).state, 'done')

    @with_transaction()
    def test_process_condition_and_children(self):
        "Test a false condition skips the action and children run at once"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        scenario = create_scenario(domain='[["name", "=", "Enrolled"]]')
        root = create_activity(
            scenario, name="Root",
            condition='{"__class__": "Equal", '
            '"s1": {"__class__": "Eval", "v": "self.name", "d": ""}, '
            '"s2": "Nobody"}')
        create_activity(root, name="Now")
        create_activity(root, name="Later", delay=dt.timedelta(days=3))
        record = self.enrol_one(scenario)

        RecordActivity.process([self.record_activities(record)['Root']])
        activities = self.record_activities(record)
        self.assertEqual(activities['Root'].state, 'done')
        self.assertEqual(
            activities['Root'].note,
            'The record does not match the condition.')
        self.assertEqual(activities['Now'].state, 'done')
        self.assertEqual(activities['Later'].state, 'waiting')
        self.assertGreater(
            activities['Later'].at, dt.datetime.now() + dt.timedelta(days=2))

    @with_transaction()
    def test_process_record_gone(self):
        "Test a deleted record is done without acting"
        pool = Pool()
        Party = pool.get('party.party')
        RecordActivity = pool.get('marketing.automation.record.activity')
        scenario = create_scenario(domain='[["name", "=", "Enrolled"]]')
        create_activity(scenario, name="Root", **email_values())
        record = self.enrol_one(scenario)
        Party.delete([record.record])
        RecordActivity.process([self.record_activities(record)['Root']])
        root = self.record_activities(record)['Root']
        self.assertEqual(root.state, 'done')
        self.assertEqual(root.note, 'The record does not exist any more.')

    @with_transaction()
    def test_marketing_recipients(self):
        "Test the recipients are read as the party would give them"
        from trytond.modules.company.tests import create_company
        pool = Pool()
        Party = pool.get('party.party')
        PartyLang = pool.get('party.party.lang')
        Lang = pool.get('ir.lang')
        Sale = pool.get('sale.sale')
        french, = Lang.search([('code', '=', 'fr')])
        german, = Lang.search([('code', '=', 'de')])
        company = create_company()
        ann, bob, cyd = Party.create([{
                    'name': "Ann",
                    'contact_mechanisms': [('create', [
                                {'type': 'phone', 'value': '+3211',
                                    'sequence': 1},
                                {'type': 'email', 'value': 'late@example.com',
                                    'sequence': 20},
                                {'type': 'email', 'name': "Ann at Work",
                                    'value': 'ann@example.com',
                                    'sequence': 15},
                                {'type': 'email', 'value': 'old@example.com',
                                    'sequence': 10, 'active': False},
                                ])],
                    }, {
                    'name': "Bob",
                    'contact_mechanisms': [('create', [
                                {'type': 'email', 'value': 'bob@example.com'},
                                ])],
                    }, {
                    'name': "Cyd",
                    }])
        PartyLang.create([
                {'party': ann.id, 'lang': french.id},
                {'party': bob.id, 'lang': german.id, 'company': company.id},
                ])
        self.assertEqual(
            Party.get_marketing_recipients([ann.id, bob.id, cyd.id]), {
                ann.id: ("Ann at Work", 'ann@example.com', 'fr'),
                # The language of another company as last resort
                bob.id: ("Bob", 'bob@example.com', 'de'),
                cyd.id: ("Cyd", None, None),
                })
        with Transaction().set_context(company=company.id):
            self.assertEqual(
                Party.get_marketing_recipients([bob.id])[bob.id][2], 'de')
        # A value of the company comes before the one of no company
        PartyLang.create([
                {'party': ann.id, 'lang': german.id, 'company': company.id}])
        for context, code in [({}, 'fr'), ({'company': company.id}, 'de')]:
            with Transaction().set_context(context):
                self.assertEqual(
                    Party.get_marketing_recipients([ann.id])[ann.id][2], code)

        sale = Sale(party=bob, company=company, currency=company.currency)
        sale.save()
        self.assertEqual(
            Sale.get_marketing_recipients([sale.id]),
            {sale.id: ("Bob", 'bob@example.com', 'de')})

    @with_transaction()
    def test_send_email_rights_of_author(self):
        "Test e-mails read the records with the rights of their author"
        pool = Pool()
        RuleGroup = pool.get('ir.rule.group')
        FieldAccess = pool.get('ir.model.field.access')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Email = pool.get('ir.email')
        RuleGroup.create([{
                    'name': "Not the secret party",
                    'model': 'party.party',
                    'global_p': True,
                    'perm_read': True,
                    'rules': [('create', [{
                                    'domain': '[["name", "!=", "Secret"]]',
                                    }])],
                    }])
        FieldAccess.create([{
                    'model': 'party.party',
                    'field': 'code',
                    'perm_read': False,
                    }])
        # The field access rules spare the administrators
        marketer = marketing_user()
        scenario = create_scenario(
            domain='[["name", "in", ["Public", "Secret"]]]')
        with Transaction().set_user(marketer.id):
            create_activity(
                scenario, name="Name", **email_values())
            create_activity(scenario, name="Code", **email_values(
                        email_template='<p>${record.code}</p>'))
        parties = [create_party(name, '%s@example.com' % name)
            for name in ["Public", "Secret"]]
        enrol(scenario)

        process_due()
        notes = {
            (r.record.record.name, r.activity.name): r.note
            for r in RecordActivity.search([])}
        self.assertIsNone(notes[("Public", "Name")])
        self.assertIn('could not be rendered', notes[("Secret", "Name")])
        self.assertIn('could not be rendered', notes[("Public", "Code")])
        self.assertEqual(
            [e.resource for e in Email.search([])], [parties[0]])
        self.assertEqual(Record.search([], count=True), 2)

    @with_transaction()
    def test_send_email_reads_records_together(self):
        "Test the records of a batch are read together whatever its order"
        pool = Pool()
        Party = pool.get('party.party')
        scenario = create_scenario(domain='[["name", "like", "Reader %"]]')
        create_activity(scenario, **email_values())
        for i in range(30):
            create_party('Reader %s' % i, 'reader%s@example.com' % i)
        enrol(scenario)
        reads = []
        read, read_rows = Party.read.__func__, engine.read_rows

        def counting_read(cls, ids, fields_names=None):
            if 'name' in (fields_names or []):
                reads.append(len(ids))
            return read(cls, ids, fields_names)

        # As PostgreSQL may give them, not in the order of their records
        with patch.object(engine, 'read_rows',
                    lambda ids: read_rows(ids)[::-1]), \
                patch.object(Party, 'read', classmethod(counting_read)):
            process_due()
        self.assertEqual(reads, [30])

    @with_transaction()
    def test_events(self):
        "Test events schedule positive children once and cancel negatives"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        scenario = create_scenario(domain='[["name", "=", "Enrolled"]]')
        mail = create_activity(
            scenario, name="Mail", **email_values())
        create_event_activities(
            mail, ["Opened", "Not Opened", "Clicked", "Not Clicked"])
        record = self.enrol_one(scenario)
        # Done as if sent, to test the events alone
        root, = mark_sent(mail)
        activities = self.record_activities(record)
        self.assertIsNone(activities['Opened'].at)
        self.assertIsNone(activities['Clicked'].at)
        self.assertIsNotNone(activities['Not Opened'].at)

        RecordActivity.on_email_opened([root])
        activities = self.record_activities(record)
        opened_at = activities['Opened'].at
        self.assertGreater(opened_at, dt.datetime.now())
        self.assertEqual(activities['Not Opened'].state, 'cancelled')
        self.assertEqual(activities['Not Clicked'].state, 'waiting')
        self.assertIsNone(activities['Clicked'].at)

        # A click also counts as an open; repeated events change nothing
        RecordActivity.write([activities['Opened']], {'at': None})
        RecordActivity.on_email_clicked([RecordActivity(root.id)])
        RecordActivity.on_email_clicked([RecordActivity(root.id)])
        RecordActivity.on_email_opened([RecordActivity(root.id)])
        activities = self.record_activities(record)
        root = activities['Mail']
        self.assertTrue(root.email_opened)
        self.assertTrue(root.email_clicked)
        self.assertIsNone(activities['Opened'].at)
        self.assertIsNotNone(activities['Clicked'].at)
        self.assertEqual(activities['Not Clicked'].state, 'cancelled')

    @with_transaction()
    def test_unsubscribe(self):
        "Test unsubscribing blocks and keeps the party out if allowed"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        Scenario = pool.get('marketing.automation.scenario')
        scenario = create_scenario(
            domain='[["name", "=", "Enrolled"]]', unsubscribable=True)
        record = self.enrol_one(scenario)
        Record.unsubscribe([record])
        Record.unsubscribe([record])
        self.assertTrue(record.blocked)
        party = record.record
        self.assertEqual(
            list(party.marketing_scenario_unsubscribed), [scenario])
        Record.delete([record])
        Scenario.trigger()
        self.assertEqual(Record.search([], count=True), 0)

    @with_transaction()
    def test_statistics_per_email_sent(self):
        "Test the figures count e-mails sent, not records skipped"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        ActivityReporting = pool.get('marketing.automation.reporting.activity')
        for name in ["R1", "R2", "R3", "R4"]:
            create_party(name, '%s@example.com' % name)
        create_party("R5")
        scenario = create_scenario(domain='[["name", "like", "R%"]]')
        reminder = create_activity(
            scenario, name="Reminder",
            condition='{"__class__": "Not", "v": {"__class__": "Equal", '
            '"s1": {"__class__": "Eval", "v": "self.name", "d": ""}, '
            '"s2": "R4"}}',
            **email_values())
        thanks = create_activity(
            reminder, name="Thanks", on='email_opened')
        not_opened = create_activity(
            reminder, name="Not Opened", on='email_opened_not',
            delay=dt.timedelta(days=2))
        enrol(scenario)
        process_due()
        records = {r.record.name: r for r in Record.search([])}
        sent = {r.record.record.name: r for r in RecordActivity.search([
                    ('activity', '=', reminder.id)])}
        # R4 does not match the condition and R5 has no e-mail address
        self.assertEqual(
            {n for n, r in sent.items() if r.note}, {"R4", "R5"})

        RecordActivity.on_email_opened([sent["R1"], sent["R4"]])
        RecordActivity.on_email_clicked([sent["R2"]])
        Record.block([records["R3"], records["R4"]])

        reminder = type(reminder)(reminder.id)
        self.assertEqual(
            (reminder.record_count, reminder.email_sent,
                reminder.record_count_skipped, reminder.email_opened,
                reminder.email_clicked, reminder.email_unsubscribed),
            (5, 3, 2, 2, 1, 1))
        self.assertEqual(
            (reminder.email_open_rate, reminder.email_click_rate,
                reminder.email_click_through_rate),
            (0.6667, 0.3333, 0.5))
        self.assertEqual(reminder.record_count_waiting, 0)
        thanks, not_opened = type(thanks).browse([thanks, not_opened])
        self.assertEqual(
            (thanks.record_count_waiting, thanks.email_sent), (5, 0))
        self.assertEqual(
            (not_opened.record_count_waiting,
                not_opened.record_count_cancelled),
            (2, 3))
        scenario = type(scenario)(scenario.id)
        self.assertEqual(
            (scenario.record_count, scenario.record_count_blocked,
                scenario.email_sent, scenario.block_rate),
            (5, 2, 3, 0.4))

        with Transaction().set_context(period='month'):
            report, = ActivityReporting.search([
                    ('activity', '=', reminder.id)])
            self.assertEqual(
                (report.record_count, report.email_sent, report.email_opened,
                    report.email_clicked),
                (5, 3, 2, 1))
            self.assertAlmostEqual(report.email_open_rate, 2 / 3)
            self.assertAlmostEqual(report.email_click_rate, 1 / 3)
            self.assertAlmostEqual(report.email_click_through_rate, 1 / 2)

        # An e-mail that could not be delivered is not sent
        RecordActivity.write([sent["R3"]], {'tries': 4})
        RecordActivity.sending_failed({sent["R3"].id: "Refused"})
        reminder = type(reminder)(reminder.id)
        self.assertEqual(
            (reminder.email_sent, reminder.record_count_failed,
                reminder.email_unsubscribed, reminder.email_open_rate),
            (2, 1, 0, 1.0))

    @with_transaction()
    def test_party_marketing_records(self):
        "Test a party finds the records of itself and of its sales"
        from trytond.modules.company.tests import create_company
        pool = Pool()
        Party = pool.get('party.party')
        Sale = pool.get('sale.sale')
        Record = pool.get('marketing.automation.record')
        company = create_company()
        ann, bob = Party.create([{'name': "Ann"}, {'name': "Bob"}])
        with Transaction().set_context(company=company.id):
            sale = Sale(party=ann, company=company, currency=company.currency)
            sale.save()
        parties = create_scenario(domain='[["name", "in", ["Ann"]]]')
        root = create_activity(parties, name="Root")
        sales = create_scenario(model='sale.sale')
        for scenario in [parties, sales]:
            enrol(scenario)

        records = Record.search([('party', '=', ann.id)])
        self.assertEqual(
            {r.record for r in records}, {ann, sale})
        self.assertEqual({r.party for r in records}, {ann})
        self.assertEqual(Record.search([('party', '=', bob.id)]), [])
        self.assertEqual(
            Record.search([('party.name', '=', "Ann")]), records)
        self.assertEqual(
            set(Party(ann.id).marketing_automation_records), set(records))
        record, = Record.search([('record', '=', str(ann))])
        self.assertEqual([a.activity for a in record.activities], [root])

    @with_transaction()
    def test_email_relates(self):
        "Test activities and scenarios relate to their e-mails once"
        pool = Pool()
        for model in [
                'marketing.automation.activity',
                'marketing.automation.scenario']:
            with self.subTest(model=model):
                relates = [
                    r['name']
                    for r in pool.get(model).view_toolbar_get()['relate']]
                self.assertEqual(relates.count("E-mails"), 1)
                self.assertNotIn("Email Archives", relates)

    @with_transaction()
    def test_scenario_name_required(self):
        "Test a scenario needs a name"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        with self.assertRaises(ValidationError):
            Scenario.create([{'model': 'party.party'}])

    @with_transaction()
    def test_activity_on_natural_order(self):
        "Test the choices of On keep their natural order"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        field = Activity.fields_get(['on'])['on']
        self.assertFalse(field['sort'])
        self.assertEqual(
            [v for v, _ in field['selection']],
            [None, 'email_opened', 'email_opened_not', 'email_clicked',
                'email_clicked_not'])

    @contextmanager
    def assertLogsAtMostALine(self):
        "Assert what is logged inside is at most a line, no traceback"
        with self.assertLogs(level='DEBUG') as logs:
            # assertLogs fails without any log
            logging.getLogger(__name__).debug("start")
            yield
        # The PostgreSQL backend traces each query at the debug level
        records = [r for r in logs.records[1:]
            if not r.name.startswith('trytond.backend.')]
        self.assertLessEqual(
            len(records), 1, [r.getMessage() for r in records])
        for record in records:
            self.assertIsNone(record.exc_info)
            self.assertEqual(len(record.getMessage().splitlines()), 1)

    def assertQuietError(self, error):
        "Assert a user error carries no traceback of its cause"
        self.assertIsNone(error.__cause__)
        self.assertTrue(
            error.__suppress_context__ or error.__context__ is None)
        lines = ''.join(traceback.format_exception(error)).splitlines()
        self.assertLess(len(lines), 30)
        self.assertNotIn("RecursionError", '\n'.join(lines))

    @with_transaction()
    def test_scenario_domain_errors_name_the_problem(self):
        "Test a typo in a domain is refused with a message naming it"
        for domain, expected in [
                ('[["name", "equals", "x"]]',
                    ['operator "equals"', 'field "Name" of "Party"',
                        '"ilike"']),
                ('[["create_date", "like", "2020"]]',
                    ['operator "like"', 'field "Created at" of "Party"']),
                ('[["name", "child_of", "x"]]', ['operator "child_of"']),
                ('[["nme", "=", "x"]]', ['"nme" is not a field of "Party"']),
                ('[["addresses.cty", "=", "x"]]',
                    ['"addresses.cty"',
                        '"cty" is not a field of "Party Address"']),
                ('[["name", "=",', ['not a valid PYSON expression']),
                ('["OR", "name"]', ["'name', which is not a clause"]),
                ('[["name"]]', ["['name'], which is not a clause"]),
                ('[["name", "=", "x", "y"]]', ['which is not a clause']),
                ('[["create_date", "<", "yesterday"]]',
                    ['cannot be searched', 'yesterday']),
                ]:
            with self.subTest(domain=domain):
                with self.assertLogsAtMostALine(), \
                        self.assertRaises(DomainError) as cm:
                    create_scenario(name="Typo", domain=domain)
                for text in expected:
                    self.assertIn(text, cm.exception.message)
                self.assertIn('"Typo"', cm.exception.message)
                self.assertQuietError(cm.exception)

    @with_transaction()
    def test_scenario_domain_valid_operators(self):
        "Test the operators valid for their field are accepted"
        for domain in [
                [('name', 'not ilike', '%a%')],
                [('create_date', '>=', dt.datetime(2020, 1, 1))],
                [('addresses', 'where', [('city', 'in', ['X', 'Y'])])],
                ['OR', ('code', '=', None), [('code', 'like', 'C%')]],
                ]:
            with self.subTest(domain=domain):
                create_scenario(
                    domain=PYSONEncoder().encode(domain))

    @with_transaction()
    def test_activity_condition_errors_name_the_problem(self):
        "Test a typo in a condition is refused with a message naming it"
        scenario = create_scenario(model='sale.sale')
        for condition, expected in [
                ("self.state == 'draft'",
                    ['not a valid PYSON expression',
                        "Eval('self.state') == 'draft'"]),
                (PYSONEncoder().encode(Eval('state') == 'draft'),
                    ['reads "state"', "Eval('self.field_name')"]),
                (PYSONEncoder().encode(Eval('self.stat') == 'draft'),
                    ['"self.stat"', '"Sale"']),
                ('{"__class__": "Nothing"}', ['not a valid PYSON']),
                ]:
            with self.subTest(condition=condition):
                with self.assertLogsAtMostALine(), \
                        self.assertRaises(ConditionError) as cm:
                    create_activity(
                        scenario, name="Typo", condition=condition)
                for text in expected:
                    self.assertIn(text, cm.exception.message)
                self.assertIn('"Typo"', cm.exception.message)
                self.assertQuietError(cm.exception)

    @with_transaction()
    def test_domain_and_condition_help_give_examples(self):
        "Test the help of domain and condition show the PYSON to type"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        self.assertIn(
            "[('name', 'ilike', '%coffee%')]", Scenario.domain.help)
        self.assertIn("Eval('self.state') == 'draft'", Activity.condition.help)

    @with_transaction()
    def test_trigger_invalid_domain_logs_a_line(self):
        "Test a running scenario whose domain became invalid logs one line"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        scenario = create_scenario()
        Scenario.write([scenario], {'state': 'running'})
        table = Scenario.__table__()
        cursor = Transaction().connection.cursor()
        for domain in ['[["name", "equals", "x"]]', '[["name", "="']:
            with self.subTest(domain=domain):
                cursor.execute(*table.update(
                        [table.domain], [domain],
                        where=table.id == scenario.id))
                for cache in Transaction().cache.values():
                    cache.clear()
                with self.assertLogsAtMostALine(), self.assertLogs(
                        'trytond.modules.marketing_automation',
                        level='ERROR') as logs:
                    Scenario.trigger(Scenario.browse([scenario.id]))
                self.assertIn("domain is not valid", logs.output[0])

    @with_transaction()
    def test_run_enrols_in_background(self):
        "Test Run pushes the enrolment of the scenario to the queue"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        Queue = pool.get('ir.queue')
        Party.create([{'name': "Ann"}, {'name': "Bob"}])
        scenario = create_scenario(domain='[["name", "=", "Ann"]]')
        Scenario.run([scenario])
        task, = Queue.search([])
        self.assertEqual(task.data['method'], 'trigger')
        self.assertEqual(list(task.data['instances']), [scenario.id])
        task.run()
        scenario = Scenario(scenario.id)
        self.assertEqual(scenario.state, 'running')
        self.assertEqual(scenario.record_count, 1)

    @with_transaction()
    def test_process_queues_batches_by_id(self):
        "Test the cron queues each batch as ids under its first one"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Queue = pool.get('ir.queue')
        scenario = create_scenario(domain='[["name", "like", "Queued %"]]')
        create_activity(scenario, **email_values())
        for i in range(3):
            create_party('Queued %s' % i, 'queued%s@example.com' % i)
        enrol(scenario)
        due = RecordActivity.search(
            [('state', '=', 'waiting')], order=[('id', 'ASC')])

        if not config.has_section('marketing'):
            config.add_section('marketing')
        self.addCleanup(config.set, 'marketing', 'automation_process_batch',
            config.get('marketing', 'automation_process_batch', default='500'))
        config.set('marketing', 'automation_process_batch', '2')
        RecordActivity.process()

        tasks = [t for t in Queue.search([], order=[('id', 'ASC')])
            if t.data['model'] == RecordActivity.__name__]
        self.assertEqual([
                (t.data['method'], t.data['instances'], list(t.data['args']))
                for t in tasks], [
                ('process_batch', due[0].id, [[due[0].id, due[1].id]]),
                ('process_batch', due[2].id, [[due[2].id]]),
                ])
        for task in tasks:
            task.run()
        self.assertEqual(
            {r.state for r in RecordActivity.browse(due)}, {'done'})

    @with_transaction()
    def test_archive_readable_recipient_and_sender_domain(self):
        "Test the archive keeps the recipient's name readable and searchable"
        Email = Pool().get('ir.email')
        create_party("Sébastien Leroy", 'seb@example.com')
        scenario = create_scenario(
            domain='[["name", "=", "Sébastien Leroy"]]')
        create_activity(scenario, **email_values(
                email_from="Blue Heron <hello@blueheron.example.com>"))
        enrol(scenario)

        process_due()

        email, = Email.search([('recipients', 'ilike', '%Sébastien%')])
        self.assertEqual(
            email.recipients, "Sébastien Leroy <seb@example.com>")
        self.assertTrue(
            email.message_id.endswith('@blueheron.example.com>'),
            email.message_id)


del ModuleTestCase
