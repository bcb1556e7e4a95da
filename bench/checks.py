# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The checks of the outcome of each phase, record by record

The rows of the database are mapped to the number of their party, so that
each check compares sets of numbers with those of workload.expectations()
and names the first differences."""
import datetime as dt
from collections import Counter
from types import SimpleNamespace

from workload import WAITING_DELAY, WAITING_NAME, party_email


class Mismatch(Exception):
    "A count or a state is not what the workload implies"


def check(condition, message, *args):
    if not condition:
        raise Mismatch(message % args if args else message)


def check_set(name, actual, expected):
    actual, expected = set(actual), set(expected)
    if actual != expected:
        missing = sorted(expected - actual)
        extra = sorted(actual - expected)
        raise Mismatch(
            '%s: %s expected, %s found; missing %s%s; unexpected %s%s' % (
                name, len(expected), len(actual),
                missing[:10], '...' if len(missing) > 10 else '',
                extra[:10], '...' if len(extra) > 10 else ''))


EVENT_ACTIVITIES = ['root', 'opened', 'clicked', 'not_clicked']


class Checker:
    "Read the state of the database and compare it with the expectations"

    def __init__(self, db, ids, counter, n, waiting=None):
        self.db = db
        self.ids = ids
        self.counter = counter
        self.n = n
        # The number of waiting parties, None without their scenario
        self.waiting = waiting
        self.record_number = {}

    # State of the database

    def load_record_numbers(self):
        "Map the records of the scenario to the number of their party"
        from trytond.modules.marketing_automation import dialect
        record = self.db.table('marketing.automation.record')
        party = self.db.table('party.party')
        rows = self.db.sql(
            'SELECT r.id, p.code_digit, r.blocked FROM %s AS r '
            'JOIN %s AS p ON r.record = %s || p.id '
            'WHERE r.scenario = %%s' % (
                record, party, "'party.party,'" if dialect.is_sqlite()
                else "'party.party,'::varchar"),
            (self.ids['scenario'],))
        self.record_number = {r: i for r, i, _ in rows}
        return rows

    def activity_states(self, activity):
        "Return the numbers of the parties per state of the activity"
        table = self.db.table('marketing.automation.record.activity')
        rows = self.db.sql(
            'SELECT record, state, at IS NULL, email_opened, email_clicked '
            'FROM %s WHERE activity = %%s' % table, (activity,))
        result = SimpleNamespace(
            rows=len(rows), states={}, unscheduled=set(), scheduled=set(),
            opened=set(), clicked=set(), records=Counter())
        for record, state, no_at, opened, clicked in rows:
            i = self.record_number.get(record, ('?', record))
            result.records[i] += 1
            result.states.setdefault(state, set()).add(i)
            if state == 'waiting':
                (result.unscheduled if no_at else result.scheduled).add(i)
            if opened:
                result.opened.add(i)
            if clicked:
                result.clicked.add(i)
        duplicates = [i for i, c in result.records.items() if c > 1]
        check(not duplicates,
            "activity %s runs several times for the same records: %s",
            activity, duplicates[:10])
        return result

    def states(self, name):
        "Return activity_states of the activity of the workload named so"
        return self.activity_states(self.ids[name])

    def pending_events(self, event):
        """Return the numbers of the parties with a pending event of the
        root e-mail, checking that none has two"""
        pending = self.db.table('marketing.automation.record.activity.event')
        table = self.db.table('marketing.automation.record.activity')
        rows = self.db.sql(
            'SELECT a.record FROM %s AS e JOIN %s AS a '
            'ON a.id = e.record_activity '
            'WHERE a.activity = %%s AND e.%s' % (pending, table, event),
            (self.ids['root'],))
        numbers = Counter(self.record_number.get(r, ('?', r)) for r, in rows)
        twice = [i for i, c in numbers.items() if c > 1]
        check(not twice, "%s pending twice for %s", event, twice[:10])
        return set(numbers)

    def events_snapshot(self):
        "Return the states of the activities the events change"
        return [self.states(name).__dict__ for name in EVENT_ACTIVITIES] + [
            self.pending_events(e) for e in ['email_opened', 'email_clicked']]

    # Checks

    def check_sent(self, expected, total):
        "Check that each expected party got exactly one e-mail"
        counter = self.counter
        addresses = {party_email(i) for i in expected}
        twice = [a for a, c in counter.recipients.items() if c > 1]
        check(not twice, "e-mails sent twice to %s", twice[:10])
        check_set('e-mail recipients', counter.recipients, addresses)
        check(counter.total == total,
            "%s e-mails sent, %s expected", counter.total, total)

    def check_enrolment(self, expect, first=True):
        record = self.db.table('marketing.automation.record')
        rows = self.db.sql(
            'SELECT scenario, COUNT(*), COUNT(DISTINCT record) FROM %s '
            'GROUP BY scenario' % record)
        counts = {s: (c, d) for s, c, d in rows}
        check(counts.get(self.ids['scenario']) == (self.n, self.n),
            "party scenario: %s records (distinct), %s expected",
            counts.get(self.ids['scenario']), self.n)
        sales = len(expect.sales)
        check(counts.get(self.ids['sale_scenario']) == (sales, sales),
            "sale scenario: %s records (distinct), %s expected",
            counts.get(self.ids['sale_scenario']), sales)
        self.load_record_numbers()
        root = self.states('root')
        check_set('root activities scheduled' if first else 'root activities',
            root.scheduled if first else root.records, expect.everyone)
        follow_up = self.states('follow_up')
        check(follow_up.rows == len(expect.sales)
            and len(follow_up.scheduled) == len(expect.sales),
            "sale follow-ups: %s scheduled of %s rows, %s expected",
            len(follow_up.scheduled), follow_up.rows, len(expect.sales))

    def check_waiting(self):
        """Check that each waiting party is enrolled once and still waits

        In SQL, with counts: the waiting parties may be a million."""
        from trytond.modules.marketing_automation import dialect
        if self.waiting is None:
            return
        w = self.waiting
        record = self.db.table('marketing.automation.record')
        record_activity = self.db.table(
            'marketing.automation.record.activity')
        party = self.db.table('party.party')
        email = self.db.table('ir.email')
        scenario = self.ids['waiting_scenario']
        root = self.ids['waiting_root']
        (records, distinct, parties, numbers, low, high, blocked), = (
            self.db.sql(
                'SELECT COUNT(*), COUNT(DISTINCT r.record), COUNT(p.id), '
                'COUNT(DISTINCT p.code_digit), MIN(p.code_digit), '
                'MAX(p.code_digit), '
                'SUM(CASE WHEN r.blocked THEN 1 ELSE 0 END) '
                'FROM %s AS r LEFT JOIN %s AS p '
                'ON r.record = %s || p.id AND p.name LIKE %%s '
                'WHERE r.scenario = %%s' % (
                    record, party, "'party.party,'" if dialect.is_sqlite()
                    else "'party.party,'::varchar"),
                (WAITING_NAME + '%', scenario)))
        check((records, distinct, parties, numbers) == (w, w, w, w)
            and (low, high) == ((1, w) if w else (None, None))
            and not blocked,
            "waiting scenario: %s records of %s distinct records and %s "
            "distinct waiting parties (numbers %s to %s, %s blocked), %s "
            "expected", records, distinct, numbers, low, high, blocked, w)
        # Their only activity is the root, waiting for a month
        later = dt.datetime.now() + WAITING_DELAY - dt.timedelta(days=1)
        rows = self.db.sql(
            'SELECT a.activity, a.state, a.at > %%s, COUNT(*), '
            'COUNT(DISTINCT a.record) FROM %s AS a JOIN %s AS r '
            'ON a.record = r.id WHERE r.scenario = %%s '
            'GROUP BY 1, 2, 3' % (record_activity, record),
            (later, scenario))
        check(rows == ([(root, 'waiting', True, w, w)] if w else []),
            "waiting scenario: record activities %s, %s waiting roots due "
            "in a month expected", rows, w)
        (count,), = self.db.sql(
            'SELECT COUNT(*) FROM %s WHERE activity = %%s' % record_activity,
            (root,))
        check(count == w, "%s waiting roots, %s expected", count, w)
        (archived,), = self.db.sql(
            'SELECT COUNT(*) FROM %s '
            'WHERE marketing_automation_activity = %%s' % email, (root,))
        check(not archived, "%s e-mails archived for waiting parties",
            archived)

    def check_root_sent(self, expect):
        root = self.states('root')
        check_set('root activities done', root.states.get('done', ()),
            expect.everyone)
        for name in ['opened', 'clicked']:
            child = self.states(name)
            check_set('%s children waiting for the event' % name,
                child.unscheduled, expect.everyone)
        child = self.states('not_clicked')
        check_set('not clicked children scheduled', child.scheduled,
            expect.everyone)
        email = self.db.table('ir.email')
        (count,), = self.db.sql(
            'SELECT COUNT(*) FROM %s WHERE marketing_automation_activity = %%s'
            % email, (self.ids['root'],))
        check(count == self.n, "%s e-mails archived, %s expected",
            count, self.n)

    def check_pixel_hits(self, expect):
        root = self.states('root')
        check_set('e-mails opened after the pixel hits', root.opened,
            expect.pixel)
        # The next process schedules their children
        check_set('opens pending', self.pending_events('email_opened'),
            expect.pixel)

    def check_clicks(self, expect):
        root = self.states('root')
        check_set('e-mails opened after the clicks', root.opened,
            expect.opened)
        check_set('e-mails clicked', root.clicked, expect.click)
        check_set('opens pending', self.pending_events('email_opened'),
            expect.opened)
        check_set('clicks pending', self.pending_events('email_clicked'),
            expect.click)

    def check_unsubscribes(self, expect):
        rows = self.load_record_numbers()
        check_set('blocked records', [i for _, i, b in rows if b],
            expect.blocked)
        unsubscribed = self.db.table(
            'party.party-unsubscribed-marketing.automation.scenario')
        party = self.db.table('party.party')
        rows = self.db.sql(
            'SELECT p.code_digit FROM %s AS u JOIN %s AS p ON u.party = p.id '
            'WHERE u.scenario = %%s' % (unsubscribed, party),
            (self.ids['scenario'],))
        check_set('parties unsubscribed', [i for i, in rows], expect.blocked)

    def check_events_unchanged(self, before):
        "Check the events_snapshot() is still before"
        check(before == self.events_snapshot(),
            "repeated events changed the activities")

    def check_children(self, expect):
        for event in ['email_opened', 'email_clicked']:
            check_set('%s pending after the process' % event,
                self.pending_events(event), ())
        opened = self.states('opened')
        check_set('opened children done', opened.states.get('done', ()),
            expect.opened_child_done)
        check_set('opened children waiting (blocked)',
            opened.states.get('waiting', ()), expect.opened_child_waiting
            | (expect.everyone - expect.opened))
        clicked = self.states('clicked')
        check_set('clicked children done', clicked.states.get('done', ()),
            expect.clicked_child_done)
        not_clicked = self.states('not_clicked')
        check_set('not clicked children done',
            not_clicked.states.get('done', ()), expect.not_clicked_done)
        check_set('not clicked children waiting (blocked)',
            not_clicked.states.get('waiting', ()), expect.not_clicked_waiting)
        check_set('not clicked children cancelled',
            not_clicked.states.get('cancelled', ()), expect.click)
        follow_up = self.states('follow_up')
        check(not follow_up.states.get('done'),
            "sale follow-ups ran before their delay")

    def check_conversions(self, expect):
        "The parties who clicked then bought converted, once, for the e-mail"
        from workload import sale_amount
        conversion = self.db.table('marketing.automation.conversion')
        party = self.db.table('party.party')
        rows = self.db.sql(
            'SELECT p.code_digit, c.activity, c.scenario, c.amount '
            'FROM %s AS c JOIN %s AS p ON p.id = c.party' % (
                conversion, party))
        numbers = Counter(i for i, *_ in rows)
        check(all(c == 1 for c in numbers.values()),
            "parties converted more than once")
        check_set('conversions', numbers, expect.converted)
        check({(a, s) for _, a, s, _ in rows}
            <= {(self.ids['root'], self.ids['scenario'])},
            "conversions attributed to another activity than the e-mail")
        revenue = sum(amount for *_, amount in rows)
        expected = sum(sale_amount(i) for i in expect.converted)
        check(revenue == expected,
            "revenue: %s expected, %s found", expected, revenue)

    def check_funnel(self, rows, expect):
        "The funnel of the scenario counts each step of the workload"
        totals = Counter()
        for row in rows:
            if row['scenario'] == self.ids['scenario']:
                for key in ['record_count', 'email_sent', 'email_opened',
                        'email_clicked', 'conversion_count']:
                    totals[key] += row[key]
        check(totals == Counter(
                record_count=self.n, email_sent=self.n,
                email_opened=len(expect.opened),
                email_clicked=len(expect.click),
                conversion_count=len(expect.converted)),
            "funnel: %s", dict(totals))
