# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt

from dateutil.relativedelta import relativedelta
from sql import Literal, Null
from sql.aggregate import Count, Min, Sum
from sql.conditionals import Case, NullIf
from sql.functions import DateTrunc

from trytond.model import ModelSQL, ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval, If
from trytond.transaction import Transaction

from .mixin import ActivityActionMixin
from .statistics import email_sent_where


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
    def _period_date(cls, date_column):
        period = Transaction().context.get('period', 'day')
        if period not in {'year', 'month', 'day'}:
            period = 'day'
        return cls.date.sql_cast(DateTrunc(period, date_column))

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
    email_sent = fields.Integer(
        "Emails Sent", help="The number of e-mails the activity sent.")
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

    @classmethod
    def table_query(cls):
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        RecordActivity = pool.get('marketing.automation.record.activity')
        table = RecordActivity.__table__()
        activity = Activity.__table__()
        date = cls._period_date(table.at)
        count = Count(table.id)
        sent_where = email_sent_where(table, activity)
        sent = _count_true(sent_where)
        opened = _count_true(
            sent_where & (table.email_opened == Literal(True)))
        clicked = _count_true(
            sent_where & (table.email_clicked == Literal(True)))
        ratio = cls._ratio

        def as_float(expression):
            return cls.email_open_rate.sql_cast(expression)
        return table.join(activity, condition=table.activity == activity.id
            ).select(
            Min(table.id).as_('id'),
            table.activity.as_('activity'),
            date.as_('date'),
            count.as_('record_count'),
            sent.as_('email_sent'),
            opened.as_('email_opened'),
            clicked.as_('email_clicked'),
            as_float(ratio(as_float(opened), sent)).as_('email_open_rate'),
            as_float(ratio(as_float(clicked), sent)).as_('email_click_rate'),
            as_float(ratio(as_float(clicked), opened)).as_(
                'email_click_through_rate'),
            where=(table.state == 'done') & (table.at != Null)
            & cls._period_where(table.at),
            group_by=[table.activity, date.as_('date')])
