# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Random and malformed requests to the public routes change nothing"
import base64
import hashlib
import random
import string
from urllib.parse import quote

from trytond.modules.marketing_automation import links
from trytond.pool import Pool
from trytond.pyson import PYSONEncoder
from trytond.tests.test_tryton import DB_NAME, RouteTestCase
from trytond.transaction import Transaction

from .builders import (
    create_activity, create_party, create_scenario, email_values, enrol,
    mark_sent)

SEED = 20240801
REQUESTS = 1500
METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE']
TABLES = [
    'marketing.automation.scenario',
    'marketing.automation.activity',
    'marketing.automation.record',
    'marketing.automation.record.activity',
    'party.party-unsubscribed-marketing.automation.scenario',
    'party.party',
    'ir.configuration',
    'ir.email',
    ]
HTML = '<html><body><a href="https://shop.example/">Shop</a></body></html>'


class RoutesFuzzTestCase(RouteTestCase):
    "Fuzz the public routes"
    module = 'marketing_automation'

    @classmethod
    def setUpDatabase(cls):
        Configuration = Pool().get('ir.configuration')
        parties = [create_party("Party %s" % i) for i in range(5)]
        scenario = create_scenario(
            name="Fuzz", unsubscribable=True,
            domain=PYSONEncoder().encode([
                    ('id', 'in', [p.id for p in parties])]))
        email = create_activity(scenario, **email_values(
                name="E-mail", email_title="Hello", email_template=HTML))
        create_activity(email, name="Opened", on='email_opened')
        records = enrol(scenario)
        roots = mark_sent(email)
        cls.secret = Configuration.get_marketing_automation_secret()
        cls.tokens = [r.uuid for r in roots]
        cls.record_tokens = [r.uuid for r in records]

    def snapshot(self):
        "Return the row count and a checksum of every table of the routes"
        result = {}
        with Transaction().start(DB_NAME, 0, readonly=True) as transaction:
            pool = Pool()
            cursor = transaction.connection.cursor()
            for name in TABLES:
                table = pool.get(name).__table__()
                cursor.execute(*table.select(order_by=[table.id.asc]))
                rows = cursor.fetchall()
                digest = hashlib.sha256(repr(rows).encode()).hexdigest()
                result[name] = (len(rows), digest)
        return result

    def test_fuzz(self):
        "Test random and malformed requests: no 5xx, nothing changes"
        rng = random.Random(SEED)
        fuzz = Fuzz(rng, self.tokens, self.record_tokens, self.secret)
        before = self.snapshot()
        client = self.client()
        statuses, failures = {}, []
        for i in range(REQUESTS):
            method, url, kwargs = fuzz.request()
            response = client.open(url, method=method, **kwargs)
            status = response.status_code
            statuses[status] = statuses.get(status, 0) + 1
            # Only genuine links redirect, and they are only sent with HEAD
            # (308 is werkzeug merging the slashes of a path)
            if status >= 500 or (status in {301, 302, 303, 307}
                    and method != 'HEAD'):
                failures.append((i, method, url[:300], status,
                        response.get_data(as_text=True)[:300]))
        self.assertEqual(failures, [])
        self.assertEqual(sum(statuses.values()), REQUESTS)
        self.assertEqual(self.snapshot(), before)
        # The requests reached the routes, not only the URL map
        self.assertGreater(statuses.get(404, 0), REQUESTS // 10)
        self.assertGreater(statuses.get(200, 0), REQUESTS // 20)
        self.assertGreater(statuses.get(302, 0), 0)

    def test_snapshot_sees_changes(self):
        "Test the snapshot of the fuzz test sees an event"
        before = self.snapshot()
        token = self.tokens[-1]
        response = self.client().get('/m/%s/o/%s.gif' % (
                links.database_segment(DB_NAME), token))
        self.assertEqual(response.status_code, 200)
        after = self.snapshot()
        self.assertNotEqual(after, before)
        self.__class__.tokens = self.tokens[:-1]


class Fuzz:
    "Generator of random and malformed requests to the public routes"

    def __init__(self, rng, tokens, record_tokens, secret):
        self.rng = rng
        self.tokens = tokens
        self.record_tokens = record_tokens
        self.secret = secret
        self.db = links.database_segment(DB_NAME)

    def choice(self, *generators):
        return self.rng.choice(generators)()

    def text(self, size=None, alphabet=None):
        size = self.rng.randint(0, 40) if size is None else size
        if alphabet is None:
            alphabet = self.rng.choice([
                    string.hexdigits, string.printable,
                    string.ascii_letters + '-_=', 'é€ü\u202e\ufeff\x00\x7f'
                    + string.ascii_lowercase, '%/.?#&=+;\\'])
        return ''.join(self.rng.choice(alphabet) for _ in range(size))

    def mutate(self, value):
        "Return value with a change that keeps it from being genuine"
        rng = self.rng
        kind = rng.randrange(8)
        if kind == 0 and value:
            i = rng.randrange(len(value))
            c = rng.choice([x for x in '0123456789abcdefXZ-' if x != value[i]])
            return value[:i] + c + value[i + 1:]
        elif kind == 1:
            return value[:rng.randrange(len(value) or 1)]
        elif kind == 2:
            return value + self.text(rng.randint(1, 5))
        elif kind == 3:
            return value * rng.randint(2, 200)
        elif kind == 4:
            return value.upper() if value != value.upper() else value + 'x'
        elif kind == 5:
            return quote(value) + '%FF%FE'
        elif kind == 6:
            return value[::-1] + '0'
        return self.text(rng.randint(1, 5)) + value

    def token(self, genuine=None):
        """Return a token that is not genuine for its route

        genuine is the list of the tokens of the route: they are only
        mutated, and the genuine tokens of the other kind are used as is."""
        genuine = genuine or self.tokens
        other = (self.tokens if genuine is self.record_tokens
            else self.record_tokens)
        return self.choice(
            lambda: links.new_token(),
            lambda: self.mutate(self.rng.choice(genuine)),
            lambda: self.text(),
            lambda: self.text(self.rng.randint(100, 5000), string.hexdigits),
            lambda: '%' + self.text(2, string.ascii_letters),
            lambda: '..',
            lambda: self.rng.choice(other),
            )

    def database(self):
        rng = self.rng
        return self.choice(
            lambda: self.db,
            lambda: self.db,
            lambda: links.database_segment(self.text() or 'x'),
            lambda: base64.urlsafe_b64encode(
                rng.randbytes(rng.randint(1, 30))).decode().rstrip('='),
            lambda: self.mutate(self.db),
            lambda: quote(self.text(), safe=''),
            lambda: 'A' * rng.randint(300, 3000),
            )

    def query(self):
        rng = self.rng
        keys = ['u', 's', 'r', 'next', 'List-Unsubscribe', self.text(3)]
        pairs = []
        for _ in range(rng.randint(0, 5)):
            key = rng.choice(keys)
            value = self.choice(
                lambda: self.text(),
                lambda: self.token(self.record_tokens),
                lambda: 'https://evil.example/' + self.text(),
                lambda: links.automation_base() + '/' + self.text(),
                lambda: 'One-Click',
                lambda: links.sign(self.secret, rng.choice(self.tokens),
                    'https://shop.example/'),
                )
            pairs.append(quote(key, safe='') + '=' + self.choice(
                    lambda: quote(value, safe=''),
                    lambda: value.replace('&', '').replace('#', ''),
                    lambda: '%ZZ%' + quote(value, safe=''),
                    ))
        query = '&'.join(pairs)
        if rng.random() < 0.1:
            query += rng.choice(['&&&', '===', '%', '&u', '#frag'])
        return query

    def body(self):
        rng = self.rng
        return self.choice(
            lambda: {},
            lambda: {'data': {'List-Unsubscribe': 'One-Click'}},
            lambda: {'data': {'List-Unsubscribe': self.text()}},
            lambda: {'data': {self.text(5): self.text()}},
            lambda: {'data': rng.randbytes(rng.randint(0, 2000)),
                'content_type': rng.choice([
                        'application/x-www-form-urlencoded',
                        'multipart/form-data; boundary=x',
                        'application/json', 'text/plain'])},
            lambda: {'data': 'List-Unsubscribe=One-Click',
                'content_type': 'multipart/form-data'},
            )

    def genuine_click(self):
        "A genuine tracked link: only HEAD is sent to it"
        token = self.rng.choice(self.tokens)
        url = self.choice(
            lambda: 'https://shop.example/',
            lambda: 'https://shop.example/' + self.text(),
            )
        return links.click_url(DB_NAME, token, url, self.secret)

    def request(self):
        "Return method, URL and keyword arguments of a request"
        rng = self.rng
        method = rng.choice(METHODS)
        kwargs = {}
        kind = rng.randrange(9)
        if kind == 0:
            path = '/m/%s/o/%s.gif' % (self.database(), self.token())
            if rng.random() < 0.3:
                path += '?' + self.query()
        elif kind == 1:
            path = '/m/%s/c/%s?%s' % (
                self.database(), self.token(), self.query())
        elif kind == 2:
            # Genuine link with a tampered part
            url = self.genuine_click()
            path = url[url.index('/m/'):]
            base, query = path.split('?', 1)
            path = self.choice(
                lambda: base + '?' + self.mutate(query),
                lambda: self.mutate(base) + '?' + query,
                lambda: base + '?u=' + quote(
                    'https://evil.example/', safe='') + '&' + query,
                lambda: base + '?' + query + '&u=' + quote(
                    'https://evil.example/', safe=''),
                lambda: base.replace(
                    self.db, self.mutate(self.db)) + '?' + query,
                )
            if rng.random() < 0.2 and '%FF' not in path:
                method = 'HEAD'
        elif kind == 3:
            url = self.genuine_click()
            path = url[url.index('/m/'):]
            method = 'HEAD'
        elif kind == 4:
            path = '/m/%s/unsubscribe?r=%s' % (
                self.database(), quote(
                    self.token(self.record_tokens), safe=''))
            if rng.random() < 0.5:
                path += '&' + self.query()
        elif kind == 5:
            path = '/m/%s/unsubscribe?%s' % (self.database(), self.query())
        elif kind == 6:
            # A genuine record: everything but POST
            path = '/m/%s/unsubscribe?r=%s' % (
                self.db, rng.choice(self.record_tokens))
            if rng.random() < 0.5:
                path += '&next=' + quote(
                    'https://evil.example/' + self.text(), safe='')
            method = rng.choice(['GET', 'HEAD', 'PUT', 'DELETE'])
        elif kind == 7:
            path = '/m/empty.gif'
            if rng.random() < 0.5:
                path += '?' + self.query()
        else:
            # A genuine pixel: everything but GET
            path = '/m/%s/o/%s.gif' % (self.db, rng.choice(self.tokens))
            method = rng.choice(['HEAD', 'POST', 'PUT', 'DELETE'])
        if method in {'POST', 'PUT', 'DELETE'}:
            kwargs.update(self.body())
        if rng.random() < 0.1:
            kwargs['headers'] = {
                'Accept-Language': ''.join(
                    c for c in self.text() if c.isprintable()),
                }
        return method, path, kwargs
