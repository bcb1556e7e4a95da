# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The module in the real Tryton desktop client

The demo's database (its shop, scenarios, e-mails read and clicked) is
served by a real trytond; tests/client_views.py logs in with the client's
RPC module and opens every action, relate and view of the module with the
client's own view code, on an X display in memory (Xvfb).

The client runs with another Python: the one of a virtual environment with
access to the system's GTK (``gi``) and the ``tryton`` package from PyPI,
``$TRYTON_CLIENT_PYTHON`` or ``.venv-client/bin/python`` (.ci/run creates
it).  Without it, or without Xvfb, the test is skipped, unless
``$TRYTON_CLIENT_PYTHON`` is set: then it must work.
"""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from demo import desktop, server  # noqa: E402

DRIVER = os.path.join(ROOT, 'tests', 'client_views.py')
CLIENT_PYTHON = desktop.CLIENT_PYTHON
TIMEOUT = 180
# What GLib prints for the messages the driver's handlers did not get
GTK_MESSAGE = re.compile(r'-(CRITICAL|ERROR) \*\*')

pytestmark = pytest.mark.skipif(
    not os.environ.get('TRYTOND_DATABASE_URI', 'sqlite://').startswith(
        'sqlite'),
    reason="the client test builds its own SQLite database: it runs with "
    "the tests on SQLite only, to keep the PostgreSQL run short")


@pytest.fixture(scope='module')
def client_python():
    missing = desktop.client_missing(CLIENT_PYTHON)
    if missing and os.environ.get('TRYTON_CLIENT_PYTHON'):
        pytest.fail(missing)
    elif missing:
        pytest.skip(missing)
    return CLIENT_PYTHON


@pytest.fixture(scope='module')
def display(client_python):
    "An X display in memory"
    with desktop.display() as name:
        yield name


@pytest.fixture(scope='module')
def demo_server(client_python, tmp_path_factory):
    "The demo's database served by trytond; give its settings"
    settings = server.Settings(
        directory=str(tmp_path_factory.mktemp('client')))
    desktop.build(settings, timeout=TIMEOUT)
    trytond = server.Server(settings).start()
    try:
        yield settings
    finally:
        trytond.stop()


def _run_client(python, settings, display, home):
    return subprocess.run(
        [python, DRIVER, '127.0.0.1:%s' % settings.web_port,
            settings.database, 'admin', settings.passfile],
        env=desktop.client_environment(display, home), capture_output=True,
        text=True, timeout=TIMEOUT)


def _problems(report):
    "Return the errors of the report as (where, what) pairs"
    problems = [('client', e) for e in report['errors']]
    for step in report['steps']:
        where = '%s %r (%s)' % (step['kind'], step['name'], ' from '.join(
                filter(None, [step.get('model'), step.get('source')])))
        problems += [(where, e) for e in step['errors']]
        if step['kind'] != 'login' and not step['errors']:
            problems += _empty_views(where, step)
    return problems


def _empty_views(where, step):
    if not step['views']:
        return [(where, "no view shown")]
    return [(where, "no record in its %s view %s" % (v['type'], v['view_id']))
        for v in step['views'] if not v['records']]


def _explain(problems):
    "One line per problem (its last line), then each in full"
    summary = ['%s: %s' % (w, e.strip().splitlines()[-1])
        for w, e in problems]
    details = ['%s:\n%s' % (w, e) for w, e in problems]
    return '\n'.join(summary + ['', 'Details:'] + details)


def test_client_views(client_python, display, demo_server, tmp_path):
    "Every action, relate and view opens with records, without error"
    result = _run_client(client_python, demo_server, display, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    problems = _problems(report)
    problems += [('client stderr', line)
        for line in result.stderr.splitlines() if GTK_MESSAGE.search(line)]
    assert not problems, _explain(problems)
    kinds = {s['kind'] for s in report['steps']}
    assert {'action', 'relate', 'view', 'wizard'} <= kinds, report['steps']
