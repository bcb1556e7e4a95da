# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Tests of the consent: the opt-outs and the suppression list honoured at
enrolment and at send time, transactional e-mails, open tracking and the
import of opt-outs"""
import datetime as dt
from contextlib import contextmanager
from unittest.mock import patch

from trytond.model.exceptions import AccessError
from trytond.model.modelview import AccessButtonError
from trytond.modules.marketing_automation.consent_import import AddressFile
from trytond.modules.marketing_automation.exceptions import AddressFileError
from trytond.modules.marketing_automation.smtp import (
    RecordActivitySMTPDataManager)
from trytond.pool import Pool
from trytond.tests.test_tryton import DBTestCase, with_transaction
from trytond.transaction import Transaction

from .builders import (
    MessageLinks, create_activity, create_party, create_scenario, email_values,
    enrol, marketing_user, process_due)

OPTED_OUT = "The party opted out of marketing e-mails."
# From a French shop's export: BOM, semicolons, a header, a name in
# "Name <address>" form, upper case, blank and invalid lines
EXPORT = (
    '\ufeffNom;E-mail;Ville\r\n'
    'Ann;ANN@Example.COM;Lyon\r\n'
    'Bob;"Bob Martin <bob@example.com>";Paris\r\n'
    '\r\n'
    'Carl;carl(at)example.com;Nantes\r\n'
    'Dora;dora@example.com;Lille\r\n'
    'Eve;;Rouen\r\n'
    'Ann again;ann@example.com ;Lyon\r\n'
    'Fay;fay@example.com;Metz\r\n'
    ).encode('utf-8')


@contextmanager
def sent_messages():
    "Collect the messages handed to SMTP in a list"
    messages = []
    put = RecordActivitySMTPDataManager.put_record_activity

    def record(self, record_activity_id, msg, *args, **kwargs):
        messages.append(msg)
        return put(self, record_activity_id, msg, *args, **kwargs)
    with patch.object(
            RecordActivitySMTPDataManager, 'put_record_activity', record):
        yield messages


def note_of(activity, party):
    "Return the state and note of the record activity of the party"
    RecordActivity = Pool().get('marketing.automation.record.activity')
    record_activity, = RecordActivity.search([
            ('activity', '=', activity.id),
            ('record.record', '=', str(party)),
            ])
    return record_activity.state, record_activity.note


def statistics(activity):
    "Return the records done, skipped and the e-mails sent of the activity"
    activity = activity.__class__(activity.id)
    return (activity.record_count, activity.record_count_skipped,
        activity.email_sent)


class ConsentTestCase(DBTestCase):
    "Test the consent of the parties and the suppression list"
    module = 'marketing_automation'

    def scenario_of(self, names, **values):
        "Return a scenario on the parties named and its e-mail activity"
        scenario = create_scenario(
            domain='[["name", "in", %s]]' % str(list(names)).replace(
                "'", '"'))
        email = create_activity(scenario, name="E-mail", **email_values(
                **values))
        return scenario, email

    @with_transaction()
    def test_enrolment_excludes_opted_out(self):
        "Test the enrolment leaves out the parties opted out"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        names = ["P%02d" % i for i in range(30)]
        parties = [create_party(n, '%s@example.com' % n) for n in names]
        Consent.record([p.id for p in parties[::3]], True, 'manual')
        scenario, _ = self.scenario_of(names)

        records = enrol(scenario)

        self.assertEqual(
            sorted(r.record.name for r in records),
            [n for i, n in enumerate(names) if i % 3])

    @with_transaction()
    def test_enrolment_transactional_includes_opted_out(self):
        "Test a scenario with a transactional e-mail enrols everybody"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        ann = create_party("Ann", 'ann@example.com')
        create_party("Bob", 'bob@example.com')
        Consent.record([ann.id], True, 'manual')
        scenario, _ = self.scenario_of(["Ann", "Bob"], transactional=True)

        self.assertEqual(len(enrol(scenario)), 2)

    @with_transaction()
    def test_opt_out_after_enrolment(self):
        "Test an opt-out made after the enrolment stops the next e-mail"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        Email = pool.get('ir.email')
        ann = create_party("Ann", 'ann@example.com')
        bob = create_party("Bob", 'bob@example.com')
        scenario, email = self.scenario_of(["Ann", "Bob"])
        enrol(scenario)

        Consent.record([ann.id], True, 'page')
        process_due()

        self.assertEqual(note_of(email, ann), ('done', OPTED_OUT))
        self.assertEqual(note_of(email, bob), ('done', None))
        self.assertEqual(
            [e.resource for e in Email.search([])], [bob])
        self.assertEqual(statistics(email), (2, 1, 1))

    @with_transaction()
    def test_suppressed_address(self):
        "Test a suppressed address receives nothing and the note says why"
        pool = Pool()
        Suppression = pool.get('marketing.automation.suppression')
        ann = create_party("Ann", 'Ann@Example.com')
        bob = create_party("Bob", 'bob@example.com')
        scenario, email = self.scenario_of(["Ann", "Bob"])
        enrol(scenario)

        Suppression.create([{'email': ' ann@example.COM '}])
        process_due()

        self.assertEqual(note_of(email, ann), (
                'done', "The e-mail address is suppressed: Manual."))
        self.assertEqual(note_of(email, bob), ('done', None))
        self.assertEqual(statistics(email), (2, 1, 1))

    @with_transaction()
    def test_transactional(self):
        """Test a transactional e-mail goes to an opted-out party and a
        manually suppressed address but not to a hard-bounced address"""
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        Suppression = pool.get('marketing.automation.suppression')
        ann = create_party("Ann", 'ann@example.com')
        bob = create_party("Bob", 'bob@example.com')
        carl = create_party("Carl", 'carl@example.com')
        Consent.record([ann.id, bob.id], True, 'manual')
        Suppression.suppress({'bob@example.com'}, 'manual')
        Suppression.suppress({'carl@example.com'}, 'hard_bounce')
        scenario, email = self.scenario_of(
            ["Ann", "Bob", "Carl"], transactional=True)
        enrol(scenario)

        with sent_messages() as messages:
            process_due()

        self.assertEqual(
            sorted(m['To'] for m in messages),
            ['Ann <ann@example.com>', 'Bob <bob@example.com>'])
        self.assertEqual(note_of(email, carl), (
                'done', "The e-mail address is suppressed: Hard Bounce."))
        self.assertEqual(statistics(email), (3, 1, 2))

    @with_transaction()
    def test_transactional_only_for_its_activity(self):
        "Test the marketing e-mail of a scenario with a transactional one"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        ann = create_party("Ann", 'ann@example.com')
        scenario, receipt = self.scenario_of(["Ann"], transactional=True)
        offer = create_activity(scenario, name="Offer", **email_values())
        Consent.record([ann.id], True, 'manual')
        enrol(scenario)

        process_due()

        self.assertEqual(note_of(receipt, ann), ('done', None))
        self.assertEqual(note_of(offer, ann), ('done', OPTED_OUT))

    @with_transaction()
    def test_soft_bounces_suppress_at_limit(self):
        "Test soft bounces suppress the address only at the limit"
        pool = Pool()
        Suppression = pool.get('marketing.automation.suppression')
        address = 'ann@example.com'
        for _ in range(2):
            suppression = Suppression.soft_bounce(address)
        self.assertEqual(
            (suppression.suppressed, suppression.soft_bounces), (False, 2))
        self.assertEqual(Suppression.suppressed_addresses({address}), {})

        suppression = Suppression.soft_bounce('ANN@example.com')

        self.assertEqual(
            (suppression.suppressed, suppression.soft_bounces), (True, 3))
        self.assertEqual(
            Suppression.suppressed_addresses({address}),
            {address: 'soft_bounce'})
        self.assertEqual(Suppression.search([], count=True), 1)

    @with_transaction()
    def test_soft_bounces_counted_in_period(self):
        "Test the soft bounces older than the period are forgotten"
        pool = Pool()
        Suppression = pool.get('marketing.automation.suppression')
        address = 'ann@example.com'
        for _ in range(2):
            suppression = Suppression.soft_bounce(address)
        suppression.soft_bounce_since = (
            dt.datetime.now() - dt.timedelta(days=16))
        suppression.save()

        suppression = Suppression.soft_bounce(address)

        self.assertEqual(
            (suppression.suppressed, suppression.soft_bounces), (False, 1))

    @with_transaction()
    def test_soft_bounce_keeps_hard_bounce(self):
        "Test a soft bounce does not lift a hard bounce"
        pool = Pool()
        Suppression = pool.get('marketing.automation.suppression')
        Suppression.suppress({'ann@example.com'}, 'hard_bounce')

        suppression = Suppression.soft_bounce('ann@example.com')

        self.assertEqual(
            (suppression.reason, suppression.suppressed),
            ('hard_bounce', True))

    @with_transaction()
    def test_open_tracking_off(self):
        "Test a scenario without open tracking sends no pixel and warns"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        create_party("Ann", 'ann@example.com')
        create_party("Bob", 'bob@example.com')
        tracked, tracked_email = self.scenario_of(["Ann"])
        untracked, untracked_email = self.scenario_of(["Bob"])
        Scenario.write([untracked], {'open_tracking': False})
        opened = create_activity(
            untracked_email, name="Opened", on='email_opened')
        not_opened = create_activity(
            untracked_email, name="Not Opened", on='email_opened_not',
            delay=dt.timedelta(days=1))
        tracked_opened = create_activity(
            tracked_email, name="Opened", on='email_opened')
        enrol(tracked)
        enrol(untracked)

        with sent_messages() as messages:
            process_due()

        images = {m['To']: MessageLinks(m).images for m in messages}
        self.assertEqual(images['Bob <bob@example.com>'], [])
        self.assertEqual(len(images['Ann <ann@example.com>']), 1)
        opened, not_opened, tracked_opened = Activity.browse(
            [opened, not_opened, tracked_opened])
        self.assertIn("never runs", opened.on_warning)
        self.assertIn("runs for every record", not_opened.on_warning)
        self.assertIsNone(tracked_opened.on_warning)

    @with_transaction()
    def test_party_buttons(self):
        "Test the opt-out and opt-in buttons write the history"
        pool = Pool()
        Party = pool.get('party.party')
        marketer = marketing_user()
        ann = create_party("Ann")

        with Transaction().set_user(marketer.id), \
                Transaction().set_context(_check_access=True):
            Party.marketing_opt_out([Party(ann.id)])
            self.assertTrue(Party(ann.id).marketing_email_opt_out)
            Party.marketing_opt_in([Party(ann.id)])

        ann = Party(ann.id)
        self.assertFalse(ann.marketing_email_opt_out)
        self.assertEqual(
            [(c.opted_out, c.source, c.scenario, c.create_uid)
                for c in ann.marketing_consents],
            [(False, 'manual', None, marketer),
                (True, 'manual', None, marketer)])

    @with_transaction()
    def test_party_buttons_marketing_group_only(self):
        "Test a user outside the marketing group cannot opt a party out"
        pool = Pool()
        Party = pool.get('party.party')
        User = pool.get('res.user')
        clerk, = User.create([{'name': "Clerk", 'login': 'clerk'}])
        ann = create_party("Ann")

        with Transaction().set_user(clerk.id), \
                Transaction().set_context(_check_access=True), \
                self.assertRaises(AccessButtonError):
            Party.marketing_opt_out([Party(ann.id)])

    def import_file(self, data, filename='export.csv', **values):
        "Run the import wizard on the file; return its result"
        pool = Pool()
        Import = pool.get(
            'marketing.automation.consent.import', type='wizard')
        values.setdefault('suppress', True)
        values.setdefault('opt_out', True)
        session_id, _, _ = Import.create()
        result = Import.execute(session_id, {
                'start': {'file': data, 'filename': filename, **values},
                }, 'import_')
        self.assertEqual(Import.delete(session_id), 'reload')
        return result['view']['defaults']

    @with_transaction()
    def test_import(self):
        "Test the import opts out the parties and suppresses the addresses"
        pool = Pool()
        Party = pool.get('party.party')
        Consent = pool.get('marketing.automation.consent')
        Suppression = pool.get('marketing.automation.suppression')
        ann = create_party("Ann", 'Ann@example.com')
        bob = create_party("Bob", 'bob@example.com')
        dora = create_party("Dora", 'dora@example.com')
        eve = create_party("Eve", 'eve@example.com')
        Consent.record([dora.id], True, 'page')
        Suppression.suppress({'fay@example.com'}, 'hard_bounce')

        result = self.import_file(EXPORT, note="From the old tool")

        self.assertEqual(
            {k: result[k] for k in [
                    'addresses', 'invalid', 'parties', 'suppressed']},
            {'addresses': 4, 'invalid': 2, 'parties': 2, 'suppressed': 3})
        self.assertEqual(
            result['invalid_lines'],
            "5: Carl, carl(at)example.com, Nantes\n7: Eve, , Rouen")
        self.assertEqual(
            [p.name for p in Party.search([
                        ('marketing_email_opt_out', '=', True),
                        ], order=[('name', 'ASC')])],
            ["Ann", "Bob", "Dora"])
        self.assertFalse(Party(eve.id).marketing_email_opt_out)
        self.assertEqual(
            sorted((c.party.name, c.source, c.note) for c in Consent.search([
                        ('source', '=', 'import'),
                        ])),
            [("Ann", 'import', "From the old tool"),
                ("Bob", 'import', "From the old tool")])
        self.assertEqual(
            {s.email: (s.reason, s.report) for s in Suppression.search([])},
            {
                'ann@example.com': ('import', "From the old tool"),
                'bob@example.com': ('import', "From the old tool"),
                'dora@example.com': ('import', "From the old tool"),
                'fay@example.com': ('hard_bounce', None),
                })
        self.assertEqual(
            [c.source for c in Party(ann.id).marketing_consents], ['import'])
        self.assertTrue(Party(bob.id).marketing_email_opt_out)

    @with_transaction()
    def test_import_twice_changes_nothing(self):
        "Test importing the same file again counts nothing new"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        create_party("Ann", 'ann@example.com')
        self.import_file(EXPORT)

        result = self.import_file(EXPORT)

        self.assertEqual(
            (result['addresses'], result['parties'], result['suppressed']),
            (4, 0, 0))
        self.assertEqual(Consent.search([], count=True), 1)

    @with_transaction()
    def test_import_choices(self):
        "Test the import only does what is checked"
        pool = Pool()
        Party = pool.get('party.party')
        Suppression = pool.get('marketing.automation.suppression')
        ann = create_party("Ann", 'ann@example.com')

        result = self.import_file(EXPORT, opt_out=False)
        self.assertEqual((result['parties'], result['suppressed']), (0, 4))
        self.assertFalse(Party(ann.id).marketing_email_opt_out)

        Suppression.delete(Suppression.search([]))
        result = self.import_file(EXPORT, suppress=False)
        self.assertEqual((result['parties'], result['suppressed']), (1, 0))
        self.assertEqual(Suppression.search([], count=True), 0)
        self.assertTrue(Party(ann.id).marketing_email_opt_out)

    @with_transaction()
    def test_import_note_defaults_to_filename(self):
        "Test the history names the file when no note is given"
        pool = Pool()
        Party = pool.get('party.party')
        ann = create_party("Ann", 'ann@example.com')

        self.import_file(EXPORT, filename='unsubscribed.csv')

        consent, = Party(ann.id).marketing_consents
        self.assertEqual(consent.note, 'unsubscribed.csv')

    @with_transaction()
    def test_import_without_address(self):
        "Test a file without any address is refused and changes nothing"
        pool = Pool()
        Suppression = pool.get('marketing.automation.suppression')
        for data in [b'', b'name;city\nAnn;Lyon\nBob;Paris\n', b'\x00\xff']:
            with self.subTest(data=data), \
                    self.assertRaises(AddressFileError) as context:
                self.import_file(data, filename='contacts.csv')
            self.assertIn('"contacts.csv" contains no e-mail address',
                context.exception.message)
        self.assertEqual(Suppression.search([], count=True), 0)

    @with_transaction()
    def test_import_marketing_group_only(self):
        "Test only the marketing group runs the import"
        pool = Pool()
        User = pool.get('res.user')
        Import = pool.get(
            'marketing.automation.consent.import', type='wizard')
        clerk, = User.create([{'name': "Clerk", 'login': 'clerk'}])
        marketer = marketing_user()

        create_party("Ann", 'ann@example.com')

        with Transaction().set_user(marketer.id), \
                Transaction().set_context(_check_access=True):
            result = self.import_file(EXPORT)
        self.assertEqual((result['parties'], result['suppressed']), (1, 4))
        with Transaction().set_user(clerk.id), \
                self.assertRaises(AccessError):
            Import.create()

    @with_transaction()
    def test_import_many_addresses(self):
        "Test the import of more addresses than a query takes"
        pool = Pool()
        Party = pool.get('party.party')
        Suppression = pool.get('marketing.automation.suppression')
        names = ['c%04d' % i for i in range(1200)]
        Party.create([{
                    'name': n,
                    'contact_mechanisms': [('create', [{
                                    'type': 'email',
                                    'value': '%s@Example.com' % n,
                                    }])],
                    } for n in names[::2]])
        data = '\n'.join('%s@example.com' % n for n in names).encode()

        result = self.import_file(data)

        self.assertEqual(
            (result['addresses'], result['parties'], result['suppressed']),
            (1200, 600, 1200))
        self.assertEqual(Party.search([
                    ('marketing_email_opt_out', '=', True),
                    ], count=True), 600)
        self.assertEqual(Suppression.search([], count=True), 1200)


class AddressFileTestCase(DBTestCase):
    "Test the reading of the files of addresses"
    module = 'marketing_automation'

    @with_transaction()
    def test_single_column_without_header(self):
        "Test a plain list of addresses with commas in quoted names"
        address_file = AddressFile(
            b'ann@example.com\r\n"Doe, Bob" <BOB@example.com>\r\nnope\r\n')
        self.assertEqual(
            address_file.addresses, {'ann@example.com', 'bob@example.com'})
        self.assertEqual(address_file.invalid_lines, [(3, ['nope'])])

    @with_transaction()
    def test_header_without_address_name(self):
        "Test the address column is found by its values, not its name"
        address_file = AddressFile(
            b'Contact,Address,Courriel\n'
            b'Ann,1 rue Neuve,ann@example.com\n'
            b'Bob,2 rue Neuve,bob@example.com\n'
            b'Carl,3 rue Neuve,\n')
        self.assertEqual(
            address_file.addresses, {'ann@example.com', 'bob@example.com'})
        self.assertEqual(
            [line for line, _ in address_file.invalid_lines], [4])

    @with_transaction()
    def test_named_column_only(self):
        "Test the addresses of other columns are not read"
        address_file = AddressFile(
            b'email\tmanager\nann@example.com\tboss@example.com\n'
            b'bob@example.com\t\n')
        self.assertEqual(
            address_file.addresses, {'ann@example.com', 'bob@example.com'})

    @with_transaction()
    def test_windows_code_page(self):
        "Test a file saved by a spreadsheet on Windows"
        address_file = AddressFile(
            'Nom;Adresse e-mail\nZoé;zoe@example.com\n'.encode('cp1252'))
        self.assertEqual(address_file.addresses, {'zoe@example.com'})
