# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
import logging
from collections import defaultdict

from sql import Literal
from sql.aggregate import Count, Sum
from sql.conditionals import Case

from trytond.backend import MAX_QUERY_PARAMS
from trytond.i18n import gettext
from trytond.model import ModelSQL, ModelView, fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.pyson import PYSON, Bool, Eval, PYSONDecoder
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import engine, mailing, rendering, rights, sandbox, variants
from .access import RecordReader
from .exceptions import (
    ConditionError, DelayError, EventError, ParentError, TemplateError,
    VariantError)
from .ir import without_email_archives
from .statistics import (
    SKIP_REASON_GROUPS, daily_trend, email_sent_where, email_skipped_where,
    rate)

logger = logging.getLogger(__name__)

SCENARIO = 'marketing.automation.scenario'
ACTIVITY = 'marketing.automation.activity'


class Activity(ModelSQL, ModelView):
    __name__ = 'marketing.automation.activity'

    name = fields.Char("Name", required=True, translate=True)
    parent = fields.Reference(
        "Parent", selection=[
            (SCENARIO, "Scenario"),
            (ACTIVITY, "Activity"),
            ], required=True)
    children = fields.One2Many(ACTIVITY, 'parent', "Children")
    scenario = fields.Many2One(
        SCENARIO, "Scenario", readonly=True, ondelete='CASCADE',
        help="The scenario the activity belongs to.")
    parent_action = fields.Function(
        fields.Selection('get_actions', "Parent Action"),
        'on_change_with_parent_action')

    event = fields.Selection([
            (None, ""),
            ('email_opened', "Email Opened"),
            ('email_clicked', "Email Clicked"),
            ], "Event",
        states={
            'invisible': Eval('parent_action') != 'send_email',
            })
    negative = fields.Boolean(
        "Negative",
        states={
            'invisible': ~Eval('event'),
            },
        help="If checked, the activity runs when the event does not happen "
        "within the delay.")
    on = fields.Function(fields.Selection([
                (None, ""),
                ('email_opened', "Email Opened"),
                ('email_opened_not', "Email Not Opened"),
                ('email_clicked', "Email Clicked"),
                ('email_clicked_not', "Email Not Clicked"),
                ], "On", sort=False,
            states={
                'invisible': Eval('parent_action') != 'send_email',
                }),
        'get_on', setter='set_on')
    on_warning = fields.Function(
        fields.Char("Warning", states={
                'invisible': ~Eval('on_warning'),
                }),
        'on_change_with_on_warning')
    condition = fields.Char(
        "Condition",
        help="A PYSON expression the record must match for the action to "
        "run; it reads the fields of the record as Eval('self.field'), for "
        "example Eval('self.state') == 'draft' for a sale still in draft, "
        "or Eval('self.lang.code', '') == 'fr' for a party who reads "
        "French.")
    delay = fields.TimeDelta(
        "Delay",
        domain=['OR',
            ('delay', '=', None),
            ('delay', '>=', dt.timedelta()),
            ],
        states={
            'required': Bool(Eval('negative')),
            },
        help="How long to wait after the parent activity, or after the "
        "event, before running.")
    variant_weight = fields.Integer(
        "Variant Weight",
        domain=['OR',
            ('variant_weight', '=', None),
            ('variant_weight', '>=', 0),
            ],
        help="Give a weight to make the activity a variant of an A/B "
        "split: of the sibling activities with a weight that run on the "
        "same event, each record runs only one, chosen from its token in "
        "proportion to the weights, and always the same one. A change of "
        "the weights applies to the records scheduled after it. Leave "
        "empty to run the activity for every record.")
    variant_comparison = fields.Function(
        fields.Many2Many(
            'marketing.automation.reporting.variant', None, None, "Variants",
            states={
                'invisible': ~Eval('variant_weight'),
                },
            help="The variants of the activity's A/B split side by side, "
            "each tested against the best one."),
        'get_variant_comparison')

    # A list, as in Tryton's own module: other modules add their actions
    # with cls.action.selection.append in __setup__
    action = fields.Selection([
            (None, ""),
            ('send_email', "Send Email"),
            ], "Action")
    transactional = fields.Boolean(
        "Transactional",
        states={
            'invisible': Eval('action') != 'send_email',
            },
        help="Check for e-mails the recipient asked for, such as an order "
        "confirmation: they go to parties who opted out of marketing "
        "e-mails, but never to bounced or complaining addresses.")
    email_from = fields.Char(
        "From", translate=True,
        states={
            'invisible': Eval('action') != 'send_email',
            },
        help="Leave empty to use the sender of the configuration.")
    email_title = fields.Char(
        "Email Title", translate=True,
        states={
            'invisible': Eval('action') != 'send_email',
            'required': Eval('action') == 'send_email',
            },
        help="A Genshi text template for the subject.")
    email_template = fields.Text(
        "Email Template", translate=True,
        states={
            'invisible': Eval('action') != 'send_email',
            'required': Eval('action') == 'send_email',
            },
        help="The body of the e-mail: a Genshi XHTML template, with the "
        "record as 'record'; a link to \"unsubscribe\" becomes the link to "
        "leave the scenario.")

    record_count = fields.Function(
        fields.Integer(
            "Records",
            help="The number of records the activity was run for, whether "
            "it acted or skipped them."),
        'get_statistics')
    record_count_waiting = fields.Function(
        fields.Integer(
            "Waiting",
            help="The number of records for which the activity is due "
            "later or waits for an event."),
        'get_statistics')
    record_count_cancelled = fields.Function(
        fields.Integer(
            "Cancelled",
            help="The number of records for which the activity will not run "
            "because the opposite event happened."),
        'get_statistics')
    record_count_failed = fields.Function(
        fields.Integer(
            "Failed",
            help="The number of records whose e-mail could not be delivered "
            "after all the tries."),
        'get_statistics')
    record_count_skipped = fields.Function(
        fields.Integer(
            "Skipped",
            help="The number of records the activity ran for without acting, "
            "as its note says: condition not met, record gone, no valid "
            "e-mail address or template failing."),
        'get_statistics')
    record_count_skipped_no_address = fields.Function(
        fields.Integer(
            "Skipped: No Address",
            help="The number of records skipped because they have no valid "
            "e-mail address."),
        'get_statistics')
    record_count_skipped_opted_out = fields.Function(
        fields.Integer(
            "Skipped: Opted Out",
            help="The number of records skipped because their party opted "
            "out of marketing e-mails or unsubscribed from the scenario."),
        'get_statistics')
    record_count_skipped_suppressed = fields.Function(
        fields.Integer(
            "Skipped: Suppressed",
            help="The number of records skipped because their e-mail address "
            "is on the suppression list (bounces, complaints, manual or "
            "imported)."),
        'get_statistics')
    record_count_skipped_condition = fields.Function(
        fields.Integer(
            "Skipped: Condition",
            help="The number of records skipped because they did not match "
            "the condition."),
        'get_statistics')
    record_count_skipped_other = fields.Function(
        fields.Integer(
            "Skipped: Other",
            help="The number of records skipped for another reason: record "
            "gone, condition unreadable with the author's rights, template "
            "or message failing, or a note of another module's action."),
        'get_statistics')
    email_sent = fields.Function(
        fields.Integer(
            "Emails Sent",
            help="The number of e-mails the activity sent."),
        'get_statistics')
    email_bounced = fields.Function(
        fields.Integer(
            "Emails Bounced",
            help="The number of e-mails sent whose bounce came back "
            "(a failed delivery, not a delay)."),
        'get_statistics')
    email_opened = fields.Function(
        fields.Integer(
            "Emails Opened",
            help="The number of e-mails sent that were opened."),
        'get_statistics')
    email_clicked = fields.Function(
        fields.Integer(
            "Emails Clicked",
            help="The number of e-mails sent with a link clicked."),
        'get_statistics')
    email_unsubscribed = fields.Function(
        fields.Integer(
            "Unsubscribed",
            help="The number of records the activity sent an e-mail to that "
            "are now blocked in the scenario."),
        'get_statistics')
    email_open_rate = fields.Function(
        fields.Float(
            "Open Rate", digits=(1, 4),
            help="The share of the e-mails sent that were opened."),
        'get_statistics')
    email_click_rate = fields.Function(
        fields.Float(
            "Click Rate", digits=(1, 4),
            help="The share of the e-mails sent with a link clicked."),
        'get_statistics')
    email_click_through_rate = fields.Function(
        fields.Float(
            "Click-Through Rate", digits=(1, 4),
            help="The share of the e-mails opened with a link clicked."),
        'get_statistics')
    email_open_rate_trend = fields.Function(
        fields.Char(
            "Open Rate Trend",
            help="The open rate per day of sending over the last 30 days."),
        'get_trends')
    email_click_rate_trend = fields.Function(
        fields.Char(
            "Click Rate Trend",
            help="The click rate per day of sending over the last 30 days."),
        'get_trends')
    email_click_through_rate_trend = fields.Function(
        fields.Char(
            "Click-Through Rate Trend",
            help="The click-through rate per day of sending over the last "
            "30 days."),
        'get_trends')

    @classmethod
    def __register__(cls, module):
        super().__register__(module)
        cls._fill_scenario()

    @classmethod
    def _fill_scenario(cls):
        "Set the scenario of activities created without it (migration)"
        table = cls.__table__()
        parent = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(
                table.id, table.parent, where=table.scenario == None))  # noqa
        rows = cursor.fetchall()
        if not rows:
            return
        parents = dict(rows)
        scenarios = {}
        cursor.execute(*parent.select(parent.id, parent.scenario))
        scenarios.update(
            (i, s) for i, s in cursor if s is not None)

        def scenario_of(activity_id, seen=()):
            if activity_id in scenarios:
                return scenarios[activity_id]
            model, _, id_ = (parents.get(activity_id) or ',').partition(',')
            if model == SCENARIO:
                return int(id_)
            elif model == ACTIVITY and int(id_) not in seen:
                return scenario_of(int(id_), (*seen, activity_id))
        for activity_id in parents:
            scenario_id = scenario_of(activity_id)
            if scenario_id is not None:
                scenarios[activity_id] = scenario_id
                cursor.execute(*table.update(
                        [table.scenario], [scenario_id],
                        where=table.id == activity_id))

    @classmethod
    def get_actions(cls):
        return cls.fields_get(['action'])['action']['selection']

    @fields.depends('parent')
    def on_change_with_parent_action(self, name=None):
        if isinstance(self.parent, self.__class__):
            return self.parent.action

    @fields.depends('event', 'negative', 'scenario',
        '_parent_scenario.open_tracking')
    def on_change_with_on_warning(self, name=None):
        if (self.event == 'email_opened' and self.scenario
                and not self.scenario.open_tracking):
            if self.negative:
                return gettext(
                    'marketing_automation.msg_not_opened_not_tracked')
            return gettext('marketing_automation.msg_opened_not_tracked')

    def get_on(self, name):
        if self.event:
            return self.event + ('_not' if self.negative else '')

    @classmethod
    def set_on(cls, activities, name, value):
        event, negative = cls._split_on(value)
        cls.write(activities, {'event': event, 'negative': negative})

    @staticmethod
    def _split_on(value):
        if not value:
            return None, False
        if value.endswith('_not'):
            return value[:-len('_not')], True
        return value, False

    @fields.depends('on')
    def on_change_on(self):
        self.event, self.negative = self._split_on(self.on)

    @fields.depends('event', 'negative')
    def on_change_event(self):
        self.on = self.get_on('on')

    @fields.depends('event', 'negative')
    def on_change_negative(self):
        self.on = self.get_on('on')

    @classmethod
    def view_toolbar_get(cls):
        return without_email_archives(super().view_toolbar_get())

    @classmethod
    def default_transactional(cls):
        return False

    @classmethod
    def default_negative(cls):
        return False

    @classmethod
    def default_email_template(cls):
        return (
            '<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml"\n'
            '    xmlns:py="http://genshi.edgewall.org/">\n'
            '<body>\n'
            '</body>\n'
            '</html>')

    @classmethod
    def scenario_of_parent(cls, parent):
        "Return the scenario id of a parent value (record or reference)"
        pool = Pool()
        if isinstance(parent, str):
            model, _, id_ = parent.partition(',')
            parent = pool.get(model)(int(id_)) if id_ else None
        elif isinstance(parent, (list, tuple)):
            model, id_ = parent
            parent = pool.get(model)(int(id_))
        if parent is None or parent.id is None or parent.id < 0:
            return None
        if parent.__name__ == SCENARIO:
            return parent.id
        return parent.scenario.id if parent.scenario else None

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create' and values.get('parent'):
            values.setdefault(
                'scenario', cls.scenario_of_parent(values['parent']))
        if 'on' in values:
            values['event'], values['negative'] = cls._split_on(
                values.pop('on'))
        return values

    @classmethod
    def validate_fields(cls, activities, field_names):
        super().validate_fields(activities, field_names)
        if field_names & {'parent', 'scenario'}:
            cls.check_parent(activities)
        if field_names & {'parent', 'event'}:
            cls.check_event(activities)
        if field_names & {'negative', 'delay'}:
            cls.check_delay(activities)
        if 'variant_weight' in field_names:
            cls.check_variant_weight(activities)
        if 'condition' in field_names:
            cls.check_condition(activities)
        if field_names & {'email_title', 'email_template'}:
            cls.check_email_templates(activities)

    @classmethod
    def check_parent(cls, activities):
        for activity in activities:
            if activity.scenario is None:
                continue
            scenario_id = cls.scenario_of_parent(activity.parent)
            if (scenario_id != activity.scenario.id
                    or activity.parent == activity):
                raise ParentError(gettext(
                        'marketing_automation.msg_activity_parent_scenario',
                        activity=activity.rec_name,
                        scenario=activity.scenario.rec_name))

    @classmethod
    def check_event(cls, activities):
        for activity in activities:
            if (activity.event
                    and activity.on_change_with_parent_action()
                    != 'send_email'):
                raise EventError(gettext(
                        'marketing_automation.msg_activity_event_parent',
                        activity=activity.rec_name))

    @classmethod
    def check_delay(cls, activities):
        for activity in activities:
            if (activity.negative and activity.event
                    and activity.delay is None):
                raise DelayError(gettext(
                        'marketing_automation.msg_activity_negative_delay',
                        activity=activity.rec_name))
            if activity.delay is not None and activity.delay < dt.timedelta():
                raise DelayError(gettext(
                        'marketing_automation.msg_activity_delay_negative',
                        activity=activity.rec_name))

    @classmethod
    def check_condition(cls, activities):
        pool = Pool()
        for activity in activities:
            if not activity.condition:
                continue
            # The errors are raised from None: their cause is a typo of the
            # user, whose traceback would only fill the log
            try:
                condition = PYSONDecoder(noeval=True).decode(
                    activity.condition)
            except Exception as exception:
                raise ConditionError(gettext(
                        'marketing_automation'
                        '.msg_activity_condition_not_pyson',
                        activity=activity.rec_name,
                        error=str(exception) or exception.__class__.__name__)
                    ) from None
            if not isinstance(condition, (PYSON, bool)):
                raise ConditionError(gettext(
                        'marketing_automation'
                        '.msg_activity_condition_not_pyson',
                        activity=activity.rec_name,
                        error=repr(condition)))
            if activity.scenario and activity.scenario.model:
                activity.check_condition_rights(
                    pool.get(activity.scenario.model), condition)

    def check_condition_rights(self, Model, condition):
        "Raise ConditionError if the user cannot read what the condition uses"
        try:
            rights.check_condition(Model, condition)
        except rights.UnknownField as exception:
            raise ConditionError(gettext(
                    'marketing_automation'
                    '.msg_activity_condition_unknown_field',
                    activity=self.rec_name,
                    path=exception.path,
                    model=exception.model.__names__()['model'])
                ) from None
        except rights.InvalidName as exception:
            raise ConditionError(gettext(
                    'marketing_automation'
                    '.msg_activity_condition_invalid_name',
                    activity=self.rec_name,
                    name=exception.name)) from None
        except rights.ReadRefused as refused:
            if refused.field is None:
                message = (
                    'marketing_automation'
                    '.msg_activity_condition_model_unreadable')
            else:
                message = (
                    'marketing_automation'
                    '.msg_activity_condition_field_unreadable')
            raise ConditionError(gettext(
                    message, activity=self.rec_name,
                    **refused.names())) from None

    @classmethod
    def check_email_templates(cls, activities):
        for activity in activities:
            for field, check, error in [
                    ('email_title', rendering.check_title,
                        'msg_activity_invalid_email_title'),
                    ('email_template', rendering.check_html,
                        'msg_activity_invalid_email_template'),
                    ]:
                text = getattr(activity, field)
                if not text:
                    continue
                try:
                    check(text)
                except rendering.TemplateError as exception:
                    # The error tells all: its traceback would only fill
                    # the log
                    raise TemplateError(gettext(
                            'marketing_automation.' + error,
                            activity=activity.rec_name,
                            exception=exception)) from None

    @classmethod
    def on_modification(cls, mode, activities, field_names=None):
        super().on_modification(mode, activities, field_names=field_names)
        # The events read the children of the activities from a cache
        engine.children_cache.clear()

    @classmethod
    def on_delete(cls, activities):
        callbacks = super().on_delete(activities)
        descendants = cls.search([
                ('parent', 'in', [str(a) for a in activities]),
                ])
        if descendants:
            callbacks.append(lambda: cls.delete(descendants))
        return callbacks

    @classmethod
    def copy(cls, activities, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('scenario')
        return super().copy(activities, default=default)

    @classmethod
    def get_statistics(cls, activities, names):
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Record = pool.get('marketing.automation.record')
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        record_activity = RecordActivity.__table__()
        record = Record.__table__()
        activity = cls.__table__()
        pruned = PrunedStatistics.__table__()
        pruned_counters = set(PrunedStatistics.counters())
        cursor = Transaction().connection.cursor()

        def count_if(condition):
            return Sum(Case((condition, 1), else_=0))
        done = record_activity.state == 'done'
        sent = email_sent_where(record_activity, activity)
        skipped = email_skipped_where(record_activity)
        columns = {
            'record_count': count_if(done),
            'record_count_waiting': count_if(
                record_activity.state == 'waiting'),
            'record_count_cancelled': count_if(
                record_activity.state == 'cancelled'),
            'record_count_failed': count_if(
                record_activity.state == 'failed'),
            'record_count_skipped': count_if(skipped),
            **{'record_count_skipped_' + group: count_if(
                    skipped & fields.SQL_OPERATORS['in'](
                        record_activity.skip_reason, reasons))
                for group, reasons in SKIP_REASON_GROUPS.items()},
            'email_bounced': count_if(
                done & (record_activity.email_bounced == Literal(True))),
            'email_sent': count_if(sent),
            'email_opened': count_if(
                sent & (record_activity.email_opened == Literal(True))),
            'email_clicked': count_if(
                sent & (record_activity.email_clicked == Literal(True))),
            'email_unsubscribed': count_if(
                sent & (record.blocked == Literal(True))),
            }
        counts = defaultdict(lambda: dict.fromkeys(columns, 0))
        for sub_activities in grouped_slice(activities, MAX_QUERY_PARAMS):
            ids = [a.id for a in sub_activities]
            cursor.execute(*record_activity.join(
                    record, condition=record_activity.record == record.id
                    ).join(
                    activity, condition=record_activity.activity == activity.id
                    ).select(
                    record_activity.activity, *columns.values(),
                    where=fields.SQL_OPERATORS['in'](
                        record_activity.activity, ids),
                    group_by=record_activity.activity))
            for activity_id, *values in cursor:
                counts[activity_id] = {
                    n: v or 0 for n, v in zip(columns, values)}
            pruned_columns = [n for n in columns if n in pruned_counters]
            cursor.execute(*pruned.select(
                    pruned.activity,
                    *(Sum(getattr(pruned, n)) for n in pruned_columns),
                    where=fields.SQL_OPERATORS['in'](pruned.activity, ids),
                    group_by=pruned.activity))
            for activity_id, *values in cursor:
                for name, value in zip(pruned_columns, values):
                    counts[activity_id][name] += value or 0

        result = {name: {} for name in names}
        for activity in activities:
            values = counts[activity.id]
            sent = values['email_sent']
            opened = values['email_opened']
            clicked = values['email_clicked']
            values['record_count_skipped_other'] = (
                values['record_count_skipped']
                - sum(values['record_count_skipped_' + g]
                    for g in SKIP_REASON_GROUPS))
            values.update({
                    'email_open_rate': rate(opened, sent),
                    'email_click_rate': rate(clicked, sent),
                    'email_click_through_rate': rate(clicked, opened),
                    })
            for name in names:
                result[name][activity.id] = values[name]
        return result

    @classmethod
    def get_trends(cls, activities, names):
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        PrunedStatistics = pool.get('marketing.automation.statistics.pruned')
        record_activity = RecordActivity.__table__()
        activity = cls.__table__()
        pruned = PrunedStatistics.__table__()
        computes = {
            'email_open_rate_trend': lambda s, o, k: rate(o, s),
            'email_click_rate_trend': lambda s, o, k: rate(k, s),
            'email_click_through_rate_trend': lambda s, o, k: rate(k, o),
            }
        aggregates = [
            Count(record_activity.id),
            Sum(Case(
                    (record_activity.email_opened == Literal(True), 1),
                    else_=0)),
            Sum(Case(
                    (record_activity.email_clicked == Literal(True), 1),
                    else_=0)),
            ]
        ids = [a.id for a in activities]
        return {
            name: daily_trend(
                record_activity.join(activity,
                    condition=record_activity.activity == activity.id),
                record_activity.activity, record_activity.at,
                aggregates, computes[name], ids,
                where=email_sent_where(record_activity, activity),
                pruned=(pruned, pruned.activity, pruned.date, [
                        Sum(pruned.email_sent), Sum(pruned.email_opened),
                        Sum(pruned.email_clicked)],
                    pruned.email_sent > 0))
            for name in names}

    def match(self, record, reader=None):
        "Tell if the record matches the condition, read with reader's rights"
        if not self.condition:
            return True
        env = {
            'self': rights.RecordEnvironment(record, reader),
            'context': Transaction().context,
            }
        try:
            return bool(PYSONDecoder(env).decode(self.condition))
        except AccessError:
            raise
        except Exception as exception:
            # A line: the cause is in the condition, not in the code
            logger.warning(
                "Fail to evaluate condition of %s on %s: %r",
                self, record, exception)
            return False

    def match_records(self, records):
        "Return per record if it matches, None if the author cannot tell"
        author = self.write_uid or self.create_uid
        author_id = author.id if author else 0
        result = {}
        with Transaction().set_user(author_id):
            reader = RecordReader() if author_id else None
            if reader is not None:
                by_model = defaultdict(list)
                for record in records:
                    by_model[record.__class__].append(record.id)
                for Model, ids in by_model.items():
                    reader.prefetch(Model, ids)
            for record in records:
                try:
                    result[record] = self.match(record, reader)
                except AccessError:
                    result[record] = None
        return result

    def run_action(self, rows):
        "Run the action for the engine's rows; return the notes by id"
        batch = getattr(self, 'execute_%s_batch' % self.action, None)
        if batch is not None:
            return batch(rows)
        # Actions written for Tryton's own module take one record activity
        RecordActivity = Pool().get('marketing.automation.record.activity')
        execute = getattr(self, 'execute_' + self.action)
        for record_activity in RecordActivity.browse([r.id for r in rows]):
            execute(record_activity)
        return {}

    def execute_send_email_batch(self, rows):
        "Send the e-mail of the activity for the engine's rows"
        return mailing.send_emails(self, rows)

    def email_context(self, record, reader=None):
        "Return the context to render the e-mail templates for the record"
        if reader is None:
            reader = RecordReader()
        return {
            'record': reader.proxy(record),
            **sandbox.helpers(),
            }

    # A/B split

    @classmethod
    def check_variant_weight(cls, activities):
        for activity in activities:
            if activity.variant_weight and activity.variant_weight < 0:
                raise VariantError(gettext(
                        'marketing_automation.msg_activity_variant_weight',
                        activity=activity.rec_name))

    @property
    def variant_group_key(self):
        "The key of the activity's variant group, None if not a variant"
        if self.variant_weight and self.parent:
            return variants.group_key(
                str(self.parent), self.event, self.negative)

    @classmethod
    def get_variant_comparison(cls, activities, name):
        "Return the ids of the variants of each activity's group"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        keys = {a.id: a.variant_group_key for a in activities}
        parents = sorted({str(a.parent) for a in activities if keys[a.id]})
        groups = defaultdict(list)
        # In SQL: reading the siblings as instances would compute all their
        # statistics
        for sub_parents in grouped_slice(parents, MAX_QUERY_PARAMS):
            cursor.execute(*table.select(
                    table.id, table.parent, table.event, table.negative,
                    where=fields.SQL_OPERATORS['in'](
                        table.parent, list(sub_parents))
                    & (table.variant_weight > 0),
                    order_by=[table.id.asc]))
            for id_, parent, event, negative in cursor:
                groups[variants.group_key(parent, event, negative)].append(
                    id_)
        return {a.id: groups.get(keys[a.id], []) for a in activities}
