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

    assert story['deliveries'] == [60, 11], text
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
    # An A/B split: each one gets either variant, about half and half
    variant_a, variant_b = welcome['activities']
    assert variant_a['records'] + variant_b['records'] == 37
    assert variant_a['sent'] + variant_b['sent'] == 37
    assert variant_a['unsubscribed'] == 1
    for variant in [variant_a, variant_b]:
        assert variant['records'] == variant['sent'] > 0
        assert variant['opened'] > variant['clicked'] > 0
    splits = welcome['variants']
    assert [v['name'] for v in splits] == [
        'Welcome e-mail A', 'Welcome e-mail B']
    assert [v['share'] for v in splits] == [0.5, 0.5]
    assert [v['sent'] for v in splits] == [
        variant_a['sent'], variant_b['sent']]
    assert splits[0]['group'] == splits[1]['group']
    for split in splits:
        for name in ['open', 'click', 'conversion']:
            assert 0 <= split[name + '_rate'] <= 1
            assert 0 < split[name + '_p_value'] <= 1
    # Variant B's subject does better
    assert splits[1]['click_rate'] > splits[0]['click_rate'], text
    assert 'A/B split' in text
    assert not cart['variants'] and not order['variants']

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

    # The 14 orders, the new customer's, the completed cart and the two
    # orders after a click on the welcome e-mail
    assert order['records'] == 18
    first, = order['activities']
    assert (first['records'], first['sent']) == (18, 18)
    assert first['opened'] > 0

    assert data['sent'] == 71 == len(outbox)
    assert data['unsubscribed'] == 1
    assert 0 < first['open_rate'] <= 1

    # The orders after a click convert for the welcome e-mail, the cart
    # ordered for its reminder (or a welcome clicked later)
    assert len(story['orders_after_click']) == 2
    assert story['conversions'] == 3, text
    assert welcome['conversions'] + cart['conversions'] == 3
    assert welcome['conversions'] >= 2
    assert welcome['revenue'] + cart['revenue'] > 0
    assert order['conversions'] == 0 and not order['goal']
    enrolled, sent, opened, clicked, converted, revenue, per_email = (
        welcome['funnel'])
    assert (enrolled, sent) == (37, 37)
    assert opened > clicked >= converted == welcome['conversions']
    assert revenue == welcome['revenue']
    assert 'conversions, revenue' in text

    # Each customer gets the e-mails in the own language
    mails = [recipients.read_mail(p) for p in outbox.since(0)]
    languages = Counter(
        (m.to.endswith('.fr>'), m.language) for m in mails)
    assert set(languages) == {(False, 'en'), (True, 'fr')}, languages
    assert any(m.subject.startswith('Bienvenue chez Blue Heron Coffee, ')
        or m.subject.endswith(', vos cafés vous attendent')
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
