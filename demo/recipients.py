# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Customers reading the e-mails of the outbox

They only use what a mail client and a browser have: the message and HTTP.
Opening an e-mail loads its tracking pixel; clicking a link gets the
tracked URL, whose answer must be a redirect (302) to the shop, which is
checked but never followed; unsubscribing loads the page of the link and
submits its form.
"""
import email
import email.policy
import email.utils
import random
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from proteus import Model


class RecipientError(AssertionError):
    "A public link did not answer as it must"


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def content_type(self):
        return self.headers.get('content-type', '')

    @property
    def text(self):
        return self.body.decode('utf-8', 'replace')


class Browser:
    "HTTP with urllib, without following redirects"

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, timeout=30):
        self.timeout = timeout
        self.opener = urllib.request.build_opener(self._NoRedirect)

    def request(self, method, url, data=None):
        body = urlencode(data).encode('ascii') if data is not None else None
        request = urllib.request.Request(
            url, data=body, method=method,
            headers={'User-Agent': 'demo-recipient/1.0'})
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return Response(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    response.read())
        except urllib.error.HTTPError as error:
            # Redirects and errors come back as HTTPError
            with error:
                return Response(
                    error.code,
                    {k.lower(): v for k, v in error.headers.items()},
                    error.read())


class WSGIBrowser:
    "The same requests made to a WSGI application in the process"

    def __init__(self, app):
        from werkzeug.test import Client
        self.client = Client(app)

    def request(self, method, url, data=None):
        parts = urlsplit(url)
        response = self.client.open(
            parts.path, base_url='%s://%s' % (parts.scheme, parts.netloc),
            query_string=parts.query, method=method, data=data)
        try:
            return Response(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.get_data())
        finally:
            response.close()


class _Links(HTMLParser):
    "Collect the links with their text, the images and the forms"

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links, self.images, self.forms = [], [], []
        self.language = None
        self._link = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'html':
            self.language = attrs.get('lang')
        elif tag == 'a' and attrs.get('href'):
            self._link = [attrs['href'], '']
            self.links.append(self._link)
        elif tag == 'img' and attrs.get('src'):
            self.images.append(attrs['src'])
        elif tag == 'form':
            self.forms.append({
                    'action': attrs.get('action') or '',
                    'method': (attrs.get('method') or 'get').upper(),
                    'fields': {},
                    })
        elif tag in {'input', 'button'} and self.forms and attrs.get('name'):
            self.forms[-1]['fields'][attrs['name']] = attrs.get('value', '')

    def handle_endtag(self, tag):
        if tag == 'a':
            self._link = None

    def handle_data(self, data):
        if self._link is not None:
            self._link[1] = ' '.join((self._link[1] + ' ' + data).split())


def parse_html(html):
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser


@dataclass
class Mail:
    "An e-mail as its recipient sees it"
    path: str
    to: str
    subject: str
    links: list
    pixel: str = None
    unsubscribe: str = None
    language: str = None
    activity: str = None
    record: str = None

    @property
    def token(self):
        "The token of the record activity in the pixel URL"
        if self.pixel and '/o/' in self.pixel:
            return self.pixel.rsplit('/o/', 1)[1].split('.', 1)[0]

    @property
    def address(self):
        return email.utils.parseaddr(self.to)[1]

    @property
    def name(self):
        return email.utils.parseaddr(self.to)[0] or self.to

    def call_to_action(self):
        "Return (text, tracked URL, destination) of the main link"
        for href, text in self.links:
            if '/c/' not in href:
                continue
            destination = parse_qs(urlsplit(href).query).get('u', [''])[0]
            # The first tracked link is the shop's logo
            if urlsplit(destination).path not in {'', '/'}:
                return text, href, destination
        raise RecipientError(f"{self.path}: no tracked link to click")


def read_mail(path):
    with open(path, 'rb') as fp:
        message = email.message_from_bytes(
            fp.read(), policy=email.policy.default)
    html = message.get_body(('html',)).get_content()
    parsed = parse_html(html)
    unsubscribe = next(
        (h for h, _ in parsed.links if '/unsubscribe?' in h), None)
    pixel = next((s for s in parsed.images if '/o/' in s), None)
    return Mail(
        path=path, to=str(message['To']), subject=str(message['Subject']),
        links=parsed.links, pixel=pixel, unsubscribe=unsubscribe,
        language=parsed.language)


def identify(config, mails, activity_keys):
    """Set on each mail the key of its activity and its enrolled record

    The demo looks the token of the pixel up, as a recipient cannot know.
    activity_keys is {activity id: key}."""
    RecordActivity = Model.get(
        'marketing.automation.record.activity', config=config)
    by_token = {m.token: m for m in mails if m.token}
    for record_activity in RecordActivity.find(
            [('uuid', 'in', list(by_token))]):
        mail = by_token[record_activity.uuid]
        mail.activity = activity_keys.get(record_activity.activity.id)
        mail.record = str(record_activity.record.record)
    return mails


# Behaviour per activity: (share opening, share clicking); clickers open.
# The shorter subject of the welcome's variant B does a little better.
BEHAVIOUR = {
    'welcome': (0.6, 0.25),
    'welcome_b': (0.75, 0.4),
    'cart': (0.6, 0.3),
    'cart_reminder': (0.5, 0.25),
    'cart_offer': (0.7, 0.35),
    'order': (0.7, 0.2),
    }


@dataclass
class Plan:
    "Who does what with the mails of one delivery"
    open: list = field(default_factory=list)
    click: list = field(default_factory=list)
    unsubscribe: list = field(default_factory=list)
    ignore: list = field(default_factory=list)


def plan(mails, unsubscribe=0, seed=1):
    """Decide who opens, clicks and unsubscribes

    The choice is random but the same at each run; those who unsubscribe
    are taken among the readers of the first activity who do not click,
    those receiving no other mail first."""
    result = Plan()
    by_activity, activities_of = {}, {}
    for mail in mails:
        activities_of.setdefault(mail.address, set()).add(mail.activity)
    # By record, not by path: the order in which the mails arrive may
    # change from one run to the next
    for mail in sorted(mails, key=lambda m: (m.record or '', m.path)):
        by_activity.setdefault(mail.activity, []).append(mail)
    for key, group in by_activity.items():
        opening, clicking = BEHAVIOUR.get(key, (0.5, 0.2))
        shuffled = list(group)
        # A generator per activity: the split of an A/B test, which the
        # random tokens decide, changes nothing of the other activities
        random.Random('%s:%s' % (seed, key)).shuffle(shuffled)
        n_open = round(len(group) * opening)
        n_click = min(round(len(group) * clicking), n_open)
        result.click.extend(shuffled[:n_click])
        readers = shuffled[n_click:n_open]
        if unsubscribe and key == 'welcome':
            # Which variant each one gets is random: leaving alone those
            # who also have a cart keeps the story of the carts the same
            readers.sort(key=lambda m: len(activities_of[m.address]) > 1)
            result.unsubscribe.extend(readers[:unsubscribe])
            readers = readers[unsubscribe:]
        result.open.extend(readers)
        result.ignore.extend(shuffled[n_open:])
    return result


def open_mail(browser, mail):
    "Load the pixel as a mail client showing images does"
    if not mail.pixel:
        raise RecipientError(f"{mail.path}: no tracking pixel")
    response = browser.request('GET', mail.pixel)
    if response.status != 200 or response.content_type != 'image/gif':
        raise RecipientError(
            f"{mail.pixel}: {response.status} {response.content_type}")
    return response


def click(browser, mail):
    "Follow the main link: a redirect to the shop, checked not followed"
    text, url, destination = mail.call_to_action()
    response = browser.request('GET', url)
    location = response.headers.get('location')
    if response.status != 302 or location != destination:
        raise RecipientError(
            f"{url}: {response.status} to {location!r}, "
            f"expected 302 to {destination!r}")
    return text, location


class _Title(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title, self._in = '', False

    def handle_starttag(self, tag, attrs):
        self._in = tag == 'h1'

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.title += data


def _title(html):
    parser = _Title()
    parser.feed(html)
    return ' '.join(parser.title.split())


def unsubscribe(browser, mail):
    "Open the unsubscribe link and submit the form of the page"
    if not mail.unsubscribe:
        raise RecipientError(f"{mail.path}: no unsubscribe link")
    page = browser.request('GET', mail.unsubscribe)
    if page.status != 200 or not page.content_type.startswith('text/html'):
        raise RecipientError(
            f"{mail.unsubscribe}: {page.status} {page.content_type}")
    forms = parse_html(page.text).forms
    if not forms:
        raise RecipientError(f"{mail.unsubscribe}: no form on the page")
    form = forms[0]
    action = urljoin(mail.unsubscribe, form['action'] or mail.unsubscribe)
    result = browser.request(form['method'], action, form['fields'])
    if result.status != 200:
        raise RecipientError(f"{action}: {result.status}")
    return _title(page.text), _title(result.text)


def play(browser, mails, unsubscribe_count=0, say=print, seed=1):
    """Let the recipients act on their mails and tell what happened

    Return {activity key: {'received', 'opened', 'clicked',
    'unsubscribed'}}, the actions of this delivery, and the plan."""
    decided = plan(mails, unsubscribe=unsubscribe_count, seed=seed)
    counts = {}

    def count(mail, action):
        figures = counts.setdefault(mail.activity, {
                'received': 0, 'opened': 0, 'clicked': 0,
                'unsubscribed': 0})
        figures[action] += 1

    for mail in mails:
        count(mail, 'received')
    shown = set()
    for mail in decided.open:
        open_mail(browser, mail)
        count(mail, 'opened')
        if 'open' not in shown:
            shown.add('open')
            say(f"  {mail.name} opens {mail.subject!r}: "
                f"the pixel answers 200 image/gif")
    for mail in decided.click:
        open_mail(browser, mail)
        count(mail, 'opened')
        text, location = click(browser, mail)
        count(mail, 'clicked')
        if 'click' not in shown:
            shown.add('click')
            say(f"  {mail.name} clicks {text!r}: 302 to {location}")
    for mail in decided.unsubscribe:
        open_mail(browser, mail)
        count(mail, 'opened')
        question, answer = unsubscribe(browser, mail)
        count(mail, 'unsubscribed')
        say(f"  {mail.name} follows the unsubscribe link of "
            f"{mail.subject!r}: page {question!r}, submits the form: "
            f"{answer!r}")
    return counts, decided
