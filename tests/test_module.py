# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt

from marketing_automation.exceptions import (
    ConditionError, DomainError, EventError, ParentError, TemplateError)
from trytond.model.exceptions import ValidationError
from trytond.pool import Pool
from trytond.tests.test_tryton import ModuleTestCase, with_transaction
from trytond.transaction import Transaction

HTML = '<html><body><p>${record.name}</p></body></html>'


class MarketingAutomationTestCase(ModuleTestCase):
    "Test Marketing Automation module"
    module = 'marketing_automation'
    extras = ['sale', 'web_shortener']

    def create_scenario(self, **values):
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        values.setdefault('name', "Scenario")
        values.setdefault('model', 'party.party')
        scenario, = Scenario.create([values])
        return scenario

    def create_activity(self, parent, **values):
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        values.setdefault('name', "Activity")
        values['parent'] = str(parent)
        activity, = Activity.create([values])
        return activity

    def email_values(self, **values):
        values.setdefault('action', 'send_email')
        values.setdefault('email_title', "Hello ${record.name}")
        values.setdefault('email_template', HTML)
        return values

    @with_transaction()
    def test_scenario_valid_domain(self):
        "Test a valid scenario domain is accepted"
        scenario = self.create_scenario(domain='[["name", "ilike", "A%"]]')
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
                    self.create_scenario(domain=domain)

    @with_transaction()
    def test_scenario_draft_record_count(self):
        "Test draft scenario counts the records matching the domain"
        pool = Pool()
        Party = pool.get('party.party')
        Party.create([{'name': "Ann"}, {'name': "Anna"}, {'name': "Bob"}])
        scenario = self.create_scenario(domain='[["name", "like", "Ann%"]]')
        self.assertEqual(scenario.record_count, 2)
        self.assertEqual(scenario.block_rate, 0)

    @with_transaction()
    def test_activity_condition(self):
        "Test activity condition must be PYSON"
        scenario = self.create_scenario()
        activity = self.create_activity(
            scenario, condition='{"__class__": "Eval", "v": "self.name", '
            '"d": ""}')
        self.assertTrue(activity.condition)
        with self.assertRaises(ConditionError):
            self.create_activity(scenario, condition='{"__class__": ')

    @with_transaction()
    def test_activity_template_syntax(self):
        "Test Genshi syntax errors are refused in title and template"
        scenario = self.create_scenario()
        for values in [
                self.email_values(email_title="Hello ${record.name"),
                self.email_values(email_template='<html><body><p></body>'),
                self.email_values(
                    email_template='<html xmlns:py="http://genshi.edgewall'
                    '.org/"><body py:for="">x</body></html>'),
                ]:
            with self.subTest(values=values):
                with self.assertRaises(TemplateError):
                    self.create_activity(scenario, **values)

    @with_transaction()
    def test_activity_template_sandbox(self):
        "Test sandbox violations are refused in title and template"
        scenario = self.create_scenario()
        for values in [
                self.email_values(
                    email_title="${record.__class__.__subclasses__()}"),
                self.email_values(
                    email_template='<html><body>'
                    '${().__class__.__bases__[0].__subclasses__()}'
                    '</body></html>'),
                self.email_values(
                    email_template='<html xmlns:xi="http://www.w3.org/2001/'
                    'XInclude"><body><xi:include href="/etc/passwd" '
                    'parse="text"/></body></html>'),
                ]:
            with self.subTest(values=values):
                with self.assertRaises(TemplateError):
                    self.create_activity(scenario, **values)

    @with_transaction()
    def test_activity_event_parent(self):
        "Test events are only allowed under an e-mail activity"
        scenario = self.create_scenario()
        with self.assertRaises(EventError):
            self.create_activity(scenario, on='email_opened')
        parent = self.create_activity(scenario)
        with self.assertRaises(EventError):
            self.create_activity(parent, on='email_clicked')
        mail = self.create_activity(scenario, **self.email_values())
        child = self.create_activity(mail, on='email_clicked')
        self.assertEqual(
            (child.event, bool(child.negative)), ('email_clicked', False))
        self.assertEqual(child.parent_action, 'send_email')
        self.assertEqual(child.scenario, scenario)

    @with_transaction()
    def test_activity_negative_delay(self):
        "Test a negative event needs a delay"
        scenario = self.create_scenario()
        mail = self.create_activity(scenario, **self.email_values())
        # The client also sees the delay as required
        with self.assertRaises(ValidationError):
            self.create_activity(mail, on='email_opened_not')
        child = self.create_activity(
            mail, on='email_opened_not', delay=dt.timedelta(days=1))
        self.assertEqual(child.on, 'email_opened_not')

    @with_transaction()
    def test_activity_delay_positive(self):
        "Test the delay cannot be negative"
        scenario = self.create_scenario()
        with self.assertRaises(ValidationError):
            self.create_activity(scenario, delay=dt.timedelta(hours=-1))

    @with_transaction()
    def test_activity_parent_other_scenario(self):
        "Test an activity cannot move under another scenario"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        scenario1 = self.create_scenario()
        scenario2 = self.create_scenario()
        activity = self.create_activity(scenario1)
        other = self.create_activity(scenario2)
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
        scenario = self.create_scenario()
        root = self.create_activity(scenario, **self.email_values())
        self.create_activity(root, on='email_opened')
        self.assertEqual(Activity.search([], count=True), 2)
        Scenario.delete([scenario])
        self.assertEqual(Activity.search([], count=True), 0)

    @with_transaction()
    def test_delete_activity_deletes_children(self):
        "Test deleting an activity deletes its descendants"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        scenario = self.create_scenario()
        root = self.create_activity(scenario, **self.email_values())
        child = self.create_activity(root, on='email_opened')
        self.create_activity(child)
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
        scenario = self.create_scenario(domain='[["name", "like", "P%"]]')
        root = self.create_activity(
            scenario, **self.email_values(delay=dt.timedelta(hours=1)))
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
        broken = self.create_scenario()
        working = self.create_scenario()
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
        "Enrol a new party in the running scenario and return its record"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        Record = pool.get('marketing.automation.record')
        party, = Party.create([{'name': "Enrolled"}])
        if scenario.state != 'running':
            Scenario.run([scenario])
        scenario.enrol()
        record, = Record.search([
                ('scenario', '=', scenario.id),
                ('record', '=', str(party)),
                ])
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
        scenario = self.create_scenario(domain='[["name", "=", "Enrolled"]]')
        self.create_activity(scenario, name="Root")
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
        scenario = self.create_scenario(domain='[["name", "=", "Enrolled"]]')
        root = self.create_activity(
            scenario, name="Root",
            condition='{"__class__": "Equal", '
            '"s1": {"__class__": "Eval", "v": "self.name", "d": ""}, '
            '"s2": "Nobody"}')
        self.create_activity(root, name="Now")
        self.create_activity(root, name="Later", delay=dt.timedelta(days=3))
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
        scenario = self.create_scenario(domain='[["name", "=", "Enrolled"]]')
        self.create_activity(scenario, name="Root", **self.email_values())
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
        Party = pool.get('party.party')
        User = pool.get('res.user')
        ModelData = pool.get('ir.model.data')
        RuleGroup = pool.get('ir.rule.group')
        FieldAccess = pool.get('ir.model.field.access')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Email = pool.get('ir.email')
        Scenario = pool.get('marketing.automation.scenario')
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
        marketer, = User.create([{
                    'name': "Marketer",
                    'login': 'marketer',
                    'groups': [('add', [ModelData.get_id(
                                    'marketing', 'group_marketing')])],
                    }])
        scenario = self.create_scenario(
            domain='[["name", "in", ["Public", "Secret"]]]')
        with Transaction().set_user(marketer.id):
            self.create_activity(
                scenario, name="Name", **self.email_values())
            self.create_activity(scenario, name="Code", **self.email_values(
                        email_template='<p>${record.code}</p>'))
        parties = Party.create([
                {'name': name, 'contact_mechanisms': [('create', [{
                                    'type': 'email',
                                    'value': '%s@example.com' % name,
                                    }])]}
                for name in ["Public", "Secret"]])
        Scenario.run([scenario])
        scenario.enrol()

        RecordActivity.process(RecordActivity.search([]))
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
    def test_events(self):
        "Test events schedule positive children once and cancel negatives"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        scenario = self.create_scenario(domain='[["name", "=", "Enrolled"]]')
        mail = self.create_activity(
            scenario, name="Mail", **self.email_values())
        self.create_activity(
            mail, name="Opened", on='email_opened', delay=dt.timedelta(days=1))
        self.create_activity(
            mail, name="Not Opened", on='email_opened_not',
            delay=dt.timedelta(days=2))
        self.create_activity(mail, name="Clicked", on='email_clicked')
        self.create_activity(
            mail, name="Not Clicked", on='email_clicked_not',
            delay=dt.timedelta(days=2))
        record = self.enrol_one(scenario)
        root = self.record_activities(record)['Mail']
        # Done as if sent, to test the events alone
        RecordActivity.write([root], {'state': 'done'})
        RecordActivity.schedule_children([root])
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
        scenario = self.create_scenario(
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


del ModuleTestCase
