# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
from collections import defaultdict

from dateutil.relativedelta import relativedelta
from sql import Literal, Null, Union
from sql.aggregate import Count, Max, Min, Sum
from sql.conditionals import Case, Coalesce, NullIf
from sql.operators import Concat

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.transaction import Transaction

from . import dialect, variants
from .mixin import ActivityActionMixin
from .statistics import (
    SKIP_REASON_GROUPS, email_sent_where, email_skipped_where)


class Context(ModelView):
    __name__ = 'marketing.automation.reporting.context'

    from_date = fields.Date(
        "From Date",
        domain=[
            If(Eval('to_date') & Eval('from_date'),
                ('from_date', '<=', Eval('to_date')),
                ()),
            ])
    to_date = fields.Date(
        "To Date",
        domain=[
            If(Eval('from_date') & Eval('to_date'),
                ('to_date', '>=', Eval('from_date')),
                ()),
            ])
    period = fields.Selection([
            ('year', "Year"),
            ('month', "Month"),
            ('day', "Day"),
            ], "Period", required=True)

    @classmethod
    def default_from_date(cls):
        context = Transaction().context
        if 'from_date' in context:
            return context['from_date']
        return dt.date.today() - relativedelta(months=1)

    @classmethod
    def default_to_date(cls):
        context = Transaction().context
        if 'to_date' in context:
            return context['to_date']
        return dt.date.today()

    @classmethod
    def default_period(cls):
        return Transaction().context.get('period', 'day')


class _Reporting(ModelSQL, ModelView):
    "Shared fields and query of the reporting per period"

    date = fields.Date("Date", help="The start of the period.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(0, ('date', 'DESC'))

    @classmethod
    def _period_where(cls, date_column):
        context = Transaction().context
        where = Literal(True)
        from_date = context.get('from_date')
        to_date = context.get('to_date')
        if from_date:
            where &= date_column >= dt.datetime.combine(from_date, dt.time())
        if to_date:
            where &= date_column < dt.datetime.combine(
                to_date + dt.timedelta(days=1), dt.time())
        return where

    @classmethod
    def _period_where_day(cls, day_column):
        "Return the condition of _period_where on a column of dates"
        context = Transaction().context
        where = Literal(True)
        # Compared with dates, as SQLite compares the text of a date with
        # that of a datetime
        if context.get('from_date'):
            where &= day_column >= context['from_date']
        if context.get('to_date'):
            where &= day_column <= context['to_date']
        return where

    @classmethod
    def _period_date(cls, date_column):
        period = Transaction().context.get('period', 'day')
        if period not in {'year', 'month', 'day'}:
            period = 'day'
        return dialect.period_start(date_column, period)

    @staticmethod
    def _ratio(numerator, denominator):
        return numerator / NullIf(denominator, 0)


def _count_true(condition):
    return Sum(Case((condition, 1), else_=0))


class ScenarioReporting(_Reporting):
    __name__ = 'marketing.automation.reporting.scenario'

    scenario = fields.Many2One('marketing.automation.scenario', "Scenario")
    record_count = fields.Integer(
        "Records", help="The number of records that entered the scenario.")
    record_count_blocked = fields.Integer(
        "Blocked",
        help="The number of records that entered and are now blocked.")
    block_rate = fields.Float(
        "Block Rate", digits=(1, 4),
        help="The share of the records that entered and are now blocked.")

    @classmethod
    def table_query(cls):
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        record = Record.__table__()
        date = cls._period_date(record.create_date)
        count = Count(record.id)
        blocked = _count_true(record.blocked == Literal(True))
        return record.select(
            Min(record.id).as_('id'),
            record.scenario.as_('scenario'),
            date.as_('date'),
            count.as_('record_count'),
            blocked.as_('record_count_blocked'),
            cls.block_rate.sql_cast(
                cls._ratio(cls.block_rate.sql_cast(blocked), count)
                ).as_('block_rate'),
            where=cls._period_where(record.create_date),
            group_by=[record.scenario, date.as_('date')])


class ActivityReporting(ActivityActionMixin, _Reporting):
    __name__ = 'marketing.automation.reporting.activity'

    activity = fields.Many2One('marketing.automation.activity', "Activity")
    record_count = fields.Integer(
        "Records",
        help="The number of records the activity was run for, whether it "
        "acted or skipped them.")
    record_count_skipped = fields.Integer(
        "Skipped",
        help="The number of records the activity ran for without acting.")
    record_count_skipped_no_address = fields.Integer(
        "Skipped: No Address",
        help="The number of records skipped because they have no valid "
        "e-mail address.")
    record_count_skipped_opted_out = fields.Integer(
        "Skipped: Opted Out",
        help="The number of records skipped because their party opted out "
        "of marketing e-mails or unsubscribed from the scenario.")
    record_count_skipped_suppressed = fields.Integer(
        "Skipped: Suppressed",
        help="The number of records skipped because their e-mail address is "
        "on the suppression list.")
    record_count_skipped_condition = fields.Integer(
        "Skipped: Condition",
        help="The number of records skipped because they did not match the "
        "condition.")
    record_count_skipped_other = fields.Integer(
        "Skipped: Other",
        help="The number of records skipped for another reason.")
    email_sent = fields.Integer(
        "Emails Sent", help="The number of e-mails the activity sent.")
    email_bounced = fields.Integer(
        "Emails Bounced",
        help="The number of e-mails sent whose bounce came back.")
    email_opened = fields.Integer(
        "Emails Opened", help="The number of e-mails sent that were opened.")
    email_clicked = fields.Integer(
        "Emails Clicked",
        help="The number of e-mails sent with a link clicked.")
    email_open_rate = fields.Float(
        "Open Rate", digits=(1, 4),
        help="The share of the e-mails sent that were opened.")
    email_click_rate = fields.Float(
        "Click Rate", digits=(1, 4),
        help="The share of the e-mails sent with a link clicked.")
    email_click_through_rate = fields.Float(
        "Click-Through Rate", digits=(1, 4),
        help="The share of the e-mails opened with a link clicked.")

    # The counts summed per activity and period, from the record
    # activities and from the pruned statistics
    _counts = [
        'record_count', 'record_count_skipped',
        *('record_count_skipped_' + g for g in SKIP_REASON_GROUPS),
        'record_count_skipped_other', 'email_sent', 'email_bounced',
        'email_opened', 'email_clicked']

    @classmethod
    def table_query(cls):
        union = Union(cls._record_activity_counts(), cls._pruned_counts(),
            all_=True)
        counts = {
            n: getattr(cls, n).sql_cast(Sum(getattr(union, n)))
            for n in cls._counts}
        ratio = cls._ratio

        def as_float(expression):
            return cls.email_open_rate.sql_cast(expression)
        sent, opened, clicked = (
            counts['email_sent'], counts['email_opened'],
            counts['email_clicked'])
        return union.select(
            Min(union.id).as_('id'),
            union.activity.as_('activity'),
            union.date.as_('date'),
            *(c.as_(n) for n, c in counts.items()),
            as_float(ratio(as_float(opened), sent)).as_('email_open_rate'),
            as_float(ratio(as_float(clicked), sent)).as_('email_click_rate'),
            as_float(ratio(as_float(clicked), opened)).as_(
                'email_click_through_rate'),
            group_by=[union.activity, union.date])

    @classmethod
    def _record_activity_counts(cls):
        "Return the query of the counts of the record activities"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        RecordActivity = pool.get('marketing.automation.record.activity')
        table = RecordActivity.__table__()
        activity = Activity.__table__()
        date = cls._period_date(table.at)
        sent_where = email_sent_where(table, activity)
        skipped_where = email_skipped_where(table)
        counts = {
            'record_count': Count(table.id),
            'record_count_skipped': _count_true(skipped_where),
            **{'record_count_skipped_' + g: _count_true(
                    skipped_where & fields.SQL_OPERATORS['in'](
                        table.skip_reason, reasons))
                for g, reasons in SKIP_REASON_GROUPS.items()},
            'record_count_skipped_other': _count_true(skipped_where & (
                    (table.skip_reason == Null)
                    | ~fields.SQL_OPERATORS['in'](table.skip_reason, [
                            r for g in SKIP_REASON_GROUPS.values()
                            for r in g]))),
            'email_sent': _count_true(sent_where),
            'email_bounced': _count_true(
                table.email_bounced == Literal(True)),
            'email_opened': _count_true(
                sent_where & (table.email_opened == Literal(True))),
            'email_clicked': _count_true(
                sent_where & (table.email_clicked == Literal(True))),
            }
        # Unique across the union: the id of a row of each table
        return table.join(activity, condition=table.activity == activity.id
            ).select(
            (Min(table.id) * 2).as_('id'),
            table.activity.as_('activity'),
            date.as_('date'),
            *(counts[n].as_(n) for n in cls._counts),
            where=(table.state == 'done') & (table.at != Null)
            & cls._period_where(table.at),
            group_by=[table.activity, date.as_('date')])

    @classmethod
    def _pruned_counts(cls):
        "Return the query of the counts of the pruned record activities"
        pool = Pool()
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        pruned = PrunedStatistics.__table__()
        date = cls._period_date(pruned.date)
        counts = {
            n: Sum(getattr(pruned, n)) for n in cls._counts
            if n != 'record_count_skipped_other'}
        counts['record_count_skipped_other'] = Sum(
            pruned.record_count_skipped - sum(
                (getattr(pruned, 'record_count_skipped_' + g)
                    for g in SKIP_REASON_GROUPS), Literal(0)))
        return pruned.select(
            (Min(pruned.id) * 2 + 1).as_('id'),
            pruned.activity.as_('activity'),
            date.as_('date'),
            *(counts[n].as_(n) for n in cls._counts),
            # Those of the record activities not done count nothing here
            where=(pruned.kind == 'record_activity') & (pruned.date != Null)
            & (pruned.record_count > 0)
            & cls._period_where_day(pruned.date),
            group_by=[pruned.activity, date.as_('date')])


class LinkReporting(_Reporting):
    "The clicks per link destination of the activities, per period"
    __name__ = 'marketing.automation.reporting.link'

    activity = fields.Many2One('marketing.automation.activity', "Activity")
    url = fields.Char("URL", help="The destination of the link.")
    clicks = fields.Integer(
        "Clicks",
        help="The number of clicks on the link, each click counted (a "
        "recipient may click several times).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order.insert(1, ('clicks', 'DESC'))

    @classmethod
    def table_query(cls):
        pool = Pool()
        LinkClick = pool.get('marketing.automation.link.click')
        click = LinkClick.__table__()
        date = cls._period_date(click.date)
        where = cls._period_where_day(click.date)
        clicks = click.select(
            (Min(click.id) * 2).as_('id'),
            click.activity.as_('activity'),
            click.url.as_('url'),
            date.as_('date'),
            Count(click.id).as_('clicks'),
            where=where,
            group_by=[click.activity, click.url, date.as_('date')])
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        pruned = PrunedStatistics.__table__()
        pruned_date = cls._period_date(pruned.date)
        pruned_clicks = pruned.select(
            (Min(pruned.id) * 2 + 1).as_('id'),
            pruned.activity.as_('activity'),
            pruned.url.as_('url'),
            pruned_date.as_('date'),
            Sum(pruned.clicks).as_('clicks'),
            where=(pruned.kind == 'link_click')
            & cls._period_where_day(pruned.date),
            group_by=[pruned.activity, pruned.url, pruned_date.as_('date')])
        union = Union(clicks, pruned_clicks, all_=True)
        return union.select(
            Min(union.id).as_('id'),
            union.activity.as_('activity'),
            union.url.as_('url'),
            union.date.as_('date'),
            cls.clicks.sql_cast(Sum(union.clicks)).as_('clicks'),
            group_by=[union.activity, union.url, union.date])


class VariantReporting(ModelSQL, ModelView):
    "The variants of the A/B splits compared, one row per variant"
    __name__ = 'marketing.automation.reporting.variant'

    activity = fields.Many2One('marketing.automation.activity', "Variant")
    scenario = fields.Many2One('marketing.automation.scenario', "Scenario")
    variant_group = fields.Char(
        "Variant Group",
        help="The key of the A/B split: the parent of its variants and the "
        "event they run on.")
    group = fields.Function(fields.Char(
            "A/B Split",
            help="What the variants follow: the parent and the event."),
        'get_group')
    weight = fields.Integer(
        "Weight", help="The weight of the variant in its A/B split.")
    share = fields.Function(fields.Float(
            "Share", digits=(1, 4),
            help="The share of the records that run the variant: its "
            "weight over the weights of its A/B split."),
        'get_comparison')
    email_sent = fields.Integer(
        "Emails Sent",
        help="The number of e-mails the variant sent: the sample size of "
        "its rates.")
    email_opened = fields.Integer(
        "Emails Opened", help="The number of e-mails sent that were opened.")
    email_clicked = fields.Integer(
        "Emails Clicked",
        help="The number of e-mails sent with a link clicked.")
    open_rate = fields.Function(fields.Float(
            "Open Rate", digits=(1, 4),
            help="The share of the e-mails sent that were opened."),
        'get_comparison')
    open_z = fields.Function(fields.Float(
            "Open z", digits=(2, 2),
            help="The z statistic of the two-proportion test of the open "
            "rates: how many standard errors separate this variant from "
            "the best one (from the runner-up for the best one)."),
        'get_comparison')
    open_p_value = fields.Function(fields.Float(
            "Open p-value", digits=(1, 4),
            help="The probability of a difference of open rates at least "
            "this large between this variant and the best one (the "
            "runner-up for the best one) if they performed alike; below "
            "0.05 the difference is commonly called significant."),
        'get_comparison')
    click_rate = fields.Function(fields.Float(
            "Click Rate", digits=(1, 4),
            help="The share of the e-mails sent with a link clicked."),
        'get_comparison')
    click_z = fields.Function(fields.Float(
            "Click z", digits=(2, 2),
            help="The z statistic of the two-proportion test of the click "
            "rates: how many standard errors separate this variant from "
            "the best one (from the runner-up for the best one)."),
        'get_comparison')
    click_p_value = fields.Function(fields.Float(
            "Click p-value", digits=(1, 4),
            help="The probability of a difference of click rates at least "
            "this large between this variant and the best one (the "
            "runner-up for the best one) if they performed alike; below "
            "0.05 the difference is commonly called significant."),
        'get_comparison')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._order = [
            ('scenario', 'ASC'),
            ('variant_group', 'ASC'),
            ('id', 'ASC'),
            ]

    @classmethod
    def proportions(cls):
        """Return the compared proportions as (name, successes field, trials
        field): each name has the fields <name>_rate, <name>_z and
        <name>_p_value with get_comparison as getter"""
        return [
            ('open', 'email_opened', 'email_sent'),
            ('click', 'email_clicked', 'email_sent'),
            ]

    @classmethod
    def measures(cls, record_activity, activity):
        """Return the SQL aggregates of the counted fields by name, on the
        record activities (left) joined to their activity"""
        sent = email_sent_where(record_activity, activity)
        return {
            'email_sent': _count_true(sent),
            'email_opened': _count_true(
                sent & (record_activity.email_opened == Literal(True))),
            'email_clicked': _count_true(
                sent & (record_activity.email_clicked == Literal(True))),
            }

    @classmethod
    def pruned_measures(cls, pruned):
        """Return the columns of the pruned statistics adding to the counted
        fields, by name"""
        return {
            'email_sent': pruned.email_sent,
            'email_opened': pruned.email_opened,
            'email_clicked': pruned.email_clicked,
            }

    @classmethod
    def table_query(cls):
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        RecordActivity = pool.get('marketing.automation.record.activity')
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        activity = Activity.__table__()
        table = RecordActivity.__table__()
        pruned = PrunedStatistics.__table__()
        # As variants.group_key builds it
        negative = ((activity.negative == Literal(True))
            & (activity.event != Null))
        group_key = Concat(
            Concat(Concat(activity.parent, '|'), Coalesce(activity.event, '')),
            Case((negative, '_not'), else_=''))
        measures = cls.measures(table, activity)
        pruned_columns = cls.pruned_measures(pruned)
        pruned_measures = pruned.select(
            pruned.activity.as_('activity'),
            *(Sum(c).as_(n) for n, c in pruned_columns.items()),
            where=pruned.kind == 'record_activity',
            group_by=[pruned.activity])

        def measure(name, expression):
            if name not in pruned_columns:
                return Coalesce(expression, 0)
            # One row of pruned measures per activity, joined to each of
            # its record activities
            return (Coalesce(expression, 0)
                + Coalesce(Max(getattr(pruned_measures, name)), 0))
        return (activity
            .join(table, 'LEFT', condition=table.activity == activity.id)
            .join(pruned_measures, 'LEFT',
                condition=pruned_measures.activity == activity.id)
            .select(
                activity.id.as_('id'),
                activity.id.as_('activity'),
                activity.scenario.as_('scenario'),
                group_key.as_('variant_group'),
                activity.variant_weight.as_('weight'),
                *(getattr(cls, n).sql_cast(measure(n, e)).as_(n)
                    for n, e in measures.items()),
                where=activity.variant_weight > 0,
                group_by=[activity.id, activity.scenario, activity.parent,
                    activity.event, activity.negative,
                    activity.variant_weight]))

    def get_group(self, name):
        activity = self.activity
        if not activity or not activity.parent:
            return
        group = activity.parent.rec_name
        if activity.on:
            selection = dict(activity.fields_get(['on'])['on']['selection'])
            group += ' / ' + selection.get(activity.on, activity.on)
        return group

    @classmethod
    def get_comparison(cls, rows, names):
        "Compute the shares, rates and tests of the rows in their groups"
        keys = sorted({r.variant_group for r in rows})
        groups = defaultdict(list)
        for member in cls.search(
                [('variant_group', 'in', keys)], order=[('id', 'ASC')]):
            groups[member.variant_group].append(member)
        values = defaultdict(dict)
        for members in groups.values():
            total = sum(m.weight or 0 for m in members)
            for member in members:
                values[member.id]['share'] = (
                    round(member.weight / total, 4) if total else None)
            for name, successes, trials in cls.proportions():
                comparison = variants.compare({
                        m.id: (getattr(m, successes) or 0,
                            getattr(m, trials) or 0)
                        for m in members})
                for id_, (rate, z, p_value) in comparison.items():
                    values[id_].update({
                            name + '_rate': _round(rate, 4),
                            name + '_z': _round(z, 2),
                            name + '_p_value': _round(p_value, 4),
                            })
        return {
            name: {r.id: values[r.id].get(name) for r in rows}
            for name in names}


def _round(value, digits):
    return round(value, digits) if value is not None else None
