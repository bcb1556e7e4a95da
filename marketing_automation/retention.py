# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Retention: the old data of the finished records pruned in batches

The record activities, archived e-mails and conversions of a record go
together once nothing of the record waits and nothing changed for the
retention period; the clicks per link go by their day.  Before each batch
is deleted, its counts are added, in the same transaction, to the pruned
statistics, which every statistic and report adds to what is left."""
import datetime as dt
import logging
import time

from sql import Literal, Null
from sql.aggregate import Count, Sum
from sql.conditionals import Case, Coalesce
from sql.operators import Exists

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import Index, ModelSQL, fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect, engine
from .statistics import (
    SKIP_REASON_GROUPS, email_sent_where, email_skipped_where)

logger = logging.getLogger(__name__)

_IN = fields.SQL_OPERATORS['in']
# A hand-off not finished: the e-mail may still be sent or be reviewed
UNFINISHED_HANDOFFS = ['pending', 'sending', 'interrupted']


def retention_days():
    "Return the days of the retention, 0 when pruning is off"
    return max(config.getint(
            'marketing', 'automation_retention_days', default=0) or 0, 0)


def retention_cutoff():
    "Return the time before which the data may be pruned, or None when off"
    days = retention_days()
    if days:
        return dt.datetime.now() - dt.timedelta(days=days)


def _conversion_table():
    "Return the table of the conversions or None without the sale module"
    try:
        Conversion = Pool().get('marketing.automation.conversion')
    except KeyError:
        return None
    return Conversion.__table__()


def _flag(condition):
    return Sum(Case((condition, 1), else_=0))


class PrunedStatistics(ModelSQL):
    """The counts of the data pruned, per activity and day: those of the
    record activities (dated when due), of the clicks per link or of the
    conversions, as the kind says; the counters of the other kinds are
    zero"""
    __name__ = 'marketing.automation.statistics.pruned'
    __string__ = "Marketing Pruned Statistics"

    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario", required=True,
        ondelete='CASCADE')
    activity = fields.Many2One(
        'marketing.automation.activity', "Activity", required=True,
        ondelete='CASCADE')
    kind = fields.Selection([
            ('record_activity', "Record Activities"),
            ('link_click', "Clicks per Link"),
            ('conversion', "Conversions"),
            ], "Kind", required=True)
    date = fields.Date(
        "Date")
    url = fields.Char("URL")
    record_count = fields.Integer("Records")
    record_count_cancelled = fields.Integer("Cancelled")
    record_count_failed = fields.Integer("Failed")
    record_count_skipped = fields.Integer("Skipped")
    record_count_skipped_no_address = fields.Integer("Skipped: No Address")
    record_count_skipped_opted_out = fields.Integer("Skipped: Opted Out")
    record_count_skipped_suppressed = fields.Integer("Skipped: Suppressed")
    record_count_skipped_condition = fields.Integer("Skipped: Condition")
    email_sent = fields.Integer("Emails Sent")
    email_bounced = fields.Integer("Emails Bounced")
    email_opened = fields.Integer("Emails Opened")
    email_clicked = fields.Integer("Emails Clicked")
    email_unsubscribed = fields.Integer("Unsubscribed")
    email_converted = fields.Integer("Emails Converted")
    clicks = fields.Integer("Clicks")
    conversion_count = fields.Integer("Conversions")
    conversion_amount = fields.Numeric("Conversion Amount", digits=(15, 2))

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.activity, Index.Range()),
                    (t.date, Index.Range())),
                Index(t, (t.scenario, Index.Range()),
                    (t.date, Index.Range())),
                })

    @classmethod
    def counters(cls):
        "Return the names of the counted columns"
        return [n for n, f in cls._fields.items()
            if isinstance(f, (fields.Integer, fields.Numeric))
            and n not in {'id', 'create_uid', 'write_uid'}]

    @classmethod
    def _insert(cls, kind, query, names):
        """Insert the rows of the kind from query: scenario, activity, date,
        url and the counters named, the others zero"""
        table = cls.__table__()
        counters = cls.counters()
        columns = {n: Literal(0) for n in counters}
        columns.update((n, getattr(query, n)) for n in names)
        Transaction().connection.cursor().execute(*table.insert(
                [table.kind, table.scenario, table.activity, table.date,
                    table.url, table.create_uid, table.create_date]
                + [getattr(table, n) for n in counters],
                query.select(
                    Literal(kind), query.scenario, query.activity,
                    query.date, query.url,
                    Literal(Transaction().user), dialect.now(),
                    *(columns[n] for n in counters))))

    @classmethod
    def prune(cls, commit=True):
        """Prune the data older than the retention period

        Each batch is committed on its own unless commit is False (then
        all run in the current transaction)."""
        cutoff = retention_cutoff()
        if cutoff is None:
            return
        batch_size = config.getint(
            'marketing', 'automation_retention_batch', default=1000)
        for scenario_id, scenario_cutoff in cls._scenario_cutoffs(cutoff):
            cls._run_batches(
                lambda after: cls.prune_records(
                    scenario_id, scenario_cutoff, after, batch_size),
                commit)
        cls._run_batches(
            lambda after: cls.prune_link_clicks(
                cutoff.date(), after, batch_size),
            commit)

    @classmethod
    def _run_batches(cls, batch, commit):
        "Run batch(after id) until it returns None, committing each one"
        after = 0
        while after is not None:
            started = time.monotonic()
            if commit:
                with Transaction().new_transaction() as transaction:
                    dialect.close_at_end(transaction)
                    after = batch(after)
                    transaction.commit()
            else:
                after = batch(after)
            logger.debug(
                "pruned a batch in %.1f ms",
                (time.monotonic() - started) * 1000)

    @classmethod
    def _scenario_cutoffs(cls, cutoff):
        """Yield the scenarios that ran with the time before which their
        data may be pruned"""
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        scenarios = Scenario.search(
            [('state', 'in', ['running', 'stopped'])], order=[('id', 'ASC')])
        for scenario in scenarios:
            # A sale may still be attributed to a touch within the goal
            # window (see conversion.py)
            window = getattr(scenario, 'goal_window', None)
            if getattr(scenario, 'goal', None) and window:
                yield scenario.id, cutoff - window
            else:
                yield scenario.id, cutoff

    @classmethod
    def finished_records(cls, scenario_id, cutoff, after_id, limit):
        """Return the ids after after_id of the records of the scenario with
        something to prune and nothing changed since cutoff, locked"""
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        record = Record.__table__()
        record_activity = RecordActivity.__table__()
        pending = RecordActivity.__table__()
        cursor = Transaction().connection.cursor()
        # The bounds on the record of the sub-queries are redundant but let
        # PostgreSQL start its scans of their index after the last batch
        not_finished = Exists(pending.select(Literal(1),
                where=(pending.record == record.id)
                & (pending.record > after_id)
                & ((pending.state == 'waiting')
                    | _IN(pending.email_handoff, UNFINISHED_HANDOFFS)
                    | (Coalesce(pending.write_date, pending.create_date)
                        >= cutoff))))
        query = record.select(record.id,
            where=(record.scenario == scenario_id) & (record.id > after_id)
            & Exists(record_activity.select(Literal(1),
                    where=(record_activity.record == record.id)
                    & (record_activity.record > after_id)))
            & ~not_finished,
            order_by=[record.id.asc], limit=limit)
        # Another pruner skips them; the engine waits for the commit
        cursor.execute(*dialect.lock_skip_locked(query, record))
        return [i for i, in cursor]

    @classmethod
    def prune_records(cls, scenario_id, cutoff, after_id, limit):
        """Prune a batch of the finished records of the scenario after
        after_id; return the last id or None when there are no more"""
        record_ids = cls.finished_records(
            scenario_id, cutoff, after_id, limit)
        if not record_ids:
            return None
        for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
            sub_ids = list(sub_ids)
            cls._summarize_record_activities(sub_ids)
            cls._prune_conversions(sub_ids)
            cls._delete_of_records(sub_ids)
        engine.clear_cache()
        return record_ids[-1]

    @classmethod
    def _summarize_record_activities(cls, record_ids):
        "Add the counts of the record activities of the records"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Activity = pool.get('marketing.automation.activity')
        record = Record.__table__()
        record_activity = RecordActivity.__table__()
        activity = Activity.__table__()
        state = record_activity.state
        sent = email_sent_where(record_activity, activity)
        skipped = email_skipped_where(record_activity)
        counts = {
            'record_count': _flag(state == 'done'),
            'record_count_cancelled': _flag(state == 'cancelled'),
            'record_count_failed': _flag(state == 'failed'),
            'record_count_skipped': _flag(skipped),
            **{'record_count_skipped_' + group: _flag(
                    skipped & _IN(record_activity.skip_reason, reasons))
                for group, reasons in SKIP_REASON_GROUPS.items()},
            'email_sent': _flag(sent),
            'email_bounced': _flag((state == 'done')
                & (record_activity.email_bounced == Literal(True))),
            'email_opened': _flag(
                sent & (record_activity.email_opened == Literal(True))),
            'email_clicked': _flag(
                sent & (record_activity.email_clicked == Literal(True))),
            'email_unsubscribed': _flag(
                sent & (record.blocked == Literal(True))),
            }
        conversion = _conversion_table()
        if conversion is not None:
            # Restricted to the records: PostgreSQL may hash the sub-query
            counts['email_converted'] = _flag(sent & Exists(
                    conversion.select(Literal(1),
                        where=(conversion.record_activity
                            == record_activity.id)
                        & _IN(conversion.record, record_ids))))
        day = dialect.period_start(record_activity.at, 'day')
        query = (record_activity
            .join(record, condition=record.id == record_activity.record)
            .join(activity, condition=activity.id == record_activity.activity)
            .select(
                activity.scenario.as_('scenario'),
                record_activity.activity.as_('activity'),
                day.as_('date'),
                Literal(None).as_('url'),
                *(c.as_(n) for n, c in counts.items()),
                where=_IN(record_activity.record, record_ids)
                & _IN(record.id, record_ids),
                group_by=[activity.scenario, record_activity.activity,
                    day.as_('date')]))
        cls._insert('record_activity', query, counts)

    @classmethod
    def _prune_conversions(cls, record_ids):
        "Add the counts of the conversions of the records and delete them"
        conversion = _conversion_table()
        if conversion is None:
            return
        cursor = Transaction().connection.cursor()
        where = _IN(conversion.record, record_ids)
        day = dialect.period_start(conversion.date, 'day')
        counts = {
            'conversion_count': Count(conversion.id),
            'conversion_amount': Sum(Coalesce(conversion.amount, 0)),
            }
        cls._insert('conversion', conversion.select(
                conversion.scenario.as_('scenario'),
                conversion.activity.as_('activity'),
                day.as_('date'),
                Literal(None).as_('url'),
                *(c.as_(n) for n, c in counts.items()),
                where=where,
                group_by=[conversion.scenario, conversion.activity,
                    day.as_('date')]),
            counts)
        cursor.execute(*conversion.delete(where=where))

    @classmethod
    def _delete_of_records(cls, record_ids):
        "Delete the archived e-mails and the record activities of records"
        pool = Pool()
        Email = pool.get('ir.email')
        EmailAddress = pool.get('ir.email.address')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Suppression = pool.get('marketing.automation.suppression')
        email = Email.__table__()
        address = EmailAddress.__table__()
        record_activity = RecordActivity.__table__()
        suppression = Suppression.__table__()
        cursor = Transaction().connection.cursor()
        emails = _IN(email.marketing_automation_record, record_ids)
        # What the foreign keys do on PostgreSQL, SQLite does not
        cursor.execute(*address.delete(
                where=address.email.in_(email.select(email.id, where=emails))))
        cursor.execute(*email.delete(where=emails))
        of_records = record_activity.select(
            record_activity.id,
            where=_IN(record_activity.record, record_ids))
        cursor.execute(*suppression.update(
                [suppression.record_activity], [Null],
                where=suppression.record_activity.in_(of_records)))
        cursor.execute(*record_activity.delete(
                where=_IN(record_activity.record, record_ids)))

    @classmethod
    def prune_link_clicks(cls, cutoff, after_id, limit):
        """Prune a batch of the clicks per link of the days before cutoff
        after after_id; return the last id or None when there are no more"""
        pool = Pool()
        LinkClick = pool.get('marketing.automation.link.click')
        Activity = pool.get('marketing.automation.activity')
        click = LinkClick.__table__()
        activity = Activity.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*dialect.lock_skip_locked(click.select(click.id,
                    where=(click.date < cutoff) & (click.id > after_id),
                    order_by=[click.id.asc], limit=limit), click))
        ids = [i for i, in cursor]
        if not ids:
            return None
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            where = _IN(click.id, list(sub_ids))
            cls._insert('link_click', click.join(activity,
                    condition=activity.id == click.activity).select(
                    activity.scenario.as_('scenario'),
                    click.activity.as_('activity'),
                    click.date.as_('date'),
                    click.url.as_('url'),
                    Count(click.id).as_('clicks'),
                    where=where,
                    group_by=[activity.scenario, click.activity,
                        click.date, click.url]),
                ['clicks'])
            cursor.execute(*click.delete(where=where))
        return ids[-1]
