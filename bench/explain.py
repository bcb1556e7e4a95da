# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The plans of the SQL statements run during the phases (PostgreSQL)

While recording, each statement a trytond cursor of this process executes
(the engine, the crons' methods and the public routes driven in-process)
is kept once per text, the lists of parameters folded into one: the
sample kept is the one with the most values, as a batch runs it.  At
the end, after an ANALYZE as autovacuum would run, each one is EXPLAINed
(without ANALYZE: nothing runs) with its own parameters.  The failures
are the sequential scans (or whole index reads) of the tables that grow
with the records (from MIN_ROWS rows), but those whose filter keeps most
of the table, as a statement reading most rows must (e.g. the funnel of
the month when all the records entered this month)."""
import re
from collections import namedtuple

# The tables that grow with the parties, the records, the e-mails and the
# events: a sequential scan of any of them costs O(rows) per statement
BIG_TABLES = {
    'marketing_automation_record',
    'marketing_automation_record_activity',
    'marketing_automation_link_click',
    'marketing_automation_conversion',
    'marketing_automation_consent',
    'marketing_automation_suppression',
    'party_party',
    'party_contact_mechanism',
    'party_party-unsubscribed-marketing_automation_scenario',
    'ir_email',
    'sale_sale',
    }
EXPLAINED = ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'WITH')
_PARAMETERS = re.compile(r'%s(?:\s*,\s*%s)+')
_ROWS = re.compile(r'\(%s(?:, %s)*\)(?:\s*,\s*\(%s(?:, %s)*\))+')
_SPACES = re.compile(r'\s+')
# A sequential scan, or an index read whole (no condition on it)
_SCAN = re.compile(r'(Seq Scan|Index Scan using \S+|Index Only Scan using \S+)'
    r' on "?([\w-]+)"?.*? rows=(\d+)')
_WORKERS = re.compile(r'Workers Planned: (\d+)')
_TOTAL_COST = re.compile(r'cost=[\d.]+\.\.([\d.]+)')
_ARRAY = re.compile(r"'\{([^{}']*)\}'")
# Below this many rows (about a millisecond to read), a sequential scan
# is as good as a few hundred lookups by index: the planner may choose it
MIN_ROWS = 10000
# A scan whose filter keeps this share of the table reads what the
# statement needs
MOST = 0.5
# The values of an array shown in a plan
ARRAY_SHOWN = 5

Plan = namedtuple('Plan', ['statement', 'phases', 'count', 'lines', 'error'])


def normalize(query):
    "Return the text of the query with its lists of parameters folded"
    query = _SPACES.sub(' ', query).strip()
    query = _ROWS.sub('(%s, ...), ...', query)
    return _PARAMETERS.sub('%s, ...', query)


def details(lines, number):
    "Return the lines of the details of the node of the plan at number"
    result = []
    for line in lines[number + 1:]:
        stripped = line.lstrip()
        if (stripped.startswith('->')
                or len(line) - len(stripped) <= indent(lines[number])):
            break
        result.append(stripped)
    return result


def indent(line):
    return len(line) - len(line.lstrip(' -> '))


def stops_early(lines, number):
    """Tell if the node at number is read by a merge join that the planner
    expects to stop before most of it is read (the other side ends
    first): its cost is below that share of the node's"""
    for line in reversed(lines[:number]):
        if indent(line) < indent(lines[number]) and '->' in line or (
                indent(line) == 0):
            if 'Merge' not in line:
                return False
            parent = _TOTAL_COST.search(line)
            node = _TOTAL_COST.search(lines[number])
            return bool(parent and node
                and float(parent.group(1)) < MOST * float(node.group(1)))
    return False


def seq_scans(plan, rows):
    """Return the big tables of rows (name: count) that the plan scans
    sequentially or reads a whole index of, but to keep most of their
    rows"""
    workers = max(
        [int(w) for l in plan.lines for w in _WORKERS.findall(l)] or [0])
    tables = set()
    for number, line in enumerate(plan.lines):
        match = _SCAN.search(line)
        if not match or rows.get(match.group(2), 0) < MIN_ROWS:
            continue
        scan, table, estimate = match.groups()
        estimate = int(estimate)
        node = details(plan.lines, number)
        if scan != 'Seq Scan' and (
                any(l.startswith('Index Cond:') for l in node)
                or stops_early(plan.lines, number)):
            continue
        if 'Parallel' in line:
            # The estimate is that of each process
            estimate *= workers + 1
        filtered = any(l.startswith('Filter:') for l in node)
        if filtered:
            # It reads the whole table to keep the estimate
            scanned = estimate < MOST * rows[table]
        elif scan == 'Seq Scan':
            scanned = True
        else:
            # A whole index (e.g. of the few opted-out parties) without
            # filter reads the rows of the estimate
            scanned = estimate >= MIN_ROWS
        if scanned:
            tables.add(table)
    return sorted(tables)


def shorten_arrays(line):
    "Return the line of a plan with its long arrays of values cut"
    def shorten(match):
        values = match.group(1).split(',')
        if len(values) <= ARRAY_SHOWN:
            return match.group(0)
        return "'{%s,...}' (%d values)" % (
            ','.join(values[:ARRAY_SHOWN]), len(values))
    return _ARRAY.sub(shorten, line)


def size(params):
    "Return the number of values of the parameters, lists unfolded"
    return sum(len(p) if isinstance(p, (list, tuple)) else 1
        for p in params or ())


class Sample:
    "A statement as it ran: its text, parameters and where it ran"

    def __init__(self, query, params):
        self.query = query
        self.params = params
        self.count = 0
        self.phases = []

    def add(self, query, params, phase):
        self.count += 1
        if phase not in self.phases:
            self.phases.append(phase)
        if size(params) > size(self.params):
            self.query, self.params = query, params


class StatementRecorder:
    "Record the distinct statements that trytond's cursors execute"

    def __init__(self):
        self.samples = {}
        self.phase = None
        self.original = None

    def install(self):
        "Wrap the execute method of trytond's PostgreSQL cursors"
        from trytond.backend.postgresql.database import LoggingCursor
        recorder = self
        self.original = original = LoggingCursor.execute

        def execute(cursor, query, params=None, **kwargs):
            if recorder.phase is not None and isinstance(query, str):
                recorder.add(query, params)
            return original(cursor, query, params, **kwargs)
        LoggingCursor.execute = execute

    def uninstall(self):
        from trytond.backend.postgresql.database import LoggingCursor
        if self.original is not None:
            LoggingCursor.execute = self.original
            self.original = None

    def add(self, query, params):
        text = normalize(query)
        if not text.upper().startswith(EXPLAINED):
            return
        sample = self.samples.get(text)
        if sample is None:
            sample = self.samples[text] = Sample(query, params)
        sample.add(query, params, self.phase)

    def record(self, phase):
        "Return a context manager recording the statements of the phase"
        recorder = self

        class Recording:
            def __enter__(self):
                recorder.phase = phase

            def __exit__(self, *exc_info):
                recorder.phase = None
        return Recording()

    def explain(self, db):
        """Return the plans of the recorded statements, most run first,
        and the rows of the big tables"""
        from trytond.transaction import Transaction
        db.analyze()
        plans = []
        with Transaction().start(db.name, 0) as transaction:
            cursor = transaction.connection.cursor()
            cursor.execute(
                'SELECT relname, reltuples FROM pg_class '
                "WHERE relkind = 'r' AND relname = ANY (%s)",
                (sorted(BIG_TABLES),))
            rows = {name: int(max(count, 0)) for name, count in cursor}
            for text, sample in sorted(
                    self.samples.items(), key=lambda i: -i[1].count):
                cursor.execute('SAVEPOINT explain')
                try:
                    cursor.execute('EXPLAIN ' + sample.query, sample.params)
                    lines, error = [l for l, in cursor.fetchall()], None
                except Exception as exception:
                    cursor.execute('ROLLBACK TO SAVEPOINT explain')
                    lines, error = [], str(exception).strip()
                else:
                    cursor.execute('RELEASE SAVEPOINT explain')
                plans.append(Plan(
                        text, sample.phases, sample.count,
                        [shorten_arrays(l) for l in lines], error))
            transaction.rollback()
        return plans, rows


def write_plans(plans, rows, path, title):
    """Write the plans to path; return the (statement, tables) scanning
    a big table of at least MIN_ROWS rows to keep less than most of it"""
    failures = []
    with open(path, 'w') as fp:
        fp.write('%s\n%d distinct statements\nrows: %s\n' % (
                title, len(plans), ', '.join(
                    '%s %s' % i for i in sorted(rows.items()))))
        for number, plan in enumerate(plans, 1):
            tables = seq_scans(plan, rows)
            if tables:
                failures.append((plan.statement, tables))
            fp.write('\n%s\n#%d, run %d times in %s\n%s\n\n' % (
                    '-' * 72, number, plan.count, ', '.join(plan.phases),
                    plan.statement))
            if plan.error:
                fp.write('EXPLAIN failed: %s\n' % plan.error)
            for line in plan.lines:
                fp.write('    %s\n' % line)
            for table in tables:
                fp.write('SEQ SCAN OF A BIG TABLE: %s\n' % table)
    return failures
