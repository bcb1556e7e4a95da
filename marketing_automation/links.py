# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Tokens, signatures and the public URLs of marketing automation.

The e-mail builder and the web routes share this single URL scheme.
"""
import base64
import binascii
import hashlib
import hmac
import re
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, urlsplit

from werkzeug.urls import iri_to_uri

import trytond.config as config
from trytond.url import http_base

__all__ = [
    'new_token', 'is_token', 'automation_base', 'database_segment',
    'database_name', 'sign', 'check_signature', 'unsubscribe_url',
    'open_url', 'click_url', 'EMPTY_GIF', 'is_same_site', 'location',
    'redirect_location', 'is_trackable', 'new_test_token', 'is_test_token']

_TOKEN = re.compile(
    r'[0-9a-f]{32}'
    r'|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
    re.IGNORECASE)
SIGNATURE_LENGTH = 22
_DEFAULT_PORTS = {'http': 80, 'https': 443}
MAX_DATABASE_SEGMENT = 344  # 256 bytes in base64
_DATABASE_SEGMENT = re.compile(r'[A-Za-z0-9_-]+={0,2}')

# 1x1 transparent GIF89a: 2-colour global table, transparency on index 0
EMPTY_GIF = (
    b'GIF89a\x01\x00\x01\x00\x80\x00\x00'
    b'\x00\x00\x00\xff\xff\xff'
    b'!\xf9\x04\x01\x00\x00\x00\x00'
    b',\x00\x00\x00\x00\x01\x00\x01\x00\x00'
    b'\x02\x02D\x01\x00'
    b';')


def new_token():
    "Return a new unguessable token of 32 lowercase hexadecimal characters"
    return secrets.token_hex(16)


def is_token(value):
    "Tell if value has the shape of a token (hexadecimal or UUID)"
    return isinstance(value, str) and bool(_TOKEN.fullmatch(value))


def automation_base():
    "Return the base URL of the public routes without trailing slash"
    # A base set to an empty value falls back like a missing one
    base = config.get('marketing', 'automation_base') or http_base()
    return base.rstrip('/')


def database_segment(database_name, padded=False):
    """Return the URL segment of the database as trytond's base64 converter

    padded gives the spelling of the converter of older trytond versions,
    which kept the padding: the e-mails they sent have it."""
    segment = (base64.urlsafe_b64encode(database_name.encode('utf-8'))
        .decode('ascii'))
    return segment if padded else segment.rstrip('=')


def database_name(segment, padded=False):
    """Return the database name of the URL segment or None if it is invalid

    Only the spelling of database_segment is accepted (and its padded one
    when padded is set): base64 has several spellings of a name (padding,
    unused trailing bits) and a database must have only one URL."""
    if (not isinstance(segment, str)
            or len(segment) > MAX_DATABASE_SEGMENT
            or not _DATABASE_SEGMENT.fullmatch(segment)):
        return None
    data = segment.rstrip('=')
    try:
        name = base64.urlsafe_b64decode(data + '=' * (-len(data) % 4))
        name = name.decode('utf-8')
    except (binascii.Error, ValueError):
        return None
    if not name or any(c in name for c in '/\\') or not name.isprintable():
        return None
    spellings = {database_segment(name)}
    if padded:
        spellings.add(database_segment(name, padded=True))
    return name if segment in spellings else None


def _key(secret):
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    if not isinstance(secret, bytes):
        raise TypeError("secret must be str or bytes")
    if not secret:
        raise ValueError("secret must not be empty")
    return secret


def sign(secret, token, url):
    "Return the signature of url for the token"
    message = (token + '\0' + url).encode('utf-8')
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return (base64.urlsafe_b64encode(digest)
        .decode('ascii').rstrip('=')[:SIGNATURE_LENGTH])


def check_signature(secret, token, url, signature):
    "Tell if signature is the valid signature of url for the token"
    if not all(isinstance(v, str) for v in [token, url, signature]):
        return False
    if len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        expected = sign(secret, token, url)
    except (TypeError, ValueError, UnicodeError):
        return False
    # Encoded to bytes because compare_digest rejects non-ASCII str
    return hmac.compare_digest(
        expected.encode('utf-8'),
        signature.encode('utf-8', 'surrogatepass'))


def _route(database_name, path):
    return f'{automation_base()}/m/{database_segment(database_name)}/{path}'


def unsubscribe_url(database_name, record_token, next_url=None):
    "Return the unsubscribe URL of a record"
    url = _route(
        database_name, 'unsubscribe?r=' + quote(record_token, safe=''))
    if next_url:
        url += '&next=' + quote(next_url, safe='')
    return url


def open_url(database_name, token):
    "Return the URL of the tracking pixel of a record activity"
    return _route(database_name, 'o/%s.gif' % quote(token, safe=''))


def click_url(database_name, token, url, secret):
    "Return the tracked URL redirecting to url for a record activity"
    return _route(database_name, 'c/%s?u=%s&s=%s' % (
            quote(token, safe=''), quote(url, safe=''),
            sign(secret, token, url)))


# Test e-mails carry tokens that name no row: half a random nonce, half
# its HMAC under this marker, so that the routes recognise a genuine test
# link by the secret alone and a forged one is not found
_TEST_MARKER = 'marketing automation test e-mail'
_TEST_NONCE_LENGTH = 16


def _test_mac(secret, nonce):
    message = (_TEST_MARKER + '\0' + nonce).encode('utf-8')
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()[
        :32 - _TEST_NONCE_LENGTH]


def new_test_token(secret):
    "Return a new token of a test e-mail, which names no record"
    nonce = secrets.token_hex(_TEST_NONCE_LENGTH // 2)
    return nonce + _test_mac(secret, nonce)


def is_test_token(secret, token):
    "Tell if token is a token of a test e-mail made with the secret"
    if not (is_token(token) and len(token) == 32):
        return False
    try:
        expected = _test_mac(secret, token[:_TEST_NONCE_LENGTH])
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(
        expected.encode('ascii'),
        token[_TEST_NONCE_LENGTH:].encode('ascii'))


def _origin(url):
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    port = parts.port or _DEFAULT_PORTS[scheme]
    return scheme, parts.hostname.lower(), port


def is_same_site(url, base):
    "Tell if url is an HTTP(S) URL with the scheme, host and port of base"
    if not isinstance(url, str) or not isinstance(base, str):
        return False
    # Browsers read a backslash as a slash and drop tabs and newlines, so
    # such URLs could reach another host than the one parsed here
    if any(c == '\\' or c.isspace() or ord(c) < 32 or ord(c) == 127
            for c in url):
        return False
    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            return False
        origin = _origin(url)
        return origin is not None and origin == _origin(base)
    except ValueError:
        return False


def location(url):
    """Return url as werkzeug sends it in a Location header or None

    werkzeug turns the IRI into a URI (punycode host, non-ASCII and unsafe
    characters percent-encoded, tabs and newlines dropped, the rest kept);
    None tells it cannot."""
    if not isinstance(url, str):
        return None
    try:
        return iri_to_uri(url)
    except ValueError:
        return None


def redirect_location(url):
    """Return the Location header of a redirection to url or None

    Only absolute HTTP(S) URLs are redirected to: a tracked link never
    leads to a script (javascript:), an inline document (data:) or any
    other scheme."""
    uri = location(url)
    # The check is on what the browser receives: the scheme must be the
    # literal start of the header, with no character a browser strips
    if (uri is None
            or not uri.lower().startswith(('http://', 'https://'))
            or not all('!' <= c <= '~' for c in uri)):
        return None
    try:
        if not urlsplit(uri).hostname:
            return None
    except ValueError:
        return None
    return uri


def is_trackable(href):
    """Tell if the link of an e-mail becomes a tracked link

    These are the absolute HTTP(S) URLs, those the tracked link route
    redirects to."""
    return redirect_location(href) is not None


class _HrefParser(HTMLParser):

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == 'a':
            self.hrefs.extend(v for k, v in attrs if k == 'href' and v)


def linked_urls(html):
    "Return the destinations of the links of an e-mail body"
    parser = _HrefParser()
    parser.feed(html or '')
    parser.close()
    urls = set()
    for href in parser.hrefs:
        urls.add(href)
        parts = urlsplit(href)
        # The destinations of our own links are in their query
        if '/m/' in parts.path:
            query = parse_qs(parts.query)
            for key in ('u', 'next'):
                urls.update(query.get(key, []))
    return urls


def unsubscribe_destinations(template):
    "Return the next URLs of the unsubscribe links written in a template"
    parser = _HrefParser()
    parser.feed(template or '')
    parser.close()
    prefix = 'unsubscribe|'
    return {h[len(prefix):] for h in parser.hrefs
        if h.startswith(prefix) and len(h) > len(prefix)}


REDACTED = 'redacted'


def redact_tokens(text, tokens):
    "Return text with the tokens replaced, so its links no longer work"
    for token in tokens:
        if token:
            text = text.replace(token, REDACTED)
    return text
