# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
from collections import defaultdict

from sql import Null
from sql.functions import DateTrunc

from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import fields
from trytond.tools import grouped_slice
from trytond.tools.chart import sparkline
from trytond.transaction import Transaction

TREND_DAYS = 30


def rate(numerator, denominator, digits=4):
    "Return numerator / denominator rounded, or 0 when nothing to divide"
    if not denominator:
        return 0.
    return round((numerator or 0) / denominator, digits)


def email_sent_where(record_activity, activity):
    """Return the SQL condition of the record activities that sent an e-mail

    record_activity and activity are the tables of the record activities and
    of their activities, joined."""
    # The engine notes on a done record activity why it sent nothing; an
    # e-mail counts once the SMTP server accepted it (before the hand-off
    # was recorded, every e-mail done was sent)
    return ((record_activity.state == 'done')
        & (record_activity.note == Null)
        & (activity.action == 'send_email')
        & ((record_activity.email_handoff == Null)
            | (record_activity.email_handoff == 'sent')))


# The reasons of skipping counted apart, by the suffix of their counter;
# the others (and the notes of older versions, without reason) are "other"
SKIP_REASON_GROUPS = {
    'no_address': ['no_address', 'invalid_address'],
    'opted_out': ['opted_out', 'unsubscribed'],
    'suppressed': ['suppressed'],
    'condition': ['condition_false'],
    }


def email_skipped_where(record_activity):
    """Return the SQL condition of the record activities done without acting

    An interrupted e-mail has a note but may have been sent."""
    return ((record_activity.state == 'done')
        & (record_activity.note != Null)
        & ((record_activity.email_handoff == Null)
            | (record_activity.email_handoff != 'interrupted')))


def daily_trend(
        table, key, date, aggregates, compute, ids, where=None, pruned=None):
    """Return {id: sparkline} of compute(*aggregates) per day

    over the last TREND_DAYS days, with one grouped query per slice of ids;
    pruned is (table, key, day, aggregates, where) of the pruned statistics
    whose aggregates are added to those of table (day is a date column)"""
    cursor = Transaction().connection.cursor()
    today = dt.date.today()
    start = dt.datetime.combine(
        today - dt.timedelta(days=TREND_DAYS - 1), dt.time())
    day = DateTrunc('day', date)
    sums = defaultdict(dict)

    def add(rows):
        for key_id, day_value, *row in rows:
            # SQLite returns text, PostgreSQL a datetime
            day_key = str(day_value)[:10]
            previous = sums[key_id].get(day_key)
            if previous:
                row = [(a or 0) + (b or 0) for a, b in zip(previous, row)]
            sums[key_id][day_key] = row
    for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
        sub_ids = list(sub_ids)
        condition = fields.SQL_OPERATORS['in'](key, sub_ids) & (date >= start)
        if where is not None:
            condition &= where
        # Grouping by the alias, as the expression holds a parameter
        cursor.execute(*table.select(
                key, day.as_('day'), *aggregates,
                where=condition,
                group_by=[key, day.as_('day')]))
        add(cursor)
        if pruned is not None:
            (pruned_table, pruned_key, pruned_day, pruned_aggregates,
                pruned_where) = pruned
            cursor.execute(*pruned_table.select(
                    pruned_key, pruned_day, *pruned_aggregates,
                    where=fields.SQL_OPERATORS['in'](pruned_key, sub_ids)
                    & (pruned_day >= start.date()) & pruned_where,
                    group_by=[pruned_key, pruned_day]))
            add(cursor)
    days = [
        (start.date() + dt.timedelta(days=i)).isoformat()
        for i in range(TREND_DAYS)]
    return {
        i: sparkline([
                compute(*sums[i][d]) if d in sums[i] else 0 for d in days])
        if sums[i] else ''
        for i in ids}
