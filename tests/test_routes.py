# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Tests of the public routes: pixel, tracked links and unsubscribe"
import datetime as dt
import html
import itertools
from http import HTTPStatus
from urllib.parse import quote, unquote

from werkzeug.urls import iri_to_uri

import trytond.config as config
from trytond import backend
from trytond.modules.marketing_automation import links
from trytond.pool import Pool
from trytond.pyson import PYSONEncoder
from trytond.tests.test_tryton import DB_NAME, RouteTestCase
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_event_activities, create_party, create_scenario,
    email_values, enrol, mark_sent, path_of)

HTML = (
    '<html><body><p>Hello</p>'
    '<a href="https://shop.example/">Shop</a></body></html>')
TRICKY_URLS = [
    'https://shop.example/p?a=1&b=2#frag',
    'https://exämple.org/ä?q=ü&x=€#frag',
    'https://shop.example/a b?q=a b&r=c+d',
    'https://shop.example/a%2Fb?next=%2F%3Fx%3D1&y=%E2%82%AC',
    'https://shop.example/?u=https://o.example/?a=1&s=x&c#a#b',
    'https://shop.example/%',
    'http://shop.example/;p?q=\'"<>',
    'https://shop.example/line\nbreak\ttab',
    ]
EXACT_URLS = TRICKY_URLS[:1] + TRICKY_URLS[3:6]
_counter = itertools.count()


class Data:
    "The ids and tokens of a scenario built for a test"


def create_data(unsubscribable=True, lang=None, email_body=None):
    """Create and commit a scenario with an e-mail activity and its event
    children, a party enrolled in it and its record activities, the root
    one done as if the e-mail had been sent."""
    data = Data()
    with Transaction().start(DB_NAME, 0) as transaction:
        pool = Pool()
        Email = pool.get('ir.email')
        Configuration = pool.get('ir.configuration')

        n = next(_counter)
        party = create_party("Party %s" % n, lang=lang)
        scenario = create_scenario(
            name="Scenario %s" % n, unsubscribable=unsubscribable,
            domain=PYSONEncoder().encode([('id', '=', party.id)]))
        email = create_activity(scenario, **email_values(
                name="E-mail", email_title="Hello", email_template=HTML))
        children = create_event_activities(email)
        record, = enrol(scenario)
        root, = mark_sent(email)
        if email_body is not None:
            Email.create([{
                        'recipients': 'party@example.com',
                        'subject': "Hello",
                        'body': email_body(record.uuid),
                        'resource': str(party),
                        'marketing_automation_activity': email.id,
                        'marketing_automation_record': record.id,
                        }])
        data.secret = Configuration.get_marketing_automation_secret()
        data.scenario = scenario.id
        data.party = party.id
        data.record = record.id
        data.record_token = record.uuid
        data.token = root.uuid
        data.root = root.id
        data.children = {k: a.id for k, a in children.items()}
        transaction.commit()
    return data


def pending_events(record_activity):
    "Return the (opened, clicked) of the pending events of record_activity"
    Event = Pool().get('marketing.automation.record.activity.event')
    return [(e.email_opened, e.email_clicked) for e in Event.search(
            [('record_activity', '=', record_activity.id)],
            order=[('id', 'ASC')])]


def process():
    "Run the process of the record activities as the cron does and commit"
    with Transaction().start(DB_NAME, 0) as transaction:
        Pool().get('marketing.automation.record.activity').process()
        transaction.commit()


class RoutesTestCase(RouteTestCase):
    "Test the public routes"
    module = 'marketing_automation'
    extras = ['web_shortener']

    @property
    def db(self):
        return links.database_segment(DB_NAME)

    def state(self, data):
        "Return the state of the record activities and the record"
        with Transaction().start(DB_NAME, 0, readonly=True):
            pool = Pool()
            RecordActivity = pool.get('marketing.automation.record.activity')
            Record = pool.get('marketing.automation.record')
            Party = pool.get('party.party')
            root = RecordActivity(data.root)
            children = {}
            for name, activity in data.children.items():
                child, = RecordActivity.search([
                        ('record', '=', data.record),
                        ('activity', '=', activity),
                        ])
                children[name] = (child.state, child.at)
            record = Record(data.record)
            party = Party(data.party)
            return {
                'opened': root.email_opened,
                'clicked': root.email_clicked,
                'pending': pending_events(root),
                'children': children,
                'blocked': record.blocked,
                'unsubscribed': [
                    s.id for s in party.marketing_scenario_unsubscribed],
                }

    def pixel(self, data):
        return '/m/%s/o/%s.gif' % (self.db, data.token)

    def click(self, data, url):
        return path_of(links.click_url(DB_NAME, data.token, url, data.secret))

    def unsubscribe(self, data, next_url=None):
        return path_of(
            links.unsubscribe_url(DB_NAME, data.record_token, next_url))

    def assertNotTracked(self, state):
        self.assertFalse(state['opened'])
        self.assertFalse(state['clicked'])
        self.assertEqual(state['pending'], [])
        self.assertChildrenUntouched(state)

    def assertChildrenUntouched(self, state):
        self.assertEqual(
            {k: (s, at is None) for k, (s, at) in state['children'].items()},
            {
                'opened': ('waiting', True),
                'not_opened': ('waiting', False),
                'clicked': ('waiting', True),
                'not_clicked': ('waiting', False),
                })

    def assertGif(self, response):
        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(response.mimetype, 'image/gif')
        self.assertEqual(response.headers['Cache-Control'], 'no-store')

    # Open pixel

    def test_pixel(self):
        "Test the pixel sets opened, the next process schedules the child once"
        data = create_data()
        client = self.client()

        response = client.get(self.pixel(data))

        self.assertGif(response)
        self.assertEqual(response.data, links.EMPTY_GIF)
        state = self.state(data)
        self.assertTrue(state['opened'])
        self.assertFalse(state['clicked'])
        self.assertEqual(state['pending'], [(True, False)])
        self.assertChildrenUntouched(state)

        process()

        state = self.state(data)
        self.assertEqual(state['pending'], [])
        opened_state, opened_at = state['children']['opened']
        self.assertEqual(opened_state, 'waiting')
        self.assertEqual(opened_at, self.event_date(data, 'email_opened')
            + dt.timedelta(days=1))
        self.assertEqual(state['children']['not_opened'][0], 'cancelled')
        self.assertEqual(state['children']['clicked'], ('waiting', None))
        self.assertEqual(state['children']['not_clicked'][0], 'waiting')

        response = client.get(self.pixel(data))
        process()

        self.assertGif(response)
        self.assertEqual(self.state(data), state)

    def event_date(self, data, event):
        "Return the date of the event on the root record activity"
        with Transaction().start(DB_NAME, 0, readonly=True):
            RecordActivity = Pool().get(
                'marketing.automation.record.activity')
            return getattr(RecordActivity(data.root), event + '_date')

    def test_event_commit(self):
        "Test an event commits without waiting for the disk unless durable"
        def synchronous_commit(durable):
            data = create_data()
            with Transaction().start(DB_NAME, 0) as transaction:
                pool = Pool()
                RecordActivity = pool.get(
                    'marketing.automation.record.activity')
                cursor = transaction.connection.cursor()
                if not config.has_section('marketing'):
                    config.add_section('marketing')
                config.set(
                    'marketing', 'automation_durable_events', str(durable))
                try:
                    RecordActivity.record_hit(data.token, ['email_opened'])
                finally:
                    config.set(
                        'marketing', 'automation_durable_events', 'False')
                cursor.execute('SHOW synchronous_commit')
                value, = cursor.fetchone()
                transaction.rollback()
            return value

        if backend.name != 'postgresql':
            self.skipTest("PostgreSQL's synchronous_commit")
        self.assertEqual(synchronous_commit(False), 'off')
        self.assertEqual(synchronous_commit(True), 'on')

    def test_pixel_head(self):
        "Test HEAD on the pixel changes nothing"
        data = create_data()

        response = self.client().head(self.pixel(data))

        self.assertGif(response)
        self.assertNotTracked(self.state(data))

    def test_pixel_unknown_token(self):
        "Test the pixel of unknown or malformed tokens changes nothing"
        data = create_data()
        client = self.client()
        for token in [
                links.new_token(), data.token.upper(), data.record_token,
                'x' * 32, data.token[:-1], data.token + '0',
                '%00', '..', 'é' * 40, '0' * 5000]:
            with self.subTest(token=token):
                response = client.get('/m/%s/o/%s.gif' % (self.db, token))
                self.assertGif(response)
        self.assertNotTracked(self.state(data))

    def test_pixel_unknown_database(self):
        "Test the pixel of an unknown or undecodable database is not found"
        data = create_data()
        client = self.client()
        for database in [
                links.database_segment('no_such_database'),
                links.database_segment(DB_NAME + 'x'),
                links.database_segment('../' + DB_NAME),
                '!!!', 'a', 'YQ', '_-_-', 'w4', '%FF', 'AAAA' * 200,
                links.database_segment('\0'),
                ]:
            with self.subTest(database=database):
                response = client.get(
                    '/m/%s/o/%s.gif' % (database, data.token))
                self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
        self.assertNotTracked(self.state(data))

    def test_pixel_methods(self):
        "Test the pixel refuses other methods"
        data = create_data()
        client = self.client()
        for method in ['POST', 'PUT', 'DELETE', 'PATCH']:
            with self.subTest(method=method):
                response = client.open(self.pixel(data), method=method)
                self.assertEqual(
                    response.status_code, HTTPStatus.METHOD_NOT_ALLOWED)
        self.assertNotTracked(self.state(data))

    def test_empty_gif(self):
        "Test the legacy empty GIF"
        response = self.client().get('/m/empty.gif')

        self.assertGif(response)
        self.assertEqual(response.data, links.EMPTY_GIF)

    # Tracked links

    def test_click(self):
        "Test a click redirects, sets clicked and opened, schedules once"
        data = create_data()
        client = self.client()
        url = 'https://shop.example/p?a=1&b=2#frag'

        response = client.get(self.click(data, url))

        self.assertEqual(response.status_code, HTTPStatus.FOUND)
        self.assertEqual(response.headers['Location'], url)
        self.assertEqual(response.headers['Cache-Control'], 'no-store')
        self.assertEqual(response.headers['Referrer-Policy'], 'no-referrer')
        state = self.state(data)
        self.assertTrue(state['opened'])
        self.assertTrue(state['clicked'])
        self.assertEqual(state['pending'], [(True, True)])
        self.assertChildrenUntouched(state)

        process()

        state = self.state(data)
        self.assertEqual(state['pending'], [])
        children = state['children']
        for name in ['opened', 'clicked']:
            self.assertEqual(children[name], ('waiting', self.event_date(
                        data, 'email_' + name) + dt.timedelta(days=1)))
        for name in ['not_opened', 'not_clicked']:
            self.assertEqual(children[name][0], 'cancelled')

        response = client.get(self.click(data, url))
        self.assertEqual(response.status_code, HTTPStatus.FOUND)
        response = client.get(self.pixel(data))
        self.assertGif(response)
        process()
        self.assertEqual(self.state(data), state)

    def test_pixel_then_click(self):
        "Test a pixel then a click leave two events, each applied once"
        data = create_data()
        client = self.client()

        client.get(self.pixel(data))
        client.get(self.click(data, 'https://shop.example/'))

        state = self.state(data)
        self.assertEqual(state['pending'], [(True, False), (False, True)])
        process()
        state = self.state(data)
        self.assertEqual(state['pending'], [])
        self.assertEqual(
            {k: s for k, (s, _) in state['children'].items()}, {
                'opened': 'waiting', 'not_opened': 'cancelled',
                'clicked': 'waiting', 'not_clicked': 'cancelled'})

    def test_click_tricky_urls(self):
        "Test the redirection keeps the destination URL"
        data = create_data()
        client = self.client()
        for url in TRICKY_URLS:
            with self.subTest(url=url):
                response = client.get(self.click(data, url))
                self.assertEqual(response.status_code, HTTPStatus.FOUND)
                location = response.headers['Location']
                if url in EXACT_URLS:
                    self.assertEqual(location, url)
                else:
                    # Only what a header cannot carry is encoded
                    self.assertEqual(location, iri_to_uri(url))
                    self.assertTrue(location.isascii())
                    self.assertEqual(
                        unquote(location.replace(
                                'xn--exmple-cua', 'exämple')),
                        unquote(url).replace('\n', '').replace('\t', ''))
        self.assertTrue(self.state(data)['clicked'])

    def test_click_unusable_url(self):
        "Test a signed URL that cannot be redirected to is not found"
        data = create_data()
        client = self.client()
        for url in ['https://a..b/', 'https://shop.example:99999/']:
            with self.subTest(url=url):
                response = client.get(self.click(data, url))
                self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
        self.assertNotTracked(self.state(data))

    def test_click_head(self):
        "Test HEAD on a link redirects without tracking"
        data = create_data()
        url = 'https://shop.example/'

        response = self.client().head(self.click(data, url))

        self.assertEqual(response.status_code, HTTPStatus.FOUND)
        self.assertEqual(response.headers['Location'], url)
        self.assertNotTracked(self.state(data))

    def test_click_tampered(self):
        "Test a tampered or unsigned link is not found and changes nothing"
        data = create_data()
        other = create_data()
        client = self.client()
        url = 'https://shop.example/'
        signature = links.sign(data.secret, data.token, url)
        prefix = '/m/%s/c/' % self.db
        for path in [
                # another destination
                prefix + '%s?u=%s&s=%s' % (
                    data.token, quote('https://evil.example/', safe=''),
                    signature),
                # another token
                prefix + '%s?u=%s&s=%s' % (
                    other.token, quote(url, safe=''), signature),
                # another signature
                prefix + '%s?u=%s&s=%s' % (
                    data.token, quote(url, safe=''),
                    signature[:-1] + ('A' if signature[-1] != 'A' else 'B')),
                # another key
                prefix + '%s?u=%s&s=%s' % (
                    data.token, quote(url, safe=''),
                    links.sign('other key', data.token, url)),
                prefix + '%s?u=%s' % (data.token, quote(url, safe='')),
                prefix + '%s?s=%s' % (data.token, signature),
                prefix + '%s?u=&s=%s' % (data.token, signature),
                prefix + '%s?u=%s&s=%s%%FF' % (
                    data.token, quote(url, safe=''), signature),
                prefix + '%s' % data.token,
                ]:
            with self.subTest(path=path):
                response = client.get(path)
                self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
                self.assertNotIn('Location', response.headers)
        self.assertNotTracked(self.state(data))
        self.assertNotTracked(self.state(other))

    def test_click_unknown_token(self):
        "Test a well signed link of an unknown token is not found"
        data = create_data()
        token = links.new_token()
        url = 'https://shop.example/'

        response = self.client().get(path_of(
                links.click_url(DB_NAME, token, url, data.secret)))

        self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
        self.assertNotTracked(self.state(data))

    # Unsubscribe

    def test_unsubscribe_page(self):
        "Test the unsubscribe page asks to confirm and changes nothing"
        data = create_data()

        response = self.client().get(self.unsubscribe(data))

        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(response.mimetype, 'text/html')
        self.assertEqual(response.mimetype_params['charset'], 'utf-8')
        self.assertEqual(response.headers['Cache-Control'], 'no-store')
        self.assertIn("frame-ancestors 'none'",
            response.headers['Content-Security-Policy'])
        page = response.get_data(as_text=True)
        self.assertTrue(page.startswith('<!DOCTYPE html>'))
        self.assertIn('<html lang="en">', page)
        self.assertIn('<form id="unsubscribe" method="post">', page)
        self.assertIn('<button type="submit"', page)
        self.assertIn("Do you want to stop receiving these e-mails?", page)
        state = self.state(data)
        self.assertFalse(state['blocked'])
        self.assertEqual(state['unsubscribed'], [])

    def test_unsubscribe_page_language(self):
        "Test the page is in the party's language or the browser's"
        with Transaction().start(DB_NAME, 0):
            pool = Pool()
            Lang = pool.get('ir.lang')
            french, = Lang.search([('code', '=', 'fr')])
            french.translatable = True
            french.save()
        with Transaction().start(DB_NAME, 0):
            pool = Pool()
            Translation = pool.get('ir.translation')
            ModelData = pool.get('ir.model.data')
            message_id = ModelData.get_id(
                'marketing_automation', 'msg_unsubscribe_button')
            Translation.delete(Translation.search([
                        ('lang', '=', 'fr'),
                        ('name', '=', 'ir.message,text'),
                        ('res_id', '=', message_id),
                        ]))
            Translation.create([{
                        'lang': 'fr',
                        'type': 'model',
                        'name': 'ir.message,text',
                        'res_id': message_id,
                        'src': "Unsubscribe",
                        'value': "Se désinscrire",
                        'module': 'marketing_automation',
                        'fuzzy': False,
                        }])
        try:
            client = self.client()
            french_party = create_data(lang='fr')
            party = create_data()

            for data, headers, language, button in [
                    (french_party, {}, 'fr', "Se désinscrire"),
                    (french_party, {'Accept-Language': 'en'}, 'fr',
                        "Se désinscrire"),
                    (party, {'Accept-Language': 'fr-CA, en;q=0.5'}, 'fr',
                        "Se désinscrire"),
                    (party, {'Accept-Language': 'en-GB, fr;q=0.5'}, 'en',
                        "Unsubscribe"),
                    (party, {'Accept-Language': 'de, en;q=0.5'}, 'en',
                        "Unsubscribe"),
                    (party, {'Accept-Language': '%%%; q=x'}, 'en',
                        "Unsubscribe"),
                    (party, {}, 'en', "Unsubscribe"),
                    ]:
                with self.subTest(headers=headers, language=language):
                    response = client.get(
                        self.unsubscribe(data), headers=headers)
                    self.assertEqual(response.status_code, HTTPStatus.OK)
                    page = response.get_data(as_text=True)
                    self.assertIn('<html lang="%s">' % language, page)
                    self.assertIn('>%s</button>' % button, page)
        finally:
            with Transaction().start(DB_NAME, 0):
                french, = Lang.search([('code', '=', 'fr')])
                french.translatable = False
                french.save()

    def test_unsubscribe_unknown(self):
        "Test unsubscribe of unknown or malformed tokens is not found"
        data = create_data()
        client = self.client()
        prefix = '/m/%s/unsubscribe' % self.db
        for query in [
                '', '?r=', '?r=%s' % links.new_token(),
                '?r=%s' % data.token,  # a record activity token
                '?r=%s' % data.record_token.upper(),
                '?r=%s%%00' % data.record_token, '?r=%FF%FE',
                '?r=' + 'a' * 5000, '?next=https://shop.example/',
                ]:
            for method in ['GET', 'POST']:
                with self.subTest(query=query, method=method):
                    response = client.open(prefix + query, method=method,
                        data={'List-Unsubscribe': 'One-Click'})
                    self.assertEqual(
                        response.status_code, HTTPStatus.NOT_FOUND)
        state = self.state(data)
        self.assertFalse(state['blocked'])
        self.assertEqual(state['unsubscribed'], [])

    def test_unsubscribe(self):
        "Test POST blocks the record and unsubscribes the party"
        data = create_data(unsubscribable=True)
        client = self.client()

        response = client.post(self.unsubscribe(data), data={'confirm': '1'})

        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(response.mimetype, 'text/html')
        self.assertNotIn('Location', response.headers)
        page = response.get_data(as_text=True)
        self.assertIn("you will not receive these e-mails any more", page)
        self.assertNotIn('<form', page)
        state = self.state(data)
        self.assertTrue(state['blocked'])
        self.assertEqual(state['unsubscribed'], [data.scenario])

        # Idempotent
        response = client.post(self.unsubscribe(data), data={'confirm': '1'})
        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(self.state(data), state)

    def test_unsubscribe_not_unsubscribable(self):
        "Test POST only blocks the record of a scenario not unsubscribable"
        data = create_data(unsubscribable=False)

        response = self.client().post(self.unsubscribe(data))

        self.assertEqual(response.status_code, HTTPStatus.OK)
        state = self.state(data)
        self.assertTrue(state['blocked'])
        self.assertEqual(state['unsubscribed'], [])

    def test_unsubscribe_one_click(self):
        "Test the RFC 8058 one-click POST answers 200 without redirect"
        data = create_data()
        client = self.client()
        # Even with a next URL of our site
        path = self.unsubscribe(data, links.automation_base() + '/bye')

        for content_type in [None, 'multipart/form-data']:
            with self.subTest(content_type=content_type):
                response = client.post(
                    path, data={'List-Unsubscribe': 'One-Click'},
                    content_type=content_type)

                self.assertEqual(response.status_code, HTTPStatus.OK)
                self.assertEqual(response.mimetype, 'text/plain')
                self.assertNotIn('Location', response.headers)
                state = self.state(data)
                self.assertTrue(state['blocked'])
                self.assertEqual(state['unsubscribed'], [data.scenario])

    def test_unsubscribe_head(self):
        "Test HEAD on unsubscribe changes nothing"
        data = create_data()

        response = self.client().head(self.unsubscribe(data))

        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertFalse(self.state(data)['blocked'])

    def test_unsubscribe_other_methods(self):
        "Test unsubscribe refuses other methods"
        data = create_data()
        for method in ['PUT', 'DELETE', 'PATCH']:
            with self.subTest(method=method):
                response = self.client().open(
                    self.unsubscribe(data), method=method,
                    data={'List-Unsubscribe': 'One-Click'})
                self.assertEqual(
                    response.status_code, HTTPStatus.METHOD_NOT_ALLOWED)
        self.assertFalse(self.state(data)['blocked'])

    def test_unsubscribe_too_large(self):
        "Test a too large body is refused and changes nothing"
        data = create_data()

        response = self.client().post(
            self.unsubscribe(data),
            data={'List-Unsubscribe': 'One-Click', 'x': 'x' * 100_000})

        self.assertEqual(
            response.status_code, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        self.assertFalse(self.state(data)['blocked'])

    def test_null_origin(self):
        "Test the routes accept the null origin of no-referrer pages"
        data = create_data()
        client = self.client()
        headers = {'Origin': 'null'}
        url = 'https://shop.example/'
        for method, path, status in [
                ('GET', '/m/empty.gif', HTTPStatus.OK),
                ('GET', self.pixel(data), HTTPStatus.OK),
                ('GET', self.click(data, url), HTTPStatus.FOUND),
                ('GET', self.unsubscribe(data), HTTPStatus.OK),
                ('POST', self.unsubscribe(data), HTTPStatus.OK),
                ]:
            with self.subTest(method=method, path=path):
                response = client.open(path, method=method, headers=headers)
                self.assertEqual(response.status_code, status)
        state = self.state(data)
        self.assertTrue(state['clicked'])
        self.assertTrue(state['blocked'])

    def test_unsubscribe_next_same_site(self):
        "Test the confirmation redirects to a next URL of our site"
        data = create_data()
        for next_url in [
                links.automation_base() + '/bye?x=1&y=é#f',
                links.automation_base().upper() + '/',
                ]:
            with self.subTest(next_url=next_url):
                response = self.client().post(
                    self.unsubscribe(data, next_url))

                self.assertEqual(response.status_code, HTTPStatus.SEE_OTHER)
                self.assertEqual(
                    response.headers['Location'], links.location(next_url))
        self.assertTrue(self.state(data)['blocked'])

    def test_unsubscribe_next_known(self):
        "Test the confirmation redirects to a next URL of the e-mail"
        next_url = 'https://shop.example/bye?a=1&b=%C3%A9#x'

        def body(record_token):
            unsubscribe_url = links.unsubscribe_url(
                DB_NAME, record_token, next_url)
            return ('<html><body><p>Text %s</p><a href="%s">Stop</a>'
                '</body></html>' % (
                    html.escape(next_url), html.escape(unsubscribe_url)))
        data = create_data(email_body=body)

        response = self.client().post(self.unsubscribe(data, next_url))

        self.assertEqual(response.status_code, HTTPStatus.SEE_OTHER)
        self.assertEqual(response.headers['Location'], next_url)
        self.assertTrue(self.state(data)['blocked'])

    def test_unsubscribe_next_known_link(self):
        "Test a next URL only found in the links of the e-mail is known"
        next_url = 'https://shop.example/bye?a=1&b=%C3%A9#x'

        def body(record_token):
            # As the e-mail builder renders it: the URL is only in links
            unsubscribe_url = links.unsubscribe_url(
                DB_NAME, record_token, next_url)
            return '<html><body><a href="%s">Stop</a></body></html>' % (
                html.escape(unsubscribe_url))
        data = create_data(email_body=body)

        response = self.client().post(self.unsubscribe(data, next_url))

        self.assertEqual(response.status_code, HTTPStatus.SEE_OTHER)
        self.assertEqual(response.headers['Location'], next_url)

    def test_unsubscribe_next_refused(self):
        "Test the confirmation ignores a next URL of another site"
        data = create_data(email_body=lambda token: (
                '<html><body><p>https://evil.example/</p></body></html>'))
        self.assertNextRefused(data, [
                '//evil.example/',
                '/\\evil.example',
                'https:evil.example',
                'https://shop.example.evil.example/',
                'https://shop.example@evil.example/',
                'https://evil.example@shop.example/',
                'https://shop.example\\@evil.example/',
                '\thttps://evil.example/',
                'https://evil.example/\n',
                'javascript:alert(1)',
                'data:text/html,hi',
                links.automation_base() + '\\@evil.example/',
                links.automation_base() + '@evil.example/',
                ])

    def test_unsubscribe_next_refused_known_part(self):
        "Test a next URL is only known if the e-mail has the whole URL"
        def body(record_token):
            return ('<html><body><p>https://shop.example.com.au/a_b'
                ' https://shop.example/</p>'
                '<a href="%s">Buy</a></body></html>' % html.escape(
                    links.click_url(DB_NAME, links.new_token(),
                        'https://www.example.org/', 'secret')))
        data = create_data(email_body=body)
        self.assertNextRefused(data, [
                # LIKE wildcards
                '%',
                'https://shop%',
                'https://shop.example/a%b',
                'https://shop_example/',
                'https://shop.example/a_',
                # parts of a URL
                'https://shop.example.com',
                'https://www.example.or',
                ])

    def assertNextRefused(self, data, urls):
        client = self.client()
        for next_url in urls:
            with self.subTest(next_url=next_url):
                response = client.post(self.unsubscribe(data, next_url))
                self.assertEqual(response.status_code, HTTPStatus.OK)
                self.assertNotIn('Location', response.headers)
                self.assertIn(
                    "you will not receive these e-mails any more",
                    response.get_data(as_text=True))
        self.assertTrue(self.state(data)['blocked'])

    # Legacy links of web_shortener

    def test_web_shortener_callbacks(self):
        "Test the legacy shortened links fire the events"
        data = create_data()
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            ShortenedURL = pool.get('web.shortened_url')
            RecordActivity = pool.get('marketing.automation.record.activity')
            record_activity = RecordActivity(data.root)
            opened, clicked = ShortenedURL.create([{
                        'redirect_url': 'https://shop.example/empty.gif',
                        'record': str(record_activity),
                        'method': 'marketing.automation.record.activity'
                        '|on_email_opened',
                        }, {
                        'redirect_url': 'https://shop.example/',
                        'record': str(record_activity),
                        'method': 'marketing.automation.record.activity'
                        '|on_email_clicked',
                        }])
            opened_path = path_of(opened.shortened_url)
            clicked_path = path_of(clicked.shortened_url)
            transaction.commit()
        client = self.client()

        response = client.get(opened_path)

        self.assertEqual(
            response.headers['Location'], 'https://shop.example/empty.gif')
        state = self.state(data)
        self.assertTrue(state['opened'])
        self.assertFalse(state['clicked'])

        response = client.get(clicked_path)

        self.assertEqual(response.headers['Location'], 'https://shop.example/')
        state = self.state(data)
        self.assertTrue(state['clicked'])
        self.assertEqual(state['children']['not_clicked'][0], 'cancelled')

    def set_email_from(self, data, email_from):
        "Set the sender of the e-mail activities of the scenario"
        with Transaction().start(DB_NAME, 0) as transaction:
            Activity = Pool().get('marketing.automation.activity')
            activities = Activity.search([
                    ('scenario', '=', data.scenario),
                    ('action', '=', 'send_email'),
                    ])
            Activity.write(activities, {'email_from': email_from})
            transaction.commit()

    def test_unsubscribe_page_sender(self):
        "Test the unsubscribe pages say who sends the e-mails"
        data = create_data()
        self.set_email_from(
            data, "Blue Heron Coffee <hello@blueheron.example.com>")
        client = self.client()

        for method in [client.get, client.post]:
            with self.subTest(method=method.__name__):
                page = method(self.unsubscribe(data)).get_data(as_text=True)
                self.assertIn(
                    '<p id="sender">These e-mails are sent by '
                    'Blue Heron Coffee.</p>', page)

    def test_unsubscribe_page_default_sender(self):
        "Test the unsubscribe page names the configured sender by default"
        data = create_data()
        if not config.has_section('marketing'):
            config.add_section('marketing')
        previous = config.get('marketing', 'email_from')
        config.set('marketing', 'email_from', 'Storefront <shop@example.com>')
        try:
            page = self.client().get(
                self.unsubscribe(data)).get_data(as_text=True)
        finally:
            config.set('marketing', 'email_from', previous or '')
        self.assertIn("These e-mails are sent by Storefront.", page)
