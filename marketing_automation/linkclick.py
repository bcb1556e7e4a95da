# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The clicks per link destination: one row per genuine click, with its
activity, destination and day only

Insert-only: each click is a request of its own, and concurrent updates
of one counter row would conflict (PostgreSQL runs trytond's transactions
in repeatable read) where inserts never do.  The reporting adds them up.
The public route inserts them (events.py)."""
from trytond.model import Index, ModelSQL, fields


class LinkClick(ModelSQL):
    __name__ = 'marketing.automation.link.click'

    activity = fields.Many2One(
        'marketing.automation.activity', "Activity",
        required=True, ondelete='CASCADE')
    url = fields.Char("URL", required=True)
    date = fields.Date("Date", required=True)

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
