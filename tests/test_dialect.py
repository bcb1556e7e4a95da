# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The functions of dialect.py on the backend of the test run

The CI runs this file on SQLite and on PostgreSQL."""
import datetime as dt
import re

from sql import Cast, Literal, Select
from sql.functions import CurrentTimestamp

from trytond.modules.marketing_automation import dialect
from trytond.pool import Pool
from trytond.tests.test_tryton import DBTestCase, with_transaction
from trytond.transaction import Transaction

HEX32 = re.compile(r'^[0-9a-f]{32}$')


class DialectTestCase(DBTestCase):
    "Test the SQL dialect helpers"
    module = 'marketing_automation'

    def _scenario(self):
        Scenario = Pool().get('marketing.automation.scenario')
        scenario, = Scenario.create([{
                    'name': "Dialect", 'model': 'party.party'}])
        return scenario

    def _insert_records(self, scenario, references, skip_duplicates=False):
        Record = Pool().get('marketing.automation.record')
        table = Record.__table__()
        cursor = Transaction().connection.cursor()
        on_conflict = None
        if skip_duplicates:
            on_conflict = dialect.insert_on_conflict_nothing(table)
        cursor.execute(*table.insert(
                [table.scenario, table.record, table.uuid, table.blocked],
                [[scenario.id, r, dialect.token(), False]
                    for r in references],
                on_conflict=on_conflict))

    def _records(self, scenario):
        Record = Pool().get('marketing.automation.record')
        table = Record.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(
                table.record, where=table.scenario == scenario.id,
                order_by=[table.record.asc]))
        return [r for r, in cursor]

    @with_transaction()
    def test_token(self):
        "Test the SQL tokens are distinct 32 lowercase hexadecimal digits"
        Lang = Pool().get('ir.lang')
        table = Lang.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(dialect.token(), dialect.token()))
        tokens = [t for row in cursor for t in row]
        self.assertGreater(len(tokens), 2)
        for token in tokens:
            self.assertRegex(token, HEX32)
        self.assertEqual(len(set(tokens)), len(tokens))

    @with_transaction()
    def test_now(self):
        "Test now is the clock of the transaction"
        cursor = Transaction().connection.cursor()
        cursor.execute(*Select([dialect.now(), CurrentTimestamp()]))
        now, current = cursor.fetchone()
        self.assertEqual(now, current)

    @with_transaction()
    def test_schedule_time(self):
        "Test the schedule time is now without microseconds"
        before = dt.datetime.now().replace(microsecond=0)
        time = dialect.schedule_time()
        self.assertEqual(time.microsecond, 0)
        self.assertGreaterEqual(time, before)
        self.assertLessEqual(time, dt.datetime.now())

    @with_transaction()
    def test_insert_on_conflict_nothing(self):
        "Test the insert on conflict does nothing on a duplicate"
        Record = Pool().get('marketing.automation.record')
        if dialect.insert_on_conflict_nothing(Record.__table__()) is None:
            self.skipTest("the database has no ON CONFLICT")
        scenario = self._scenario()
        self._insert_records(scenario, ['party.party,1'])
        self._insert_records(
            scenario, ['party.party,1', 'party.party,2'],
            skip_duplicates=True)
        self.assertEqual(
            self._records(scenario), ['party.party,1', 'party.party,2'])

    @with_transaction()
    def test_bulk_rows(self):
        "Test the rows of a bulk insert, varying or not, with expressions"
        Record = Pool().get('marketing.automation.record')
        table = Record.__table__()
        cursor = Transaction().connection.cursor()
        scenario = self._scenario()
        types = ['INTEGER', 'VARCHAR', 'VARCHAR', 'BOOLEAN']
        for references in [
                ['party.party,1', 'party.party,2', 'party.party,3'],
                ['party.party,4']]:
            rows = [[scenario.id, r, dialect.token(), False]
                for r in references]
            cursor.execute(*table.insert(
                    [table.scenario, table.record, table.uuid,
                        table.blocked],
                    dialect.bulk_rows(rows, types)))
        self.assertEqual(self._records(scenario), [
                'party.party,%s' % i for i in range(1, 5)])
        cursor.execute(*table.select(
                table.uuid, where=table.scenario == scenario.id))
        tokens = [t for t, in cursor]
        self.assertEqual(len(set(tokens)), 4)
        self.assertTrue(all(HEX32.match(t) for t in tokens))

    @with_transaction()
    def test_bulk_rows_quoting(self):
        "Test bulk rows keep the text that array literals must quote"
        Record = Pool().get('marketing.automation.record')
        table = Record.__table__()
        cursor = Transaction().connection.cursor()
        scenario = self._scenario()
        texts = ['a"b', 'c\\d', '{e,f}', 'NULL', ' g ', 'h\ni', 'é€😀',
            '<p class="x">' * 2000]
        cursor.execute(*table.insert(
                [table.scenario, table.record, table.uuid, table.blocked],
                dialect.bulk_rows(
                    [[scenario.id, t, str(i), i % 2 == 0]
                        for i, t in enumerate(texts)],
                    ['INTEGER', 'VARCHAR', 'VARCHAR', 'BOOLEAN'])))
        cursor.execute(*table.select(table.record, table.blocked,
                where=table.scenario == scenario.id,
                order_by=[table.uuid.asc]))
        self.assertEqual(sorted(cursor), sorted(
                (t, i % 2 == 0) for i, t in enumerate(texts)))

    @with_transaction()
    def test_asynchronous_commit(self):
        "Test the expression turns synchronous_commit off for the transaction"
        expression = dialect.asynchronous_commit()
        if dialect.is_sqlite():
            self.assertIsNone(expression)
            return
        cursor = Transaction().connection.cursor()
        cursor.execute(*Select([expression]))
        cursor.execute('SHOW synchronous_commit')
        self.assertEqual(cursor.fetchone()[0], 'off')

    @with_transaction()
    def test_interval_arithmetic(self):
        "Test SQL adds an interval to a timestamp where it is supported"
        if not dialect.interval_arithmetic_supported():
            self.assertTrue(dialect.is_sqlite())
            return
        cursor = Transaction().connection.cursor()
        date = dt.datetime(2026, 1, 31, 12, 30)
        cursor.execute(*Select([
                    Cast(Literal(date), 'TIMESTAMP')
                    + Literal(dt.timedelta(days=1, minutes=45))]))
        self.assertEqual(cursor.fetchone()[0], dt.datetime(2026, 2, 1, 13, 15))

    @with_transaction()
    def test_savepoint(self):
        "Test the savepoint rolls back the inner work and keeps the outer"
        cursor = Transaction().connection.cursor()
        scenario = self._scenario()
        self._insert_records(scenario, ['party.party,1'])
        with self.assertRaises(ZeroDivisionError):
            with dialect.savepoint(cursor, 'dialect_test'):
                self._insert_records(scenario, ['party.party,2'])
                1 / 0
        self.assertEqual(self._records(scenario), ['party.party,1'])
        with dialect.savepoint(cursor, 'dialect_test'):
            self._insert_records(scenario, ['party.party,3'])
        self.assertEqual(
            self._records(scenario), ['party.party,1', 'party.party,3'])

    def test_savepoint_name(self):
        "Test the savepoint refuses a name that is not an identifier"
        with self.assertRaises(ValueError):
            with dialect.savepoint(None, 'x; DROP TABLE y'):
                pass

    @with_transaction()
    def test_insert_returning(self):
        "Test the insert gives back the key and id of each new row"
        Email = Pool().get('ir.email')
        table = Email.__table__()
        cursor = Transaction().connection.cursor()
        keys = ['<dialect-%s@example.com>' % i for i in range(3)]
        self.assertIsInstance(dialect.returning_supported(), bool)
        pairs = dialect.insert_returning(
            cursor, table, [table.message_id, table.body, table.resource],
            [[k, 'Body', 'res.user,1'] for k in keys], table.message_id)
        cursor.execute(*table.select(
                table.message_id, table.id,
                where=table.message_id.in_(keys)))
        self.assertEqual(sorted(pairs), sorted(cursor))
        self.assertEqual(sorted(k for k, _ in pairs), sorted(keys))

    @with_transaction()
    def test_lock_skip_locked(self):
        "Test the skip-locked query skips the rows locked by another"
        Lang = Pool().get('ir.lang')
        table = Lang.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(
                table.id, order_by=[table.id.asc], limit=2))
        first, second = [i for i, in cursor]
        query = table.select(table.id, where=table.id == first)
        self.assertIs(dialect.lock_skip_locked(query, table), query)
        if not dialect.skip_locked_supported():
            self.assertIsNone(query.for_)
            cursor.execute(*query)
            self.assertEqual([i for i, in cursor], [first])
            return
        cursor.execute(*query)
        self.assertEqual([i for i, in cursor], [first])
        with Transaction().new_transaction() as other:
            other_cursor = other.connection.cursor()
            other_cursor.execute(*dialect.lock_skip_locked(
                    table.select(table.id,
                        where=table.id.in_([first, second]),
                        order_by=[table.id.asc]),
                    table))
            self.assertEqual([i for i, in other_cursor], [second])
            other.rollback()

    @with_transaction()
    def test_close_at_end(self):
        "Test closing at end leaves the transaction usable"
        transaction = Transaction()
        dialect.close_at_end(transaction)
        cursor = transaction.connection.cursor()
        cursor.execute(*Select([Literal(1)]))
        self.assertEqual(cursor.fetchone(), (1,))
