# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Bounces, complaints and mailto unsubscribes arriving through inbound_email

The actions of the rules in a database (both backends), then end to end: a
real trytond server sends a scenario's e-mails with VERP to a real SMTP
server, and the samples of tests/bounces/, rewritten to be about these
e-mails, are posted to the inbox's webhook (SQLite only)."""
import logging
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch
from urllib.parse import urlsplit

import pytest

import trytond.config as config
from trytond.modules.marketing_automation.inbound import (
    REPORT_ACTION, UNSUBSCRIBE_ACTION)
from trytond.modules.marketing_automation.smtp import (
    RecordActivitySMTPDataManager)
from trytond.modules.marketing_automation.testing import SMTPSink, free_port
from trytond.pool import Pool
from trytond.tests.test_tryton import DBTestCase, with_transaction
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_party, create_scenario, email_values, enrol,
    process_due)
from .servers import ROOT, query, trytond_server, wait

SAMPLES = Path(__file__).resolve().parent / 'bounces'
# What the samples say about the e-mail they are about
TOKEN = '3f6b0d2a9c8e4f71b5a2c9d04e7f1a6b'
RECORD_TOKEN = '8e1d4c7b2a5f4e9c9b0a6d3f2c1e7b58'
MESSAGE_ID = '<171265050112.4242.1234567890123456789@shop.example>'
BOUNCE_ADDRESS = 'bounces@shop.example'
MAILTO = 'unsubscribe@shop.example'
LOGGER = 'trytond.modules.marketing_automation.inbound'


def sample(name):
    return (SAMPLES / (name + '.eml')).read_bytes()


def rewrite(raw, token=None, record_token=None, message_id=None):
    "Return the sample about the e-mail of the tokens and Message-ID given"
    for old, new in [
            (TOKEN, token), (RECORD_TOKEN, record_token),
            (MESSAGE_ID, message_id)]:
        if new:
            raw = raw.replace(old.encode(), new.encode())
    return raw


@contextmanager
def marketing_settings(**values):
    "Set keys of the [marketing] section for the block; None unsets a key"
    created = not config.has_section('marketing')
    saved = {} if created else {
        o: config.get('marketing', o) for o in config.options('marketing')}

    def restore(options):
        if config.has_section('marketing'):
            config.remove_section('marketing')
        config.add_section('marketing')
        for option, value in options.items():
            config.set('marketing', option, value)
        for function in [config.get, config.getint, config.getboolean]:
            function.cache_clear()
    restore({k: v for k, v in {**saved, **values}.items() if v is not None})
    try:
        yield
    finally:
        restore(saved)
        if created:
            config.remove_section('marketing')


@contextmanager
def handed_to_smtp():
    "Collect the (envelope sender, message) handed to SMTP"
    sent = []
    put = RecordActivitySMTPDataManager.put_record_activity

    def record(self, record_activity_id, msg, from_addr=None, to_addrs=None):
        sent.append((from_addr, msg))
        return put(self, record_activity_id, msg, from_addr, to_addrs)
    with patch.object(
            RecordActivitySMTPDataManager, 'put_record_activity', record):
        yield sent


class InboundActionsTestCase(DBTestCase):
    "Test the actions of the inbound e-mail rules"
    module = 'marketing_automation'
    extras = ['inbound_email']

    def send(self, names, bounce_address=BOUNCE_ADDRESS, mailto=MAILTO):
        """Send the e-mail of a scenario to the parties named, each at
        <name>@example.com; return the sent e-mails by address"""
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Email = pool.get('ir.email')
        for name in names:
            create_party(name.title(), '%s@example.com' % name)
        scenario = create_scenario(unsubscribable=True)
        create_activity(scenario, **email_values())
        enrol(scenario)
        with marketing_settings(
                    automation_bounce_address=bounce_address,
                    automation_unsubscribe_mailto=mailto), \
                handed_to_smtp() as sent:
            process_due()
        emails = {}
        for envelope, msg in sent:
            archive, = Email.search([('message_id', '=', msg['Message-ID'])])
            record_activity, = RecordActivity.search([
                    ('record', '=', archive.marketing_automation_record.id),
                    ('activity', '=',
                        archive.marketing_automation_activity.id),
                    ])
            emails[archive.addresses[0].address] = {
                'envelope': envelope,
                'message': msg,
                'record_activity': record_activity,
                'record': record_activity.record,
                }
        return emails

    def about(self, name, email):
        "Return the sample rewritten to be about the sent e-mail"
        return rewrite(sample(name),
            token=email['record_activity'].uuid,
            record_token=email['record'].uuid,
            message_id=email['message']['Message-ID'])

    def inbox(self):
        "Return an inbox with the rules of the marketing actions"
        pool = Pool()
        Inbox = pool.get('inbound.email.inbox')
        inbox = Inbox(name="Marketing")
        inbox.rules = [
            {'destination': r'^unsubscribe@', 'action': UNSUBSCRIBE_ACTION},
            {'action': REPORT_ACTION},
            ]
        inbox.save()
        return inbox

    def receive(self, raw, data_type='raw'):
        "Receive the data as the webhook does; return the inbound e-mail"
        pool = Pool()
        Email = pool.get('inbound.email')
        inbox = self.inbox()
        email_, = Email.from_webhook(inbox, raw, data_type)
        with marketing_settings(automation_bounce_address=BOUNCE_ADDRESS):
            inbox.process(email_)
        Email.save([email_])
        return email_

    def suppressions(self):
        Suppression = Pool().get('marketing.automation.suppression')
        return {s.email: s for s in Suppression.search([])}

    @with_transaction()
    def test_verp_and_mailto(self):
        "Test each message carries its tokens in its envelope and mailto"
        emails = self.send(['ann', 'bob'])

        for address, email in emails.items():
            self.assertEqual(email['envelope'], 'bounces+%s@shop.example'
                % email['record_activity'].uuid)
            self.assertIn(
                '<mailto:unsubscribe@shop.example?subject=unsubscribe%20'
                + email['record'].uuid + '>',
                email['message']['List-Unsubscribe'])
            self.assertNotIn('Return-Path', email['message'])

    @with_transaction()
    def test_default_envelope(self):
        "Test without configuration the envelope and mailto are unchanged"
        emails = self.send(['ann'], bounce_address=None, mailto=None)

        email = emails['ann@example.com']
        self.assertEqual(email['envelope'], config.get('email', 'from'))
        self.assertNotIn('mailto:', email['message']['List-Unsubscribe'])

    @with_transaction()
    def test_invalid_bounce_address(self):
        "Test a bounce address that is no address fails the e-mail clearly"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        create_party("Ann", 'ann@example.com')
        scenario = create_scenario()
        create_activity(scenario, **email_values())
        enrol(scenario)

        with marketing_settings(automation_bounce_address='bounces'), \
                handed_to_smtp() as sent:
            process_due()

        self.assertEqual(sent, [])
        record_activity, = RecordActivity.search([])
        self.assertEqual(record_activity.note,
            'The bounce address "bounces" of the configuration is not a '
            'valid e-mail address.')

    @with_transaction()
    def test_hard_bounce_by_token(self):
        "Test a hard bounce suppresses the address of its VERP token"
        emails = self.send(['ann', 'bob'])
        ann = emails['ann@example.com']
        # The report names another address: an alias of the recipient
        raw = self.about('postfix_hard', ann).replace(
            b'Final-Recipient: rfc822; ann@example.com\n'
            b'Original-Recipient: rfc822;ann@example.com',
            b'Final-Recipient: rfc822; ann.smith@mail.example.com')

        email_ = self.receive(raw)

        suppression, = self.suppressions().values()
        self.assertEqual(email_.result, suppression)
        self.assertEqual(
            (suppression.email, suppression.reason, suppression.suppressed),
            ('ann@example.com', 'hard_bounce', True))
        self.assertEqual(
            suppression.record_activity, ann['record_activity'])
        self.assertIn('Status: 5.1.1', suppression.report)

    @with_transaction()
    def test_unknown_token(self):
        "Test a report whose token is unknown falls back on its recipient"
        self.send(['ann'])
        raw = rewrite(sample('postfix_hard'), token='0' * 32)

        self.receive(raw)

        suppression, = self.suppressions().values()
        self.assertEqual(suppression.email, 'ann@example.com')
        self.assertIsNone(suppression.record_activity)

    @with_transaction()
    def test_hard_bounce_by_message_id(self):
        "Test a bounce without token is matched on the returned Message-ID"
        emails = self.send(['fay'])
        fay = emails['fay@example.com']

        self.receive(self.about('gmail_hard', fay))

        suppression, = self.suppressions().values()
        self.assertEqual(
            (suppression.email, suppression.reason),
            ('fay@example.com', 'hard_bounce'))
        self.assertEqual(suppression.record_activity, fay['record_activity'])

    @with_transaction()
    def test_hard_bounce_by_recipient(self):
        "Test a bounce about an unknown e-mail suppresses its recipient"
        self.send(['eve'])

        email_ = self.receive(sample('exim_plain'))

        suppression, = self.suppressions().values()
        self.assertEqual(email_.result, suppression)
        self.assertEqual(
            (suppression.email, suppression.reason,
                suppression.record_activity),
            ('eve@example.org', 'hard_bounce', None))

    @with_transaction()
    def test_soft_bounces(self):
        "Test soft bounces are counted and suppress at the limit"
        emails = self.send(['cid'])
        cid = emails['cid@example.com']

        for count, name in enumerate(
                ['postfix_delayed', 'qmail_plain', 'gmail_delayed'], 1):
            # The samples bounced cid@example.net: the token is what counts
            self.receive(self.about(name, cid))
            suppression, = self.suppressions().values()
            self.assertEqual(
                (suppression.email, suppression.soft_bounces,
                    suppression.suppressed),
                ('cid@example.com', count, count == 3), name)
        self.assertEqual(suppression.reason, 'soft_bounce')

    @with_transaction()
    def test_complaint(self):
        "Test a complaint suppresses the address and opts the party out"
        pool = Pool()
        Party = pool.get('party.party')
        Consent = pool.get('marketing.automation.consent')
        emails = self.send(['ivy', 'kim'])

        for name, address in [
                ('arf_yahoo', 'ivy@example.com'),
                ('arf_microsoft', 'kim@example.com')]:
            email_ = self.receive(self.about(name, emails[address]))
            suppression = self.suppressions()[address]
            self.assertEqual(email_.result, suppression)
            self.assertEqual(suppression.reason, 'complaint')
            self.assertEqual(suppression.record_activity,
                emails[address]['record_activity'])
            party, = Party.search([('name', '=', address[:3].title())])
            self.assertTrue(party.marketing_email_opt_out)
            consent, = Consent.search([('party', '=', party.id)])
            self.assertEqual(
                (consent.source, consent.opted_out, consent.scenario),
                ('complaint', True, None))

    @with_transaction()
    def test_complaint_by_record_token(self):
        "Test a complaint matched by the List-Unsubscribe of the message"
        emails = self.send(['kim'])
        kim = emails['kim@example.com']
        raw = rewrite(sample('arf_microsoft'), record_token=kim['record'].uuid)

        self.receive(raw)

        suppression, = self.suppressions().values()
        self.assertEqual(
            (suppression.email, suppression.reason),
            ('kim@example.com', 'complaint'))

    @with_transaction()
    def test_not_spam_feedback(self):
        "Test a feedback that is no complaint changes nothing"
        emails = self.send(['ivy'])
        raw = self.about('arf_yahoo', emails['ivy@example.com']).replace(
            b'Feedback-Type: abuse', b'Feedback-Type: not-spam')

        with self.assertLogs(LOGGER, logging.INFO) as logs:
            email_ = self.receive(raw)

        self.assertIsNone(email_.result)
        self.assertEqual(self.suppressions(), {})
        self.assertIn('complaint not-spam', logs.output[0])

    @with_transaction()
    def test_nothing_changes(self):
        "Test auto-replies, garbage and unknown reports change nothing"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        emails = self.send(['lea'])
        lea = emails['lea@example.com']
        for raw, reason in [
                (self.about('auto_reply_vacation', lea), 'auto_reply'),
                (self.about('auto_reply_exchange', lea), 'auto_reply'),
                (sample('garbage'), 'no From header'),
                (b'\x00\xff' * 100, 'no From header'),
                (rewrite(sample('arf_microsoft'), record_token='0' * 32),
                    'no address'),
                ]:
            with self.assertLogs(LOGGER, logging.INFO) as logs:
                email_ = self.receive(raw)
            self.assertIsNone(email_.result)
            self.assertIsNotNone(email_.id)
            self.assertEqual(len(logs.output), 1)
            self.assertIn(reason, logs.output[0])
        self.assertEqual(self.suppressions(), {})
        self.assertEqual(Consent.search([]), [])
        self.assertFalse(lea['record'].__class__(lea['record'].id).blocked)

    @with_transaction()
    def test_mailto_unsubscribe(self):
        "Test an e-mail to the mailto unsubscribes the record of its token"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        Record = pool.get('marketing.automation.record')
        emails = self.send(['nat', 'ann'])
        nat = emails['nat@example.com']

        email_ = self.receive(self.about('unsubscribe_gmail', nat))

        self.assertEqual(email_.result, nat['record'])
        self.assertEqual(
            [r.record.name for r in Record.search([('blocked', '=', True)])],
            ["Nat"])
        consent, = Consent.search([])
        self.assertEqual(
            (consent.party.name, consent.source, consent.scenario),
            ("Nat", 'mailto', nat['record'].scenario))
        self.assertEqual(self.suppressions(), {})

    @with_transaction()
    def test_mailto_nothing_changes(self):
        "Test requests to the mailto with no known token change nothing"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        emails = self.send(['nat'])
        nat = emails['nat@example.com']
        for raw, reason in [
                (sample('unsubscribe_gmail'), 'unknown token'),
                (self.about('unsubscribe_gmail', nat).replace(
                        b'\nSubject: unsubscribe',
                        b'\nAuto-Submitted: auto-replied\n'
                        b'Subject: Out of office: unsubscribe'),
                    'no unsubscribe request'),
                (b'To: unsubscribe@shop.example\n\nunsubscribe '
                    + nat['record'].uuid.encode(), 'no From header'),
                ]:
            with self.assertLogs(LOGGER, logging.INFO) as logs:
                email_ = self.receive(raw)
            self.assertIsNone(email_.result)
            self.assertEqual(len(logs.output), 1)
            self.assertIn(reason, logs.output[0])
        self.assertFalse(Record.search([('blocked', '=', True)]))

    @with_transaction()
    def test_provider_payloads(self):
        "Test the raw message of the providers posting JSON is read"
        import json
        emails = self.send(['ann', 'fay', 'gus'])
        for (address, name), (data_type, key) in zip([
                    ('ann@example.com', 'postfix_hard'),
                    ('fay@example.com', 'gmail_hard'),
                    ('gus@example.com', 'microsoft_hard')], [
                    ('mailpace', 'raw'),
                    ('sendgrid', 'email'),
                    ('mailchimp', 'raw_msg')]):
            raw = self.about(name, emails[address]).decode()
            if data_type == 'mailchimp':
                data = json.dumps({'mandrill_events': [
                            {'event': 'inbound', key: raw}]})
            else:
                data = json.dumps({key: raw})
            email_ = self.receive(data.encode(), data_type)
            self.assertEqual(email_.result.email, address, data_type)
        with self.assertLogs(LOGGER, logging.INFO) as logs:
            email_ = self.receive(json.dumps({'TextBody': "x"}).encode(),
                'postmark')
        self.assertIsNone(email_.result)
        self.assertEqual(logs.output, [
                'INFO:%s:inbound e-mail of inbox %s changes nothing: '
                'no raw message in postmark data' % (LOGGER, email_.inbox.id)])

    @with_transaction()
    def test_run_by_any_user(self):
        "Test the actions run whoever processes the inbound e-mail"
        pool = Pool()
        Email = pool.get('inbound.email')
        User = pool.get('res.user')
        Suppression = pool.get('marketing.automation.suppression')
        Record = pool.get('marketing.automation.record')
        emails = self.send(['ann', 'nat'])
        inbox = self.inbox()
        report, unsubscribe = Email.from_webhook(inbox, self.about(
                'postfix_hard', emails['ann@example.com']), 'raw') + (
            Email.from_webhook(inbox, self.about(
                    'unsubscribe_gmail', emails['nat@example.com']), 'raw'))
        Email.save([report, unsubscribe])
        # Not in the marketing group
        user, = User.create([{'name': "Clerk", 'login': 'clerk'}])

        with Transaction().set_user(user.id), \
                Transaction().set_context(_check_access=True), \
                marketing_settings(automation_bounce_address=BOUNCE_ADDRESS):
            suppression = Suppression.handle_inbound_report(report, None)
            record = Record.handle_inbound_unsubscribe(unsubscribe, None)

        self.assertEqual(suppression.email, 'ann@example.com')
        self.assertTrue(record.blocked)


# The end-to-end test: a real server, real SMTP, HTTP posts to the webhook

DATABASE = 'inbound_server'
# The recipient of each sample's e-mail, and what matches it to the e-mail
PARTIES = [
    'ann', 'cid', 'dan', 'eve', 'fay', 'gus', 'hal', 'ivy', 'kim', 'lea',
    'mia', 'nat']

# Run by Server.script after its SCRIPT_HEAD: the parties, a scenario
# sending an e-mail to each, an inbox with the marketing rules; print the
# endpoint of the inbox
SETUP = '''
with Transaction().start(database, 0):
    Inbox = pool.get('inbound.email.inbox')
    for name in sys.argv[3].split(','):
        create_party(name.title(), '%s@example.com' % name)
    scenario = create_scenario(name="Spring", unsubscribable=True)
    create_activity(scenario, **email_values(name="Spring offers",
            email_title="Spring offers for ${record.name}"))
    enrol(scenario)
    inbox = Inbox(name="Marketing", rules=[
            {'destination': '^unsubscribe@', 'action': sys.argv[4]},
            {'action': sys.argv[5]},
            ])
    inbox.save()
    Inbox.new_identifier([inbox])
    print(Inbox(inbox.id).endpoint)
with Transaction().start(database, 0):
    process_due()
'''


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    "Start SMTP and trytond, send the e-mails; give the setting"
    if not os.environ.get('TRYTOND_DATABASE_URI', 'sqlite://').startswith(
            'sqlite'):
        pytest.skip("the real server test runs on an SQLite database file")
    directory = tmp_path_factory.mktemp('inbound')
    with SMTPSink(return_path=True) as sink, trytond_server(
            directory, DATABASE, ['marketing_automation', 'inbound_email'],
            sink.uri, 'news@shop.example', [
                'automation_bounce_address = %s' % BOUNCE_ADDRESS,
                'automation_unsubscribe_mailto = %s' % MAILTO,
                ]) as running:
        setup = running.script(
            SETUP, ','.join(PARTIES), UNSUBSCRIBE_ACTION, REPORT_ACTION)
        # The host of a script is not that of the server
        endpoint = running.base + urlsplit(setup.stdout.split()[-1]).path
        wait(lambda: len(sink.messages) >= len(PARTIES))
        yield {
            'endpoint': endpoint,
            # Where the endpoint redirects
            'webhook': '%s/%s/r/inbound_email/inbox/%s' % (
                running.base, DATABASE, endpoint.rsplit('/', 1)[1]),
            'database': str(running.database_path),
            'messages': {m['To'].addresses[0].username: m
                for m in sink.pop()},
            'log': running.log,
            }


def _post(server, raw, url=None):
    "Post the raw message to the webhook; return the HTTP status"
    request = urllib.request.Request(
        url or server['webhook'], data=raw, method='POST',
        headers={'Content-Type': 'message/rfc822'})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def _about(server, name, party):
    "Return the sample rewritten to be about the e-mail sent to the party"
    message = server['messages'][party]
    return_path = message['Return-Path'].strip('<>')
    record_token = message['List-Unsubscribe'].split('unsubscribe%20')[1]
    return rewrite(sample(name),
        token=return_path.split('+')[1].split('@')[0],
        record_token=record_token.strip('>'),
        message_id=message['Message-ID'])


def _state(server):
    "Return what the reports may change, by party"
    state = {}
    for name, in query(server['database'], 'SELECT name FROM party_party'):
        state[name.lower()] = {}
    for address, reason, suppressed, soft, activity in query(
            server['database'],
            'SELECT email, reason, suppressed, soft_bounces, '
            'record_activity IS NOT NULL '
            'FROM marketing_automation_suppression'):
        state[address.split('@')[0]]['suppression'] = (
            reason, bool(suppressed), soft, bool(activity))
    for name, opt_out in query(server['database'],
            'SELECT name, marketing_email_opt_out FROM party_party'):
        if opt_out:
            state[name.lower()]['opted_out'] = True
    for name, source in query(server['database'],
            'SELECT p.name, c.source FROM marketing_automation_consent AS c '
            'JOIN party_party AS p ON c.party = p.id'):
        state[name.lower()].setdefault('consents', []).append(source)
    for name, in query(server['database'],
            'SELECT p.name FROM marketing_automation_record AS r '
            "JOIN party_party AS p ON r.record = 'party.party,' || p.id "
            'WHERE r.blocked'):
        state[name.lower()]['blocked'] = True
    return {name: value for name, value in state.items() if value}


def test_sent_with_verp(server):
    "Each e-mail left with its own VERP return path and mailto"
    paths = set()
    for party, message in server['messages'].items():
        local, _, domain = message['Return-Path'].strip('<>').partition('@')
        assert domain == 'shop.example'
        assert local.startswith('bounces+')
        paths.add(local)
        assert '<mailto:unsubscribe@shop.example?subject=unsubscribe%20' in (
            message['List-Unsubscribe'])
    assert len(paths) == len(PARTIES)


def test_endpoint_redirects(server):
    "The endpoint an inbox shows redirects the posts to the webhook"
    request = urllib.request.Request(
        server['endpoint'], data=sample('garbage'), method='POST')
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    info.value.close()
    # 308: the client posts the same data again to the new location
    assert info.value.code == 308
    assert info.value.headers['Location'] == server['webhook']


def test_reports_through_webhook(server):
    "Each sample posted to the inbox has its effect, and only it"
    inbound_count = 0
    # (sample, party whose e-mail it is about, or None for as written)
    posts = [
        ('postfix_hard', 'ann'),
        ('exim_hard', 'dan'),
        ('exim_plain', None),
        ('gmail_hard', 'fay'),
        ('microsoft_hard', 'gus'),
        ('postfix_delayed', 'cid'),
        ('qmail_plain', 'cid'),
        ('microsoft_soft', 'hal'),
        ('arf_yahoo', 'ivy'),
        ('arf_microsoft', 'kim'),
        ('auto_reply_vacation', 'lea'),
        ('auto_reply_exchange', 'mia'),
        ('unsubscribe_gmail', 'nat'),
        ('garbage', None),
        ]
    for name, party in posts:
        raw = _about(server, name, party) if party else sample(name)
        if party:
            # The report is about the party's e-mail, not the sample's
            raw = raw.replace(
                b'%s@example.' % party.encode(), b'nobody@example.')
        assert _post(server, raw) == 204, name
        inbound_count += 1
    assert _post(server, _about(server, 'gmail_delayed', 'cid')) == 204
    inbound_count += 1

    assert _state(server) == {
        'ann': {'suppression': ('hard_bounce', True, 0, True)},
        'cid': {'suppression': ('soft_bounce', True, 3, True)},
        'dan': {'suppression': ('hard_bounce', True, 0, True)},
        'fay': {'suppression': ('hard_bounce', True, 0, True)},
        'gus': {'suppression': ('hard_bounce', True, 0, True)},
        'hal': {'suppression': ('soft_bounce', False, 1, True)},
        'ivy': {'suppression': ('complaint', True, 0, True),
            'opted_out': True, 'consents': ['complaint']},
        'kim': {'suppression': ('complaint', True, 0, True),
            'opted_out': True, 'consents': ['complaint']},
        'nat': {'blocked': True, 'consents': ['mailto']},
        } | {'eve': {'suppression': ('hard_bounce', True, 0, False)}}
    # Every inbound e-mail is kept, with the record it changed
    results = query(server['database'],
        'SELECT result FROM inbound_email ORDER BY id')
    assert len(results) == inbound_count
    assert [r.split(',')[0] if r else None for r, in results] == [
        'marketing.automation.suppression'] * 10 + [None, None,
        'marketing.automation.record', None,
        'marketing.automation.suppression']


def test_webhook_bad_requests(server):
    "Bad input answers as inbound_email does and changes nothing"
    before = _state(server), query(server['database'],
        'SELECT COUNT(*) FROM inbound_email')
    # An unknown inbox
    unknown = server['webhook'].rsplit('/', 1)[0] + '/' + 'f' * 32
    assert _post(server, sample('postfix_hard'), unknown) == 404
    # A provider's payload with no inbound e-mail
    assert _post(server, b'{"mandrill_events": []}',
        server['webhook'] + '?type=mailchimp') == 400
    assert (_state(server), query(server['database'],
            'SELECT COUNT(*) FROM inbound_email')) == before
    assert 'Traceback' not in server['log'].read_text()


def _documented_script():
    "Return the script that doc/configuration.rst gives to post with curl"
    text = (Path(ROOT) / 'doc' / 'configuration.rst').read_text()
    block = text.split('.. code-block:: sh\n\n', 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith('    '):
            break
        lines.append(line[4:])
    return '\n'.join(lines).strip() + '\n'


@pytest.mark.skipif(not shutil.which('curl'), reason="curl is not installed")
def test_documented_pipe(server, tmp_path):
    "The script of the documentation posts to the endpoint an inbox shows"
    script = tmp_path / 'tryton-inbox'
    script.write_text(_documented_script())
    script.chmod(0o755)
    raw = _about(server, 'microsoft_soft', 'hal')

    result = subprocess.run([str(script), server['endpoint']], input=raw,
        capture_output=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert _state(server)['hal']['suppression'] == (
        'soft_bounce', False, 2, True)
    # Tryton unreachable: Postfix must keep the message and try again
    result = subprocess.run(
        [str(script), 'http://127.0.0.1:%s/x' % free_port()], input=raw,
        capture_output=True, timeout=120)
    assert result.returncode == 75
