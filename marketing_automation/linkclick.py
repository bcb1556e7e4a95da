# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The clicks per link destination: one row per genuine click, with its
activity, destination and day only

Insert-only: each click is a request of its own, and concurrent updates
of one counter row would conflict (PostgreSQL runs trytond's transactions
in repeatable read) where inserts never do.  The reporting adds them up."""
import datetime as dt

from sql import Flavor, Literal

from trytond.model import Index, ModelSQL, fields
from trytond.pool import Pool
from trytond.transaction import Transaction


class LinkClick(ModelSQL):
    __name__ = 'marketing.automation.link.click'

    activity = fields.Many2One(
        'marketing.automation.activity', "Activity",
        required=True, ondelete='CASCADE')
    url = fields.Char("URL", required=True)
    date = fields.Date("Date", required=True)
    _add_statements = {}

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                # The reporting groups per activity and period
                Index(t,
                    (t.activity, Index.Range()),
                    (t.date, Index.Range())),
                # The pruning deletes by date
                Index(t, (t.date, Index.Range())),
                })

    @classmethod
    def add(cls, record_activity, url):
        "Count a click on the link to url of the record activity's e-mail"
        cursor = Transaction().connection.cursor()
        today = dt.date.today()
        # Neither the record activity nor the time of the click are kept:
        # the clicks of an e-mail cannot be told from those of its audience
        cursor.execute(cls._add_statement(), (
                url, today, 0, dt.datetime.combine(today, dt.time()),
                record_activity.id))

    @classmethod
    def _add_statement(cls):
        "Return the SQL inserting a click from the values of add"
        # Each click is a request: python-sql takes longer to build the
        # statement than the database to run it, so it is built once per
        # parameter style
        paramstyle = Flavor.get().paramstyle
        statement = cls._add_statements.get(paramstyle)
        if statement is None:
            pool = Pool()
            RecordActivity = pool.get('marketing.automation.record.activity')
            table = cls.__table__()
            record_activity = RecordActivity.__table__()
            # One statement: the ORM would read the whole record activity
            # for its activity
            values = ('url', 'date', 'uid', 'create_date', 'id')
            statement, params = tuple(table.insert(
                    [table.activity, table.url, table.date,
                        table.create_uid, table.create_date],
                    record_activity.select(
                        record_activity.activity,
                        *(Literal(v) for v in values[:-1]),
                        where=record_activity.id == Literal(values[-1]))))
            assert params == values, params
            cls._add_statements[paramstyle] = statement
        return statement
