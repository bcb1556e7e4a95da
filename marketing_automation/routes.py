# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The public routes that e-mails link to.

- ``/m/<database>/o/<token>.gif``: the open pixel of a record activity,
- ``/m/<database>/c/<token>?u=<url>&s=<signature>``: a tracked link,
- ``/m/<database>/unsubscribe?r=<record token>[&next=<url>]``,
- ``/m/empty.gif``: the transparent GIF of older e-mails.

``<database>`` is the database name in URL-safe base64 without padding
(the unsubscribe route also accepts the padded spelling of the e-mails of
older trytond versions); any other spelling is not found.
The links of test e-mails carry test tokens (``links.new_test_token``):
they lead where they say and record nothing.
The routes only parse the request, call one model method and shape the
response; they run as user 0, so every token is checked first.
"""
import functools
import logging
from email.utils import parseaddr

import trytond.config as config
from trytond import backend
from trytond.i18n import gettext
from trytond.protocols.wrappers import (
    HTTPStatus, Response, abort, allow_null_origin, exceptions, redirect,
    set_max_request_size, with_pool, with_transaction)
from trytond.transaction import Transaction
from trytond.wsgi import app

from . import dialect, links

logger = logging.getLogger(__name__)

# The routes allow the "null" origin: browsers send it with the form of a
# page whose referrer policy is no-referrer, and so may mail clients.
# Nothing more than a small form is ever posted to these routes
MAX_REQUEST_SIZE = 16 * 1024
ONE_CLICK = 'One-Click'

_NO_STORE = {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    # Tokens in the URL must not leak to other sites
    'Referrer-Policy': 'no-referrer',
    }
_PAGE_HEADERS = {
    **_NO_STORE,
    'Content-Security-Policy': (
        "default-src 'none'; style-src 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    'X-Frame-Options': 'DENY',
    'X-Robots-Tag': 'noindex, nofollow',
    }


# Parsing helpers

def single(args, key):
    "Return the value of the parameter given once or None"
    values = args.getlist(key)
    return values[0] if len(values) == 1 else None


def route(path, methods):
    """Register a public route whose every answer carries _NO_STORE

    The rule accepts all methods and the route answers 405 itself, so that
    the errors of the router get the headers too."""
    allowed = set(methods) | {'OPTIONS'}
    if 'GET' in allowed:
        allowed.add('HEAD')

    def decorator(func):
        @functools.wraps(func)
        def wrapper(request, *args, **kwargs):
            try:
                if request.method not in allowed:
                    raise exceptions.MethodNotAllowed(sorted(allowed))
                elif request.method == 'OPTIONS':
                    # As trytond answers it for every other path
                    response = Response(status=HTTPStatus.NO_CONTENT)
                else:
                    response = func(request, *args, **kwargs)
            except exceptions.HTTPException as exception:
                response = exception.get_response(request.environ)
            except backend.DatabaseOperationalError:
                logger.debug(
                    "Exception when processing %s", request, exc_info=True)
                response = exceptions.ServiceUnavailable().get_response(
                    request.environ)
            for name, value in _NO_STORE.items():
                response.headers.setdefault(name, value)
            return response
        app.route(path)(wrapper)
        return wrapper
    return decorator


def with_database(padded=False):
    """Decode the database segment of the URL and give the pool

    A segment that is not the spelling of our links, a database that does
    not exist or that has not the module activated are all not found: the
    answer does not tell which databases exist."""
    def decorator(func):
        @with_pool
        def activated(request, pool, *args, **kwargs):
            try:
                pool.get('marketing.automation.record.activity')
            except KeyError:
                abort(HTTPStatus.NOT_FOUND)
            return func(request, pool, *args, **kwargs)

        @functools.wraps(func)
        def wrapper(request, database, *args, **kwargs):
            database_name = links.database_name(database, padded=padded)
            if database_name is None:
                abort(HTTPStatus.NOT_FOUND)
            return activated(request, database_name, *args, **kwargs)
        return wrapper
    return decorator


def with_hit_transaction(readonly):
    "Run in a transaction as with_transaction, its connection closed at end"
    def decorator(func):
        @with_transaction(readonly=readonly)
        @functools.wraps(func)
        def wrapper(request, pool, *args, **kwargs):
            dialect.close_at_end(Transaction())
            return func(request, pool, *args, **kwargs)
        return wrapper
    return decorator


def _gif():
    return Response(links.EMPTY_GIF, mimetype='image/gif', headers=_NO_STORE)


def _page(pool, title, text, button=None, sender=None, button_all=None):
    Page = pool.get('marketing.automation.unsubscribe', type='report')
    language = (Transaction().language or 'en').replace('_', '-')
    html = Page.render_page(
        language=language, title=title, text=text, button=button,
        button_all=button_all, sender=sender)
    return Response(
        html, content_type='text/html; charset=utf-8',
        headers=_PAGE_HEADERS)


def _sender(pool, record):
    "Return the line that tells who sends the e-mails of the record"
    Activity = pool.get('marketing.automation.activity')
    # The From of the scenario's e-mails, which is always set: the
    # scenario has no company, and the configuration has a default
    activities = Activity.search([
            ('scenario', '=', record.scenario.id),
            ('action', '=', 'send_email'),
            ('email_from', '!=', None),
            ], order=[('id', 'ASC')], limit=1)
    from_ = (activities[0].email_from if activities
        else config.get('marketing', 'email_from')
        or config.get('email', 'from'))
    name, address = parseaddr(from_ or '')
    return gettext(
        'marketing_automation.msg_unsubscribe_sender',
        sender=name or address or from_)


def _language(pool, request, record):
    "Return the language of the page: the party's or the browser's"
    Lang = pool.get('ir.lang')
    languages = Lang.get_translatable_languages()
    party = record.marketing_party()
    if party and party.lang and party.lang.code in languages:
        return party.lang.code
    return (accepted_language(request.accept_languages, languages)
        or Transaction().language)


def accepted_language(accept_languages, codes):
    """Return the code the browser prefers or None

    A value also accepts the codes of its primary language ("fr-CA" accepts
    "fr") and a primary language its regional variants ("fr" accepts
    "fr_CA")."""
    tags = {c.replace('_', '-').lower(): c for c in codes}
    for value, quality in accept_languages:
        value = value.replace('_', '-').lower()
        if quality <= 0 or value == '*':
            continue
        if value in tags:
            return tags[value]
        primary = value.split('-', 1)[0]
        if primary in tags:
            return tags[primary]
        for tag, code in sorted(tags.items()):
            if tag.split('-', 1)[0] == primary:
                return code
    return None


# Routes

@route('/m/empty.gif', methods=['GET'])
@allow_null_origin
@set_max_request_size(MAX_REQUEST_SIZE)
def empty_gif(request):
    "The transparent GIF of the e-mails sent by earlier versions"
    return _gif()


@route('/m/<database>/o/<token>.gif', methods=['GET'])
@allow_null_origin
@set_max_request_size(MAX_REQUEST_SIZE)
@with_database()
def email_opened(request, pool, token):
    "The open pixel: always the GIF, the event only on GET of a known token"
    if request.method == 'GET' and links.is_token(token):
        _email_opened(request, pool, token)
    return _gif()


@with_hit_transaction(readonly=False)
def _email_opened(request, pool, token):
    RecordActivity = pool.get('marketing.automation.record.activity')
    RecordActivity.record_hit(token, ['email_opened'])


@route('/m/<database>/c/<token>', methods=['GET'])
@allow_null_origin
@set_max_request_size(MAX_REQUEST_SIZE)
@with_database()
def email_clicked(request, pool, token):
    "A tracked link: redirect to the signed URL, the event only on GET"
    url = single(request.args, 'u')
    signature = single(request.args, 's')
    destination = links.redirect_location(url)
    if not (links.is_token(token) and signature and destination):
        abort(HTTPStatus.NOT_FOUND)
    if request.method == 'GET':
        found = _email_clicked(request, pool, token, url, signature,
            destination)
    else:
        found = _check_click(request, pool, token, url, signature,
            destination)
    if not found:
        abort(HTTPStatus.NOT_FOUND)
    return redirect(found, code=HTTPStatus.FOUND)


@with_hit_transaction(readonly=False)
def _email_clicked(request, pool, token, url, signature, destination):
    return _click_location(
        pool, token, url, signature, destination, record=True)


@with_hit_transaction(readonly=True)
def _check_click(request, pool, token, url, signature, destination):
    return _click_location(
        pool, token, url, signature, destination, record=False)


def _click_location(pool, token, url, signature, destination, record):
    """Return where the genuine tracked link leads, recording the click if
    record, or None

    The links of test e-mails lead to their destination and record
    nothing."""
    Configuration = pool.get('ir.configuration')
    RecordActivity = pool.get('marketing.automation.record.activity')
    secret = Configuration.get_marketing_automation_secret()
    if not secret or not links.check_signature(secret, token, url, signature):
        return None
    if links.is_test_token(secret, token):
        return destination
    if record:
        record_activity = RecordActivity.record_hit(
            token, ['email_opened', 'email_clicked'], url)
    else:
        record_activity = RecordActivity.from_token(token)
    if record_activity:
        return record_activity.clicked_location(destination)


@route('/m/<database>/unsubscribe', methods=['GET', 'POST'])
@allow_null_origin
@set_max_request_size(MAX_REQUEST_SIZE)
@with_database(padded=True)
def unsubscribe(request, pool):
    """Confirm (GET) and unsubscribe (POST) a record

    The one-click POST of RFC 8058 answers without redirect."""
    token = single(request.args, 'r')
    if not links.is_token(token):
        abort(HTTPStatus.NOT_FOUND)
    # Read the body before the transaction: a too large one is refused
    one_click = (request.method == 'POST'
        and request.form.get('List-Unsubscribe') == ONE_CLICK)
    try:
        if request.method == 'POST':
            # One-click keeps meaning this scenario (RFC 8058)
            everything = (
                not one_click and request.form.get('scope') == 'all')
            next_url = None if one_click else single(request.args, 'next')
            if (next_url is not None
                    and links.redirect_location(next_url) is None):
                next_url = None
            return _unsubscribe(
                request, pool, token, one_click, everything, next_url)
        return _unsubscribe_confirm(request, pool, token)
    except exceptions.NotFound:
        # Only the tokens that name no record may be of a test e-mail
        test_page = _test_unsubscribe(request, pool, token, one_click)
        if test_page is None:
            raise
        return test_page


@with_hit_transaction(readonly=True)
def _test_unsubscribe(request, pool, token, one_click):
    "Return the answer to the unsubscribe link of a test e-mail or None"
    Configuration = pool.get('ir.configuration')
    Lang = pool.get('ir.lang')
    secret = Configuration.get_marketing_automation_secret()
    if not links.is_test_token(secret, token):
        return None
    language = (accepted_language(
            request.accept_languages, Lang.get_translatable_languages())
        or Transaction().language)
    with Transaction().set_context(language=language):
        text = gettext('marketing_automation.msg_test_unsubscribe')
        if one_click:
            return Response(
                text + '\n', content_type='text/plain; charset=utf-8',
                headers=_NO_STORE)
        return _page(
            pool,
            gettext('marketing_automation.msg_test_unsubscribe_title'),
            text)


def _record(pool, token):
    Record = pool.get('marketing.automation.record')
    record = Record.from_token(token)
    if not record:
        abort(HTTPStatus.NOT_FOUND)
    return record


@with_hit_transaction(readonly=True)
def _unsubscribe_confirm(request, pool, token):
    record = _record(pool, token)
    with Transaction().set_context(
            language=_language(pool, request, record)):
        return _page(
            pool,
            gettext('marketing_automation.msg_unsubscribe_title'),
            gettext('marketing_automation.msg_unsubscribe_question'),
            gettext('marketing_automation.msg_unsubscribe_button'),
            sender=_sender(pool, record),
            button_all=gettext(
                'marketing_automation.msg_unsubscribe_all_button'))


@with_hit_transaction(readonly=False)
def _unsubscribe(request, pool, token, one_click, everything, next_url):
    Record = pool.get('marketing.automation.record')
    record = _record(pool, token)
    if everything:
        Record.opt_out([record], source='page')
    else:
        Record.unsubscribe(
            [record], source='one_click' if one_click else 'page')
    if not one_click and next_url and (
            links.is_same_site(next_url, links.automation_base())
            or record.is_known_url(next_url)):
        return redirect(
            links.redirect_location(next_url), code=HTTPStatus.SEE_OTHER)
    with Transaction().set_context(
            language=_language(pool, request, record)):
        if one_click:
            return Response(
                gettext('marketing_automation.msg_unsubscribed') + '\n',
                content_type='text/plain; charset=utf-8', headers=_NO_STORE)
        return _page(
            pool,
            gettext('marketing_automation.msg_unsubscribed_title'),
            gettext('marketing_automation.msg_opted_out_page'
                if everything else 'marketing_automation.msg_unsubscribed'),
            sender=_sender(pool, record))
