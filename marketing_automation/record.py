# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
import logging
from collections import defaultdict, namedtuple

from sql import Literal, Null
from sql.functions import CurrentTimestamp
from sql.operators import Concat, Exists

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.cache import Cache
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, Workflow, fields
from trytond.pool import Pool
from trytond.pyson import Bool, Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect, links
from .links import new_token
from .mixin import ActivityActionMixin, marketing_models
from .tokens import TokenMixin

logger = logging.getLogger(__name__)


def _config_int(name, default):
    return config.getint('marketing', name, default=default)


_Row = namedtuple('_Row', [
        'id', 'activity', 'record', 'target', 'token', 'record_token'])
_Child = namedtuple('_Child', ['id', 'event', 'negative', 'delay'])


def ids_of(records):
    "Return the ids of the records without making instances of them"
    # Each instance made from a browse list checks every id of the list
    ids = getattr(records, 'ids', None)
    return list(ids) if ids is not None else [int(r) for r in records]


def _reference(value):
    "Return the (model, id) of a stored reference or None"
    model, _, id_ = (value or '').partition(',')
    try:
        id_ = int(id_)
    except ValueError:
        return None
    if not model or id_ < 0:
        return None
    return model, id_


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
        _, operator, operand, *extra = clause
        nested = clause[0][len(name) + 1:]
        if not nested:
            nested = 'rec_name' if isinstance(operand, str) else 'id'
        parties = Party.search(
            [(nested, operator, operand, *extra)], order=[], query=True)
        references = None
        for model in marketing_models():
            Model = pool.get(model)
            target = Model.__table__()
            query = target.select(
                Concat(model + ',', target.id),
                where=Model.marketing_party_column(target).in_(parties))
            references = query if references is None else references | query
        return [('id', 'in', table.select(
                    table.id, where=table.record.in_(references)))]

    @classmethod
    def copy(cls, records, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('blocked', False)
        return super().copy(records, default=default)

    @classmethod
    @ModelView.button
    def block(cls, records):
        cls.write(records, {'blocked': True})

    @classmethod
    def unsubscribe(cls, records):
        "Block the records and unsubscribe their party when allowed"
        pool = Pool()
        Unsubscribed = pool.get(
            'party.party-unsubscribed-marketing.automation.scenario')
        to_block = [r for r in records if not r.blocked]
        if to_block:
            cls.write(to_block, {'blocked': True})
        pairs = set()
        for record in records:
            if not record.scenario.unsubscribable:
                continue
            party = record.marketing_party()
            if party:
                pairs.add((party.id, record.scenario.id))
        existing = Unsubscribed.search([
                ('party', 'in', [p for p, _ in pairs]),
                ('scenario', 'in', [s for _, s in pairs]),
                ]) if pairs else []
        pairs -= {(u.party.id, u.scenario.id) for u in existing}
        if pairs:
            Unsubscribed.create([
                    {'party': p, 'scenario': s} for p, s in sorted(pairs)])

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
        if not url:
            return False
        return any(
            url in links.linked_urls(email.body)
            for email in Email.search([
                    ('marketing_automation_record', '=', self.id),
                    ]))


class RecordActivity(
        TokenMixin, ActivityActionMixin, Workflow, ModelSQL, ModelView):
    __name__ = 'marketing.automation.record.activity'
    # The children of the activities, for the events (cleared when an
    # activity changes)
    _children_cache = Cache(
        'marketing.automation.record.activity.children', context=False)

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
    tries = fields.Integer(
        "Tries", readonly=True,
        help="How many times sending failed.")
    note = fields.Char(
        "Note", readonly=True,
        help="Why the action did not run or failed.")
    state = fields.Selection([
            ('waiting', "Waiting"),
            ('done', "Done"),
            ('cancelled', "Cancelled"),
            ('failed', "Failed"),
            ], "State", required=True, readonly=True, sort=False)

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
                Index(t, (t.at, Index.Range()), (t.id, Index.Range()),
                    where=t.state == 'waiting'),
                Index(t, (t.record, Index.Range())),
                })
        cls._order = [('at', 'DESC NULLS FIRST'), ('id', 'DESC')]
        cls._transitions |= {
            ('waiting', 'done'),
            ('waiting', 'cancelled'),
            ('waiting', 'failed'),
            ('failed', 'waiting'),
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
                    'invisible': Eval('state') != 'failed',
                    'icon': 'tryton-refresh',
                    'depends': ['state'],
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

    def get_rec_name(self, name):
        return '%s @ %s' % (self.activity.rec_name, self.record.rec_name)

    # Scheduling

    @classmethod
    def schedule_roots(cls, scenario, after_record_id):
        "Create the root activities of the scenario's records after the id"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        record = Record.__table__()
        now = dialect.schedule_time()
        for activity in scenario.activities:
            at = now + (activity.delay or dt.timedelta())
            cursor.execute(*table.insert(
                    cls._insert_columns(table),
                    record.select(
                        record.id, Literal(activity.id), Literal(at),
                        *cls._insert_defaults(),
                        where=(record.scenario == scenario.id)
                        & (record.id > after_record_id)
                        & ~Exists(table.select(Literal(1),
                                where=(table.record == record.id)
                                & (table.activity == activity.id)))),
                    on_conflict=dialect.insert_on_conflict_nothing(table)))

    @classmethod
    def _insert_columns(cls, table):
        return [table.record, table.activity, table.at,
            table.state, table.uuid, table.email_opened, table.email_clicked,
            table.tries, table.create_uid, table.create_date]

    @classmethod
    def _insert_defaults(cls):
        return [Literal('waiting'), dialect.token(), Literal(False),
            Literal(False), Literal(0), Literal(Transaction().user),
            dialect.now()]

    @classmethod
    def schedule_children(cls, record_activities):
        "Create the record activities of the children of the activities"
        by_activity = defaultdict(list)
        for record_activity in record_activities:
            by_activity[record_activity.activity].append(
                record_activity.record.id)
        cls._schedule_children(by_activity)

    @classmethod
    def _schedule_children(cls, by_activity):
        "Create the children of each activity for the records ids"
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        now = dialect.schedule_time()
        for activity, record_ids in by_activity.items():
            for child in activity.children:
                at = None
                if not child.event or child.negative:
                    at = now + (child.delay or dt.timedelta())
                columns = cls._insert_columns(table)
                for sub_ids in grouped_slice(
                        record_ids, MAX_QUERY_PARAMS // len(columns)):
                    values = [
                        [i, child.id, at, 'waiting', new_token(), False,
                            False, 0, transaction.user, now]
                        for i in sub_ids]
                    cursor.execute(*table.insert(
                            columns, values,
                            on_conflict=dialect.insert_on_conflict_nothing(
                                table)))

    # Execution

    @classmethod
    def _due_where(cls, table, now):
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        Activity = pool.get('marketing.automation.activity')
        Scenario = pool.get('marketing.automation.scenario')
        record = Record.__table__()
        activity = Activity.__table__()
        scenario = Scenario.__table__()
        # Correlated sub-queries: an IN (sub-query) of all the unblocked
        # records costs O(records) per statement (SQLite even drives the
        # claim of a batch by it), so the cost would grow with the audience
        return ((table.state == 'waiting')
            & (table.at != Null) & (table.at <= now)
            & Exists(record.select(
                    Literal(1),
                    where=(record.id == table.record)
                    & (record.blocked == Literal(False))))
            & Exists(activity.join(
                    scenario, condition=activity.scenario == scenario.id
                    ).select(Literal(1),
                    where=(activity.id == table.activity)
                    & (scenario.state == 'running'))))

    @classmethod
    def process(cls, record_activities=None):
        "Run the due record activities"
        if record_activities is None:
            cls._dispatch_due()
            return
        dialect.close_at_end(Transaction())
        record_ids = cls._run(record_activities)
        # Children due at once run in the same call
        while record_ids:
            now = dt.datetime.now()
            table = cls.__table__()
            cursor = Transaction().connection.cursor()
            child_ids = []
            for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
                cursor.execute(*table.select(
                        table.id,
                        where=fields.SQL_OPERATORS['in'](table.record, sub_ids)
                        & cls._due_where(table, now)))
                child_ids.extend(i for i, in cursor)
            record_ids = cls._run(cls.browse(child_ids)) if child_ids else []

    @classmethod
    def _dispatch_due(cls):
        "Push the due record activities to the queue in batches"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        now = dt.datetime.now()
        batch_size = _config_int('automation_process_batch', 500)
        cursor.execute(*table.select(
                table.id,
                where=cls._due_where(table, now),
                order_by=[table.at.asc, table.id.asc]))
        while True:
            ids = [i for i, in cursor.fetchmany(batch_size)]
            if not ids:
                break
            with Transaction().set_context(queue_batch=batch_size):
                cls.__queue__.process(cls.browse(ids))

    @classmethod
    def _claim(cls, record_activities):
        "Return the ids of the record activities this transaction runs"
        cursor = Transaction().connection.cursor()
        table = cls.__table__()
        now = dt.datetime.now()
        ids = []
        all_ids = ids_of(record_activities)
        for sub_ids in grouped_slice(all_ids, MAX_QUERY_PARAMS):
            query = table.select(
                table.id,
                where=fields.SQL_OPERATORS['in'](table.id, sub_ids)
                & cls._due_where(table, now))
            # Concurrent runs skip what another one is running
            cursor.execute(*dialect.lock_skip_locked(query, table))
            ids.extend(i for i, in cursor)
        if ids and not dialect.skip_locked_supported():
            # Writers are serialized on SQLite but mark the rows at once
            for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
                cursor.execute(*table.update(
                        [table.write_date], [CurrentTimestamp()],
                        where=fields.SQL_OPERATORS['in'](table.id, sub_ids)))
        return ids

    @classmethod
    def _run(cls, record_activities):
        "Run the record activities and return the ids of their records"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        ids = cls._claim(record_activities)
        if not ids:
            return []
        # The rows are read in SQL: going through the instances costs more
        # than the actions themselves; only the actions get instances
        rows = cls.read_rows(ids)
        activities = {a.id: a for a in Activity.browse(
                sorted({r.activity for r in rows}))}
        cls._cancel_opposites(rows, activities)
        existing = cls._existing_targets(rows)

        by_activity = defaultdict(list)
        for row in rows:
            by_activity[row.activity].append(row)
        notes = {}
        for activity_id, activity_rows in by_activity.items():
            activity = activities[activity_id]
            candidates = []
            for row in activity_rows:
                if row.target not in existing:
                    notes[row.id] = gettext(
                        'marketing_automation.msg_record_gone')
                else:
                    candidates.append(row)
            if activity.condition:
                targets = cls._targets(r.target for r in candidates)
                matches = activity.match_records(list(targets.values()))
                to_act = []
                for row in candidates:
                    matched = matches[targets[row.target]]
                    if matched:
                        to_act.append(row.id)
                    elif matched is None:
                        # Tells nothing of the values the author cannot read
                        notes[row.id] = gettext(
                            'marketing_automation.msg_condition_unreadable')
                    else:
                        notes[row.id] = gettext(
                            'marketing_automation.msg_condition_false')
            else:
                to_act = [r.id for r in candidates]
            if activity.action and to_act:
                notes.update(activity.execute(cls.browse(to_act)) or {})

        cls._mark_done([r.id for r in rows], notes)
        by_activity = defaultdict(list)
        for row in rows:
            by_activity[activities[row.activity]].append(row.record)
        cls._schedule_children(by_activity)
        cls._clear_cache()
        return [r.record for r in rows]

    @classmethod
    def read_rows(cls, ids):
        "Return the rows of the record activities with their target"
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        table = cls.__table__()
        record = Record.__table__()
        cursor = Transaction().connection.cursor()
        rows = []
        for sub_ids in grouped_slice(sorted(ids), MAX_QUERY_PARAMS):
            cursor.execute(*table.join(
                    record, condition=table.record == record.id
                    ).select(
                    table.id, table.activity, table.record, record.record,
                    table.uuid, record.uuid,
                    where=fields.SQL_OPERATORS['in'](table.id, sub_ids),
                    order_by=[table.id.asc]))
            rows.extend(
                _Row(i, a, r, _reference(t), u, ru)
                for i, a, r, t, u, ru in cursor)
        return rows

    @classmethod
    def _targets(cls, references):
        "Return the instances of the (model, id) references"
        pool = Pool()
        by_model = defaultdict(set)
        for model, id_ in references:
            by_model[model].add(id_)
        targets = {}
        for model, ids in by_model.items():
            for target in pool.get(model).browse(sorted(ids)):
                targets[(model, target.id)] = target
        return targets

    @classmethod
    def _existing_targets(cls, rows):
        "Return the (model, id) references of the rows that still exist"
        by_model = defaultdict(set)
        for row in rows:
            if row.target is not None:
                model, id_ = row.target
                by_model[model].add(id_)
        existing = set()
        pool = Pool()
        cursor = Transaction().connection.cursor()
        for model, ids in by_model.items():
            try:
                Model = pool.get(model)
            except KeyError:
                continue
            for sub_ids in grouped_slice(sorted(ids), MAX_QUERY_PARAMS):
                # The search keeps the rules (e.g. inactive records are gone)
                cursor.execute(*Model.search(
                        [('id', 'in', list(sub_ids))], order=[], query=True))
                existing.update((model, i) for i, in cursor)
        return existing

    @classmethod
    def _mark_done(cls, record_activities, notes):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        by_note = defaultdict(list)
        for record_activity in map(int, record_activities):
            by_note[notes.get(record_activity)].append(record_activity)
        for note, ids in by_note.items():
            for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
                cursor.execute(*table.update(
                        [table.state, table.note, table.write_date,
                            table.write_uid],
                        ['done', note, CurrentTimestamp(),
                            Transaction().user],
                        where=fields.SQL_OPERATORS['in'](table.id, sub_ids)))

    @classmethod
    def _cancel_opposites(cls, rows, activities):
        "Cancel the waiting siblings of the opposite outcome"
        by_pair = defaultdict(list)
        for row in rows:
            activity = activities[row.activity]
            if activity.event and activity.negative:
                by_pair[(activity.parent, activity.event, False)].append(
                    row.record)
        for (parent, event, negative), record_ids in by_pair.items():
            siblings = [c for c in parent.children
                if c.event == event and bool(c.negative) == negative]
            cls._cancel_waiting(siblings, record_ids)

    @classmethod
    def _cancel_waiting(cls, activities, record_ids):
        if not activities or not record_ids:
            return
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        activity_ids = [a.id for a in activities]
        for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.update(
                    [table.state, table.write_date, table.write_uid],
                    ['cancelled', CurrentTimestamp(), Transaction().user],
                    where=fields.SQL_OPERATORS['in'](table.record, sub_ids)
                    & fields.SQL_OPERATORS['in'](table.activity, activity_ids)
                    & (table.state == 'waiting')))

    @classmethod
    def sending_failed(cls, failures):
        "Reschedule with back-off or fail the record activities not sent"
        pool = Pool()
        Email = pool.get('ir.email')
        max_tries = _config_int('automation_retries', 5)
        retry_delay = _config_int('automation_retry_delay', 300)
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        now = dialect.schedule_time()
        record_activities = cls.browse(sorted(failures))
        for record_activity in record_activities:
            # Only what was sent is archived
            Email.delete(Email.search([
                        ('marketing_automation_activity', '=',
                            record_activity.activity.id),
                        ('marketing_automation_record', '=',
                            record_activity.record.id),
                        ]))
            tries = (record_activity.tries or 0) + 1
            note = failures[record_activity.id][:200]
            if tries >= max_tries:
                state, at = 'failed', record_activity.at
            else:
                state = 'waiting'
                at = now + dt.timedelta(
                    seconds=retry_delay * 2 ** (tries - 1))
            cursor.execute(*table.update(
                    [table.state, table.at, table.tries, table.note],
                    [state, at, tries, note],
                    where=table.id == record_activity.id))
            # Children wait for a message that was not sent
            cls._delete_waiting_children(record_activity)

    @classmethod
    def _delete_waiting_children(cls, record_activity):
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        child_ids = [c.id for c in record_activity.activity.children]
        if not child_ids:
            return
        cursor.execute(*table.delete(
                where=(table.record == record_activity.record.id)
                & fields.SQL_OPERATORS['in'](table.activity, child_ids)
                & (table.state == 'waiting')))

    @classmethod
    @ModelView.button
    @Workflow.transition('waiting')
    def retry(cls, record_activities):
        cls.write(record_activities, {
                'at': dialect.schedule_time(),
                'tries': 0,
                })

    # Events

    @classmethod
    @ModelView.button
    def on_email_opened(cls, record_activities):
        cls._fire(record_activities, ['email_opened'])

    @classmethod
    @ModelView.button
    def on_email_clicked(cls, record_activities):
        # A click implies the message was opened
        cls._fire(record_activities, ['email_opened', 'email_clicked'])

    @classmethod
    def _fire(cls, record_activities, events):
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        table = cls.__table__()
        activity = Activity.__table__()
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        now = dialect.schedule_time()
        # In SQL with few statements: each open or click of an e-mail is a
        # request of its own
        ids = ids_of(record_activities)
        sends_email = activity.select(
            activity.id, where=activity.action == 'send_email')
        returning = dialect.returning_supported()
        rows = []
        if not returning:
            for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
                cursor.execute(*table.select(
                        table.id, table.activity, table.record,
                        table.email_opened, table.email_clicked,
                        where=fields.SQL_OPERATORS['in'](table.id, sub_ids)
                        & (table.state == 'done')
                        & table.activity.in_(sends_email)))
                rows.extend(cursor)
        flags = {'email_opened': 3, 'email_clicked': 4}
        for event in events:
            column = getattr(table, event)
            if returning:
                # The flags are set and the rows they changed are read at
                # once (none when a concurrent event set them first)
                pending = []
                for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
                    cursor.execute(*table.update(
                            [column, table.write_date],
                            [Literal(True), CurrentTimestamp()],
                            where=fields.SQL_OPERATORS['in'](
                                table.id, sub_ids)
                            & (table.state == 'done')
                            & table.activity.in_(sends_email)
                            & ((column == Null)
                                | (column == Literal(False))),
                            returning=[table.id, table.activity,
                                table.record]))
                    pending.extend(cursor)
            else:
                pending = [r for r in rows if not r[flags[event]]]
                for sub in grouped_slice(pending, MAX_QUERY_PARAMS):
                    cursor.execute(*table.update(
                            [column, table.write_date],
                            [Literal(True), CurrentTimestamp()],
                            where=fields.SQL_OPERATORS['in'](
                                table.id, [r[0] for r in sub])))
            if not pending:
                continue
            by_activity = defaultdict(list)
            for row in pending:
                by_activity[row[1]].append(row[2])
            children = cls._children(by_activity)
            for activity_id, record_ids in by_activity.items():
                children_ = [c for c in children.get(activity_id, [])
                    if c.event == event]
                cls._cancel_waiting(
                    [c for c in children_ if c.negative], record_ids)
                for child in children_:
                    if child.negative:
                        continue
                    at = now + (child.delay or dt.timedelta())
                    for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
                        cursor.execute(*table.update(
                                [table.at, table.write_date],
                                [at, CurrentTimestamp()],
                                where=fields.SQL_OPERATORS['in'](
                                    table.record, sub_ids)
                                & (table.activity == child.id)
                                & (table.state == 'waiting')
                                & (table.at == Null)))
        cls._clear_cache()

    @classmethod
    def _children(cls, activity_ids):
        "Return the children (id, event, negative, delay) of the activities"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        activity = Activity.__table__()
        cursor = Transaction().connection.cursor()
        children = {}
        parents = {}
        for activity_id in activity_ids:
            cached = cls._children_cache.get(activity_id)
            if cached is not None:
                children[activity_id] = [_Child(*c) for c in cached]
            else:
                parents['%s,%s' % (Activity.__name__, activity_id)] = (
                    activity_id)
        found = defaultdict(list)
        for sub in grouped_slice(sorted(parents), MAX_QUERY_PARAMS):
            cursor.execute(*activity.select(
                    activity.id, activity.parent, activity.event,
                    activity.negative, activity.delay,
                    where=fields.SQL_OPERATORS['in'](activity.parent, sub),
                    order_by=[activity.id.asc]))
            for id_, parent, event, negative, delay in cursor:
                found[parents[parent]].append(
                    _Child(id_, event, bool(negative), delay))
        for activity_id in parents.values():
            children[activity_id] = found[activity_id]
            cls._children_cache.set(
                activity_id, tuple(tuple(c) for c in found[activity_id]))
        return children

    @classmethod
    def _clear_cache(cls):
        # The rows were written in SQL
        transaction = Transaction()
        transaction.counter += 1
        for cache in transaction.cache.values():
            if cls.__name__ in cache:
                cache[cls.__name__].clear()
