# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The demo, step by step (``demo/run.py`` calls ``main``)

1. a fresh SQLite database with marketing_automation and sale (trytond-admin)
2. the sample shop and its three scenarios (proteus, in this process),
   the configuration wizard marked done
3. the SMTP server writing demo/outbox/ and trytond serving the links
4. the crons run once (trytond-cron --once), the customers read their
   e-mails over HTTP, life goes on in the shop, one day passes, the crons
   run again and the customers read the new e-mails; then what happened
   is spread over the last weeks, for the reporting per day
5. the report, and how to look at it all with the Tryton client

``play_story`` is step 4 without the processes: the test of the demo runs
it with the crons and the HTTP requests in its own process.
"""
import argparse
import datetime as dt
import email.utils
import os
import signal
import sys
import time
from collections import Counter

from proteus import Model
from proteus import config as proteus_config

from trytond.modules.marketing_automation import events
from trytond.pool import Pool
from trytond.transaction import Transaction

from . import recipients, report, scenarios, server, shop

MARKETING_CRONS = [
    'marketing.automation.scenario|trigger',
    'marketing.automation.record.activity|process',
    ]


class Narrator:
    "Print the steps with the time elapsed since the start"

    def __init__(self, output=None):
        self.output = output or sys.stdout
        self.start = time.monotonic()
        self.step = 0

    def __call__(self, text=''):
        print(text, file=self.output, flush=True)

    def title(self, text):
        self.step += 1
        self('')
        self('%d. %s  [%.0f s]' % (
                self.step, text, time.monotonic() - self.start))


def fast_forward(database_name, delta):
    """Move what is scheduled delta earlier, as if delta had passed

    The record activities waiting for a date and the next call of the
    marketing crons (so that trytond-cron runs them).  Return the number
    of record activities moved."""
    with Transaction().start(database_name, 0) as transaction:
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Cron = pool.get('ir.cron')
        # The process cron would have scheduled the children of the opens
        # and clicks within the delta
        events.apply_pending()
        waiting = RecordActivity.search([
                ('state', '=', 'waiting'),
                ('at', '!=', None),
                ])
        for record_activity in waiting:
            RecordActivity.write(
                [record_activity], {'at': record_activity.at - delta})
        for cron in Cron.search([('method', 'in', MARKETING_CRONS)]):
            if cron.next_call:
                Cron.write([cron], {'next_call': cron.next_call - delta})
        transaction.commit()
    return len(waiting)


def suppress_addresses(database_name, mails, say=print):
    """One address bounces for good and the marketer suppresses another by
    hand; return the two addresses"""
    addresses = sorted({
            email.utils.parseaddr(m.to)[1] for m in mails if m.to})[-2:]
    if len(addresses) < 2:
        return []
    bounced, manual = addresses
    with Transaction().start(database_name, 0) as transaction:
        Suppression = Pool().get('marketing.automation.suppression')
        Suppression.suppress(
            [bounced], 'hard_bounce',
            report="550 5.1.1 <%s>: Recipient address rejected: "
            "User unknown in virtual mailbox table" % bounced)
        Suppression.suppress([manual], 'manual')
        transaction.commit()
    say("  the mailbox of %s does not exist any more: a hard bounce "
        "suppresses it" % bounced)
    say("  %s asks by phone to receive nothing: the marketer suppresses "
        "the address" % manual)
    return addresses


def spread_history(database_name, days=28):
    """Move each record and what happened to it back by up to days

    The demo plays its story in a few minutes: spread over the last weeks,
    the reporting per day shows a history instead of one bar.  A record and
    its e-mails move together, by a number of days and hours given by its
    id; what still waits for a date stays as scheduled.  Return the number
    of records moved."""
    with Transaction().start(database_name, 0) as transaction:
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Email = pool.get('ir.email')
        cursor = transaction.connection.cursor()
        record = Record.__table__()
        cursor.execute(*record.select(record.id, record.create_date))
        rows = cursor.fetchall()

        def offset(record_id):
            return dt.timedelta(
                days=record_id * 11 % days, hours=record_id * 7 % 12)

        def move(table, columns, where):
            cursor.execute(*table.select(table.id, *columns, where=where))
            for id_, *values in cursor.fetchall():
                values = [v - delta if v else v for v in values]
                cursor.execute(*table.update(
                        columns, values, where=table.id == id_))

        for record_id, _ in rows:
            delta = offset(record_id)
            move(record, [record.create_date], record.id == record_id)
            record_activity = RecordActivity.__table__()
            move(record_activity,
                [record_activity.at, record_activity.create_date,
                    record_activity.write_date],
                (record_activity.record == record_id)
                & (record_activity.state != 'waiting'))
            email = Email.__table__()
            move(email, [email.create_date, email.write_date],
                email.marketing_automation_record == record_id)
        transaction.commit()
    return len(rows)


def _delivery(config, outbox, seen, activity_keys, names, say):
    "Read the mails received since seen and say what they are"
    mails = recipients.identify(
        config, [recipients.read_mail(p) for p in outbox.since(seen)],
        activity_keys)
    by_activity = Counter(m.activity for m in mails)
    say('  %d e-mails received: %s' % (len(mails), ', '.join(
                '%d × %s' % (count, names.get(key, key))
                for key, count in by_activity.items()) or 'none'))
    return mails


def play_story(
        config, the_shop, scenario_ids, activity_ids, run_crons, browser,
        outbox, say=print, title=None):
    """Run the crons, let the customers act, fast-forward, run them again

    run_crons() runs the due crons once, browser makes the HTTP
    requests, outbox holds the mails received.  Return what happened:
    {'deliveries': [number of mails], 'actions': [per activity key],
    'completed_cart': sale id, 'new_order': sale id, 'moved': number,
    'samples': {(activity key, language): path of a mail}}."""
    title = title or say
    activity_keys = {v: k for k, v in activity_ids.items()}
    names = _activity_names()
    story = {'deliveries': [], 'actions': [], 'samples': {}}

    def crons_deliver():
        "Run the crons and return the mails they delivered"
        seen = len(outbox)
        run_crons()
        mails = _delivery(config, outbox, seen, activity_keys, names, say)
        story['deliveries'].append(len(mails))
        for mail in mails:
            story['samples'].setdefault(
                (mail.activity, mail.language), mail.path)
        return mails

    title("The crons run: enrolment, then the due activities")
    mails = crons_deliver()

    title("Customers read their e-mails (pixel, links, unsubscribe)")
    counts, plan = recipients.play(browser, mails, unsubscribe_count=1,
        say=say, seed=1)
    story['actions'].append(counts)
    _say_counts(counts, names, say)

    title("Bounces and requests by phone")
    story['suppressed'] = suppress_addresses(
        config.database_name, mails, say=say)

    title("Meanwhile in the shop")
    new_order = shop.sign_up_and_order(config, the_shop)
    say("  Nora Whitfield registers and places an order")
    unread_carts = [m for m in plan.ignore if m.activity == 'cart']
    completed = None
    if unread_carts:
        mail = unread_carts[0]
        completed = int(mail.record.split(',')[1])
        shop.complete_cart(config, completed)
        say("  %s did not open %r but comes back and orders the cart"
            % (mail.name, mail.subject))
    story['new_order'], story['completed_cart'] = new_order, completed
    # Variant B of the welcome e-mail first: it converts better too; not
    # a suppressed address, whose order confirmation would not be sent
    clicked_welcome = sorted(
        (m for m in plan.click if m.activity in {'welcome', 'welcome_b'}
            and m.address not in story['suppressed']),
        key=lambda m: m.activity != 'welcome_b')[:2]
    story['orders_after_click'] = shop.order_after_click(
        config, the_shop,
        [int(m.record.split(',')[1]) for m in clicked_welcome])
    for mail in clicked_welcome:
        say("  %s clicked %r and places an order" % (mail.name, mail.subject))

    title("Fast-forward 1 day")
    moved = fast_forward(config.database_name, dt.timedelta(days=1))
    story['moved'] = moved
    say("  moved 1 day earlier: %d scheduled record activities (second "
        "reminders of" % moved)
    say("  unopened carts, offers to those who clicked) and the next run "
        "of the marketing crons")

    title("The crons run again")
    mails = crons_deliver()

    title("Customers read the new e-mails")
    counts, _ = recipients.play(browser, mails, say=say, seed=2)
    story['actions'].append(counts)
    _say_counts(counts, names, say)

    title("Conversions: the sales after the e-mails")
    story['conversions'] = compute_conversions(config)
    say("  the hourly cron finds %d sales attributed to the last e-mail "
        "touching their customer" % story['conversions'])

    title("The history spread over the last 4 weeks")
    story['spread'] = spread_history(config.database_name)
    say("  %d records and their e-mails moved back by up to 4 weeks, so "
        "that" % story['spread'])
    say("  the reporting per day shows a history")
    return story


def compute_conversions(config):
    "Run the cron computing the conversions once; return their number"
    Cron = Model.get('ir.cron', config=config)
    Conversion = Model.get('marketing.automation.conversion', config=config)
    cron, = Cron.find(
        [('method', '=', 'marketing.automation.conversion|compute')])
    cron.click('run_once')
    return len(Conversion.find([]))


def _activity_names():
    names = {}
    todo = [a for s in scenarios.specifications() for a in s.activities]
    while todo:
        spec = todo.pop(0)
        names[spec.key] = spec.names['en']
        todo.extend(spec.children)
    return names


def _say_counts(counts, names, say):
    for key, figures in counts.items():
        say('  %-20s %2d received, %2d opened, %2d clicked, %d unsubscribed'
            % (names.get(key, key), figures['received'], figures['opened'],
                figures['clicked'], figures['unsubscribed']))


def connect(settings):
    "Return the proteus configuration of the demo database, in process"
    return proteus_config.set_trytond(
        database=settings.database, config_file=settings.config_file)


def setup(config, say=print):
    "Load the shop and create its running scenarios"
    the_shop = shop.load_shop(config)
    say("  %s: %d products, %d customers (%d registered this week), "
        "%d orders placed, %d carts (%d idle)" % (
            the_shop.name, len(the_shop.products), len(the_shop.customers),
            len(the_shop.new_customers), len(the_shop.orders),
            len(the_shop.carts), len(the_shop.idle_carts)))
    scenario_ids, activity_ids = scenarios.create_scenarios(
        config, the_shop.name, shop.SHOP_SITE)
    close_config_wizard(config)
    return the_shop, scenario_ids, activity_ids


def close_config_wizard(config):
    "Mark the configuration wizard done: the demo has set the database up"
    Item = Model.get('ir.module.config_wizard.item', config=config)
    items = Item.find([('state', '!=', 'done')])
    for item in items:
        item.state = 'done'
    Item.save(items)
    return len(items)


def connection_help(settings, serving):
    lines = [
        "Connect with the Tryton client (https://www.tryton.org/download):",
        "  server:   127.0.0.1:%s" % settings.web_port,
        "  database: %s" % settings.database,
        "  user:     admin",
        "  password: %s  (from %s)" % (
            settings.password, os.path.relpath(settings.passfile)),
        "then open Marketing › Scenarios.",
        ]
    if not serving:
        lines += [
            "The servers are stopped now: make demo SERVE=1 keeps them "
            "running, or start",
            "trytond again on this database: %s -c %s" % (
                os.path.relpath(server.executable('trytond')),
                os.path.relpath(settings.config_file)),
            ]
    return lines


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog='demo/run.py',
        description="Run a shop's marketing automation end to end on an "
        "embedded SQLite database (in demo/db, e-mails in demo/outbox).")
    parser.add_argument(
        '--serve', action='store_true',
        help="keep trytond and the SMTP server running until Ctrl-C")
    return parser.parse_args(argv)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    arguments = parse_arguments(argv)
    # Ctrl-C and kill stop the processes started, even when the demo was
    # started in the background (where SIGINT is ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    say = Narrator()
    serving = False
    settings = server.Settings()
    outbox = server.Outbox(settings)
    trytond = server.Server(settings)
    try:
        say.title("Fresh database in %s" % os.path.relpath(settings.db_dir))
        settings.prepare()
        say("  activating marketing_automation and sale with their "
            "dependencies, English and French (trytond-admin, about a "
            "minute)")
        server.create_database(settings)

        say.title("The sample shop and its scenarios (proteus)")
        config = connect(settings)
        the_shop, scenario_ids, activity_ids = setup(config, say)
        for spec in scenarios.specifications():
            say("  scenario %r is running" % (
                    '%s %s' % (the_shop.name, spec.names['en'])))

        say.title("Servers")
        outbox.start()
        say("  SMTP server on 127.0.0.1:%s writing to %s/" % (
                settings.smtp_port, os.path.relpath(settings.outbox_dir)))
        trytond.start()
        say("  trytond on %s (JSON-RPC and the public links)" % settings.url)

        def run_crons():
            say("  trytond-cron -c %s -d %s --once" % (
                    os.path.relpath(settings.config_file), settings.database))
            server.run_crons(settings)

        story = play_story(
            config, the_shop, scenario_ids, activity_ids, run_crons,
            recipients.Browser(), outbox, say=say, title=say.title)

        say.title("Report")
        data = report.collect_report(config, list(scenario_ids.values()))
        say('')
        for line in report.format_report(data):
            say(line)
        say('')
        say("%d e-mails in %s/ (open them with any mail client), e.g.:" % (
                len(outbox), os.path.relpath(settings.outbox_dir)))
        names = _activity_names()
        for (key, language), path in sorted(
                story['samples'].items(), key=lambda i: i[1]):
            say("  %s  %s (%s)" % (
                    os.path.relpath(path), names.get(key, key), language))
        say("Logs and configuration: %s/" % os.path.relpath(settings.db_dir))
        for line in connection_help(settings, arguments.serve):
            say(line)
        say("Done in %.0f s." % (time.monotonic() - say.start))
        if arguments.serve:
            say('')
            say("Serving on %s: click the links of the e-mails in %s/ or "
                "connect a client." % (
                    settings.url, os.path.relpath(settings.outbox_dir)))
            say("Press Ctrl-C to stop.")
            serving = True
            while trytond.running:
                time.sleep(1)
            say("trytond stopped, see %s" % settings.log('trytond'))
            return 1
        return 0
    except KeyboardInterrupt:
        say('')
        say("Stopped.")
        return 0 if serving else 130
    except server.ProcessError as error:
        say('')
        say("Error: %s" % error)
        return 1
    finally:
        trytond.stop()
        outbox.stop()
