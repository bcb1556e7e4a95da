# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The reporting of conversions: per activity, and the funnel per
scenario, each per period."""
from sql import Literal, Null, Union
from sql.aggregate import Min, Sum
from sql.conditionals import Case, Coalesce

from trytond.model import fields
from trytond.pool import Pool, PoolMeta

from .mixin import ActivityActionMixin
from .reporting import _Reporting
from .statistics import email_sent_where


def _flag(condition):
    return Case((condition, 1), else_=0)


class _ConversionReporting(_Reporting):
    "The revenue and the rates shared by the reportings of conversions"

    email_sent = fields.Integer(
        "Emails Sent", help="The number of e-mails sent.")
    conversion_count = fields.Integer(
        "Conversions", help="The number of sales attributed.")
    revenue = fields.Numeric(
        "Revenue", digits=(15, 2),
        help="The untaxed amount of the sales attributed, in the currency "
        "of the company.")
    revenue_per_email = fields.Numeric(
        "Revenue per Email", digits=(13, 4),
        help="The revenue divided by the number of e-mails sent.")

    # The counts of each branch of the union, zero unless it gives them
    _counts = ['enrolled', 'sent', 'opened', 'clicked', 'converted', 'amount']

    @classmethod
    def _branch(cls, from_, key, uid, date, counts, where, day=False):
        """Return the query of from_ grouped by key and period with the
        counts (SQL expressions by name, summed); day tells if date is a
        column of dates"""
        period = cls._period_date(date)
        period_where = (cls._period_where_day(date) if day
            else cls._period_where(date))
        return from_.select(
            key.as_('key'),
            period.as_('date'),
            Min(uid).as_('uid'),
            *(Sum(counts[n]).as_(n) if n in counts else Literal(0).as_(n)
                for n in cls._counts),
            where=where & period_where,
            group_by=[key, period.as_('date')])

    @classmethod
    def _sent_and_converted(cls, sent_key, conversion_key, pruned_key):
        """Return the branches of the sent e-mails (dated when sent) and of
        the conversions (dated when found), and of their pruned counts"""
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Conversion = pool.get('marketing.automation.conversion')
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        record_activity = RecordActivity.__table__()
        activity = Activity.__table__()
        conversion = Conversion.__table__()
        pruned = PrunedStatistics.__table__()
        sent = cls._branch(
            record_activity.join(activity,
                condition=activity.id == record_activity.activity),
            sent_key(record_activity, activity),
            # Unique across the union: the id of a row of each table
            record_activity.id * 4 + 1,
            record_activity.at, {
                'sent': Literal(1),
                'opened': _flag(record_activity.email_opened == Literal(True)),
                'clicked': _flag(
                    record_activity.email_clicked == Literal(True)),
                },
            email_sent_where(record_activity, activity)
            & (record_activity.at != Null))
        converted = cls._branch(
            conversion, conversion_key(conversion), conversion.id * 4 + 2,
            conversion.date, {
                'converted': Literal(1),
                'amount': Coalesce(conversion.amount, 0),
                },
            Literal(True))
        pruned_sent = cls._branch(
            pruned, pruned_key(pruned), pruned.id * 4 + 3, pruned.date, {
                'sent': pruned.email_sent,
                'opened': pruned.email_opened,
                'clicked': pruned.email_clicked,
                },
            (pruned.kind == 'record_activity') & (pruned.date != Null)
            & (pruned.email_sent > 0),
            day=True)
        pruned_converted = cls._branch(
            pruned, pruned_key(pruned), pruned.id * 4 + 3, pruned.date, {
                'converted': pruned.conversion_count,
                'amount': pruned.conversion_amount,
                },
            pruned.kind == 'conversion', day=True)
        return [sent, converted, pruned_sent, pruned_converted]

    @classmethod
    def _grouped(cls, key, branches, *columns):
        "Return the query summing the branches by key and period"
        union = Union(*branches, all_=True)
        # PostgreSQL sums the sums of integers as numeric
        sent = cls.email_sent.sql_cast(Sum(union.sent))
        revenue = cls.revenue.sql_cast(Sum(union.amount))
        return union.select(
            Min(union.uid).as_('id'),
            union.key.as_(key),
            union.date.as_('date'),
            sent.as_('email_sent'),
            cls.conversion_count.sql_cast(Sum(union.converted)).as_(
                'conversion_count'),
            revenue.as_('revenue'),
            cls.revenue_per_email.sql_cast(
                cls._ratio(revenue, sent)).as_('revenue_per_email'),
            *(c(union) for c in columns),
            group_by=[union.key, union.date])


class ActivityConversionReporting(ActivityActionMixin, _ConversionReporting):
    __name__ = 'marketing.automation.reporting.conversion.activity'

    activity = fields.Many2One('marketing.automation.activity', "Activity")
    conversion_rate = fields.Float(
        "Conversion Rate", digits=(1, 4),
        help="The share of the e-mails sent that led to a sale.")

    @classmethod
    def table_query(cls):
        def as_float(expression):
            return cls.conversion_rate.sql_cast(expression)
        return cls._grouped('activity',
            cls._sent_and_converted(
                lambda record_activity, activity: record_activity.activity,
                lambda conversion: conversion.activity,
                lambda pruned: pruned.activity),
            lambda u: as_float(cls._ratio(
                    as_float(Sum(u.converted)), Sum(u.sent))).as_(
                'conversion_rate'))


class FunnelReporting(_ConversionReporting):
    __name__ = 'marketing.automation.reporting.funnel'

    scenario = fields.Many2One('marketing.automation.scenario', "Scenario")
    record_count = fields.Integer(
        "Enrolled", help="The number of records that entered the scenario.")
    email_opened = fields.Integer(
        "Opened", help="The number of e-mails sent that were opened.")
    email_clicked = fields.Integer(
        "Clicked", help="The number of e-mails sent with a link clicked.")
    conversion_rate = fields.Float(
        "Conversion Rate", digits=(1, 4),
        help="The conversions per record that entered.")

    @classmethod
    def table_query(cls):
        pool = Pool()
        EnrolledStatistics = pool.get(
            'marketing.automation.statistics.enrolled')
        # Counted per day as they enter: the records of a busy month are
        # too many to count at each read
        statistics = EnrolledStatistics.__table__()
        enrolled = cls._branch(
            statistics, statistics.scenario, statistics.id * 4,
            statistics.date, {'enrolled': statistics.record_count},
            Literal(True), day=True)

        def as_float(expression):
            return cls.conversion_rate.sql_cast(expression)
        return cls._grouped('scenario',
            [enrolled] + cls._sent_and_converted(
                lambda record_activity, activity: activity.scenario,
                lambda conversion: conversion.scenario,
                lambda pruned: pruned.scenario),
            lambda u: cls.record_count.sql_cast(Sum(u.enrolled)).as_(
                'record_count'),
            lambda u: cls.email_opened.sql_cast(Sum(u.opened)).as_(
                'email_opened'),
            lambda u: cls.email_clicked.sql_cast(Sum(u.clicked)).as_(
                'email_clicked'),
            lambda u: as_float(cls._ratio(
                    as_float(Sum(u.converted)), Sum(u.enrolled))).as_(
                'conversion_rate'))


class VariantReporting(metaclass=PoolMeta):
    __name__ = 'marketing.automation.reporting.variant'

    conversion_count = fields.Integer(
        "Conversions",
        help="The number of e-mails sent that led to a sale attributed to "
        "them.")
    conversion_rate = fields.Function(fields.Float(
            "Conversion Rate", digits=(1, 4),
            help="The share of the e-mails sent that led to a sale."),
        'get_comparison')
    conversion_z = fields.Function(fields.Float(
            "Conversion z", digits=(2, 2),
            help="The z statistic of the two-proportion test of the "
            "conversion rates: how many standard errors separate this "
            "variant from the best one (from the runner-up for the best "
            "one)."),
        'get_comparison')
    conversion_p_value = fields.Function(fields.Float(
            "Conversion p-value", digits=(1, 4),
            help="The probability of a difference of conversion rates at "
            "least this large between this variant and the best one (the "
            "runner-up for the best one) if they performed alike; below "
            "0.05 the difference is commonly called significant."),
        'get_comparison')

    @classmethod
    def proportions(cls):
        return super().proportions() + [
            ('conversion', 'conversion_count', 'email_sent'),
            ]

    @classmethod
    def pruned_measures(cls, pruned):
        return {
            **super().pruned_measures(pruned),
            'conversion_count': pruned.email_converted,
            }

    @classmethod
    def measures(cls, record_activity, activity):
        pool = Pool()
        Conversion = pool.get('marketing.automation.conversion')
        conversion = Conversion.__table__()
        measures = super().measures(record_activity, activity)
        converted = record_activity.id.in_(
            conversion.select(conversion.record_activity))
        measures['conversion_count'] = Sum(_flag(
                email_sent_where(record_activity, activity) & converted))
        return measures
