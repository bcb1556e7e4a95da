# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import email
import email.policy
import email.utils
import re
import time
from html.parser import HTMLParser

import pytest

from trytond.modules.marketing_automation import mime, rendering
from trytond.modules.marketing_automation.rendering import TemplateError
from trytond.modules.marketing_automation.sandbox import RecordProxy

PIXEL = 'https://shop.example/m/dGVzdA/o/0123.gif'
TRICKY = 'https://exämple.org/ä?q=ü&x=1#frag'


class Record(RecordProxy):
    "A record as the templates see it: the values of its fields"
    __slots__ = ()
    values = {'name': "Ann", 'email': 'ann@example.com'}

    def template_field(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise TemplateError(f"no field {name!r}")

    def template_record(self):
        return self

    def secret(self):
        return 'nope'


class AnchorParser(HTMLParser):
    "Collect the href of anchors and the src of images of an HTML output"

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.hrefs, self.images, self.events = [], [], []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.events.append(('start', tag))
        if tag == 'a':
            self.hrefs.append(attrs.get('href'))
        elif tag == 'img':
            self.images.append(attrs)

    def handle_endtag(self, tag):
        self.events.append(('end', tag))


class Calls:
    "Fake link builders that record their calls"

    def __init__(self):
        self.links, self.unsubscribes = [], []

    def link_for(self, url):
        self.links.append(url)
        return 'https://t.example/c/%d' % len(self.links)

    def unsubscribe_for(self, next_url):
        self.unsubscribes.append(next_url)
        return 'https://t.example/u/%d' % len(self.unsubscribes)


def render(template, **context):
    calls = Calls()
    context.setdefault('record', Record())
    html = rendering.render_html(
        template, context, calls.link_for, calls.unsubscribe_for, PIXEL)
    return html, calls, AnchorParser(html)


def pixels(parser):
    return [i for i in parser.images if i.get('src') == PIXEL]


def test_render_plain_links():
    html, calls, parsed = render(
        '<html><body><p>Hi ${record.name}</p>'
        '<a href="https://shop.example/a?x=1&amp;y=2">A</a>'
        '<a href="${url}">B</a>'
        '</body></html>', url=TRICKY)
    assert 'Hi Ann' in html
    assert calls.links == ['https://shop.example/a?x=1&y=2', TRICKY]
    assert parsed.hrefs == [
        'https://t.example/c/1', 'https://t.example/c/2']
    assert calls.unsubscribes == []


@pytest.mark.parametrize('url', [
        TRICKY,
        'https://shop.example/a%2Fb?next=%2F%3Fx%3D1&y=%E2%82%AC',
        'https://shop.example/a b?q=a+b',
        'https://shop.example/?a="quoted"&b=<tag>',
        'HTTPS://Shop.Example/Case',
        ])
def test_render_destination_kept_byte_for_byte(url):
    html, calls, parsed = render(
        '<html><body><a href="${url}">x</a></body></html>', url=url)
    assert calls.links == [url]


def test_render_literal_destination_with_entities():
    html, calls, parsed = render(
        '<html><body>'
        '<a href="https://exämple.org/ä?q=ü&amp;x=1#frag">x</a>'
        '</body></html>')
    assert calls.links == [TRICKY]


def test_render_xhtml_namespace():
    template = (
        '<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"'
        ' xmlns:py="http://genshi.edgewall.org/">'
        '<head><title>T</title></head>'
        '<body><p py:content="record.name">name</p>'
        '<a href="https://shop.example/">shop</a>'
        '<a href="unsubscribe">stop</a>'
        '</body></html>')
    html, calls, parsed = render(template)
    assert calls.links == ['https://shop.example/']
    assert calls.unsubscribes == [None]
    assert parsed.hrefs == ['https://t.example/c/1', 'https://t.example/u/1']
    assert '<p>Ann</p>' in html
    assert len(pixels(parsed)) == 1
    assert parsed.events[-3:] == [('start', 'img'), ('end', 'body'),
        ('end', 'html')]
    assert 'py:' not in html and 'genshi' not in html


def test_render_xhtml_namespace_output():
    calls = Calls()
    html = rendering.render_html(
        '<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"'
        ' xmlns:py="http://genshi.edgewall.org/" lang="en">'
        '<head><meta charset="utf-8"/></head>'
        '<body><a href="https://shop.example/">shop</a><br/></body></html>',
        {}, calls.link_for, calls.unsubscribe_for, PIXEL)
    assert html == (
        '<!DOCTYPE html>\n'
        '<html lang="en"><head><meta charset="utf-8"></head>'
        '<body><a href="https://t.example/c/1">shop</a><br>'
        '<img src="%s" width="1" height="1" alt="" style="border:0">'
        '</body></html>' % PIXEL)


def test_render_untracked_links():
    html, calls, parsed = render(
        '<html><body>'
        '<a href="mailto:ann@example.com?subject=Hi">m</a>'
        '<a href="MAILTO:ann@example.com">M</a>'
        '<a href="tel:+3212345678">t</a>'
        '<a href="#top">anchor</a>'
        '<a href="">empty</a>'
        '<a name="top">no href</a>'
        '</body></html>')
    assert calls.links == []
    assert calls.unsubscribes == []
    assert parsed.hrefs == [
        'mailto:ann@example.com?subject=Hi', 'MAILTO:ann@example.com',
        'tel:+3212345678', '#top', '', None]


def test_render_unsubscribe_links():
    html, calls, parsed = render(
        '<html><body>'
        '<a href="unsubscribe">stop</a>'
        '<a href="unsubscribe|https://shop.example/bye?a=1&amp;b=ü">bye</a>'
        '<a href="unsubscribe|">empty next</a>'
        '<a href="https://shop.example/unsubscribes">not one</a>'
        '</body></html>')
    assert calls.unsubscribes == [
        None, 'https://shop.example/bye?a=1&b=ü', '']
    assert calls.links == ['https://shop.example/unsubscribes']
    assert parsed.hrefs == [
        'https://t.example/u/1', 'https://t.example/u/2',
        'https://t.example/u/3', 'https://t.example/c/1']


def test_render_loop_links():
    html, calls, parsed = render(
        '<html xmlns:py="http://genshi.edgewall.org/"><body><ul>'
        '<li py:for="i, url in enumerate(urls)">'
        '<a href="${url}">Product ${i}</a></li>'
        '</ul></body></html>',
        urls=['https://shop.example/p/%d?ref=mail' % i for i in range(3)])
    assert calls.links == [
        'https://shop.example/p/%d?ref=mail' % i for i in range(3)]
    assert parsed.hrefs == [
        'https://t.example/c/%d' % i for i in range(1, 4)]
    assert 'Product 2' in html


def test_render_pixel_last_in_body():
    html, calls, parsed = render(
        '<html><body><p>text</p><div><p>inner</p></div></body></html>')
    assert pixels(parsed) == [{
            'src': PIXEL, 'width': '1', 'height': '1', 'alt': '',
            'style': 'border:0'}]
    assert parsed.events[-4:] == [
        ('end', 'div'), ('start', 'img'), ('end', 'body'), ('end', 'html')]


def test_render_pixel_without_body():
    html, calls, parsed = render('<div><p>text</p></div>')
    assert len(pixels(parsed)) == 1
    assert parsed.events[-3:] == [('end', 'p'), ('end', 'div'),
        ('start', 'img')]


def test_render_pixel_url_escaped():
    calls = Calls()
    html = rendering.render_html(
        '<html><body/></html>', {}, calls.link_for, calls.unsubscribe_for,
        'https://shop.example/o.gif?a=1&b="2"')
    assert 'src="https://shop.example/o.gif?a=1&amp;b=&#34;2&#34;"' in html
    assert pixels(AnchorParser(html)) == []
    assert AnchorParser(html).images[0]['src'] == (
        'https://shop.example/o.gif?a=1&b="2"')


def test_render_escapes_values():
    html, calls, parsed = render(
        '<html><body><p>${value}</p></body></html>',
        value='<script>alert(1)</script>')
    assert '<script>' not in html
    assert '&lt;script&gt;' in html


def test_render_html_method():
    html, calls, parsed = render(
        '<html><body><p>a<br/>b</p></body></html>')
    assert '<br>' in html
    assert '<br/>' not in html


def test_check_html_valid():
    rendering.check_html(
        '<html xmlns:py="http://genshi.edgewall.org/"><body>'
        '<p py:if="record.name">${record.name}</p></body></html>')
    rendering.check_html(
        '<html><body>${record.name}</body></html>', {'record': Record()})


@pytest.mark.parametrize('template', [
        '<html><body><p>unclosed</body></html>',
        '<html><body>${record.name</body></html>',
        '<html xmlns:py="http://genshi.edgewall.org/"><body>'
        '<p py:for="x in">x</p></body></html>',
        '<html xmlns:py="http://genshi.edgewall.org/"><body>'
        '<p py:unknown="1">x</p></body></html>',
        '<html><body>${1 +}</body></html>',
        '',
        ])
def test_check_html_syntax_error(template):
    with pytest.raises(TemplateError) as info:
        rendering.check_html(template)
    assert str(info.value)


@pytest.mark.parametrize('expression', [
        'record.__class__.__subclasses__()',
        "__import__('os')",
        "record.__init__.__globals__",
        "().__class__.__base__",
        ])
def test_sandbox_violation_at_compile(expression):
    with pytest.raises(TemplateError) as info:
        rendering.check_html('<html><body>${%s}</body></html>' % expression)
    assert 'invalid' in str(info.value)
    with pytest.raises(TemplateError):
        rendering.check_title('${%s}' % expression)


@pytest.mark.parametrize('template', [
        '<div xmlns:xi="http://www.w3.org/2001/XInclude">'
        '<xi:include href="/etc/hostname" parse="text"/></div>',
        '<div xmlns:xi="http://www.w3.org/2001/XInclude">'
        '<xi:include href="/etc/hostname" parse="text"><xi:fallback/>'
        '</xi:include></div>',
        '<div xmlns:xi="http://www.w3.org/2001/XInclude">'
        '<xi:include href="${path}" parse="text"/></div>',
        ])
def test_html_includes_refused(template):
    with pytest.raises(TemplateError):
        rendering.check_html(template)
    with pytest.raises(TemplateError):
        render(template, path='/etc/hostname')


def test_title_includes_refused():
    for text in ['{% include /etc/hostname %}', '{% include ${path} %}']:
        with pytest.raises(TemplateError):
            rendering.check_title(text)
        with pytest.raises(TemplateError):
            rendering.render_title(text, {'path': '/etc/hostname'})


def test_python_blocks_refused():
    with pytest.raises(TemplateError):
        rendering.check_html(
            '<html><body><?python import os ?>x</body></html>')
    with pytest.raises(TemplateError):
        rendering.check_html(
            '<html><body><?python x = 1 ?>${x}</body></html>')
    with pytest.raises(TemplateError):
        rendering.check_title('{% python x = 1 %}${x}')


@pytest.mark.parametrize('expression', [
        "open('/etc/passwd').read()",
        "record['__class__']",
        "record['__init__']['__globals__']",
        "(x for x in [1]).gi_frame.f_builtins['__import__']('os')",
        "[(x for x in [1])][0].gi_code",
        "'{0.__init__.__globals__}'.format(record)",
        "'{r}'.format_map({'r': record})",
        "str.format('{0.__class__}', record)",
        "record.__class__",
        "getattr(record, 'secret')()",
        "type(record)",
        ])
def test_sandbox_violation_at_render(expression):
    template = '<html><body>${%s}</body></html>' % expression
    with pytest.raises(TemplateError):
        render(template)
    with pytest.raises(TemplateError):
        rendering.check_html(template, {'record': Record()})
    with pytest.raises(TemplateError):
        rendering.render_title('${%s}' % expression, {'record': Record()})


def test_render_errors_are_template_errors():
    for expression in ['record.missing', 'unknown', '1 / 0', "int('x')"]:
        with pytest.raises(TemplateError) as info:
            render('<html><body>${%s}</body></html>' % expression)
        assert str(info.value)
        with pytest.raises(TemplateError):
            rendering.render_title('${%s}' % expression, {'record': Record()})


def test_check_html_renders_with_context_only():
    template = '<html><body>${record.missing}</body></html>'
    rendering.check_html(template)
    with pytest.raises(TemplateError):
        rendering.check_html(template, {'record': Record()})


def test_callback_errors_are_not_hidden():
    def link_for(url):
        raise KeyError(url)
    with pytest.raises(KeyError):
        rendering.render_html(
            '<html><body><a href="https://x.example/">x</a></body></html>',
            {}, link_for, None, PIXEL)


def test_render_title():
    title = rendering.render_title(
        'Hello ${record.name}{% if count %}, ${count} news{% end %}!',
        {'record': Record(), 'count': 3})
    assert title == 'Hello Ann, 3 news!'


def test_render_title_single_line():
    title = rendering.render_title(
        'Hello\r\n${name}\n{% for i in range(2) %}\n${i}\n{% end %}',
        {'name': 'Ann\nBob'})
    assert title == 'Hello Ann Bob 0 1'


def test_render_title_not_escaped():
    assert rendering.render_title('${v}', {'v': 'Tom & Jerry <3'}) == (
        'Tom & Jerry <3')


def test_check_title_syntax_error():
    for text in [
            'Hello ${record.name', '{% unknown %}x{% end %}',
            '{% for x %}${x}{% end %}', '{% if 1 + %}x{% end %}']:
        with pytest.raises(TemplateError) as info:
            rendering.check_title(text)
        assert str(info.value)


def test_check_title_non_text():
    with pytest.raises(TemplateError):
        rendering.check_title(None)


HTML_TO_TEXT = (
    '<html><head><title>Hidden</title><style>p {}</style></head>'
    '<body><h1>Title</h1><p>Hello <b>Ann</b>,\n  welcome</p>'
    '<ul><li>one</li><li>two &amp; more</li></ul>'
    '<p><a href="https://t.example/c/1">Shop</a> <a href="#x">top</a></p>'
    '<script>var x;</script>'
    '<img src="%s"/></body></html>' % PIXEL)


def test_html_to_text():
    text = mime.html_to_text(HTML_TO_TEXT)
    for word in ['Title', 'Hello', 'Ann', 'welcome', 'one', 'two & more',
            'https://t.example/c/1']:
        assert word in text
    assert 'var x' not in text
    assert '<b>' not in text and '<p>' not in text


def test_html_to_text_fallback(monkeypatch):
    # trytond's converter answers None without html2text
    monkeypatch.setattr(mime, '_report_html_to_text', lambda html: None)
    assert mime.html_to_text(HTML_TO_TEXT) == (
        'Title\n\n'
        'Hello Ann, welcome\n\n'
        '- one\n'
        '- two & more\n\n'
        'Shop <https://t.example/c/1> top\n')


def test_html_to_text_uses_trytond(monkeypatch):
    monkeypatch.setattr(
        mime, '_report_html_to_text', lambda html: 'converted')
    assert mime.html_to_text(HTML_TO_TEXT) == 'converted'


def build(**values):
    kwargs = dict(
        from_addr='Shop <shop@example.com>',
        to_addr='Ann Smith <ann@example.org>',
        subject='Hello Ann',
        html='<html><body><p>Hé <a href="https://t.example/c/1">'
        'shop</a></p></body></html>',
        unsubscribe_url='https://shop.example/m/dGVzdA/unsubscribe?r=01')
    kwargs.update(values)
    return mime.build_message(**kwargs)


def reparse(msg):
    return email.message_from_bytes(
        msg.as_bytes(), policy=email.policy.default)


def test_build_message_headers():
    msg = reparse(build())
    assert msg['From'] == 'Shop <shop@example.com>'
    assert msg['Sender'] is None
    assert msg['To'] == 'Ann Smith <ann@example.org>'
    assert msg['Subject'] == 'Hello Ann'
    assert msg['List-Unsubscribe'] == (
        '<https://shop.example/m/dGVzdA/unsubscribe?r=01>')
    assert msg['List-Unsubscribe-Post'] == 'List-Unsubscribe=One-Click'
    assert msg['MIME-Version'] == '1.0'
    assert msg.get_content_type() == 'multipart/alternative'


def test_build_message_parts():
    msg = reparse(build())
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        'text/plain', 'text/html']
    assert all(p.get_content_charset() == 'utf-8' for p in parts)
    assert all(p['MIME-Version'] is None for p in parts)
    text = msg.get_body(('plain',)).get_content()
    html = msg.get_body(('html',)).get_content()
    assert 'Hé' in text and '<p>' not in text
    assert 'https://t.example/c/1' in text
    assert html.rstrip('\n') == (
        '<html><body><p>Hé <a href="https://t.example/c/1">'
        'shop</a></p></body></html>')


def test_build_message_mailto():
    msg = build(unsubscribe_mailto='unsubscribe@shop.example')
    assert msg['List-Unsubscribe'] == (
        '<https://shop.example/m/dGVzdA/unsubscribe?r=01>, '
        '<mailto:unsubscribe@shop.example>')
    msg = build(unsubscribe_mailto='mailto:u@shop.example?subject=stop')
    assert msg['List-Unsubscribe'].endswith(
        ', <mailto:u@shop.example?subject=stop>')


def test_build_message_sender_same_domain():
    msg = build(
        from_addr='Promotions <promo@example.com>',
        sender='bounce@example.com')
    assert msg['From'] == 'Promotions <promo@example.com>'
    assert msg['Sender'] == 'bounce@example.com'


def test_build_message_sender_identical():
    msg = build(sender='shop@example.com')
    assert msg['From'] == 'Shop <shop@example.com>'
    assert msg['Sender'] is None


def test_build_message_subject_one_line():
    msg = reparse(build(subject='Hé\r\nBcc: evil@example.com'))
    assert msg['Subject'] == 'Hé Bcc: evil@example.com'
    assert msg['Bcc'] is None


def test_build_message_extra_headers():
    msg = build(headers={'X-Campaign': 'spring'})
    assert msg['X-Campaign'] == 'spring'


@pytest.mark.parametrize('to_addr', [
        None, '', '   ', 'None', 'Ann <>', 42, ['ann@example.org']])
def test_build_message_never_without_recipient(to_addr):
    with pytest.raises(ValueError):
        build(to_addr=to_addr)


def test_build_message_requires_unsubscribe_and_from():
    with pytest.raises(ValueError):
        build(unsubscribe_url=None)
    with pytest.raises(ValueError):
        build(from_addr='')


def test_full_pipeline():
    calls = Calls()
    template = (
        '<html xmlns="http://www.w3.org/1999/xhtml"'
        ' xmlns:py="http://genshi.edgewall.org/"><body>'
        '<p>Dear ${record.name}</p>'
        '<a href="%s">offer</a> <a href="unsubscribe">stop</a>'
        '</body></html>' % TRICKY.replace('&', '&amp;'))
    context = {'record': Record()}
    rendering.check_title('News for ${record.name}')
    rendering.check_html(template, context)
    html = rendering.render_html(
        template, context, calls.link_for, calls.unsubscribe_for, PIXEL)
    msg = reparse(build(
            subject=rendering.render_title('News for ${record.name}', context),
            html=html))
    assert msg['Subject'] == 'News for Ann'
    assert calls.links == [TRICKY]
    body = msg.get_body(('html',)).get_content()
    assert re.search(r'<img src="%s"[^>]*></body>' % re.escape(PIXEL), body)


SERIALIZED = [
    # Taken by the serializer of the module
    ('<html xmlns="http://www.w3.org/1999/xhtml"'
        ' xmlns:py="http://genshi.edgewall.org/"><head>'
        '<style>p > a {}</style>'
        '<script>if (a &lt; b &amp;&amp; c) {}</script></head>'
        '<body><p py:if="True">x &amp; y &lt; ${text}</p><br/>'
        '<img src="a&quot;b"/>'
        '<input type="checkbox" checked="checked" disabled=""/><p></p>'
        '<!-- comment --><div><span>${markup}</span></div>'
        '<option selected="${None}">o</option></body></html>', False),
    ('<!DOCTYPE html>\n<div xmlns:py="http://genshi.edgewall.org/"><ul>'
        '<li py:for="i in range(3)">${i}</li></ul>\n'
        '  <a href="https://x.example/">l</a></div>', False),
    # Left to Genshi
    ('<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="fr">'
        '<body><p>\u00e9</p></body></html>', True),
    ('<p><svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg></p>',
        True),
    ('<p xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<a xlink:href="z">q</a></p>', True),
    ('<p><![CDATA[ x < y ]]></p>', True),
    ]


@pytest.mark.parametrize('template, fallback', SERIALIZED)
def test_serialize_html_as_genshi(template, fallback):
    "The HTML serializer writes what Genshi's writes, or leaves it to it"
    from genshi.core import Markup, Stream
    events = list(rendering._html_template(template).generate(
            text='<v>', markup=Markup('<em>m</em>')))
    html = rendering._serialize_html(events)
    if fallback:
        assert html is None
    else:
        assert html == Stream(events).render(
            'html', encoding=None, strip_whitespace=False)


@pytest.mark.parametrize('name, address, expected', [
        ("Sébastien Leroy", 'seb@example.com',
            "Sébastien Leroy <seb@example.com>"),
        ("Leroy, Sébastien", 'seb@example.com',
            '"Leroy, Sébastien" <seb@example.com>'),
        (None, ' seb@example.com ', 'seb@example.com'),
        ])
def test_display_address_is_not_encoded(name, address, expected):
    "The archived recipient is the name as people read it, not MIME"
    assert mime.display_address(name, address) == expected


@pytest.mark.parametrize('from_addr, domain', [
        ("Blue Heron <hello@blueheron.example.com>",
            '@blueheron.example.com>'),
        ('news@shop.example', '@shop.example>'),
        ])
def test_message_id_in_sender_domain(from_addr, domain):
    "The Message-ID is in the domain of the sender, not localhost"
    message_id = mime.message_id(from_addr)
    assert message_id.startswith('<') and message_id.endswith(domain)
    assert mime.message_id(from_addr) != message_id


def test_message_id_without_domain():
    "A sender without domain still gives a Message-ID"
    assert re.fullmatch(r'<[^<>@\s]+@[^<>@\s]+>', mime.message_id(''))


def test_build_message_date_has_offset():
    "The Date header carries a real UTC offset, not -0000"
    msg = mime.build_message(
        from_addr='shop@example.com', to_addr='ann@example.com',
        subject="Hello", html='<html><body><p>Hi</p></body></html>',
        unsubscribe_url='https://shop.example/u')
    date = msg['Date']
    assert not date.endswith('-0000')
    parsed = email.utils.parsedate_to_datetime(date)
    assert parsed.utcoffset() is not None
    assert abs(parsed.timestamp() - time.time()) < 60
    raw = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert raw['Date'] == date


def test_message_id_first_sender_with_domain():
    "The Message-ID takes the domain of the first sender that has one"
    assert mime.message_id('root', 'Shop <a@shop.example>').endswith(
        '@shop.example>')
