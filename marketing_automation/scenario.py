# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
import logging
from collections import defaultdict

from sql import Cast, Literal, Null
from sql.aggregate import Count, Sum
from sql.conditionals import Case
from sql.operators import Concat

from trytond import backend
from trytond.backend import MAX_QUERY_PARAMS
from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, Workflow, fields
from trytond.pool import Pool
from trytond.pyson import Eval, PYSONDecoder
from trytond.tools import grouped_slice
from trytond.transaction import Transaction, check_access

from . import enrolment, pacing, rights
from .exceptions import DomainError, error_text
from .ir import without_email_archives
from .mixin import marketing_models
from .pacing import WEEKDAYS
from .statistics import daily_trend, email_sent_where, rate

logger = logging.getLogger(__name__)


class Scenario(Workflow, ModelSQL, ModelView):
    __name__ = 'marketing.automation.scenario'

    _states = {
        'readonly': Eval('state') != 'draft',
        }

    name = fields.Char("Name", required=True, translate=True)
    model = fields.Selection(
        'get_models', "Model", required=True, states=_states)
    domain = fields.Char(
        "Domain", required=True, states=_states,
        help="A PYSON domain that selects the records entering the "
        "scenario: a list of clauses (field, operator, value), for example "
        "[('name', 'ilike', '%coffee%')] or, for sales, "
        "[('state', '=', 'draft'), "
        "('create_date', '<', DateTime(delta_hours=-2))].")
    activities = fields.One2Many(
        'marketing.automation.activity', 'parent', "Activities")
    unsubscribable = fields.Boolean(
        "Unsubscribable",
        help="If checked, unsubscribing from an e-mail also unsubscribes "
        "the party from this scenario.")
    open_tracking = fields.Boolean(
        "Open Tracking",
        help="If checked, the e-mails carry a pixel telling when they are "
        "opened; without it, the \"Email Opened\" branches cannot run.")
    send_weekdays = fields.MultiSelection(
        WEEKDAYS, "Send Days", sort=False,
        help="The days the e-mails go out; leave empty for every day.")
    send_time_from = fields.Time(
        "Send From",
        help="The e-mails go out from this time of the day, in the time "
        "zone of the configuration.")
    send_time_to = fields.Time(
        "Send To",
        domain=['OR',
            ('send_time_to', '=', None),
            ('send_time_from', '=', None),
            ('send_time_to', '>', Eval('send_time_from')),
            ],
        help="The e-mails go out until this time of the day.")
    next_send_window = fields.Function(
        fields.DateTime(
            "Next Send Window",
            help="When the e-mails due outside the send window will go."),
        'get_next_send_window')
    state = fields.Selection([
            ('draft', "Draft"),
            ('running', "Running"),
            ('stopped', "Stopped"),
            ], "State", required=True, readonly=True, sort=False)

    record_count = fields.Function(
        fields.Integer(
            "Records",
            help="The number of records in the scenario, or while in draft "
            "the number of records the domain matches now."),
        'get_record_counts')
    record_count_blocked = fields.Function(
        fields.Integer(
            "Blocked",
            help="The number of records blocked in the scenario, most often "
            "because they unsubscribed."),
        'get_record_counts')
    block_rate = fields.Function(
        fields.Float(
            "Block Rate", digits=(1, 4),
            help="The share of the records of the scenario that are "
            "blocked."),
        'get_record_counts')
    block_rate_trend = fields.Function(
        fields.Char(
            "Block Rate Trend",
            help="The block rate of the records per day of entry over the "
            "last 30 days."),
        'get_block_rate_trend')
    email_sent = fields.Function(
        fields.Integer(
            "Emails Sent",
            help="The number of e-mails the activities of the scenario "
            "sent."),
        'get_record_counts')

    del _states

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._transitions |= {
            ('draft', 'running'),
            ('running', 'stopped'),
            ('stopped', 'draft'),
            }
        cls._buttons.update({
                'draft': {
                    'invisible': Eval('state') != 'stopped',
                    'icon': 'tryton-back',
                    'depends': ['state'],
                    },
                'run': {
                    'invisible': Eval('state') != 'draft',
                    'icon': 'tryton-launch',
                    'depends': ['state'],
                    },
                'stop': {
                    'invisible': Eval('state') != 'running',
                    'icon': 'tryton-cancel',
                    'depends': ['state'],
                    },
                })

    @classmethod
    def __register__(cls, module):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        exists = backend.TableHandler.table_exist(cls._table)
        if exists:
            # The name is required since 8.2
            cursor.execute(*table.update(
                    [table.name],
                    [Concat('Scenario ', Cast(table.id, 'VARCHAR'))],
                    where=(table.name == Null) | (table.name == '')))
        super().__register__(module)

    @classmethod
    def view_toolbar_get(cls):
        return without_email_archives(super().view_toolbar_get())

    @classmethod
    def default_domain(cls):
        return '[]'

    @classmethod
    def default_state(cls):
        return 'draft'

    @classmethod
    def default_open_tracking(cls):
        pool = Pool()
        Configuration = pool.get('marketing.automation.configuration')
        return Configuration(1).open_tracking

    def get_next_send_window(self, name):
        pool = Pool()
        Configuration = pool.get('marketing.automation.configuration')
        return pacing.next_window_start(
            self, Configuration(1).timezone, dt.datetime.now())

    def has_transactional(self):
        "Tell if an activity of the scenario sends transactional e-mails"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        return bool(Activity.search([
                    ('scenario', '=', self.id),
                    ('transactional', '=', True),
                    ], limit=1))

    @classmethod
    def default_unsubscribable(cls):
        return False

    @classmethod
    def get_models(cls):
        pool = Pool()
        Model = pool.get('ir.model')
        ModelAccess = pool.get('ir.model.access')
        models = marketing_models()
        transaction = Transaction()
        # Validation runs without access check: there the rights of the
        # author are checked by check_domain, with a clearer message
        if transaction.user and transaction.check_access:
            models = [m for m in models
                if ModelAccess.check(m, 'read', raise_exception=False)]
        return [(m, Model.get_name(m)) for m in models]

    def get_domain(self):
        "Return the decoded domain of the scenario"
        return PYSONDecoder({}).decode(self.domain)

    @classmethod
    def validate_fields(cls, scenarios, field_names):
        super().validate_fields(scenarios, field_names)
        if field_names & {'model', 'domain'}:
            cls.check_domain(scenarios)

    @classmethod
    def check_domain(cls, scenarios):
        pool = Pool()
        for scenario in scenarios:
            if not scenario.model:
                continue
            Model = pool.get(scenario.model)
            # The errors are raised from None: their cause is a typo of the
            # user, whose traceback would only fill the log
            try:
                domain = scenario.get_domain()
            except Exception as exception:
                raise DomainError(gettext(
                        'marketing_automation.msg_scenario_domain_not_pyson',
                        scenario=scenario.rec_name,
                        error=error_text(exception))) from None
            scenario.check_domain_rights(Model, domain)
            try:
                # Building the query checks the values
                Model.search(domain, order=[], query=True)
            except Exception as exception:
                raise DomainError(gettext(
                        'marketing_automation'
                        '.msg_scenario_domain_invalid_value',
                        scenario=scenario.rec_name,
                        error=error_text(exception))) from None

    def check_domain_rights(self, Model, domain):
        "Raise DomainError if the domain is not valid or not readable"
        try:
            rights.check_domain(Model, domain)
        except rights.ReadRefused as refused:
            if refused.field is not None:
                message = 'msg_scenario_domain_field_unreadable'
            elif refused.model == Model:
                message = 'msg_scenario_model_unreadable'
            else:
                message = 'msg_scenario_domain_model_unreadable'
            message = 'marketing_automation.' + message
            raise DomainError(gettext(
                    message, scenario=self.rec_name,
                    **refused.names())) from None
        except rights.UnknownField as exception:
            raise DomainError(gettext(
                    'marketing_automation.msg_scenario_domain_unknown_field',
                    scenario=self.rec_name,
                    path=exception.path,
                    name=exception.name,
                    model=exception.model.__names__()['model'])) from None
        except rights.InvalidOperator as exception:
            raise DomainError(gettext(
                    'marketing_automation'
                    '.msg_scenario_domain_invalid_operator',
                    scenario=self.rec_name,
                    operator=exception.operator,
                    operators=', '.join(
                        '"%s"' % o for o in exception.operators()),
                    **exception.names())) from None
        except rights.InvalidClause as exception:
            raise DomainError(gettext(
                    'marketing_automation.msg_scenario_domain_invalid_clause',
                    scenario=self.rec_name,
                    clause=repr(exception.clause))) from None

    @classmethod
    def get_record_counts(cls, scenarios, names):
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Activity = pool.get('marketing.automation.activity')
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        record = Record.__table__()
        record_activity = RecordActivity.__table__()
        activity = Activity.__table__()
        pruned = PrunedStatistics.__table__()
        cursor = Transaction().connection.cursor()

        counts = defaultdict(int)
        blocked = defaultdict(int)
        sent = defaultdict(int)
        for sub_scenarios in grouped_slice(scenarios, MAX_QUERY_PARAMS):
            ids = [s.id for s in sub_scenarios]
            cursor.execute(*record.select(
                    record.scenario,
                    Count(record.id),
                    Sum(Case((record.blocked == Literal(True), 1), else_=0)),
                    where=fields.SQL_OPERATORS['in'](record.scenario, ids),
                    group_by=record.scenario))
            for scenario_id, count, blocked_count in cursor:
                counts[scenario_id] = count
                blocked[scenario_id] = blocked_count or 0
            if 'email_sent' in names:
                cursor.execute(*record_activity.join(activity,
                        condition=record_activity.activity == activity.id
                        ).select(
                        activity.scenario,
                        Count(record_activity.id),
                        where=fields.SQL_OPERATORS['in'](
                            activity.scenario, ids)
                        & email_sent_where(record_activity, activity),
                        group_by=activity.scenario))
                sent.update(cursor)
                cursor.execute(*pruned.select(
                        pruned.scenario, Sum(pruned.email_sent),
                        where=fields.SQL_OPERATORS['in'](pruned.scenario, ids),
                        group_by=pruned.scenario))
                for scenario_id, pruned_sent in cursor:
                    sent[scenario_id] += pruned_sent or 0
        if 'record_count' in names:
            for scenario in scenarios:
                if scenario.state == 'draft' and scenario.model:
                    counts[scenario.id] = scenario.count_matching()

        result = {}
        for name in names:
            values = result[name] = {}
            for scenario in scenarios:
                count = counts[scenario.id]
                if name == 'record_count':
                    values[scenario.id] = count
                elif name == 'record_count_blocked':
                    values[scenario.id] = blocked[scenario.id]
                elif name == 'block_rate':
                    values[scenario.id] = (
                        rate(blocked[scenario.id], count)
                        if scenario.state != 'draft' else 0.)
                elif name == 'email_sent':
                    values[scenario.id] = sent[scenario.id]
        return result

    def count_matching(self):
        "Return how many records the domain matches now for the user"
        Model = Pool().get(self.model)
        # With the rights of the reader: the count of a domain over what
        # the reader cannot read would tell its values
        try:
            domain = self.get_domain()
            rights.check_domain(Model, domain)
            with check_access():
                return Model.search(domain, count=True)
        except Exception as exception:
            logger.debug("Fail to count %s: %r", self, exception)
            return 0

    @classmethod
    def get_block_rate_trend(cls, scenarios, name):
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        record = Record.__table__()
        return daily_trend(
            record, record.scenario, record.create_date,
            [Count(record.id),
                Sum(Case((record.blocked == Literal(True), 1), else_=0))],
            lambda count, blocked: rate(blocked, count),
            [s.id for s in scenarios])

    @classmethod
    def copy(cls, scenarios, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('state', 'draft')
        return super().copy(scenarios, default=default)

    @classmethod
    @ModelView.button
    @Workflow.transition('draft')
    def draft(cls, scenarios):
        pass

    @classmethod
    @ModelView.button
    @Workflow.transition('running')
    def run(cls, scenarios):
        # The matching records enter after the commit, not at the next
        # hourly cron: without worker, before the client gets the answer
        if scenarios:
            cls.__queue__.trigger(scenarios)

    @classmethod
    @ModelView.button
    @Workflow.transition('stopped')
    def stop(cls, scenarios):
        pass

    @classmethod
    def trigger(cls, scenarios=None):
        "Enrol the new records matching the domain of running scenarios"
        if scenarios is None:
            scenarios = cls.search([('state', '=', 'running')])
        enrolment.trigger(scenarios)

    def enrol(self, batch_size=None):
        "Insert the records matching the domain and schedule the roots"
        enrolment.enrol(self, batch_size=batch_size)
