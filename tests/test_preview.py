# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Tests of the preview and the test e-mails of an activity: rendered as the
cron would, recorded nowhere, their links leading where they say without
any event"""
import html
import itertools
import time
from email.message import EmailMessage
from http import HTTPStatus
from urllib.parse import parse_qs, quote, urlsplit

import trytond.config as config
from trytond.model.exceptions import AccessError
from trytond.modules.marketing_automation import links
from trytond.modules.marketing_automation.exceptions import (
    PreviewError, SendTestError)
from trytond.modules.marketing_automation.preview import (
    HTML_FILENAME, MAX_TEST_ADDRESSES, parse_test_addresses)
from trytond.modules.marketing_automation.testing import SMTPSink
from trytond.pool import Pool
from trytond.pyson import PYSONEncoder
from trytond.tests.test_tryton import DB_NAME, RouteTestCase, with_transaction
from trytond.transaction import Transaction

from .builders import (
    MessageLinks, create_activity, create_party, create_scenario, email_values,
    marketing_user, path_of)

TEMPLATE = (
    '<html><body><p>Hello ${record.name}</p>'
    '<a href="https://shop.example/offer?a=1&amp;b=2">Offer</a> '
    '<a href="unsubscribe">Unsubscribe</a></body></html>')
OFFER = 'https://shop.example/offer?a=1&b=2'
RENDER_FAILED = "The e-mail could not be rendered"
_counter = itertools.count()


def counts():
    "Return the number of rows that sending would create"
    pool = Pool()
    return {name: pool.get(name).search([], count=True) for name in [
            'marketing.automation.record',
            'marketing.automation.record.activity',
            'ir.email',
            ]}


def values(defaults):
    "Return the values of the fields of the defaults of a wizard's view"
    return {k: v for k, v in defaults.items() if '.' not in k}


def create_email_activity(names, template=TEMPLATE, **values):
    """Create parties with the names (and their e-mail addresses), a draft
    scenario matching them and its e-mail activity; return both"""
    prefix = "Preview %s " % next(_counter)
    parties = [
        create_party(prefix + name, email='%s@example.com' % name.lower())
        for name in names]
    scenario = create_scenario(
        name=prefix, open_tracking=True,
        domain=PYSONEncoder().encode([('name', 'like', prefix + '%')]))
    activity = create_activity(scenario, **email_values(
            email_title="Hello ${record.name}", email_template=template,
            **values))
    return activity, parties


class PreviewTestCase(RouteTestCase):
    "Test the preview and the test e-mails"
    module = 'marketing_automation'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sink = SMTPSink().start()
        cls.addClassCleanup(cls.sink.stop)
        previous = config.get('email', 'uri')
        cls.addClassCleanup(config.set, 'email', 'uri', previous)
        config.set('email', 'uri', cls.sink.uri)

    def setUp(self):
        super().setUp()
        self.sink.pop()

    @property
    def db(self):
        return links.database_segment(DB_NAME)

    # Preview

    @with_transaction()
    def test_preview_chosen_record(self):
        "Test the preview of the e-mail for a chosen record"
        activity, (ann, bob) = create_email_activity(["Ann", "Bob"])
        before = counts()

        preview = activity.preview_email(bob)

        self.assertEqual(preview['record_name'], bob.rec_name)
        self.assertEqual(preview['subject'], "Hello %s" % bob.name)
        self.assertEqual(preview['to'], '%s <bob@example.com>' % bob.name)
        self.assertIn('<p>Hello %s</p>' % bob.name, preview['html'])
        self.assertEqual(
            preview['html_file'], preview['html'].encode('utf-8'))
        self.assertEqual(preview['html_filename'], HTML_FILENAME)
        self.assertIn('Hello %s' % bob.name, preview['text'])
        self.assertIn('Offer', preview['text'])
        self.assertNotIn('error', preview)
        self.assertEqual(counts(), before)

    @with_transaction()
    def test_preview_links_are_test_links(self):
        "Test the links of the preview carry test tokens"
        pool = Pool()
        Configuration = pool.get('ir.configuration')
        secret = Configuration.get_marketing_automation_secret()
        activity, (ann,) = create_email_activity(["Ann"])

        preview = activity.preview_email(ann)

        message = EmailMessage()
        message.set_content(preview['html'], subtype='html')
        parser = MessageLinks(message)
        click, unsubscribe = parser.hrefs
        pixel, = parser.images
        click_token = urlsplit(click).path.rsplit('/', 1)[1]
        record_token, = parse_qs(urlsplit(unsubscribe).query)['r']
        pixel_token = urlsplit(pixel).path.rsplit('/', 1)[1][:-len('.gif')]
        self.assertEqual(click_token, pixel_token)
        for token in [click_token, record_token]:
            self.assertTrue(links.is_test_token(secret, token))

    @with_transaction()
    def test_preview_first_matching_record(self):
        "Test the preview without record takes the first matching one"
        activity, (ann, bob) = create_email_activity(["Ann", "Bob"])

        preview = activity.preview_email()

        self.assertEqual(preview['record_name'], ann.rec_name)
        self.assertEqual(preview['subject'], "Hello %s" % ann.name)

    @with_transaction()
    def test_preview_without_address(self):
        "Test the preview of a record without e-mail address tells it"
        activity, (ann,) = create_email_activity(["Ann"])
        ann.contact_mechanisms[0].active = False
        ann.contact_mechanisms[0].save()

        preview = activity.preview_email(ann)

        self.assertIn("no e-mail address", preview['note'])
        self.assertNotIn('to', preview)
        self.assertEqual(preview['subject'], "Hello %s" % ann.name)

    @with_transaction()
    def test_preview_render_error(self):
        "Test a rendering error is shown and records nothing"
        activity, (ann,) = create_email_activity(
            ["Ann"], template='<html><body>${record.nothing}</body></html>')
        before = counts()

        preview = activity.preview_email(ann)

        self.assertIn(RENDER_FAILED, preview['error'])
        self.assertIn('nothing', preview['error'])
        self.assertNotIn('html', preview)
        self.assertEqual(counts(), before)

    @with_transaction()
    def test_preview_budget_exceeded(self):
        "Test a template over its budget is shown as an error"
        activity, (ann,) = create_email_activity(
            ["Ann"], template=(
                '<html xmlns:py="http://genshi.edgewall.org/"><body>'
                '<py:for each="i in range(10000)">'
                '<py:for each="j in range(10000)">${i}</py:for></py:for>'
                '</body></html>'))

        preview = activity.preview_email(ann)

        self.assertIn(RENDER_FAILED, preview['error'])

    @with_transaction()
    def test_preview_bad_link(self):
        "Test a link that a record makes unsafe is shown as an error"
        activity, (ann,) = create_email_activity(
            ["Ann"], template=(
                '<html><body><a href="${record.name.replace(\'Preview\', '
                '\'javascript:alert(1)//\')}">Go</a></body></html>'))
        before = counts()

        preview = activity.preview_email(ann)

        self.assertIn(RENDER_FAILED, preview['error'])
        self.assertIn('javascript:', preview['error'])
        self.assertEqual(counts(), before)

    @with_transaction()
    def test_preview_wrong_model(self):
        "Test the preview of a record of another model is refused"
        pool = Pool()
        User = pool.get('res.user')
        activity, _ = create_email_activity(["Ann"])

        with self.assertRaises(PreviewError):
            activity.preview_email(User(1))

    @with_transaction()
    def test_preview_no_matching_record(self):
        "Test the preview without record nor matching one is refused"
        activity, (ann,) = create_email_activity(["Ann"])
        ann.name = "Renamed"
        ann.save()

        with self.assertRaises(PreviewError):
            activity.preview_email()

    @with_transaction()
    def test_preview_not_email(self):
        "Test the preview of an activity without e-mail is refused"
        activity, (ann,) = create_email_activity(["Ann"])
        other = create_activity(activity.scenario, name="Nothing")

        with self.assertRaises(PreviewError):
            other.preview_email(ann)

    @with_transaction()
    def test_preview_with_rights_of_user(self):
        """Test a marketer cannot preview a record she may not read and the
        first matching record is one she may read"""
        pool = Pool()
        RuleGroup = pool.get('ir.rule.group')
        ModelData = pool.get('ir.model.data')
        activity, (ann, bob) = create_email_activity(["Ann", "Bob"])
        RuleGroup.create([{
                    'name': "Not Ann",
                    'model': 'party.party',
                    'global_p': False,
                    'groups': [('add', [ModelData.get_id(
                                    'marketing', 'group_marketing')])],
                    'rules': [('create', [{
                                    'domain': PYSONEncoder().encode(
                                        [('id', '!=', ann.id)]),
                                    }])],
                    }])
        user = marketing_user('preview_marketer')
        transaction = Transaction()

        with transaction.set_user(user.id):
            activity = activity.__class__(activity.id)
            with self.assertRaises(AccessError):
                activity.preview_email(ann.__class__(ann.id))
            preview = activity.preview_email()

        self.assertEqual(preview['record_name'], bob.rec_name)

    @with_transaction()
    def test_wizard(self):
        "Test the wizard previews, goes back and keeps the choices"
        pool = Pool()
        Preview = pool.get('marketing.automation.activity.preview',
            type='wizard')
        activity, (ann, bob) = create_email_activity(["Ann", "Bob"])
        transaction = Transaction()

        with transaction.set_context(
                active_model=activity.__name__, active_id=activity.id,
                active_ids=[activity.id]):
            session_id, _, _ = Preview.create()
            result = Preview.execute(session_id, {}, 'start')
            start = values(result['view']['defaults'])
            self.assertEqual(start['activity'], activity.id)
            self.assertEqual(start['model'], 'party.party')
            self.assertEqual(start['record'], 'party.party,-1')
            result = Preview.execute(session_id, {'start': start}, 'preview')
            self.assertEqual(
                result['view']['defaults']['record_name'], ann.rec_name)
            result = Preview.execute(session_id, {
                    'start': {**start, 'record': str(bob)},
                    }, 'preview')
            preview = values(result['view']['defaults'])
            self.assertEqual(preview['subject'], "Hello %s" % bob.name)
            result = Preview.execute(session_id, {
                    'preview': preview}, 'start')
            self.assertEqual(
                result['view']['defaults']['record'], str(bob))
            Preview.delete(session_id)

    # Test e-mails

    def test_test_tokens(self):
        "Test only the secret makes a test token, which is a token"
        token = links.new_test_token('secret')
        self.assertTrue(links.is_token(token))
        self.assertEqual(len(token), 32)
        self.assertNotEqual(token, links.new_test_token('secret'))
        self.assertTrue(links.is_test_token('secret', token))
        flipped = token[:-1] + ('0' if token[-1] != '0' else '1')
        for secret, value in [
                ('other', token),
                ('secret', flipped),
                ('secret', token.upper()),
                ('secret', token[:16] + token[:16]),
                ('secret', links.new_token()),
                ('secret', token + '0'),
                ('secret', None),
                (None, token),
                ('', token),
                ]:
            with self.subTest(secret=secret, value=value):
                self.assertFalse(links.is_test_token(secret, value))

    def test_parse_test_addresses(self):
        "Test the addresses of a test are read and checked"
        self.assertEqual(
            parse_test_addresses(
                'ann@example.com, Bob <bob@example.com>,ann@example.com'),
            ['ann@example.com', 'bob@example.com'])
        for text in ['', ' , ', 'ann@example.com, bob', 'ann@', 'a b@x.org',
                ', '.join('a%s@example.com' % i
                    for i in range(MAX_TEST_ADDRESSES + 1))]:
            with self.subTest(text=text):
                with Transaction().start(DB_NAME, 0, readonly=True), \
                        self.assertRaises(SendTestError):
                    parse_test_addresses(text)

    def send_test(self, names=("Ann",), addresses='me@example.com, '
            'colleague@example.com', template=TEMPLATE):
        """Create an e-mail activity, send a test of it for the first party
        and return the messages received and the counts before and after"""
        with Transaction().start(DB_NAME, 0) as transaction:
            activity, parties = create_email_activity(
                names, template=template)
            activity_id, party_id = activity.id, parties[0].id
            transaction.commit()
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Activity = pool.get('marketing.automation.activity')
            Party = pool.get('party.party')
            before = counts()
            party = Party(party_id)
            sent = Activity(activity_id).send_test_email(addresses, party)
            name = party.name
            transaction.commit()
        self.assertEqual(len(sent), len(addresses.split(',')))
        messages = self.received(len(sent))
        with Transaction().start(DB_NAME, 0, readonly=True):
            after = counts()
            activity = Pool().get(
                'marketing.automation.activity')(activity_id)
            statistics = (
                activity.record_count, activity.email_sent,
                activity.email_opened, activity.email_clicked)
        self.assertEqual(after, before)
        self.assertEqual(statistics, (0, 0, 0, 0))
        return name, messages

    def received(self, count):
        "Wait for count messages on the sink and return them"
        messages = []
        for _ in range(100):
            messages.extend(self.sink.pop())
            if len(messages) >= count:
                break
            time.sleep(0.05)
        self.assertEqual(len(messages), count)
        return messages

    def test_send_test(self):
        "Test a test e-mail reaches the addresses, marked as a test"
        name, messages = self.send_test()

        self.assertEqual(
            sorted(m['To'] for m in messages),
            ['colleague@example.com', 'me@example.com'])
        for message in messages:
            self.assertEqual(
                message['Subject'], "[Test] Hello %s" % name)
            body = message.get_body(('html',)).get_content()
            self.assertIn('Hello %s' % name, body)
            self.assertIn(
                'Hello %s' % name,
                message.get_body(('plain',)).get_content())

    def test_send_test_render_error(self):
        "Test a test of a failing template is refused and sends nothing"
        with Transaction().start(DB_NAME, 0) as transaction:
            activity, (ann,) = create_email_activity(
                ["Ann"],
                template='<html><body>${record.nothing}</body></html>')
            with self.assertRaises(SendTestError) as cm:
                activity.send_test_email('me@example.com', ann)
            transaction.commit()
        self.assertIn(RENDER_FAILED, cm.exception.message)
        time.sleep(0.2)
        self.assertEqual(self.sink.pop(), [])

    def test_send_test_invalid_address(self):
        "Test a test to an invalid address is refused"
        with Transaction().start(DB_NAME, 0) as transaction:
            activity, (ann,) = create_email_activity(["Ann"])
            with self.assertRaises(SendTestError):
                activity.send_test_email('me@example.com, nobody', ann)
            transaction.commit()
        time.sleep(0.2)
        self.assertEqual(self.sink.pop(), [])

    def test_test_links(self):
        """Test the links of a test e-mail lead where they say and record
        nothing"""
        _, messages = self.send_test(addresses='me@example.com')
        message, = messages
        message_links = MessageLinks(message)
        click, unsubscribe = message_links.hrefs
        pixel, = message_links.images
        client = self.client()
        with Transaction().start(DB_NAME, 0, readonly=True):
            before = counts()

        response = client.get(path_of(click))
        self.assertEqual(response.status_code, HTTPStatus.FOUND)
        self.assertEqual(response.headers['Location'], OFFER)
        response = client.head(path_of(click))
        self.assertEqual(response.status_code, HTTPStatus.FOUND)

        response = client.get(path_of(pixel))
        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(response.data, links.EMPTY_GIF)

        for response in [
                client.get(path_of(unsubscribe)),
                client.post(path_of(unsubscribe), data={'scope': 'all'}),
                ]:
            self.assertEqual(response.status_code, HTTPStatus.OK)
            self.assertEqual(response.mimetype, 'text/html')
            self.assertIn(
                "nothing was changed", html.unescape(response.text))
            self.assertNotIn('<form', response.text)
        response = client.post(
            path_of(unsubscribe),
            data={'List-Unsubscribe': 'One-Click'})
        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertIn("nothing was changed", response.text)

        with Transaction().start(DB_NAME, 0, readonly=True):
            self.assertEqual(counts(), before)
        self.assertIn(
            '<%s>' % unsubscribe, message['List-Unsubscribe'])

    def test_forged_test_links(self):
        "Test forged and tampered test links are not found"
        _, messages = self.send_test(addresses='me@example.com')
        message, = messages
        click, unsubscribe = MessageLinks(message).hrefs
        parts = urlsplit(click)
        token = parts.path.rsplit('/', 1)[1]
        query = parse_qs(parts.query)
        record_token, = parse_qs(urlsplit(unsubscribe).query)['r']
        client = self.client()
        with Transaction().start(DB_NAME, 0, readonly=True):
            secret = Pool().get(
                'ir.configuration').get_marketing_automation_secret()
        forged_token = links.new_test_token('not the secret')
        flipped = token[:-1] + ('0' if token[-1] != '0' else '1')

        def click_path(token, url, signature):
            return '/m/%s/c/%s?u=%s&s=%s' % (
                self.db, token, quote(url, safe=''), signature)

        for path in [
                # Another destination with the signature of the link
                click_path(token, 'https://evil.example/', query['s'][0]),
                # A token of another secret, signed with ours
                click_path(forged_token, OFFER,
                    links.sign(secret, forged_token, OFFER)),
                # A tampered token, signed with ours
                click_path(flipped, OFFER, links.sign(secret, flipped, OFFER)),
                # A real-looking token signed with another secret
                click_path(forged_token, OFFER,
                    links.sign('not the secret', forged_token, OFFER)),
                ]:
            with self.subTest(path=path):
                response = client.get(path)
                self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
        for token in [forged_token, record_token[:-1] + (
                    '0' if record_token[-1] != '0' else '1'),
                record_token.upper()]:
            with self.subTest(token=token):
                path = '/m/%s/unsubscribe?r=%s' % (self.db, token)
                self.assertEqual(
                    client.get(path).status_code, HTTPStatus.NOT_FOUND)
                self.assertEqual(
                    client.post(path).status_code, HTTPStatus.NOT_FOUND)
