# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Compile and render the templates of marketing e-mails

The expressions of the templates are evaluated in the sandbox of
``sandbox.py`` (an allow-list lookup, guarded operators and a budget of
time, iterations and output per message); the templates themselves may not
hold Python code blocks nor includes, and their links must be web links.
The links are rewritten and the pixel added on the rendered stream.
"""
import functools
from contextlib import contextmanager

from genshi.core import (
    COMMENT, DOCTYPE, END, END_NS, START, START_NS, TEXT, Attrs, Markup, QName,
    Stream, escape)
from genshi.template import MarkupTemplate, NewTextTemplate, Template

from trytond import backend

from . import links
from .exceptions import error_text
from .sandbox import (
    SandboxContext, SandboxLookup, TemplateError, new_budget, reset_budget,
    use_budget)

__all__ = [
    'TemplateError', 'check_title', 'check_html', 'render_title',
    'render_html', 'link_kind', 'check_href']

XHTML_NAMESPACE = 'http://www.w3.org/1999/xhtml'
_UNTRACKED_PREFIXES = ('mailto:', 'tel:', '#')
_CACHE_SIZE = 128


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
        raise TemplateError(error_text(exception)) from exception
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
        raise TemplateError(error_text(exception)) from exception


# The output is charged to the budget for a few events at once: reading
# the clock at each one would cost a tenth of the rendering
_CHARGE_EVERY = 32


def _generate(template, context, budget):
    try:
        stream = template.generate(SandboxContext(budget, **context))
    except TemplateError:
        raise
    except Exception as exception:
        raise TemplateError(error_text(exception)) from exception
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
        if not self.pixel_url:
            # Open tracking is off
            return
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
