# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
from collections import defaultdict

from sql import Literal, Null
from sql.functions import CurrentTimestamp
from sql.operators import Concat

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import Index, ModelSQL, ModelView, Unique, Workflow, fields
from trytond.pool import Pool
from trytond.pyson import Bool, Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect, engine, events, links
from .mixin import ActivityActionMixin, marketing_models
from .tokens import TokenMixin


class Record(TokenMixin, ModelSQL, ModelView):
    __name__ = 'marketing.automation.record'

    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario",
        required=True, ondelete='CASCADE')
    record = fields.Reference(
        "Record", selection='get_models', required=True)
    blocked = fields.Boolean(
        "Blocked", readonly=True,
        help="A blocked record does not run any more activity.")
    party = fields.Function(
        fields.Many2One(
            'party.party', "Party",
            help="The party of the record, or the record itself."),
        'get_party', searcher='search_party')
    entered = fields.Function(
        fields.DateTime(
            "Entered", help="When the record entered the scenario."),
        'get_entered')
    activities = fields.One2Many(
        'marketing.automation.record.activity', 'record', "Activities",
        readonly=True,
        help="What the activities of the scenario did or will do for the "
        "record.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('scenario')
        t = cls.__table__()
        cls._sql_constraints = [
            ('scenario_record_unique', Unique(t, t.scenario, t.record),
                'marketing_automation.msg_record_scenario_record_unique'),
            cls._token_constraint(
                'marketing_automation.msg_record_uuid_unique'),
            ]
        cls._sql_indexes.update({
                # The statistics and the funnel of a period read its
                # records only
                Index(t, (t.create_date, Index.Range()),
                    (t.scenario, Index.Equality())),
                # The roots are scheduled for the records enrolled after
                # the last id of the previous batch
                Index(t, (t.scenario, Index.Equality()),
                    (t.id, Index.Range())),
                })
        cls._buttons.update({
                'block': {
                    'invisible': Bool(Eval('blocked')),
                    'icon': 'tryton-cancel',
                    'depends': ['blocked'],
                    },
                })

    @classmethod
    def default_blocked(cls):
        return False

    @classmethod
    def get_models(cls):
        pool = Pool()
        Model = pool.get('ir.model')
        return [(m, Model.get_name(m)) for m in marketing_models()]

    def get_rec_name(self, name):
        target = self.record
        if target is None or target.id is None or target.id < 0:
            return ''
        try:
            target_name = target.rec_name
            party = target.marketing_party
        except Exception:
            # The enrolled record may be gone
            return ''
        if party and party != target:
            # A sale in draft is named after its id only
            return '%s: %s' % (party.rec_name, target_name)
        return target_name

    def get_entered(self, name):
        # The time of the creation without its microseconds, which the
        # clients show in a list
        if self.create_date:
            return self.create_date.replace(microsecond=0)

    @staticmethod
    def order_entered(tables):
        table, _ = tables[None]
        return [table.create_date]

    def get_party(self, name):
        party = self.marketing_party()
        return party.id if party else None

    @classmethod
    def search_party(cls, name, clause):
        pool = Pool()
        Party = pool.get('party.party')
        table = cls.__table__()
        parties = Party.search(
            Party.search_marketing_party(name, clause),
            order=[], query=True)
        references = None
        for model in marketing_models():
            Model = pool.get(model)
            target = Model.__table__()
            column = Model.marketing_party_column(target)
            if column is not None:
                query = target.select(
                    Concat(model + ',', target.id),
                    where=column.in_(parties))
            else:
                ids = Model.marketing_party_records(parties)
                query = ids.select(Concat(model + ',', ids.id))
            references = query if references is None else references | query
        return [('id', 'in', table.select(
                    table.id, where=table.record.in_(references)))]

    @classmethod
    def create(cls, vlist):
        EnrolledStatistics = Pool().get(
            'marketing.automation.statistics.enrolled')
        records = super().create(vlist)
        EnrolledStatistics.add_records(engine.ids_of(records))
        return records

    @classmethod
    def copy(cls, records, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('blocked', False)
        return super().copy(records, default=default)

    @classmethod
    def write(cls, *args):
        EnrolledStatistics = Pool().get(
            'marketing.automation.statistics.enrolled')
        actions = iter(args)
        moved = [i for records, values in zip(actions, actions)
            if 'scenario' in values for i in engine.ids_of(records)]
        # Counted in the scenario they moved to
        EnrolledStatistics.add_records(moved, sign=-1)
        super().write(*args)
        EnrolledStatistics.add_records(moved)

    @classmethod
    def delete(cls, records):
        EnrolledStatistics = Pool().get(
            'marketing.automation.statistics.enrolled')
        EnrolledStatistics.add_records(engine.ids_of(records), sign=-1)
        super().delete(records)

    @classmethod
    @ModelView.button
    def block(cls, records):
        cls.write(records, {'blocked': True})

    @classmethod
    def _block(cls, records):
        to_block = [r for r in records if not r.blocked]
        if to_block:
            cls.write(to_block, {'blocked': True})

    @classmethod
    def unsubscribe(cls, records, source='page'):
        "Block the records and unsubscribe their party when allowed"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        cls._block(records)
        by_scenario = defaultdict(set)
        for record in records:
            party = record.marketing_party()
            if party and record.scenario.unsubscribable:
                by_scenario[record.scenario].add(party.id)
        for scenario, party_ids in by_scenario.items():
            Consent.record(party_ids, True, source, scenario=scenario)

    @classmethod
    def opt_out(cls, records, source='page'):
        "Block the records and opt their party out of all marketing e-mails"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        cls._block(records)
        parties = {p.id for p in (r.marketing_party() for r in records) if p}
        Consent.record(parties, True, source)

    def marketing_party(self):
        "Return the party of the enrolled record or None if it is gone"
        target = self.record
        if target is None or target.id is None or target.id < 0:
            return None
        if not target.__class__.search([('id', '=', target.id)]):
            return None
        return target.marketing_party

    def is_known_url(self, url):
        "Tell if the URL is the destination of a link sent to this record"
        pool = Pool()
        Email = pool.get('ir.email')
        Activity = pool.get('marketing.automation.activity')
        if not url:
            return False
        if any(url in links.linked_urls(email.body)
                for email in Email.search([
                        ('marketing_automation_record', '=', self.id),
                        ])):
            return True
        # Tryton's own module archived no body: the destinations of the
        # unsubscribe links it sent are those written in the templates
        return any(
            url in links.unsubscribe_destinations(activity.email_template)
            for activity in Activity.search([
                    ('scenario', '=', self.scenario.id),
                    ('action', '=', 'send_email'),
                    ]))


class RecordActivity(
        TokenMixin, ActivityActionMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'marketing.automation.record.activity'

    record = fields.Many2One(
        'marketing.automation.record', "Record",
        required=True, ondelete='CASCADE')
    activity = fields.Many2One(
        'marketing.automation.activity', "Activity",
        required=True, ondelete='CASCADE')
    at = fields.DateTime(
        "At", readonly=True,
        help="When the activity is due; empty while waiting for an event.")
    email_opened = fields.Boolean(
        "Email Opened", readonly=True,
        states={
            'invisible': Eval('activity_action') != 'send_email',
            })
    email_clicked = fields.Boolean(
        "Email Clicked", readonly=True,
        states={
            'invisible': Eval('activity_action') != 'send_email',
            })
    email_opened_date = fields.DateTime(
        "Email Opened Date", readonly=True,
        states={
            'invisible': ~Eval('email_opened'),
            },
        help="When the e-mail was first opened.")
    email_clicked_date = fields.DateTime(
        "Email Clicked Date", readonly=True,
        states={
            'invisible': ~Eval('email_clicked'),
            },
        help="When a link of the e-mail was first clicked.")
    tries = fields.Integer(
        "Tries", readonly=True,
        help="How many times sending failed.")
    note = fields.Char(
        "Note", readonly=True,
        help="Why the action did not run or failed.")
    skip_reason = fields.Selection([
            (None, ""),
            ('no_address', "No E-mail Address"),
            ('invalid_address', "Invalid E-mail Address"),
            ('opted_out', "Opted Out"),
            ('unsubscribed', "Unsubscribed from the Scenario"),
            ('suppressed', "Suppressed Address"),
            ('condition_false', "Condition Not Met"),
            ('condition_unreadable', "Condition Unreadable"),
            ('record_gone', "Record Gone"),
            ('render_error', "Template Failed"),
            ('build_error', "Message Failed"),
            ('other', "Other"),
            ], "Skip Reason", readonly=True, sort=False,
        help="Why the activity was done without acting, as the note says.")
    email_bounced = fields.Boolean(
        "Email Bounced", readonly=True,
        states={
            'invisible': Eval('activity_action') != 'send_email',
            },
        help="Checked when a bounce of the e-mail came back.")
    state = fields.Selection([
            ('waiting', "Waiting"),
            ('done', "Done"),
            ('cancelled', "Cancelled"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)
    email_handoff = fields.Selection([
            (None, ""),
            ('pending', "Pending"),
            ('sending', "Sending"),
            ('sent', "Sent"),
            ('interrupted', "Interrupted"),
            ], "Email Hand-off", readonly=True, sort=False,
        states={
            'invisible': Eval('activity_action') != 'send_email',
            },
        help="Where the e-mail stands with the SMTP server: pending (not "
        "handed yet), sending (being handed), sent (accepted by the server) "
        "or interrupted (the sending process stopped while handing it: it "
        "may or may not have been received).")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('record')
        cls.uuid.help = "The unguessable token of the activity in public URLs."
        t = cls.__table__()
        cls._sql_constraints = [
            ('activity_record_unique', Unique(t, t.activity, t.record),
                'marketing_automation.msg_activity_record_unique'),
            cls._token_constraint(
                'marketing_automation.msg_record_activity_uuid_unique'),
            ]
        cls._sql_indexes.update({
                # The due ones; without those waiting for an event, which
                # the planner would scan whole, on stale statistics, to
                # find the child of an opened e-mail
                Index(t, (t.at, Index.Range()), (t.id, Index.Range()),
                    where=(t.state == 'waiting') & (t.at != Null)),
                # The recovery and the review look for the few e-mails whose
                # hand-off is unfinished.  Without write_date, which the
                # events set: an update that changes no indexed column can
                # stay on its page (HOT) and leaves the indexes alone
                Index(t, (t.email_handoff, Index.Equality()),
                    where=t.email_handoff.in_(
                        ['pending', 'sending', 'interrupted'])),
                Index(t, (t.record, Index.Range())),
                # The statistics and the funnel of a period read what was
                # done in it, not what waits
                Index(t, (t.at, Index.Range()), (t.activity, Index.Equality()),
                    where=t.state == 'done'),
                })
        cls._order = [('at', 'DESC NULLS FIRST'), ('id', 'DESC')]
        cls._transitions |= {
            ('waiting', 'done'),
            ('waiting', 'cancelled'),
            ('waiting', 'failed'),
            ('failed', 'waiting'),
            # Only the interrupted e-mails (see the states of retry)
            ('done', 'waiting'),
            }
        cls._buttons.update({
                'on_email_opened': {
                    'invisible': ((Eval('state') != 'done')
                        | Eval('email_opened')
                        | (Eval('activity_action') != 'send_email')),
                    'depends': ['state', 'email_opened', 'activity_action'],
                    },
                'on_email_clicked': {
                    'invisible': ((Eval('state') != 'done')
                        | Eval('email_clicked')
                        | (Eval('activity_action') != 'send_email')),
                    'depends': ['state', 'email_clicked', 'activity_action'],
                    },
                'retry': {
                    'invisible': ~((Eval('state') == 'failed')
                        | ((Eval('state') == 'done')
                            & (Eval('email_handoff') == 'interrupted'))),
                    'icon': 'tryton-refresh',
                    'depends': ['state', 'email_handoff'],
                    },
                'mark_sent': {
                    'invisible': Eval('email_handoff') != 'interrupted',
                    'icon': 'tryton-ok',
                    'depends': ['email_handoff'],
                    },
                })

    @classmethod
    def default_state(cls):
        return 'waiting'

    @classmethod
    def default_email_opened(cls):
        return False

    @classmethod
    def default_email_clicked(cls):
        return False

    @classmethod
    def default_tries(cls):
        return 0

    @classmethod
    def default_email_bounced(cls):
        return False

    def get_rec_name(self, name):
        return '%s @ %s' % (self.activity.rec_name, self.record.rec_name)

    # The engine (engine.py) does the work; these are its entry points for
    # the cron, the queue, the buttons and the other modules

    @classmethod
    def schedule_roots(cls, scenario, after_record_id):
        "Create the root activities of the scenario's records after the id"
        engine.schedule_roots(scenario, after_record_id)

    @classmethod
    def schedule_children(cls, record_activities):
        "Create the record activities of the children of the activities"
        by_activity = defaultdict(list)
        for record_activity in record_activities:
            by_activity[record_activity.activity].append(
                record_activity.record.id)
        engine.schedule_children(by_activity)

    @classmethod
    def process(cls, record_activities=None):
        "Run the due record activities"
        if record_activities is not None:
            engine.process(engine.ids_of(record_activities))
            return
        batch_size = config.getint(
            'marketing', 'automation_process_batch', default=500)
        # First the children of the events of the public routes, which may
        # be due at once
        events.apply_pending(batch_size)
        for ids in engine.due_batches(batch_size):
            # Queued under its first record activity: trytond makes an
            # instance of each record activity of a queued list, and each
            # such instance checks every id of the list
            cls.__queue__.process_batch(cls(ids[0]), ids)

    @classmethod
    def process_batch(cls, first, ids):
        "Run the due record activities of ids, queued under the first"
        engine.process(ids)

    @classmethod
    def do(cls, record_activities, **kwargs):
        "Run the record activities that are still due"
        # The former module queued its batches as tasks of this method:
        # those left in the queue when the module is swapped run here
        cls.process(record_activities)

    @classmethod
    def sending_failed(cls, failures):
        "Reschedule with back-off or fail the record activities not sent"
        engine.sending_failed(failures)

    @classmethod
    def set_email_handoff(cls, ids, step):
        "Move the e-mails of ids to the step of their hand-off; return those"
        return engine.set_email_handoff(ids, step)

    @classmethod
    def recover_handoffs(cls):
        """Schedule again the e-mails whose hand-off never started and flag
        those whose hand-off was interrupted"""
        timeout = config.getint(
            'marketing', 'automation_handoff_timeout', default=900)
        # A process still sending updates its rows within the timeout
        engine.recover_handoffs(
            dt.datetime.now() - dt.timedelta(seconds=timeout))

    @classmethod
    @ModelView.button
    @Workflow.transition('waiting')
    def retry(cls, record_activities):
        # The button's states let users retry done ones only if interrupted
        engine.requeue(
            [r.id for r in record_activities
                if r.email_handoff == 'interrupted'],
            'interrupted')
        cls.write(record_activities, {
                'at': dialect.schedule_time(),
                'tries': 0,
                })

    @classmethod
    @ModelView.button
    def mark_sent(cls, record_activities):
        "Confirm that the interrupted e-mails reached their recipients"
        interrupted = [
            r for r in record_activities if r.email_handoff == 'interrupted']
        if interrupted:
            cls.write(interrupted, {
                    'email_handoff': 'sent', 'note': None,
                    'skip_reason': None})

    @classmethod
    def mark_bounced(cls, record_activities):
        "Flag the e-mails of the record activities as bounced"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        ids = engine.ids_of(record_activities)
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.update(
                    [table.email_bounced, table.write_date],
                    [Literal(True), CurrentTimestamp()],
                    where=fields.SQL_OPERATORS['in'](table.id, sub_ids)))
        engine.clear_cache()

    @classmethod
    @ModelView.button
    def on_email_opened(cls, record_activities):
        engine.fire(engine.ids_of(record_activities), ['email_opened'])

    @classmethod
    def record_hit(cls, token, flags, url=None):
        """Record the events (the flags) of a public route's hit of token
        and its click on url; return the record activity or None"""
        id_ = events.record_hit(token, flags, url)
        return cls(id_) if id_ is not None else None

    def clicked_location(self, url):
        "Return where a tracked link to url of the e-mail leads"
        # The links of Tryton's own module are shortened URLs of the record
        # activity, to which marketing_campaign adds its UTM parameters
        add_utm_parameters = getattr(self, 'add_utm_parameters', None)
        return add_utm_parameters(url) if add_utm_parameters else url

    @classmethod
    @ModelView.button
    def on_email_clicked(cls, record_activities):
        # A click implies the message was opened
        engine.fire(
            engine.ids_of(record_activities),
            ['email_opened', 'email_clicked'])
