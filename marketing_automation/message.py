# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Render the templates of marketing e-mails and build the messages.

The expressions of the templates are evaluated in the sandbox of
``sandbox.py`` (an allow-list lookup, guarded operators and a budget of
time, iterations and output per message); the templates themselves may not
hold Python code blocks nor includes, and their links must be web links.
"""
import binascii
import datetime as dt
import functools
import re
import uuid
from contextlib import contextmanager
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses, make_msgid
from html import unescape

from genshi.core import (
    COMMENT, DOCTYPE, END, END_NS, START, START_NS, TEXT, Attrs, Markup, QName,
    Stream, escape)
from genshi.template import MarkupTemplate, NewTextTemplate, Template

from trytond import backend
from trytond.report import html_to_text as _report_html_to_text
from trytond.tools.email_ import format_address, set_from_header
from trytond.url import host

from . import links
from .sandbox import (
    SandboxContext, SandboxLookup, TemplateError, new_budget, reset_budget,
    use_budget)

__all__ = [
    'TemplateError', 'check_title', 'check_html', 'render_title',
    'render_html', 'html_to_text', 'build_message']

XHTML_NAMESPACE = 'http://www.w3.org/1999/xhtml'
_UNTRACKED_PREFIXES = ('mailto:', 'tel:', '#')
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


class _NoIncludeLoader:
    "Loader refusing every include"
    # Without a loader, Genshi reads any file of the server on include.
    # Disabling auto_reload makes Genshi load static includes when the
    # template is compiled, so they fail at check time.
    auto_reload = False

    def load(self, *args, **kwargs):
        raise TemplateError("includes are not allowed")


class _TextTemplate(NewTextTemplate):

    def _parse(self, source, encoding):
        # NewTextTemplate does not pass allow_exec on to Template
        self.allow_exec = False
        return super()._parse(source, encoding)


def _has_include(stream):
    for kind, data, pos in stream:
        if kind is Template.INCLUDE:
            return True
        elif kind is Template.SUB and _has_include(data[1]):
            return True
    return False


def _reason(exception):
    return str(exception) or exception.__class__.__name__


def _links(stream):
    "Yield the literal href of the links of a template stream"
    for kind, data, pos in stream:
        if kind is START:
            tag, attrs = data
            href = attrs.get('href')
            if _is_html(tag, 'a') and isinstance(href, str):
                yield href
        elif kind is Template.SUB:
            yield from _links(data[1])


def _compile(factory, text):
    if not isinstance(text, str):
        raise TemplateError("the template must be a text")
    try:
        template = factory(
            text, loader=_NoIncludeLoader(), lookup=SandboxLookup,
            allow_exec=False)
        # Genshi attaches the directives lazily, on first use
        stream = template.stream
    except TemplateError:
        raise
    except Exception as exception:
        raise TemplateError(_reason(exception)) from exception
    if _has_include(stream):
        raise TemplateError("includes are not allowed")
    for href in _links(stream):
        check_href(href)
    return template


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _title_template(text):
    return _compile(_TextTemplate, text)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _html_template(text):
    return _compile(MarkupTemplate, text)


def _guarded(stream):
    "Turn the errors raised while the template runs into TemplateError"
    try:
        yield from stream
    except (TemplateError, backend.DatabaseOperationalError):
        # The transaction must see database errors to retry
        raise
    except RecursionError as exception:
        raise TemplateError("the template calls itself too deep") \
            from exception
    except Exception as exception:
        raise TemplateError(_reason(exception)) from exception


# The output is charged to the budget for a few events at once: reading
# the clock at each one would cost a tenth of the rendering
_CHARGE_EVERY = 32


def _generate(template, context, budget):
    try:
        stream = template.generate(SandboxContext(budget, **context))
    except TemplateError:
        raise
    except Exception as exception:
        raise TemplateError(_reason(exception)) from exception
    return _guarded(stream)


@contextmanager
def _rendering(budget):
    "Give the guards of the sandbox the budget of the rendering"
    token = use_budget(budget)
    try:
        yield
    finally:
        reset_budget(token)


def check_title(text):
    "Raise TemplateError if text is not a valid title template"
    _title_template(text)


def render_title(text, context, budget=None):
    "Render the title template as a single line"
    template = _title_template(text)
    budget = budget or new_budget()
    with _rendering(budget):
        # As Genshi's text serializer, without its pipeline
        rendered = []
        for kind, data, _ in _generate(template, context, budget):
            if kind is TEXT:
                budget.output(len(data))
                rendered.append(str(data))
        rendered = ''.join(rendered)
    # A header must fit on one line
    return ' '.join(rendered.split())


@functools.lru_cache(maxsize=_CACHE_SIZE * 8)
def link_kind(href):
    """Return how the link of an e-mail is sent

    'unsubscribe', 'tracked' (a web link), 'untouched' (mailto:, tel:,
    anchors, empty) or None for what an e-mail must not link to."""
    if href == 'unsubscribe':
        return 'unsubscribe'
    elif href.startswith('unsubscribe|'):
        next_url = href[len('unsubscribe|'):]
        return ('unsubscribe' if not next_url or links.is_trackable(next_url)
            else None)
    elif not href or href.lower().startswith(_UNTRACKED_PREFIXES):
        return 'untouched'
    elif links.is_trackable(href):
        return 'tracked'
    return None


def check_href(href):
    "Raise TemplateError if an e-mail may not link to href"
    if link_kind(href) is None:
        raise TemplateError(
            f"the link {href!r} is not a web link (http or https), "
            "a mailto:, tel: or # link, or unsubscribe")


def _is_html(tag, name):
    return (tag.localname == name
        and tag.namespace in {None, '', XHTML_NAMESPACE})


class _LinkFilter:
    "Rewrite the links and add the tracking pixel of a rendered stream"

    def __init__(self, link_for, unsubscribe_for, pixel_url, budget):
        self.link_for = link_for
        self.unsubscribe_for = unsubscribe_for
        self.pixel_url = pixel_url
        self.budget = budget

    def href(self, href):
        kind = link_kind(href)
        if kind == 'unsubscribe':
            if href == 'unsubscribe':
                return self.unsubscribe_for(None)
            return self.unsubscribe_for(href[len('unsubscribe|'):])
        elif kind == 'untouched':
            return href
        elif kind == 'tracked':
            return self.link_for(href)
        check_href(href)

    def pixel(self, namespace, pos):
        tag = QName(f'{namespace}}}img' if namespace else 'img')
        attrs = Attrs([
                (QName('src'), self.pixel_url),
                (QName('width'), '1'),
                (QName('height'), '1'),
                (QName('alt'), ''),
                (QName('style'), 'border:0'),
                ])
        yield START, (tag, attrs), pos
        yield END, tag, pos

    def __call__(self, stream):
        "Yield the events of stream, charging their size to the budget"
        depth = 0
        added = False
        pos = (None, -1, -1)
        size = count = 0
        for kind, data, pos in stream:
            count += 1
            if kind is TEXT:
                size += len(data)
            elif kind is START:
                tag, attrs = data
                for _, value in attrs:
                    size += len(value)
            if count == _CHARGE_EVERY:
                self.budget.output(size + count)
                size = count = 0
            if kind is START:
                href = attrs.get('href') if _is_html(tag, 'a') else None
                if href is not None:
                    href = self.href(href)
                    data = tag, Attrs([
                            (n, href if n == 'href' else v)
                            for n, v in attrs])
                elif _is_html(tag, 'body'):
                    depth += 1
            elif kind == END and _is_html(data, 'body'):
                depth -= 1
                if not depth and not added:
                    yield from self.pixel(data.namespace, pos)
                    added = True
            yield kind, data, pos
        if not added:
            yield from self.pixel(None, pos)
        self.budget.output(size + count)


def check_html(text, context=None):
    "Raise TemplateError if text is not a valid HTML template"
    template = _html_template(text)
    if context is not None:
        budget = new_budget()
        with _rendering(budget):
            stream = _generate(template, context, budget)
            stream = _LinkFilter(
                lambda url: url, lambda next_url: 'unsubscribe', 'pixel',
                budget)(stream)
            Stream(stream).render('html', encoding=None)


def render_html(
        text, context, link_for, unsubscribe_for, pixel_url, budget=None):
    "Render the HTML template with tracked links and the pixel"
    template = _html_template(text)
    budget = budget or new_budget()
    with _rendering(budget):
        stream = _generate(template, context, budget)
        events = list(_LinkFilter(
                link_for, unsubscribe_for, pixel_url, budget)(stream))
    html = _serialize_html(events)
    if html is None:
        html = Stream(events).render(
            'html', encoding=None, strip_whitespace=False)
    return html


_VOID_ELEMENTS = {
    'area', 'base', 'basefont', 'br', 'col', 'frame', 'hr', 'img', 'input',
    'isindex', 'link', 'meta', 'param'}
_BOOLEAN_ATTRIBUTES = {
    'autofocus', 'checked', 'compact', 'declare', 'defer', 'disabled',
    'formnovalidate', 'ismap', 'multiple', 'nohref', 'noresize', 'noshade',
    'nowrap', 'readonly', 'required', 'selected'}
_RAW_ELEMENTS = {'script', 'style'}


def _html_name(tag):
    if tag.namespace in {None, '', XHTML_NAMESPACE}:
        return tag.localname


def _serialize_html(events):
    """Return the HTML of the events as Genshi's HTML serializer would

    or None for what it does not handle: other namespaces, processing
    instructions and CDATA are left to Genshi."""
    # Genshi's pipeline of generic filters costs more than the rendering
    output = []
    raw = doctype = False
    index, length = 0, len(events)
    while index < length:
        kind, data, _ = events[index]
        index += 1
        if kind is TEXT:
            if raw or isinstance(data, Markup):
                output.append(data)
            else:
                output.append(escape(data, quotes=False))
        elif kind is START:
            tag, attrs = data
            name = _html_name(tag)
            if name is None:
                return None
            output.extend(('<', name))
            for attr, value in attrs:
                if attr.namespace:
                    return None
                elif attr in _BOOLEAN_ATTRIBUTES:
                    if value:
                        output.extend((' ', attr))
                else:
                    output.extend((' ', attr, '="', escape(value), '"'))
            output.append('>')
            if index < length and events[index][0] is END:
                index += 1
                if name not in _VOID_ELEMENTS:
                    output.append(f'</{name}>')
            else:
                raw = name in _RAW_ELEMENTS
        elif kind is END:
            output.append(f'</{_html_name(data)}>')
            raw = False
        elif kind is START_NS:
            if data[1] != XHTML_NAMESPACE:
                return None
        elif kind is END_NS:
            pass
        elif kind is DOCTYPE:
            if not doctype:
                name, public, system = data
                output.append(f'<!DOCTYPE {name}')
                if public:
                    output.append(f' PUBLIC "{public}"')
                elif system:
                    output.append(' SYSTEM')
                if system:
                    output.append(f' "{system}"')
                output.append('>\n')
                doctype = True
        elif kind is COMMENT:
            output.append(f'<!--{data}-->')
        else:
            return None
    return ''.join(output)


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
