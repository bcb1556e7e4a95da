# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The recipients' requests: pixel hits, clicks and one-click unsubscribes

Each one is a real request through trytond's WSGI application, driven
in-process by werkzeug's test client or, with --server, over HTTP by the
concurrent clients of load.py to trytond served by gunicorn (server.py).
The URLs are those of the e-mails: built by the module's own helpers from
the tokens in the database, and found, tokens redacted, in the archived
e-mail of each recipient."""
import functools
import json
import os
import re
import subprocess
import sys

from checks import Mismatch, check, check_set
from measure import Phase, ServerCPU
from server import HOST, VIRTUAL_HOST
from workload import DESTINATION

LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'load.py')

_ADDRESS = re.compile(r'bench-(\d+)@example\.com')


def read_secret(db):
    "Return the secret that signs the tracked links of the database"
    from trytond.transaction import Transaction
    Configuration = db.pool.get('ir.configuration')
    with Transaction().start(db.name, 0):
        return Configuration.get_marketing_automation_secret()


def recipient_paths(db, ids, expect):
    """Return the pixel, click and unsubscribe paths of each party to hit

    as a tuple per party number, None for what the party does not do."""
    from trytond.modules.marketing_automation import links
    secret = read_secret(db)
    base = links.automation_base()
    wanted = expect.pixel | expect.click | expect.blocked
    result = {}
    for i, body, record_token, token in archived_emails(db, ids):
        check(record_token not in body and token not in body,
            "tokens archived in the e-mail of %s", i)
        if i not in wanted:
            continue
        urls = [
            links.open_url(db.name, token),
            links.click_url(db.name, token, DESTINATION, secret),
            links.unsubscribe_url(db.name, record_token),
            ]
        paths = []
        for url, hits in zip(urls, [expect.pixel, expect.click,
                    expect.blocked]):
            check_link(body, links.redact_tokens(url, [token, record_token]),
                i)
            paths.append(url[len(base):] if i in hits else None)
        check(i not in result, "two e-mails for %s", i)
        result[i] = tuple(paths)
    check_set('e-mails with links', result, wanted)
    return result


def check_link(body, url, i):
    "Check that the HTML body links to url"
    from genshi.core import escape
    check('"%s"' % escape(url) in body, "no link %s in the e-mail of %s",
        url, i)


def archived_emails(db, ids):
    """Yield the party number, body and tokens of the archived root e-mails

    The archive leaves the tokens out: those of the record and of its root
    record activity are read from their tables."""
    email = db.table('ir.email')
    record = db.table('marketing.automation.record')
    record_activity = db.table('marketing.automation.record.activity')
    last = 0
    while True:
        rows = db.sql(
            'SELECT e.id, e.recipients, e.body, r.uuid, a.uuid '
            'FROM %s AS e '
            'JOIN %s AS r ON r.id = e.marketing_automation_record '
            'JOIN %s AS a ON a.record = r.id '
            'AND a.activity = e.marketing_automation_activity '
            'WHERE e.marketing_automation_activity = %%s AND e.id > %%s '
            'ORDER BY e.id LIMIT 5000' % (email, record, record_activity),
            (ids['root'], last))
        if not rows:
            break
        for id_, recipients, body, record_token, token in rows:
            last = id_
            i = int(_ADDRESS.search(recipients).group(1))
            yield i, body, record_token, token


def hit(paths, method, expect_status, check_response):
    "Request each path and check the status and the response"
    from werkzeug.test import Client

    from trytond.wsgi import app
    client = Client(app)
    open_ = getattr(client, method)
    for path in paths:
        if method == 'post':
            response = open_(path, data={'List-Unsubscribe': 'One-Click'})
        else:
            response = open_(path)
        if response.status_code != expect_status:
            raise Mismatch('%s %s answered %s: %s' % (
                    method.upper(), path, response.status,
                    response.get_data(as_text=True)[:300]))
        check_response(path, response)
        response.close()


def check_gif(path, response):
    check(response.mimetype == 'image/gif',
        "pixel answered %s", response.mimetype)


def check_plain(path, response):
    check(response.mimetype == 'text/plain',
        "one-click unsubscribe answered %s", response.mimetype)


@functools.cache
def destination_location():
    "Return the Location header of the redirection to the destination"
    from trytond.modules.marketing_automation import links
    return links.redirect_location(DESTINATION)


def check_redirected(path, response):
    location = destination_location()
    check(response.headers.get('Location') == location,
        "click redirected to %s instead of %s",
        response.headers.get('Location'), location)


def hit_pixels(paths):
    hit(paths, 'get', 200, check_gif)


def hit_clicks(paths):
    hit(paths, 'get', 302, check_redirected)


def hit_unsubscribes(paths):
    hit(paths, 'post', 200, check_plain)


# Over HTTP

def expected_answers(kind):
    "Return the method, status, content type, location and body of kind"
    return {
        'pixel': ('GET', 200, 'image/gif', None, None),
        'click': ('GET', 302, None, destination_location(), None),
        'unknown click': ('GET', 404, None, None, None),
        'unsubscribe': (
            'POST', 200, 'text/plain', None, 'List-Unsubscribe=One-Click'),
        }[kind]


def load(server, kind, paths, clients):
    "Request the paths of kind from clients at once in a process of its own"
    method, status, content_type, location, body = expected_answers(kind)
    spec = {
        'host': HOST, 'port': server.port, 'virtual_host': VIRTUAL_HOST,
        'method': method, 'paths': paths, 'concurrency': clients,
        'status': status, 'content_type': content_type,
        'location': location, 'body': body,
        }
    result = subprocess.run(
        [sys.executable, LOAD], input=json.dumps(spec),
        capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def check_load(name, result):
    "Check that every answer of the load was the expected one"
    statuses = result['statuses']
    check(not statuses.get('unexpected'),
        "%s: %s unexpected answers (statuses %s), first: %s",
        name, statuses.get('unexpected'), statuses, result['unexpected'])


def load_phase(server, db, name, kind, paths, clients, note=''):
    """Return the phase of requesting the paths over HTTP

    Its CPU is that of the server's processes (the client's is in the
    note) and its peak memory that of the server's workers."""
    server_cpu = server.cpu()
    with ServerCPU(db.backend_pids) as database_cpu:
        result = load(server, kind, paths, clients)
    cpu = server.cpu() - server_cpu
    check_load(name, result)
    note = ', '.join(filter(None, [
                note, '%s clients' % clients,
                'client CPU %.2fs' % result['cpu_seconds']]))
    return Phase(name, len(paths), result['seconds'], server.peak_rss(),
        note=note, cpu=cpu, database_cpu=database_cpu.seconds
        if db.backend == 'postgresql' else None)
