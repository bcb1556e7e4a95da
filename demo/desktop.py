# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The demo in the Tryton desktop client, for tests/test_client.py and
doc/screenshots.py

``build`` makes the demo's database (its shop, scenarios, e-mails read and
clicked) in a process of its own, as proteus configures trytond;
``display`` starts an X display in memory (Xvfb); ``client_missing`` says
why the client's Python cannot run here; ``pump`` lets the client's GTK
work for a moment (tests/client_views.py and doc/screenshots.py run it in
the client's Python, which has no trytond: this module imports trytond only
where it is used).

The client runs with another Python: the one of a virtual environment with
access to the system's GTK (``gi``) and the ``tryton`` package from PyPI,
``$TRYTON_CLIENT_PYTHON`` or ``.venv-client/bin/python``.
"""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_PYTHON = os.environ.get('TRYTON_CLIENT_PYTHON') or os.path.join(
    ROOT, '.venv-client', 'bin', 'python')
XVFB = shutil.which('Xvfb')


def build(settings, timeout=180):
    "Create the demo's database in settings.directory and play its story"
    from . import server
    settings.prepare()
    server.create_database(settings)
    result = subprocess.run(
        [sys.executable, '-m', 'demo.desktop', json.dumps(
                dataclasses.asdict(settings))],
        cwd=ROOT, env=settings.environment(), capture_output=True,
        text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError("the demo's story failed:\n" + result.stderr)


def _play(settings):
    "The shop, its scenarios and their story, as demo/run.py plays them"
    from . import main, recipients, server
    config = main.connect(settings)
    the_shop, scenario_ids, activity_ids = main.setup(config, say=str)
    outbox = server.Outbox(settings).start()
    trytond = server.Server(settings).start()
    try:
        main.play_story(
            config, the_shop, scenario_ids, activity_ids,
            lambda: server.run_crons(settings), recipients.Browser(), outbox,
            say=str)
    finally:
        trytond.stop()
        outbox.stop()


def client_missing(python=CLIENT_PYTHON):
    "Return why the client cannot run here, or None"
    if not XVFB:
        return "Xvfb is not installed"
    if not os.path.exists(python):
        return "no Python for the client at %s" % python
    probe = subprocess.run([python, '-c',
            'import gi; gi.require_version("Gtk", "3.0"); '
            'from gi.repository import Gtk; '
            'import importlib.util; '
            'assert importlib.util.find_spec("tryton")'],
        capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return "%s lacks gi, GTK 3 or tryton: %s" % (
            python, probe.stderr.strip().splitlines()[-1:])
    return None


@contextmanager
def display(size='1280x1024'):
    "Give the name of an X display in memory of the size, while in use"
    read, write = os.pipe()
    process = subprocess.Popen(
        [XVFB, '-displayfd', str(write), '-screen', '0', size + 'x24',
            '-nolisten', 'tcp'],
        pass_fds=[write], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as fp:
            number = fp.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield ':' + number
    finally:
        process.terminate()
        process.wait(timeout=10)


def client_environment(display, home):
    "The environment of the client's Python: its display and HOME only"
    return {
        'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
        'HOME': str(home),
        'DISPLAY': display,
        'LANG': 'C.UTF-8',
        # No accessibility bus to look for
        'NO_AT_BRIDGE': '1',
        }


def pump(seconds=0.1):
    "Let GTK draw and run its idle callbacks for a moment"
    from gi.repository import Gtk
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        while Gtk.events_pending():
            Gtk.main_iteration_do(False)
        time.sleep(0.01)


if __name__ == '__main__':
    from . import server
    _play(server.Settings(**json.loads(sys.argv[1])))
