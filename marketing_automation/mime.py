# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Build the MIME messages of marketing e-mails

The HTML part as rendered, its plain-text alternative, the headers
(From/Sender, To, List-Unsubscribe, Message-ID, Date), written with a
policy that stores plain headers as they are given.
"""
import binascii
import datetime as dt
import functools
import re
import uuid
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses, make_msgid
from html import unescape
from urllib.parse import parse_qsl, quote, urlencode

from trytond.report import html_to_text as _report_html_to_text
from trytond.tools.email_ import format_address, set_from_header
from trytond.url import host

__all__ = [
    'html_to_text', 'recipient', 'display_address', 'message_id',
    'unsubscribe_mailto', 'build_message']

_CACHE_SIZE = 128


class _HeaderRegistry(HeaderRegistry):
    "HeaderRegistry reusing the header class it makes for each name"
    # The standard registry creates a new class at each lookup, which is
    # half of the time spent to build a message

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._classes = {}

    def __getitem__(self, name):
        name = name.lower()
        try:
            return self._classes[name]
        except KeyError:
            klass = self._classes[name] = super().__getitem__(name)
            return klass


class _Policy(EmailPolicy):
    """The default policy of the standard library storing plain headers

    as they are given: parsing and folding them back costs more than
    rendering the template. They are parsed only when they are read."""

    def header_store_parse(self, name, value):
        if (isinstance(value, str) and value.isascii()
                and not _LINE_BREAK.search(value)
                and len(name) + len(value) + 2 <= _MAX_LINE):
            return (name, value)
        return super().header_store_parse(name, value)

    def header_fetch_parse(self, name, value):
        # The generator reads the MIME structure many times, with the
        # methods of Message that work on text
        if name.lower() in _STRUCTURE and not hasattr(value, 'name'):
            return value
        return super().header_fetch_parse(name, value)


_STRUCTURE = {'content-type', 'content-transfer-encoding', 'mime-version'}
_LINE_BREAK = re.compile(r'[\r\n]')
# The limit of RFC 5322 for a line, CRLF excluded
_MAX_LINE = 998
# refold_source='none' writes the stored plain values unchanged; the others
# are header objects that fold themselves
_POLICY = _Policy(header_factory=_HeaderRegistry(), refold_source='none')


_BLOCKS = {
    'address', 'article', 'aside', 'blockquote', 'br', 'dd', 'div', 'dl',
    'dt', 'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header',
    'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre', 'section', 'table', 'tr',
    'ul'}
_HIDDEN = {'head', 'script', 'style', 'title', 'template'}


# The HTML is the output of Genshi: a tokenizer is enough, and much faster
# than html.parser
_TOKEN = re.compile(
    r'<!--.*?-->|<[!?][^>]*>'
    r'|<(/?)([A-Za-z][A-Za-z0-9:-]*)((?:[^>"\']|"[^"]*"|\'[^\']*\')*)>'
    r'|([^<]+|<)', re.S)
_HREF = re.compile(
    r'(?:^|\s)href\s*=\s*(?:"([^"]*)"|\'([^\']*)\'|([^\s>]+))', re.I)
_RAW_TEXT = {'script', 'style'}
_SPACES = re.compile(r'\s+')


def _href(attributes):
    match = _HREF.search(attributes)
    if match:
        return unescape(next(g for g in match.groups() if g is not None))


def _text_parts(html):
    "Yield the pieces of the plain text of html"
    links, hidden = [], 0
    position, end = 0, len(html)
    while position < end:
        match = _TOKEN.match(html, position)
        position = match.end()
        closing, tag, attributes, data = match.groups()
        if data is not None:
            if not hidden:
                yield _SPACES.sub(' ', unescape(data))
            continue
        elif tag is None:
            continue
        tag = tag.lower()
        if closing:
            if tag in _HIDDEN:
                hidden = max(hidden - 1, 0)
            elif tag in _BLOCKS and tag != 'li':
                yield '\n'
            elif tag == 'a' and links:
                href = links.pop()
                if href and not href.startswith('#'):
                    yield f' <{href}>'
        elif tag in _RAW_TEXT:
            close = re.compile(r'</%s\s*>' % tag, re.I).search(html, position)
            position = close.end() if close else end
        elif attributes.endswith('/'):
            if tag in _BLOCKS:
                yield '\n'
        elif tag in _HIDDEN:
            hidden += 1
        elif tag in _BLOCKS:
            yield '\n- ' if tag == 'li' else '\n'
        elif tag == 'a':
            links.append(_href(attributes))


def html_to_text(html):
    "Return a plain text version of the HTML"
    # trytond's converter returns None when html2text is not installed
    text = _report_html_to_text(html)
    if text is None:
        lines = (l.strip() for l in ''.join(_text_parts(html)).split('\n'))
        text = re.sub(r'\n{3,}', '\n\n', '\n'.join(lines))
        text = text.strip() + '\n'
    return text


def _text_part(content, subtype):
    "Return the MIME part of the text encoded in quoted-printable UTF-8"
    part = MIMEPart(policy=_POLICY)
    part['Content-Type'] = f'text/{subtype}; charset="utf-8"'
    part['Content-Transfer-Encoding'] = 'quoted-printable'
    lines = content.encode('utf-8').splitlines()
    part.set_payload(
        binascii.b2a_qp(b'\n'.join(lines) + b'\n', istext=True)
        .decode('ascii'))
    return part


def recipient(name, address):
    """Return the To header of the name and address

    Raise ValueError if the address cannot receive e-mail."""
    address = (address or '').strip()
    local, _, domain = address.rpartition('@')
    if (not local or not domain or '.' not in domain.strip('.')
            or any(c.isspace() or c in '<>,;"()[]\\' for c in address)
            or not address.isprintable()):
        raise ValueError(f"invalid e-mail address {address!r}")
    return format_address(address, name)


_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


def display_address(name, address):
    "Return the name and address as people read them, not MIME-encoded"
    address = address.strip()
    if not name:
        return address
    if _SPECIALS.search(name):
        name = '"%s"' % name.replace('\\', '\\\\').replace('"', '\\"')
    return f'{name} <{address}>'


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _domain(from_addrs):
    for _, address in getaddresses([a for a in from_addrs if a]):
        _, at, domain = address.rpartition('@')
        domain = domain.strip().rstrip('.')
        if at and domain:
            return domain
    # As make_msgid, without its slow look-up of the host name
    return host()


def message_id(*from_addrs):
    "Return a new Message-ID in the domain of the first sender's address"
    return make_msgid(domain=_domain(from_addrs))


def unsubscribe_mailto(mailto, token):
    """Return the mailto URL of List-Unsubscribe whose subject carries the
    record token"""
    address = mailto[len('mailto:'):] if mailto.lower().startswith(
        'mailto:') else mailto
    address, _, query = address.partition('?')
    # The subject is ours; other fields of the configured URL are kept
    fields = [(k, v) for k, v in parse_qsl(query) if k.lower() != 'subject']
    fields.insert(0, ('subject', f'unsubscribe {token}'))
    return f'mailto:{address}?' + urlencode(fields, quote_via=quote)


def build_message(
        *, from_addr, sender=None, to_addr, subject, html, unsubscribe_url,
        unsubscribe_mailto=None, headers=None):
    "Return the multipart e-mail with plain text and HTML alternatives"
    if not isinstance(to_addr, str) or not any(
            '@' in address for _, address in getaddresses([to_addr])):
        raise ValueError(f"invalid recipient {to_addr!r}")
    if not from_addr:
        raise ValueError("missing sender address")
    if not unsubscribe_url:
        raise ValueError("missing unsubscribe URL")
    msg = EmailMessage(policy=_POLICY)
    if sender:
        set_from_header(msg, sender, from_addr)
    else:
        msg['From'] = from_addr
    msg['To'] = to_addr
    msg['Subject'] = ' '.join((subject or '').split())
    unsubscribe = [f'<{unsubscribe_url}>']
    if unsubscribe_mailto:
        if not unsubscribe_mailto.lower().startswith('mailto:'):
            unsubscribe_mailto = 'mailto:' + unsubscribe_mailto
        unsubscribe.append(f'<{unsubscribe_mailto}>')
    msg['List-Unsubscribe'] = ', '.join(unsubscribe)
    msg['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click'
    for name, value in dict(headers or {}).items():
        msg[name] = value
    if 'Date' not in msg:
        # With the local offset: trytond would write -0000, an unknown zone
        msg['Date'] = format_datetime(dt.datetime.now().astimezone())
    msg['MIME-Version'] = '1.0'
    # Quoted-printable never writes "==": the boundary cannot occur in the
    # parts
    msg['Content-Type'] = (
        f'multipart/alternative; boundary="=={uuid.uuid4().hex}=="')
    for content, subtype in [(html_to_text(html), 'plain'), (html, 'html')]:
        msg.attach(_text_part(content, subtype))
    return msg
