# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Conversions: the sales that reached a scenario's goal after one of its
e-mails, attributed to the last touch, found in SQL over the new sales."""
import datetime as dt
from decimal import Decimal

from sql import Cast, Literal, Null, Union, Window
from sql.aggregate import Count, Max, Sum
from sql.conditionals import Case, Coalesce
from sql.functions import Extract, Round, RowNumber
from sql.operators import Concat, Exists

from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.modules.currency.fields import Monetary
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Bool, Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect, engine
from .retention import retention_cutoff
from .statistics import email_sent_where, rate

# The sale states reaching each goal state
GOAL_STATES = {
    'confirmed': ['confirmed', 'processing', 'done'],
    'processing': ['processing', 'done'],
    'done': ['done'],
    }
# A sale written by a transaction that committed after the last run began
# has an older write date: each run looks back this far, the unique sale
# keeps it from counting twice
OVERLAP = dt.timedelta(hours=1)

_IN = fields.SQL_OPERATORS['in']


def _epoch(column):
    "Return the SQL expression of the seconds of a timestamp column"
    return Extract('EPOCH', column)


def _exact(column):
    "Return the numeric column as SQL divides it without truncating"
    # SQLite stores round numbers as integers, which it divides as such
    if dialect.is_sqlite():
        return Cast(column, 'REAL')
    return column


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.append(
            ('marketing.automation.conversion|compute',
                "Compute Marketing Conversions"))


class Scenario(metaclass=PoolMeta):
    __name__ = 'marketing.automation.scenario'

    goal = fields.Selection([
            (None, ""),
            ('sale', "Sale"),
            ], "Goal",
        help="What counts as a conversion of the scenario's records.")
    goal_state = fields.Selection([
            ('confirmed', "Confirmed"),
            ('processing', "Processing"),
            ('done', "Done"),
            ], "Goal State", sort=False,
        states={
            'invisible': Eval('goal') != 'sale',
            'required': Eval('goal') == 'sale',
            },
        help="The state a sale of the record's party must reach.")
    goal_window = fields.TimeDelta(
        "Goal Window",
        domain=['OR',
            ('goal_window', '=', None),
            ('goal_window', '>', dt.timedelta()),
            ],
        states={
            'invisible': ~Eval('goal'),
            'required': Bool(Eval('goal')),
            },
        help="How long after the last touch a sale still counts.")
    attribution = fields.Selection([
            ('send', "Send"),
            ('open', "Open"),
            ('click', "Click"),
            ], "Attribution", sort=False,
        states={
            'invisible': ~Eval('goal'),
            'required': Bool(Eval('goal')),
            },
        help="The touch of an e-mail after which a sale converts: its "
        "sending, its opening or a click on one of its links.")
    goal_enrolled_sale = fields.Boolean(
        "Enrolled Sale Only",
        states={
            'invisible': (Eval('goal') != 'sale')
            | (Eval('model') != 'sale.sale'),
            },
        help="If checked, only the enrolled sale itself converts (a "
        "recovered cart), not the other sales of its party.")
    exit_on_goal = fields.Boolean(
        "Exit on Goal",
        states={
            'invisible': ~Eval('goal'),
            },
        help="If checked, a record that converts leaves the scenario: its "
        "waiting activities are cancelled.")
    conversion_checked = fields.DateTime(
        "Conversions Checked", readonly=True,
        help="Until when the sales were looked at for conversions.")
    conversion_count = fields.Function(
        fields.Integer(
            "Conversions",
            help="The number of sales attributed to the scenario."),
        'get_conversion_statistics')
    conversion_rate = fields.Function(
        fields.Float(
            "Conversion Rate", digits=(1, 4),
            help="The share of the records of the scenario that "
            "converted."),
        'get_conversion_statistics')
    conversion_revenue = fields.Function(
        fields.Numeric(
            "Revenue", digits=(15, 2),
            help="The untaxed amount of the sales attributed to the "
            "scenario, in the currency of the company."),
        'get_conversion_statistics')

    @classmethod
    def default_goal_state(cls):
        return 'confirmed'

    @classmethod
    def default_goal_window(cls):
        return dt.timedelta(days=7)

    @classmethod
    def default_attribution(cls):
        return 'click'

    @classmethod
    def default_goal_enrolled_sale(cls):
        return False

    @classmethod
    def default_exit_on_goal(cls):
        return False

    @classmethod
    def copy(cls, scenarios, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('conversion_checked')
        return super().copy(scenarios, default=default)

    @classmethod
    def get_conversion_statistics(cls, scenarios, names):
        pool = Pool()
        Conversion = pool.get('marketing.automation.conversion')
        Record = pool.get('marketing.automation.record')
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        conversion = Conversion.__table__()
        record = Record.__table__()
        pruned = PrunedStatistics.__table__()
        cursor = Transaction().connection.cursor()
        ids = [s.id for s in scenarios]
        counts, revenues, records = {}, {}, {}
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            sub_ids = list(sub_ids)
            cursor.execute(*conversion.select(
                    conversion.scenario, Count(conversion.id),
                    Sum(Coalesce(conversion.amount, 0)),
                    where=_IN(conversion.scenario, sub_ids),
                    group_by=[conversion.scenario]))
            for scenario_id, count, revenue in cursor:
                counts[scenario_id] = count
                revenues[scenario_id] = revenue
            cursor.execute(*pruned.select(
                    pruned.scenario, Sum(pruned.conversion_count),
                    Sum(pruned.conversion_amount),
                    where=_IN(pruned.scenario, sub_ids)
                    & (pruned.kind == 'conversion'),
                    group_by=[pruned.scenario]))
            for scenario_id, count, revenue in cursor:
                counts[scenario_id] = counts.get(scenario_id, 0) + count
                revenues[scenario_id] = (
                    revenues.get(scenario_id) or 0) + (revenue or 0)
            if 'conversion_rate' in names:
                cursor.execute(*record.select(
                        record.scenario, Count(record.id),
                        where=_IN(record.scenario, sub_ids),
                        group_by=[record.scenario]))
                records.update(cursor)
        result = {name: {} for name in names}
        for scenario in scenarios:
            count = counts.get(scenario.id, 0)
            if 'conversion_count' in result:
                result['conversion_count'][scenario.id] = count
            if 'conversion_rate' in result:
                result['conversion_rate'][scenario.id] = rate(
                    count, records.get(scenario.id))
            if 'conversion_revenue' in result:
                result['conversion_revenue'][scenario.id] = _cents(
                    revenues.get(scenario.id))
        return result


def _cents(value):
    "Return the SQL sum (a float on SQLite) as a Decimal of cents"
    return Decimal(str(value or 0)).quantize(Decimal('0.01'))


class Conversion(ModelSQL, ModelView):
    __name__ = 'marketing.automation.conversion'

    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario",
        required=True, readonly=True, ondelete='CASCADE')
    activity = fields.Many2One(
        'marketing.automation.activity', "Activity",
        required=True, readonly=True, ondelete='CASCADE',
        help="The activity of the last touch before the sale.")
    record = fields.Many2One(
        'marketing.automation.record', "Record",
        required=True, readonly=True, ondelete='CASCADE')
    record_activity = fields.Many2One(
        'marketing.automation.record.activity', "Record Activity",
        required=True, readonly=True, ondelete='CASCADE',
        help="The e-mail of the last touch.")
    sale = fields.Many2One(
        'sale.sale', "Sale", required=True, readonly=True,
        ondelete='CASCADE')
    party = fields.Many2One(
        'party.party', "Party", readonly=True, ondelete='SET NULL')
    date = fields.DateTime(
        "Date", required=True, readonly=True,
        help="When the sale was found in the goal state.")
    state = fields.Selection([
            ('confirmed', "Confirmed"),
            ('processing', "Processing"),
            ('done', "Done"),
            ], "State Reached", readonly=True, sort=False)
    amount = Monetary(
        "Amount", currency='currency', digits='currency', readonly=True,
        help="The untaxed amount of the sale in the currency of the "
        "company, converted at the rate of the sale date; empty without "
        "rate.")
    currency = fields.Many2One(
        'currency.currency', "Currency", required=True, readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('scenario')
        t = cls.__table__()
        cls._sql_constraints = [
            ('sale_unique', Unique(t, t.sale),
                'marketing_automation.msg_conversion_sale_unique'),
            ]
        cls._sql_indexes.update({
                Index(t, (t.scenario, Index.Range()),
                    (t.date, Index.Range())),
                Index(t, (t.activity, Index.Range()),
                    (t.date, Index.Range())),
                Index(t, (t.record, Index.Range())),
                # Deleting a record activity deletes its conversions
                Index(t, (t.record_activity, Index.Range())),
                })
        cls._order.insert(0, ('date', 'DESC'))

    def get_rec_name(self, name):
        return '%s @ %s' % (self.sale.rec_name, self.scenario.rec_name)

    @classmethod
    def compute(cls, sales=None):
        """Record the conversions of the sales in a goal state

        By default those changed since the last run; each sale converts
        once, for the last touch across the scenarios."""
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        started = dialect.schedule_time()
        scenarios = Scenario.search([
                ('goal', '=', 'sale'),
                ('state', '!=', 'draft'),
                ], order=[('id', 'ASC')])
        if not scenarios:
            return
        # One run at a time, so that the new rows are those after the
        # last id and the last touch is chosen among all the scenarios
        cls._lock_runs()
        cursor.execute(*table.select(Max(table.id)))
        last_id, = cursor.fetchone()
        if sales is None:
            cls._insert(scenarios, None)
        else:
            # Each scenario's sub-query lists the ids
            size = MAX_QUERY_PARAMS // (len(scenarios) + 1)
            for sub_ids in grouped_slice(
                    sorted({int(s) for s in sales}), size):
                cls._insert(scenarios, list(sub_ids))
        cls._exit_on_goal(last_id or 0)
        if sales is None:
            # The mark only: nothing the scenario's checks look at
            scenario = Scenario.__table__()
            cursor.execute(*scenario.update(
                    [scenario.conversion_checked], [started],
                    where=_IN(scenario.id, [s.id for s in scenarios])))
            engine.clear_cache(Scenario.__name__)

    @classmethod
    def _lock_runs(cls):
        "Wait for the other runs to end; plain reads go on"
        # SQLite serializes the writers
        if not dialect.is_sqlite():
            cursor = Transaction().connection.cursor()
            cursor.execute('LOCK TABLE "%s" IN EXCLUSIVE MODE' % cls._table)

    @classmethod
    def _insert(cls, scenarios, sale_ids):
        "Insert the conversions of the sales of ids or changed since a run"
        pool = Pool()
        Sale = pool.get('sale.sale')
        Company = pool.get('company.company')
        Currency = pool.get('currency.currency')
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        candidates = [
            q for q in (cls._candidates(s, sale_ids) for s in scenarios)
            if q is not None]
        if not candidates:
            return
        touches = (candidates[0] if len(candidates) == 1
            else Union(*candidates, all_=True))
        ranked = touches.select(
            touches.sale, touches.scenario, touches.activity,
            touches.record, touches.record_activity, touches.date,
            RowNumber(window=Window([touches.sale],
                    order_by=[touches.touched.desc,
                        touches.record_activity.desc])).as_('rank'))
        sale = Sale.__table__()
        company = Company.__table__()
        currency = Currency.__table__()
        rate_from = Currency.currency_rate_sql()
        rate_to = Currency.currency_rate_sql()
        converted = (_exact(sale.untaxed_amount_cache)
            * _exact(rate_to.rate) / _exact(rate_from.rate))
        amount = Case(
            (sale.currency == company.currency, sale.untaxed_amount_cache),
            else_=Round(converted, currency.digits))

        def rate_of(rate, currency_id):
            return ((rate.currency == currency_id)
                & (rate.start_date <= sale.sale_date)
                & ((rate.end_date == Null)
                    | (rate.end_date > sale.sale_date)))
        conversion = cls.__table__()
        query = (ranked
            .join(sale, condition=sale.id == ranked.sale)
            .join(company, condition=company.id == sale.company)
            .join(currency, condition=currency.id == company.currency)
            .join(rate_from, 'LEFT',
                condition=rate_of(rate_from, sale.currency))
            .join(rate_to, 'LEFT',
                condition=rate_of(rate_to, company.currency))
            .select(
                ranked.scenario, ranked.activity, ranked.record,
                ranked.record_activity, ranked.sale, sale.party,
                ranked.date, sale.state, amount, company.currency,
                Literal(Transaction().user), dialect.now(),
                where=(ranked.rank == 1)
                & ~Exists(conversion.select(Literal(1),
                        where=conversion.sale == ranked.sale))))
        cursor.execute(*table.insert(
                [table.scenario, table.activity, table.record,
                    table.record_activity, table.sale, table.party,
                    table.date, table.state, table.amount, table.currency,
                    table.create_uid, table.create_date],
                query,
                on_conflict=dialect.insert_on_conflict_nothing(table)))

    @classmethod
    def _candidates(cls, scenario, sale_ids):
        """Return the query of the touches of the scenario before a sale in
        its goal state within the window, or None"""
        pool = Pool()
        Sale = pool.get('sale.sale')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Activity = pool.get('marketing.automation.activity')
        Model = pool.get(scenario.model)
        sale = Sale.__table__()
        record = Record.__table__()
        record_activity = RecordActivity.__table__()
        activity = Activity.__table__()
        # The time the sale was seen in its state: the cron and the queue
        # look soon after each change
        date = Coalesce(sale.write_date, sale.create_date)
        where = sale.state.in_(GOAL_STATES[scenario.goal_state])
        cutoff = retention_cutoff()
        if cutoff is not None:
            # Its conversion may have been pruned: it would count twice
            where &= sale.create_date >= cutoff
        if sale_ids is not None:
            where &= _IN(sale.id, sale_ids)
        elif scenario.conversion_checked:
            where &= date >= scenario.conversion_checked - OVERLAP

        if scenario.model == 'sale.sale' and scenario.goal_enrolled_sale:
            query = sale.join(record,
                condition=(record.scenario == scenario.id)
                & (record.record == Concat('sale.sale,', sale.id)))
        else:
            target = Model.__table__()
            column = Model.marketing_party_column(target)
            if column is None:
                # Only the models giving their party column are attributed
                return None
            query = (sale
                .join(target, condition=column == sale.party)
                .join(record,
                    condition=(record.scenario == scenario.id)
                    & (record.record == Concat(
                            scenario.model + ',', target.id))))
        sent = email_sent_where(record_activity, activity)
        if scenario.attribution == 'open':
            touched = Coalesce(
                record_activity.email_opened_date, record_activity.write_date)
            sent &= record_activity.email_opened == Literal(True)
        elif scenario.attribution == 'click':
            touched = Coalesce(
                record_activity.email_clicked_date,
                record_activity.write_date)
            sent &= record_activity.email_clicked == Literal(True)
        else:
            touched = record_activity.at
        window = scenario.goal_window.total_seconds()
        query = (query
            .join(record_activity,
                condition=record_activity.record == record.id)
            .join(activity,
                condition=activity.id == record_activity.activity))
        return query.select(
            sale.id.as_('sale'),
            Literal(scenario.id).as_('scenario'),
            record_activity.activity.as_('activity'),
            record.id.as_('record'),
            record_activity.id.as_('record_activity'),
            date.as_('date'),
            touched.as_('touched'),
            where=where & sent & (touched <= date)
            & (_epoch(date) - _epoch(touched) <= window))

    @classmethod
    def _exit_on_goal(cls, after_id):
        "Cancel the waiting activities of the records converted after the id"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        Scenario = pool.get('marketing.automation.scenario')
        table = cls.__table__()
        scenario = Scenario.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.join(scenario,
                condition=scenario.id == table.scenario).select(
                table.scenario, table.record,
                where=(table.id > after_id)
                & (scenario.exit_on_goal == Literal(True))))
        by_scenario = {}
        for scenario_id, record_id in cursor:
            by_scenario.setdefault(scenario_id, []).append(record_id)
        for scenario_id, record_ids in by_scenario.items():
            activities = Activity.search(
                [('scenario', '=', scenario_id)], order=[])
            engine.cancel_waiting([a.id for a in activities], record_ids)
        if by_scenario:
            engine.clear_cache()
