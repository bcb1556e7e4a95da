# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The workload: the data, the scenarios, the e-mail and who does what

N parties with an e-mail address and N/10 draft sales are inserted in SQL;
a scenario on the parties sends an e-mail whose "opened", "clicked" and
"not clicked" children wait for the events, and a scenario on the sales
waits a month. Party number i opens, clicks and unsubscribes as the
functions below say; after the children, N/10 parties confirm a sale, of
which those who clicked convert. expectations() derives every count the
checks compare with."""
import datetime as dt
import time
from types import SimpleNamespace

BASE_URL = 'http://bench.example.com'
SENDER = 'Bench Shop <news@bench.example.com>'
DESTINATION = (
    'https://shop.example.com/nouveaut\u00e9s'
    '?utm_source=bench&utm_medium=email#top')
TITLE = "News for ${record.name}"
TEMPLATE = """<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml"
    xmlns:py="http://genshi.edgewall.org/">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>
<title>News</title>
</head>
<body style="font-family: sans-serif">
<h1>Hello ${record.name},</h1>
<p>Our new collection is out: light jackets, linen shirts and the shoes
you asked for. Members get free delivery until the end of the month.</p>
<p py:if="record.name">This selection was made for ${record.name}.</p>
<table>
<tr><td>Jackets</td><td>from 49 EUR</td></tr>
<tr><td>Shirts</td><td>from 29 EUR</td></tr>
<tr><td>Shoes</td><td>from 59 EUR</td></tr>
</table>
<p><a href="https://shop.example.com/nouveaut\u00e9s?utm_source=bench\
&amp;utm_medium=email#top">See what is new</a></p>
<p><a href="https://shop.example.com/members">Become a member</a></p>
<p><a href="mailto:help@shop.example.com">Write to us</a></p>
<p style="font-size: small">You receive this e-mail as a customer of
Bench Shop. <a href="unsubscribe">Unsubscribe</a></p>
</body>
</html>
"""

# Which party (by its number i = 1..N) does what
SALE_EVERY = 10
# The parties confirming a sale after the e-mails: another tenth
CONFIRMED_SALE_REST = 1


def opens_pixel(i):
    return i % 2 == 0


def clicks(i):
    return i % 4 == 1


def unsubscribes(i):
    # Half of them opened (and the "opened" child waits for them): blocked
    # records must get nothing more
    return i % 20 == 0


def confirms_sale(i):
    return i % SALE_EVERY == CONFIRMED_SALE_REST


def sale_amount(i):
    "The untaxed amount of the confirmed sale of party i"
    return 10 + i % 90


PARTY_NAME = 'Bench Party '
PARTY_EMAIL = 'bench-%s@example.com'


def party_name(i):
    return PARTY_NAME + str(i)


def party_email(i):
    return PARTY_EMAIL % i


# The parties of --waiting W: enrolled in a scenario of their own whose
# root e-mail waits a month, so that they only weigh on the tables
WAITING_NAME = 'Bench Waiting '
WAITING_EMAIL = 'bench-waiting-%s@example.com'
WAITING_DELAY = dt.timedelta(days=30)


def expectations(n):
    "Return the sets of party numbers each check expects"
    numbers = range(1, n + 1)
    everyone = set(numbers)
    pixel = {i for i in numbers if opens_pixel(i)}
    click = {i for i in numbers if clicks(i)}
    blocked = {i for i in numbers if unsubscribes(i)}
    opened = pixel | click
    return SimpleNamespace(
        everyone=everyone, pixel=pixel, click=click, blocked=blocked,
        opened=opened,
        sales={i for i in numbers if i % SALE_EVERY == 0},
        confirmed_sales={i for i in numbers if confirms_sale(i)},
        # The goal is a sale after a click, which the unsubscribes keep
        converted={i for i in numbers if confirms_sale(i) and clicks(i)},
        opened_child_done=opened - blocked,
        opened_child_waiting=opened & blocked,
        clicked_child_done=click - blocked,
        clicked_child_waiting=click & blocked,
        not_clicked_done=everyone - click - blocked,
        not_clicked_waiting=blocked - click,
        )


def setup_models(db, waiting=False):
    """Create the company, the scenarios, their activities and the crons,
    and the scenario of the waiting parties if waiting

    Return the ids of what the benchmark refers to."""
    from trytond.transaction import Transaction
    User = db.pool.get('res.user')
    with Transaction().start(db.name, 0):
        admin, = User.search([('login', '=', 'admin')])
        admin_id = admin.id
    # As the administrator: the e-mails are rendered with the rights of
    # the author of the activity
    with Transaction().start(db.name, admin_id) as transaction:
        ids = create_company(db.pool)
        ids.update(create_scenarios(db.pool))
        if waiting:
            ids.update(create_waiting_scenario(db.pool))
        ids.update(create_crons(db.pool))
        transaction.commit()
    return ids


def create_company(pool):
    from decimal import Decimal
    Currency = pool.get('currency.currency')
    Party = pool.get('party.party')
    Company = pool.get('company.company')
    currency, = Currency.create([{
                'name': "Euro", 'code': 'EUR', 'symbol': "\u20ac",
                'rounding': Decimal('0.01'), 'digits': 2,
                }])
    party, = Party.create([{'name': "Bench Shop"}])
    company, = Company.create([{'party': party.id, 'currency': currency.id}])
    return {'currency': currency.id, 'company': company.id}


def create_scenarios(pool):
    from trytond.pyson import Eval, PYSONEncoder
    Scenario = pool.get('marketing.automation.scenario')
    Activity = pool.get('marketing.automation.activity')
    scenario, = Scenario.create([{
                'name': "Bench news",
                'model': 'party.party',
                'domain': PYSONEncoder().encode(
                    [('name', 'like', 'Bench Party %')]),
                'unsubscribable': True,
                'goal': 'sale',
                'goal_state': 'confirmed',
                'goal_window': dt.timedelta(days=7),
                'attribution': 'click',
                }])
    root, = Activity.create([{
                'name': "News",
                'parent': str(scenario),
                'action': 'send_email',
                'email_title': TITLE,
                'email_template': TEMPLATE,
                }])
    opened, clicked, not_clicked = Activity.create([{
                'name': "Opened",
                'parent': str(root),
                'on': 'email_opened',
                'condition': PYSONEncoder().encode(
                    Eval('self', {}).get('active', False)),
                }, {
                'name': "Clicked",
                'parent': str(root),
                'on': 'email_clicked',
                }, {
                'name': "Not clicked",
                'parent': str(root),
                'on': 'email_clicked_not',
                'delay': dt.timedelta(days=2),
                }])
    sale_scenario, = Scenario.create([{
                'name': "Bench orders",
                'model': 'sale.sale',
                'domain': PYSONEncoder().encode([('state', '=', 'draft')]),
                }])
    follow_up, = Activity.create([{
                'name': "Follow-up",
                'parent': str(sale_scenario),
                'delay': dt.timedelta(days=30),
                }])
    Scenario.run([scenario, sale_scenario])
    return {
        'scenario': scenario.id,
        'sale_scenario': sale_scenario.id,
        'root': root.id,
        'opened': opened.id,
        'clicked': clicked.id,
        'not_clicked': not_clicked.id,
        'follow_up': follow_up.id,
        }


def create_waiting_scenario(pool):
    "Create the scenario of the waiting parties: an e-mail a month later"
    from trytond.pyson import PYSONEncoder
    Scenario = pool.get('marketing.automation.scenario')
    Activity = pool.get('marketing.automation.activity')
    scenario, = Scenario.create([{
                'name': "Bench later",
                'model': 'party.party',
                'domain': PYSONEncoder().encode(
                    [('name', 'like', WAITING_NAME + '%')]),
                }])
    root, = Activity.create([{
                'name': "Later",
                'parent': str(scenario),
                'action': 'send_email',
                'email_title': TITLE,
                'email_template': TEMPLATE,
                'delay': WAITING_DELAY,
                }])
    Scenario.run([scenario])
    return {'waiting_scenario': scenario.id, 'waiting_root': root.id}


def create_crons(pool):
    "Stop every cron; give trigger and process two copies each, far ahead"
    # Only the crons of the benchmark run, when it says so
    Cron = pool.get('ir.cron')
    ModelData = pool.get('ir.model.data')
    crons = Cron.search([])
    far = dt.datetime.now() + dt.timedelta(days=365)
    Cron.write(crons, {'active': False, 'next_call': far})
    trigger = Cron(ModelData.get_id(
            'marketing_automation', 'cron_scenario_trigger'))
    process = Cron(ModelData.get_id(
            'marketing_automation', 'cron_record_activity_process'))
    triggers = [trigger] + Cron.copy([trigger])
    processes = [process] + Cron.copy([process])
    Cron.write(triggers + processes, {'active': True, 'next_call': far})
    return {
        'trigger_crons': [c.id for c in triggers],
        'process_crons': [c.id for c in processes],
        }


def _series(n):
    """Return the WITH clause and the FROM source of the integers 1 to n,
    named seq(i)"""
    from trytond.modules.marketing_automation import dialect
    if dialect.is_sqlite():
        return ('WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL '
            'SELECT i + 1 FROM seq WHERE i < %d) ' % n), 'seq'
    return '', 'generate_series(1, %d) AS seq(i)' % n


def _insert_parties(db, cursor, count, name, code, email, now):
    """Insert count parties named name + i, coded code + i, and their
    e-mail address, email with i for %s, in SQL"""
    series, source = _series(count)
    party = db.table('party.party')
    mechanism = db.table('party.contact_mechanism')
    address = "'%s' || code_digit || '%s'" % tuple(email.split('%s'))
    cursor.execute(db.paramstyle(
            series + 'INSERT INTO %s '
            '(name, code, code_alnum, code_digit, active, '
            'create_uid, create_date) '
            "SELECT %%s || i, %%s || i, %%s || i, "
            'i, %%s, 0, %%s FROM %s' % (party, source)),
        (name, code, code, True, now))
    cursor.execute(db.paramstyle(
            'INSERT INTO %s '
            '(party, type, value, value_compact, active, sequence, '
            'create_uid, create_date) '
            "SELECT id, 'email', %s, %s, %%s, 10, 0, %%s "
            'FROM %s WHERE name LIKE %%s' % (
                mechanism, address, address, party)),
        (True, now, name + '%'))


def populate(db, n, ids):
    "Insert the parties, their e-mail address and the sales in SQL"
    from trytond.transaction import Transaction
    now = dt.datetime.now()
    party = db.table('party.party')
    sale = db.table('sale.sale')
    start = time.perf_counter()
    with Transaction().start(db.name, 0) as transaction:
        cursor = transaction.connection.cursor()
        _insert_parties(
            db, cursor, n, PARTY_NAME, 'BENCH', PARTY_EMAIL, now)
        cursor.execute(db.paramstyle(
                'INSERT INTO %s '
                '(company, currency, party, state, invoice_method, '
                'shipment_method, invoice_state, shipment_state, reference, '
                'create_uid, create_date) '
                "SELECT %%s, %%s, id, 'draft', 'order', 'order', 'none', "
                "'none', 'BENCH' || code_digit, 0, %%s "
                'FROM %s WHERE name LIKE %%s AND mod(code_digit, %%s) = 0'
                % (sale, party)),
            (ids['company'], ids['currency'], now, PARTY_NAME + '%',
                SALE_EVERY))
    db.log("%s parties, e-mail addresses and %s sales inserted in %.1fs",
        n, n // SALE_EVERY, time.perf_counter() - start)


def populate_waiting(db, w):
    """Insert the w waiting parties and their e-mail address in SQL

    After the N parties of the workload: their ids come after."""
    from trytond.transaction import Transaction
    if not w:
        return
    start = time.perf_counter()
    with Transaction().start(db.name, 0) as transaction:
        _insert_parties(
            db, transaction.connection.cursor(), w, WAITING_NAME, 'BENCHW',
            WAITING_EMAIL, dt.datetime.now())
    db.log("%s waiting parties and e-mail addresses inserted in %.1fs",
        w, time.perf_counter() - start)


def confirm_sales(db, n, ids):
    """Insert the confirmed sales of the parties that buy after the
    e-mails, in SQL, dated now (after the clicks)"""
    from trytond.transaction import Transaction
    now = dt.datetime.now()
    party = db.table('party.party')
    sale = db.table('sale.sale')
    start = time.perf_counter()
    with Transaction().start(db.name, 0) as transaction:
        cursor = transaction.connection.cursor()
        cursor.execute(db.paramstyle(
                'INSERT INTO %s '
                '(company, currency, party, state, invoice_method, '
                'shipment_method, invoice_state, shipment_state, reference, '
                'sale_date, untaxed_amount_cache, '
                'create_uid, create_date, write_uid, write_date) '
                "SELECT %%s, %%s, id, 'confirmed', 'order', 'order', "
                "'none', 'none', 'BENCH-C' || code_digit, %%s, "
                '10 + mod(code_digit, 90), 0, %%s, 0, %%s '
                'FROM %s WHERE name LIKE %%s AND mod(code_digit, %%s) = %%s'
                % (sale, party)),
            (ids['company'], ids['currency'], now.date(), now, now,
                'Bench Party %', SALE_EVERY, CONFIRMED_SALE_REST))
    db.analyze()
    db.log("%s confirmed sales inserted in %.1fs",
        n // SALE_EVERY, time.perf_counter() - start)


def events_in_sql(db, ids):
    """Mark the root e-mails sent an hour ago, and opened and clicked by
    the parties of the workload, in SQL (for --conversions-only)"""
    from trytond.modules.marketing_automation import dialect
    now = dt.datetime.now()
    table = db.table('marketing.automation.record.activity')
    record = db.table('marketing.automation.record')
    party = db.table('party.party')
    prefix = ("'party.party,'" if dialect.is_sqlite()
        else "'party.party,'::varchar")

    def records(condition):
        return ('record IN (SELECT r.id FROM %s AS r JOIN %s AS p '
            'ON r.record = %s || p.id WHERE r.scenario = %%s AND (%s))' % (
                record, party, prefix, condition))
    db.sql(
        "UPDATE %s SET state = 'done', at = %%s, email_handoff = 'sent' "
        'WHERE activity = %%s' % table,
        (now - dt.timedelta(hours=1), ids['root']), fetch=False)
    db.sql(
        'UPDATE %s SET email_opened = %%s, email_opened_date = %%s '
        'WHERE activity = %%s AND %s' % (table, records(
                'mod(p.code_digit, 2) = 0 OR mod(p.code_digit, 4) = 1')),
        (True, now - dt.timedelta(minutes=30), ids['root'],
            ids['scenario']), fetch=False)
    db.sql(
        'UPDATE %s SET email_clicked = %%s, email_clicked_date = %%s '
        'WHERE activity = %%s AND %s' % (table, records(
                'mod(p.code_digit, 4) = 1')),
        (True, now - dt.timedelta(minutes=20), ids['root'],
            ids['scenario']), fetch=False)


def make_negative_due(db, ids):
    "Make the \"not clicked\" children due, as if two days had passed"
    table = db.table('marketing.automation.record.activity')
    db.sql(
        "UPDATE %s SET at = %%s WHERE activity = %%s AND state = 'waiting'"
        % table, (dt.datetime.now() - dt.timedelta(seconds=1),
            ids['not_clicked']), fetch=False)


def build_message(i, database, secret):
    """Render and build the e-mail of party i as the engine does

    but without database: the tokens are made up and the record is a
    dictionary, as templates read the fields of a record as its keys."""
    from trytond.modules.marketing_automation import (
        links, mime, rendering, sandbox)
    record_token = '%032x' % (i + 1)
    token = '%032x' % (10 ** 9 + i)
    context = {
        'record': {'name': party_name(i), 'rec_name': party_name(i)},
        **sandbox.helpers(),
        }
    title = rendering.render_title(TITLE, context)
    body = rendering.render_html(
        TEMPLATE, context,
        link_for=lambda url: links.click_url(database, token, url, secret),
        unsubscribe_for=lambda next_url: links.unsubscribe_url(
            database, record_token, next_url),
        pixel_url=links.open_url(database, token))
    return mime.build_message(
        from_addr=SENDER,
        to_addr=mime.recipient(party_name(i), party_email(i)),
        subject=title, html=body,
        unsubscribe_url=links.unsubscribe_url(database, record_token),
        headers={'Message-ID': mime.message_id(SENDER)})
