# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import re
import struct
import warnings
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

import trytond.config as config
from trytond.modules.marketing_automation import links

SECRET = 'a secret key'
TOKEN = '0123456789abcdef0123456789abcdef'
TRICKY_URLS = [
    'https://shop.example/p?a=1&b=2#frag',
    'https://exämple.org/ä?q=ü&x=1#frag',
    'https://shop.example/a b?q=a b&r=c+d',
    'https://shop.example/a%2Fb?next=%2F%3Fx%3D1&y=%E2%82%AC',
    'https://shop.example/?u=https://o.example/?a=1&s=x&c#a#b',
    'https://shop.example/%',
    'http://shop.example/;p?q=\'"<>',
    ]


@pytest.fixture
def set_base():
    "Give a setter of [marketing] automation_base and restore the config"
    created = not config.has_section('marketing')
    if created:
        config.add_section('marketing')
    saved = {o: config.get('marketing', o)
        for o in config.options('marketing')}

    def set_(value):
        config.set('marketing', 'automation_base', value)
    yield set_
    config.remove_section('marketing')
    if created:
        config.get.cache_clear()
    else:
        config.add_section('marketing')
        for option, value in saved.items():
            config.set('marketing', option, value)


def query(url):
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def werkzeug_args(url):
    parts = urlsplit(url)
    environ = EnvironBuilder(
        path=parts.path, query_string=parts.query).get_environ()
    return Request(environ).args


def test_new_token_format():
    token = links.new_token()
    assert re.fullmatch(r'[0-9a-f]{32}', token)
    assert links.is_token(token)


def test_new_token_unique():
    tokens = {links.new_token() for _ in range(1000)}
    assert len(tokens) == 1000


@pytest.mark.parametrize('value', [
        '0123456789abcdef0123456789abcdef',
        '0123456789ABCDEF0123456789ABCDEF',
        '01234567-89ab-cdef-0123-456789abcdef',
        '01234567-89AB-CDEF-0123-456789ABCDEF',
        ])
def test_is_token_accepts(value):
    assert links.is_token(value) is True


@pytest.mark.parametrize('value', [
        None, 42, b'0123456789abcdef0123456789abcdef', '',
        '0123456789abcdef0123456789abcde',
        '0123456789abcdef0123456789abcdef0',
        '0123456789abcdef0123456789abcdeg',
        '0123456789abcdef0123456789abcdef\n',
        ' 0123456789abcdef0123456789abcdef',
        '0123456789abcdef-0123456789abcdef',
        '0123456789-abcdef-0123-456789abcdef',
        '01234567-89ab-cdef-0123-456789abcdef0',
        '０１２３４５６７８９abcdef0123456789abcdef',
        "' OR 1=1 --",
        ])
def test_is_token_rejects(value):
    assert links.is_token(value) is False


def test_automation_base_from_config(set_base):
    set_base('https://shop.example/tryton/')
    assert links.automation_base() == 'https://shop.example/tryton'


def test_automation_base_default(set_base):
    set_base('')
    base = links.automation_base()
    assert re.match(r'https?://[^/]+', base)
    assert not base.endswith('/')


def base64_converter():
    # trytond.wsgi triggers a deprecation warning of trytond itself
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        from trytond.wsgi import Base64Converter
    return Base64Converter(None)


def test_database_segment_matches_trytond():
    converter = base64_converter()
    for name in ['test', 'db-1', 'ünïcode', 'a', 'ab', 'abc', 'x?/+']:
        segment = links.database_segment(name)
        assert segment == converter.to_url(name)
        assert converter.to_python(segment) == name
        assert '=' not in segment


def test_sign_format():
    signature = links.sign(SECRET, TOKEN, 'https://shop.example/')
    assert re.fullmatch(r'[A-Za-z0-9_-]{22}', signature)
    assert signature == links.sign(
        SECRET.encode(), TOKEN, 'https://shop.example/')


def test_sign_depends_on_every_input():
    signature = links.sign(SECRET, TOKEN, 'https://shop.example/')
    assert signature != links.sign('other', TOKEN, 'https://shop.example/')
    assert signature != links.sign(
        SECRET, links.new_token(), 'https://shop.example/')
    assert signature != links.sign(SECRET, TOKEN, 'https://shop.example/x')
    # The separator keeps token and URL apart
    assert links.sign(SECRET, 'ab', 'c') != links.sign(SECRET, 'a', 'bc')


def test_sign_rejects_empty_secret():
    with pytest.raises(ValueError):
        links.sign('', TOKEN, 'https://shop.example/')


@pytest.mark.parametrize('url', TRICKY_URLS)
def test_check_signature_round_trip(url):
    signature = links.sign(SECRET, TOKEN, url)
    assert links.check_signature(SECRET, TOKEN, url, signature) is True


def test_check_signature_rejects_tampering():
    url = 'https://shop.example/p?a=1'
    signature = links.sign(SECRET, TOKEN, url)
    other = 'A' if signature[0] != 'A' else 'B'
    rejected = [
        (SECRET, TOKEN, url + '&b=2', signature),
        (SECRET, TOKEN, 'https://evil.example/', signature),
        (SECRET, links.new_token(), url, signature),
        ('other', TOKEN, url, signature),
        (SECRET, TOKEN, url, other + signature[1:]),
        (SECRET, TOKEN, url, signature[:-1]),
        (SECRET, TOKEN, url, signature + 'A'),
        (SECRET, TOKEN, url, ''),
        (SECRET, TOKEN, url, None),
        (SECRET, TOKEN, url, signature.encode()),
        (SECRET, TOKEN, url, 'é' * 22),
        (SECRET, TOKEN, None, signature),
        (SECRET, None, url, signature),
        ('', TOKEN, url, signature),
        (None, TOKEN, url, signature),
        ]
    for args in rejected:
        assert links.check_signature(*args) is False, args


def test_unsubscribe_url(set_base):
    set_base('https://shop.example/tryton')
    url = links.unsubscribe_url('test', TOKEN)
    assert url == (
        'https://shop.example/tryton/m/dGVzdA/unsubscribe?r=' + TOKEN)


@pytest.mark.parametrize('next_url', TRICKY_URLS)
def test_unsubscribe_url_next(set_base, next_url):
    set_base('https://shop.example')
    url = links.unsubscribe_url('test', TOKEN, next_url)
    assert url.startswith(
        'https://shop.example/m/dGVzdA/unsubscribe?r=%s&next=' % TOKEN)
    assert query(url) == {'r': [TOKEN], 'next': [next_url]}
    args = werkzeug_args(url)
    assert args['next'] == next_url
    assert args['r'] == TOKEN


def test_open_url(set_base):
    set_base('https://shop.example/tryton/')
    assert links.open_url('test', TOKEN) == (
        'https://shop.example/tryton/m/dGVzdA/o/%s.gif' % TOKEN)


def test_click_url_shape(set_base):
    set_base('https://shop.example/tryton')
    url = links.click_url('test', TOKEN, 'https://o.example/?a=1', SECRET)
    assert url == (
        'https://shop.example/tryton/m/dGVzdA/c/%s'
        '?u=https%%3A%%2F%%2Fo.example%%2F%%3Fa%%3D1&s=%s' % (
            TOKEN, links.sign(SECRET, TOKEN, 'https://o.example/?a=1')))


@pytest.mark.parametrize('destination', TRICKY_URLS)
def test_click_url_round_trip(set_base, destination):
    set_base('https://shop.example')
    url = links.click_url('test', TOKEN, destination, SECRET)
    assert '#' not in url and ' ' not in url
    assert url.isascii()
    values = query(url)
    assert values['u'] == [destination]
    args = werkzeug_args(url)
    assert args['u'] == destination
    assert links.check_signature(
        SECRET, TOKEN, args['u'], args['s']) is True


def lzw_decode(min_size, data):
    "Decode GIF LZW data into colour indexes"
    clear, end = 1 << min_size, (1 << min_size) + 1
    stream = int.from_bytes(data, 'little')
    position, size, table, previous, indexes = 0, min_size + 1, [], None, []
    while position + size <= 8 * len(data):
        code = (stream >> position) & ((1 << size) - 1)
        position += size
        if code == clear:
            table = [[i] for i in range(clear)] + [None, None]
            size, previous = min_size + 1, None
            continue
        elif code == end:
            return indexes
        entry = table[code] if code < len(table) else previous + previous[:1]
        indexes.extend(entry)
        if previous is not None:
            table.append(previous + entry[:1])
            if len(table) == 1 << size and size < 12:
                size += 1
        previous = entry
    raise ValueError("no end code")


def test_empty_gif():
    gif = links.EMPTY_GIF
    assert gif[:6] == b'GIF89a'
    assert struct.unpack('<HH', gif[6:10]) == (1, 1)
    assert gif[10] & 0x80  # global colour table
    table_size = 3 * 2 ** ((gif[10] & 0x07) + 1)
    extension = gif[13 + table_size:]
    # Graphic control extension with the transparency flag
    assert extension[:3] == b'\x21\xf9\x04'
    assert extension[3] & 0x01
    transparent = extension[6]
    assert extension[7] == 0
    descriptor = extension[8:]
    assert descriptor[0:1] == b','
    assert struct.unpack('<HHHH', descriptor[1:9]) == (0, 0, 1, 1)
    assert descriptor[9] == 0  # no local colour table
    min_size, rest = descriptor[10], descriptor[11:]
    data = b''
    while rest[0]:
        data += rest[1:1 + rest[0]]
        rest = rest[1 + rest[0]:]
    assert rest == b'\x00;'
    assert lzw_decode(min_size, data) == [transparent]


@pytest.mark.parametrize('url', [
        'https://shop.example/thanks',
        'https://SHOP.example:443/x?y=1#z',
        'https://shop.example',
        ])
def test_is_same_site_accepts(url):
    assert links.is_same_site(url, 'https://shop.example/tryton') is True


@pytest.mark.parametrize('url', [
        'http://shop.example/thanks',
        'https://shop.example:8443/',
        'https://evil.example/',
        'https://shop.example.evil.example/',
        'https://evil.example/https://shop.example/',
        'https://shop.example@evil.example/',
        'https://user:pw@shop.example/',
        'https://evil.example\\@shop.example/',
        'https://evil.example\\.shop.example/',
        'https://shop.exam\tple/',
        '//evil.example/',
        '/relative',
        'javascript:alert(1)//https://shop.example/',
        'ftp://shop.example/',
        'https://shop.example:99999/',
        'https://shop.example:port/',
        'https://[::1/',
        '',
        None,
        b'https://shop.example/',
        ])
def test_is_same_site_rejects(url):
    assert links.is_same_site(url, 'https://shop.example/tryton') is False


def test_is_same_site_with_port():
    base = 'http://127.0.0.1:8000'
    assert links.is_same_site('http://127.0.0.1:8000/x', base) is True
    assert links.is_same_site('http://127.0.0.1/x', base) is False
    assert links.is_same_site(
        'http://example.com:80/', 'http://example.com') is True


def test_linked_urls(set_base):
    destination = 'https://shop.example/a?x=1&y=%C3%A9#top'
    body = (
        '<html><body>'
        '<p>https://shop.example/in-text</p>'
        '<a href="%s">tracked</a>'
        '<a href="%s">unsubscribe</a>'
        '<a href="mailto:shop@example.com">mail</a>'
        '<a>no href</a>'
        '</body></html>') % (
        links.click_url('db', links.new_token(), destination, 'secret')
        .replace('&', '&amp;'),
        links.unsubscribe_url(
            'db', links.new_token(), 'https://shop.example/bye'))
    urls = links.linked_urls(body)
    assert destination in urls
    assert 'https://shop.example/bye' in urls
    assert 'mailto:shop@example.com' in urls
    assert 'https://shop.example/in-text' not in urls
    assert 'https://shop.example/a' not in urls
    assert links.linked_urls(None) == set()


@pytest.mark.parametrize('url', TRICKY_URLS + [
        'http://shop.example',
        'HTTPS://SHOP.EXAMPLE/',
        'https://shop.example/line\nbreak\ttab',
        'https://user@shop.example/',
        'https://[::1]:8000/',
        ])
def test_is_trackable(url):
    assert links.is_trackable(url) is True


@pytest.mark.parametrize('href', [
        'javascript:alert(1)',
        'JAVASCRIPT:alert(1)',
        ' javascript:alert(1)',
        'java\tscript:alert(1)',
        '\x00javascript:alert(1)',
        'data:text/html,<script>alert(1)</script>',
        'vbscript:msgbox(1)',
        'file:///etc/passwd',
        'ftp://shop.example/',
        'mailto:shop@example.com',
        'tel:+3212345678',
        '#top',
        '/relative',
        'relative',
        '//evil.example/',
        'https:evil.example',
        'https:/evil.example',
        'https:\\\\evil.example/',
        'https://',
        'https://a b/',
        'https://shop.example:99999/',
        'https://a..b/',
        'unsubscribe',
        'unsubscribe|https://shop.example/',
        '',
        None,
        b'https://shop.example/',
        ])
def test_is_trackable_rejects(href):
    assert links.is_trackable(href) is False
    assert links.redirect_location(href) is None


def test_redirect_location_is_werkzeug_location():
    for url in TRICKY_URLS:
        assert links.redirect_location(url) == links.location(url)


@pytest.mark.parametrize('name', [
        'test', 'db-1', 'ünïcode', 'a', 'ab', 'abc', ':memory:'])
def test_database_name(name):
    assert links.database_name(links.database_segment(name)) == name
    padded = links.database_segment(name, padded=True)
    assert links.database_name(padded, padded=True) == name
    assert padded.rstrip('=') == links.database_segment(name)


@pytest.mark.parametrize('segment,padded', [
        # "test" is dGVzdA, padded dGVzdA==
        ('dGVzdA=', False),
        ('dGVzdA==', False),
        ('dGVzdA===', False),
        ('dGVzdA=', True),
        ('dGVzdA===', True),
        # unused trailing bits set
        ('dGVzdB', False),
        ('dGVzdP', True),
        ('dGVzdB==', True),
        # "abc" has no padding
        ('YWJj=', True),
        ('YWJj==', True),
        ('', False),
        ('A', False),
        ('!!!', False),
        ('dGVz/A', False),
        ('dGVz+A', False),
        ('=dGVzdA', False),
        ('Lw', False),  # "/"
        ('AA', False),  # "\0"
        ('w4', False),  # not UTF-8
        ('A' * 400, False),
        (None, False),
        ])
def test_database_name_rejects(segment, padded):
    assert links.database_name(segment, padded=padded) is None


def test_unsubscribe_destinations():
    template = (
        '<html><body><a href="unsubscribe">Stop</a>'
        '<a href="unsubscribe|https://shop.example/bye?a=1&amp;b=2">Bye</a>'
        '<a href="https://shop.example/">Shop</a>'
        '<a href="unsubscribe|">Empty</a></body></html>')
    assert links.unsubscribe_destinations(template) == {
        'https://shop.example/bye?a=1&b=2'}
    assert links.unsubscribe_destinations(None) == set()
