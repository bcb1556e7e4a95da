# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The demo (make demo) without its install step and its processes

The shop, its scenarios and the story of demo/main.py run in this process:
the database comes from activate_modules (and its cache), the due crons
run as trytond-cron runs them (Cron.run: as root, without company), the
SMTP server is the demo's outbox on a free port and the recipients' HTTP
requests go to trytond's WSGI application.  The figures of the report are
checked, so that the demo cannot rot.
"""
import os
import sys
from collections import Counter

import pytest

import trytond.config as trytond_config
from trytond import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytestmark = pytest.mark.skipif(
    backend.name != 'sqlite',
    reason="the demo runs on an embedded SQLite database only "
    "(make demo); its test is not run on %s" % backend.name)


@pytest.fixture
def outbox(tmp_path):
    "The demo's SMTP outbox, set as trytond's SMTP server"
    from demo import server
    settings = server.Settings(directory=str(tmp_path))
    os.makedirs(settings.outbox_dir)
    outbox = server.Outbox(settings).start()
    saved = {
        key: trytond_config.get('email', key) for key in ['uri', 'from']}
    trytond_config.set('email', 'uri', outbox.sink.uri)
    trytond_config.set('email', 'from', settings.sender)
    try:
        yield outbox
    finally:
        outbox.stop()
        # Both have a default value
        for key, value in saved.items():
            trytond_config.set('email', key, value)


def test_demo(outbox):
    from proteus import Model

    from demo import main, recipients, report
    from trytond.pool import Pool
    from trytond.tests.tools import activate_modules
    from trytond.wsgi import app

    config = activate_modules(['marketing_automation', 'sale'])
    Lang = Model.get('ir.lang')
    french, = Lang.find([('code', '=', 'fr')])
    french.translatable = True
    french.save()

    lines = []
    the_shop, scenario_ids, activity_ids = main.setup(config, lines.append)

    def run_crons():
        # What trytond-cron --once does in each of its processes
        Pool(config.database_name).get('ir.cron').run(config.database_name)

    story = main.play_story(
        config, the_shop, scenario_ids, activity_ids, run_crons,
        recipients.WSGIBrowser(app), outbox, say=lines.append)
    data = report.collect_report(config, list(scenario_ids.values()))
    text = '\n'.join(report.format_report(data))

    assert story['deliveries'] == [60, 9], text
    assert story['moved'] == 7, text
    assert story['completed_cart'] in the_shop.idle_carts

    welcome, cart, order = data['scenarios']
    assert [s['name'] for s in data['scenarios']] == [
        'Blue Heron Coffee Welcome',
        'Blue Heron Coffee Abandoned Cart',
        'Blue Heron Coffee New Order Placed',
        ]
    assert {s['state'] for s in data['scenarios']} == {'running'}

    # The 36 customers of the week and the one who registered later
    assert welcome['records'] == 37
    assert welcome['unsubscribed'] == 1
    first, = welcome['activities']
    assert (first['records'], first['sent']) == (37, 37)
    assert first['unsubscribed'] == 1
    assert first['opened'] > first['clicked'] > 0

    # The 10 idle carts, not the 2 being filled now
    assert cart['records'] == 10
    assert cart['unsubscribed'] == 0
    reminder, second, offer = cart['activities']
    assert (reminder['records'], reminder['sent']) == (10, 10)
    assert reminder['opened'] == 6 and reminder['clicked'] == 3
    assert (second['on'], second['depth']) == ('email_opened_not', 1)
    # Those who did not open, but not the cart ordered in the meantime
    assert (second['records'], second['sent']) == (4, 3)
    assert second['cancelled'] == 6
    assert (offer['on'], offer['depth']) == ('email_clicked', 1)
    assert (offer['records'], offer['sent']) == (3, 3)
    assert offer['waiting'] == 7

    # The 14 orders, the new customer's and the completed cart
    assert order['records'] == 16
    first, = order['activities']
    assert (first['records'], first['sent']) == (16, 16)
    assert first['opened'] > 0

    assert data['sent'] == 69 == len(outbox)
    assert data['unsubscribed'] == 1
    assert 0 < first['open_rate'] <= 1

    # Each customer gets the e-mails in the own language
    mails = [recipients.read_mail(p) for p in outbox.since(0)]
    languages = Counter(
        (m.to.endswith('.fr>'), m.language) for m in mails)
    assert set(languages) == {(False, 'en'), (True, 'fr')}, languages
    assert any(m.subject.startswith('Bienvenue chez Blue Heron Coffee, ')
        for m in mails)


def test_demo_spreads_history_and_closes_config_wizard(outbox):
    "The demo marks the configuration wizard done and spreads its history"
    import datetime as dt

    from proteus import Model

    from demo import main, recipients
    from trytond.pool import Pool
    from trytond.tests.tools import activate_modules
    from trytond.wsgi import app

    config = activate_modules(['marketing_automation', 'sale'])
    the_shop, scenario_ids, activity_ids = main.setup(config, lambda _: None)
    Item = Model.get('ir.module.config_wizard.item')
    assert {i.state for i in Item.find([])} == {'done'}

    def run_crons():
        Pool(config.database_name).get('ir.cron').run(config.database_name)

    story = main.play_story(
        config, the_shop, scenario_ids, activity_ids, run_crons,
        recipients.WSGIBrowser(app), outbox, say=lambda _: None)
    Record = Model.get('marketing.automation.record')
    RecordActivity = Model.get('marketing.automation.record.activity')
    Email = Model.get('ir.email')
    records = Record.find([])
    assert story['spread'] == len(records) > 0
    days = {r.create_date.date() for r in records}
    assert len(days) >= 14
    assert min(days) >= (dt.datetime.now() - dt.timedelta(days=29)).date()
    assert len({r.at.date() for r in RecordActivity.find([
                    ('state', '=', 'done'), ('at', '!=', None)])}) >= 14
    assert len({e.create_date.date() for e in Email.find([])}) >= 14
