# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The records that entered each scenario, counted per day as they enter

The funnel reads these counts instead of the records: its cost follows the
days of the period, not the records that entered in it.  Each enrolment
batch, creation, deletion or change of scenario of records through the
model adds a row per scenario and day (negative for those leaving); the
rows of a day are summed when read."""
from sql import Literal
from sql.aggregate import Count

from trytond import backend
from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import Index, ModelSQL, fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect

_IN = fields.SQL_OPERATORS['in']


class EnrolledStatistics(ModelSQL):
    "The records that entered a scenario on a day"
    __name__ = 'marketing.automation.statistics.enrolled'
    __string__ = "Marketing Enrolled Statistics"

    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario", required=True,
        ondelete='CASCADE')
    date = fields.Date("Date", required=True)
    record_count = fields.Integer("Records", required=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.scenario, Index.Range()), (t.date, Index.Range())))

    @classmethod
    def __register__(cls, module):
        exists = backend.TableHandler.table_exist(cls._table)
        super().__register__(module)
        if not exists:
            # The records enrolled before the counts existed
            cls.fill()

    @classmethod
    def fill(cls):
        "Count all the records, the counts being empty"
        cls._add(lambda record: Literal(True))

    @classmethod
    def add_entered(cls, scenario_id, count, created):
        """Count the count records that entered the scenario at created, the
        SQL expression of their creation date"""
        if not count:
            return
        table = cls.__table__()
        transaction = Transaction()
        # The count of the batch's insert: no statement reads it back
        day = dialect.period_start(created, 'day')
        transaction.connection.cursor().execute(*table.insert(
                [table.scenario, table.date, table.record_count,
                    table.create_uid, table.create_date],
                [[scenario_id, day, count, transaction.user, dialect.now()]]))

    @classmethod
    def add_records(cls, record_ids, sign=1):
        "Count the records of ids, or discount them when sign is -1"
        for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
            sub_ids = list(sub_ids)
            cls._add(lambda record: _IN(record.id, sub_ids), sign)

    @classmethod
    def _add(cls, where, sign=1):
        "Insert the counts per scenario and day of the records where"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        record = Record.__table__()
        table = cls.__table__()
        transaction = Transaction()
        day = dialect.period_start(record.create_date, 'day')
        transaction.connection.cursor().execute(*table.insert(
                [table.scenario, table.date, table.record_count,
                    table.create_uid, table.create_date],
                record.select(
                    record.scenario, day.as_('day'), Count(record.id) * sign,
                    Literal(transaction.user), dialect.now(),
                    where=where(record),
                    # By its alias: written again, the expression would
                    # bring its own parameters, which PostgreSQL cannot
                    # tell equal to those of the select
                    group_by=[record.scenario, day.as_('day')])))
