#!/usr/bin/env python3
# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Do the hand-written fast paths of the message builder pay?

Three pieces of rendering.py and mime.py replace a library for speed:

* the HTML serializer (``rendering._serialize_html``) instead of Genshi's
  ``Stream.render('html')`` and its pipeline of filters,
* the regular expression tokenizer of ``mime.html_to_text`` instead of
  ``html.parser`` (trytond's own converter needs html2text, which is not
  installed; the html.parser version below writes the same text),
* the header policy ``mime._Policy`` (plain headers stored as given, one
  header class per name) instead of the standard ``email.policy.SMTP``.

Without database, this renders and builds the e-mail of the benchmark
(workload.TEMPLATE) and times each piece alone with ours and with the
library, on the same input and checking both give the same result, then a
whole message (render, build, serialize) with every fast path and with
every library. A fast path pays when it is at least 1.2 times as fast as
the library and saves at least 3% of the time of a message (the time of a
message with the library's piece instead of ours).

See doc/benchmark.rst.
"""
import argparse
import email
import email.policy
import json
import re
import sys
import time
from contextlib import ExitStack
from html.parser import HTMLParser
from unittest import mock

from mail import flatten
from workload import BASE_URL, SENDER, build_message

from trytond.modules.marketing_automation.mime import (
    _BLOCKS, _HIDDEN, _RAW_TEXT, _SPACES)

DATABASE = 'bench_10000'
SECRET = 'bench-secret-' * 4
MIN_SPEEDUP = 1.2
MIN_SHARE = 0.03


def configure():
    import trytond.config as config
    if not config.has_section('marketing'):
        config.add_section('marketing')
    config.set('marketing', 'automation_base', BASE_URL)


# The library equivalent of the tokenizer: the same rules (the tag sets of
# mime.py itself) on html.parser


class _TextParser(HTMLParser):
    "Collect the pieces of the plain text of HTML"

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.links = []
        self.hidden = 0
        self.raw = None

    def handle_starttag(self, tag, attrs):
        if self.raw:
            return
        elif tag in _RAW_TEXT:
            self.raw = tag
        elif tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.parts.append('\n- ' if tag == 'li' else '\n')
        elif tag == 'a':
            self.links.append(dict(attrs).get('href'))

    def handle_startendtag(self, tag, attrs):
        if not self.raw and tag in _BLOCKS:
            self.parts.append('\n')

    def handle_endtag(self, tag):
        if self.raw:
            if tag == self.raw:
                self.raw = None
        elif tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in _BLOCKS and tag != 'li':
            self.parts.append('\n')
        elif tag == 'a' and self.links:
            href = self.links.pop()
            if href and not href.startswith('#'):
                self.parts.append(f' <{href}>')

    def handle_data(self, data):
        if not self.hidden and not self.raw:
            self.parts.append(_SPACES.sub(' ', data))


def library_html_to_text(html):
    "Return the plain text of html as mime.html_to_text, with html.parser"
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (l.strip() for l in ''.join(parser.parts).split('\n'))
    text = re.sub(r'\n{3,}', '\n\n', '\n'.join(lines))
    return text.strip() + '\n'


# The pieces

class Variant:
    "A function of the call number and the patches it runs under"

    def __init__(self, func, *patches):
        self.func = func
        # Factories of context managers: applied once around a loop, so
        # that their cost is not timed
        self.patches = patches

    def __call__(self, i):
        with self.patched():
            return self.func(i)

    def patched(self):
        stack = ExitStack()
        for patch in self.patches:
            stack.enter_context(patch())
        return stack


class Piece:
    "A fast path: its name, ours and the library's on the same input"

    def __init__(self, name, ours, library):
        self.name = name
        self.ours = ours
        self.library = library


def message_parts():
    "Return the events, HTML and text of the benchmark's e-mail"
    from trytond.modules.marketing_automation import mime, rendering
    with mock.patch.object(rendering, '_serialize_html',
            wraps=rendering._serialize_html) as serializer:
        msg = build_message(1, DATABASE, SECRET)
    events = serializer.call_args.args[0]
    html = msg.get_body(('html',)).get_content()
    with without_html2text():
        text = mime.html_to_text(html)
    return events, html, text


def without_html2text():
    "Make mime.html_to_text use its tokenizer, as without html2text"
    from trytond.modules.marketing_automation import mime
    return mock.patch.object(mime, '_report_html_to_text', lambda html: None)


def pieces():
    "Return the three fast paths, checked to give what the library gives"
    from genshi.core import Stream

    from trytond.modules.marketing_automation import mime, rendering
    events, html, text = message_parts()

    def genshi(i):
        return Stream(events).render(
            'html', encoding=None, strip_whitespace=False)

    def build(i):
        "Build and serialize a message of the HTML"
        return flatten(mime.build_message(
                from_addr=SENDER,
                to_addr=mime.recipient(
                    'Bench Party %s' % i, 'bench-%s@example.com' % i),
                subject='News for Bench Party %s' % i, html=html,
                unsubscribe_url='%s/m/YmVuY2g/unsubscribe?r=%032x' % (
                    BASE_URL, i),
                headers={
                    'Message-ID': '<%032x@bench.example.com>' % i,
                    'Date': 'Mon, 02 Mar 2026 10:00:00 +0100',
                    }))

    def given_text():
        # The text part is the tokenizer's piece, not the policy's
        return mock.patch.object(mime, 'html_to_text', lambda html: text)

    def library_policy():
        return mock.patch.object(mime, '_POLICY', email.policy.SMTP)

    result = [
        Piece("HTML serializer (rendering.py)",
            Variant(lambda i: rendering._serialize_html(events)),
            Variant(genshi)),
        Piece("text part tokenizer (mime.py)",
            Variant(lambda i: mime.html_to_text(html), without_html2text),
            Variant(lambda i: library_html_to_text(html))),
        Piece("header policy (mime.py)",
            Variant(build, given_text),
            Variant(build, given_text, library_policy)),
        ]
    check_same(result)
    return result


def same_message(ours, library):
    "Tell if the serialized messages hold the same headers and parts"
    ours, library = (email.message_from_bytes(m, policy=email.policy.default)
        for m in [ours, library])
    # Only the boundary, which is random, may differ
    headers = [[(k, v) for k, v in m.items() if k != 'Content-Type']
        for m in [ours, library]]
    return (headers[0] == headers[1]
        and ours.get_content_type() == library.get_content_type()
        and [p.get_content() for p in ours.iter_parts()]
        == [p.get_content() for p in library.iter_parts()])


def check_same(pieces):
    for piece in pieces:
        ours, library = piece.ours(1), piece.library(1)
        same = (same_message(ours, library) if isinstance(ours, bytes)
            else ours == library)
        if not same:
            sys.exit("%s: ours and the library's differ" % piece.name)


def whole_message(*patches):
    "Return the variant rendering, building and serializing message i"
    return Variant(
        lambda i: flatten(build_message(i, DATABASE, SECRET)), *patches)


def library_patches():
    "Return the factories of the patches replacing every fast path"
    from trytond.modules.marketing_automation import mime, rendering
    return [
        # render_html leaves to Genshi what its serializer does not handle
        lambda: mock.patch.object(
            rendering, '_serialize_html', lambda events: None),
        lambda: mock.patch.object(mime, 'html_to_text', library_html_to_text),
        lambda: mock.patch.object(mime, '_POLICY', email.policy.SMTP),
        ]


# Timing

def rate(variant, iterations, repeat):
    "Return the calls per second of the variant, best of repeat loops"
    best = None
    func = variant.func
    with variant.patched():
        for _ in range(repeat):
            start = time.perf_counter()
            for i in range(iterations):
                func(i)
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
    return iterations / best


def measure(iterations, repeat):
    "Return the figures of the fast paths and of whole messages"
    result = {'iterations': iterations, 'repeat': repeat}
    result['message_rate'] = rate(
        whole_message(without_html2text), iterations, repeat)
    result['message_rate_libraries'] = rate(
        whole_message(*library_patches()), iterations, repeat)
    message_seconds = 1 / result['message_rate']
    result['paths'] = []
    for piece in pieces():
        ours = rate(piece.ours, iterations, repeat)
        library = rate(piece.library, iterations, repeat)
        saved = 1 / library - 1 / ours
        # Of the time a message takes with the library's piece instead
        share = saved / (message_seconds + saved)
        speedup = ours / library
        result['paths'].append({
                'path': piece.name,
                'library_per_s': round(library, 1),
                'ours_per_s': round(ours, 1),
                'speedup': round(speedup, 2),
                'saved_us_per_message': round(saved * 1e6, 1),
                'share_of_message': round(share, 4),
                'pays': speedup >= MIN_SPEEDUP and share >= MIN_SHARE,
                })
    return result


def print_table(result):
    header = ('fast path', 'library/s', 'ours/s', 'speed-up',
        'saved/msg', 'share', '')
    widths = (32, 10, 10, 9, 10, 7, 4)
    print('  '.join('%-*s' % (w, h) if i == 0 else '%*s' % (w, h)
            for i, (w, h) in enumerate(zip(widths, header))).rstrip())
    for path in result['paths']:
        print('  '.join([
                    '%-*s' % (widths[0], path['path']),
                    '%*.0f' % (widths[1], path['library_per_s']),
                    '%*.0f' % (widths[2], path['ours_per_s']),
                    '%*.2fx' % (widths[3] - 1, path['speedup']),
                    '%*.0f us' % (widths[4] - 3,
                        path['saved_us_per_message']),
                    '%*.1f%%' % (widths[5] - 1,
                        path['share_of_message'] * 100),
                    'pays' if path['pays'] else 'DOES NOT PAY',
                    ]))
    print('one message (render, build, serialize): %.0f/s (%.0f us) with '
        'the fast paths, %.0f/s (%.0f us) with the libraries' % (
            result['message_rate'], 1e6 / result['message_rate'],
            result['message_rate_libraries'],
            1e6 / result['message_rate_libraries']))
    print('(%s iterations, best of %s; share: the time saved per message '
        'over the time of a message with the library piece instead)' % (
            result['iterations'], result['repeat']))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time the fast paths of the message builder against "
        "the libraries they replace")
    parser.add_argument(
        '-n', '--iterations', type=int, default=2000,
        help="the calls per loop (default 2,000)")
    parser.add_argument(
        '--repeat', type=int, default=3,
        help="the loops, the best one counts (default 3)")
    parser.add_argument(
        '--json', metavar='FILE', help="write the figures to FILE")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    configure()
    result = measure(args.iterations, args.repeat)
    print_table(result)
    if args.json:
        with open(args.json, 'w') as fp:
            json.dump(result, fp, indent=2)
            fp.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
