# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The engine: claim the due record activities, run their action, mark
them done, schedule the children, and turn the events of the public routes
into due children.

Everything is set-based SQL on the rows of the record activities: each row
is read once per batch (``Row``) and handed to the actions.  The models
call these functions; the engine only reaches the models through their
tables and the two extension points of the activity (``match_records``
and ``run_action``)."""
import datetime as dt
from collections import defaultdict, namedtuple

from sql import Literal, Null
from sql.functions import CurrentTimestamp
from sql.operators import Exists

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.cache import Cache
from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction, without_check_access

from . import dialect, pacing, variants
from .links import new_token
from .statements import execute, param

RECORD = 'marketing.automation.record'
RECORD_ACTIVITY = 'marketing.automation.record.activity'
ACTIVITY = 'marketing.automation.activity'
SCENARIO = 'marketing.automation.scenario'

Row = namedtuple('Row', [
        'id', 'activity', 'record', 'target', 'token', 'record_token'])
Row.__doc__ = (
    "A record activity as the engine reads it: its id, activity id, "
    "record id, target (model, id) or None, and the two tokens")
_Child = namedtuple('_Child', ['id', 'event', 'negative', 'delay'])

# The children of the activities, for the events; cleared when an
# activity changes
children_cache = Cache(
    'marketing.automation.record.activity.children', context=False)

_IN = fields.SQL_OPERATORS['in']
# The records read at once to choose their variants
VARIANT_PAGE = 1000


class Note(str):
    """The note of a record activity that sent nothing, with the reason
    kept in skip_reason

    A text, so that the notes of run_action stay texts for the actions of
    other modules; a plain text note gets the reason 'other'."""

    def __new__(cls, reason, text):
        note = super().__new__(cls, text)
        note.reason = reason
        return note


def skip_reason(note):
    "Return the reason of skipping of a note or None without note"
    if not note:
        return None
    return getattr(note, 'reason', None) or 'other'


def _config_int(name, default):
    return config.getint('marketing', name, default=default)


def _table(name):
    return Pool().get(name).__table__()


def _cursor():
    return Transaction().connection.cursor()


def ids_of(records):
    "Return the ids of the records without making instances of them"
    # Each instance made from a browse list checks every id of the list
    ids = getattr(records, 'ids', None)
    return list(ids) if ids is not None else [int(r) for r in records]


def reference(value):
    "Return the (model, id) of a stored reference or None"
    model, _, id_ = (value or '').partition(',')
    try:
        id_ = int(id_)
    except ValueError:
        return None
    if not model or id_ < 0:
        return None
    return model, id_


# Scheduling

def _insert_columns(table):
    return [table.record, table.activity, table.at,
        table.state, table.uuid, table.email_opened, table.email_clicked,
        table.tries, table.create_uid, table.create_date]


# The SQL types of the _insert_columns
_INSERT_TYPES = ['INTEGER', 'INTEGER', 'TIMESTAMP', 'VARCHAR', 'VARCHAR',
    'BOOLEAN', 'BOOLEAN', 'INTEGER', 'INTEGER', 'TIMESTAMP']


def schedule_roots(scenario, after_record_id):
    "Create the root activities of the scenario's records after the id"
    table = _table(RECORD_ACTIVITY)
    record = _table(RECORD)
    cursor = _cursor()
    now = dialect.schedule_time()
    defaults = [Literal('waiting'), dialect.token(), Literal(False),
        Literal(False), Literal(0), Literal(Transaction().user),
        dialect.now()]
    everyone, groups = variant_groups(scenario.activities)
    on_conflict = dialect.insert_on_conflict_nothing(table)
    for activity in everyone:
        at = now + (activity.delay or dt.timedelta())
        where = (record.scenario == scenario.id) & (
            record.id > after_record_id)
        if not on_conflict:
            where &= ~Exists(table.select(Literal(1),
                    where=(table.record == record.id)
                    & (table.activity == activity.id)))
        # Else the unique index skips the duplicates row by row: an
        # anti-join may hash all the rows of the activity for each batch,
        # as the planner does on the statistics of a table still filling
        cursor.execute(*table.insert(
                _insert_columns(table),
                record.select(
                    record.id, Literal(activity.id), Literal(at), *defaults,
                    where=where),
                on_conflict=on_conflict))
    for key, members in groups.items():
        _schedule_root_variants(scenario, after_record_id, key, members, now)


def variant_groups(activities):
    """Return the sibling activities that run for every record and the
    groups of variants by key, each ordered by id"""
    everyone, groups = [], defaultdict(list)
    for activity in activities:
        if activity.variant_weight:
            groups[variants.group_key(
                    str(activity.parent), activity.event,
                    activity.negative)].append(activity)
        else:
            everyone.append(activity)
    for members in groups.values():
        members.sort(key=lambda a: a.id)
    return everyone, groups


def _schedule_root_variants(scenario, after_record_id, key, members, now):
    "Create the chosen variant of each record of the scenario after the id"
    table = _table(RECORD_ACTIVITY)
    record = _table(RECORD)
    cursor = _cursor()
    member_ids = [a.id for a in members]
    last_id = after_record_id
    while True:
        # By pages of ids: the inserts would end a cursor still read
        cursor.execute(*record.select(
                record.id, record.uuid,
                where=(record.scenario == scenario.id)
                & (record.id > last_id)
                & ~Exists(table.select(Literal(1),
                        where=(table.record == record.id)
                        & _IN(table.activity, member_ids))),
                order_by=[record.id.asc], limit=VARIANT_PAGE))
        tokens = cursor.fetchall()
        if not tokens:
            break
        last_id = tokens[-1][0]
        _insert_variants(tokens, key, members, lambda a: now + (
                a.delay or dt.timedelta()))


def _insert_variants(tokens, key, members, at_of):
    """Create the record activity of the variant of members chosen for each
    (record id, record token) of tokens, due at at_of(variant)"""
    table = _table(RECORD_ACTIVITY)
    record = _table(RECORD)
    cursor = _cursor()
    weights = [(a, a.variant_weight) for a in members]
    chosen = defaultdict(list)
    for record_id, token in tokens:
        chosen[variants.choose(token, key, weights)].append(record_id)
    defaults = [Literal('waiting'), dialect.token(), Literal(False),
        Literal(False), Literal(0), Literal(Transaction().user),
        dialect.now()]
    for variant, record_ids in chosen.items():
        columns = _insert_columns(table)
        values = [Literal(variant.id)]
        at = at_of(variant)
        if at:
            values.append(Literal(at))
        else:
            # A parameter of NULL would be text for PostgreSQL: the column
            # is left to its default
            columns = [c for c in columns if c.name != 'at']
        # One parameter per id, the others are literals
        for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS - 10):
            cursor.execute(*table.insert(
                    columns,
                    record.select(
                        record.id, *values, *defaults,
                        where=_IN(record.id, list(sub_ids))),
                    on_conflict=dialect.insert_on_conflict_nothing(table)))


def schedule_children(by_activity):
    "Create the children of each activity for the records ids"
    transaction = Transaction()
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    now = dialect.schedule_time()
    columns = _insert_columns(table)
    for activity, record_ids in by_activity.items():
        everyone, groups = variant_groups(activity.children)
        if groups:
            _schedule_child_variants(record_ids, groups, now)
        for child in everyone:
            at = None
            if not child.event or child.negative:
                at = now + (child.delay or dt.timedelta())
            for sub_ids in grouped_slice(
                    record_ids, MAX_QUERY_PARAMS // len(columns)):
                values = [
                    [i, child.id, at, 'waiting', new_token(), False, False,
                        0, transaction.user, now]
                    for i in sub_ids]
                cursor.execute(*table.insert(
                        columns, dialect.bulk_rows(values, _INSERT_TYPES),
                        on_conflict=dialect.insert_on_conflict_nothing(
                            table)))


def _schedule_child_variants(record_ids, groups, now):
    "Create for the records ids the variant of each group they run"
    record = _table(RECORD)
    cursor = _cursor()

    def at_of(child):
        if not child.event or child.negative:
            return now + (child.delay or dt.timedelta())
    for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
        cursor.execute(*record.select(
                record.id, record.uuid, where=_IN(record.id, list(sub_ids))))
        tokens = cursor.fetchall()
        for key, members in groups.items():
            _insert_variants(tokens, key, members, at_of)


# Execution

def due_where(table, now):
    "Return the condition of the due record activities of table"
    record = _table(RECORD)
    activity = _table(ACTIVITY)
    scenario = _table(SCENARIO)
    # Correlated sub-queries: an IN (sub-query) of all the unblocked
    # records costs O(records) per statement (SQLite even drives the claim
    # of a batch by it), so the cost would grow with the audience
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


def due_batches(batch_size=None):
    "Yield the ids of the due record activities in batches, oldest first"
    if batch_size is None:
        batch_size = _config_int('automation_process_batch', 500)
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    cursor.execute(*table.select(
            table.id,
            where=due_where(table, dt.datetime.now()),
            order_by=[table.at.asc, table.id.asc]))
    while True:
        ids = [i for i, in cursor.fetchmany(batch_size)]
        if not ids:
            break
        yield ids


def process(ids):
    "Run the record activities of ids and the children due at once"
    dialect.close_at_end(Transaction())
    record_ids = run(ids)
    while record_ids:
        table = _table(RECORD_ACTIVITY)
        cursor = _cursor()
        now = dt.datetime.now()
        child_ids = []
        for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.select(
                    table.id,
                    where=_IN(table.record, sub_ids)
                    & due_where(table, now)))
            child_ids.extend(i for i, in cursor)
        record_ids = run(child_ids) if child_ids else []


def claim(ids):
    "Return the ids of the due record activities this transaction runs"
    cursor = _cursor()
    table = _table(RECORD_ACTIVITY)
    now = dt.datetime.now()
    claimed = []
    for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
        query = table.select(
            table.id,
            where=_IN(table.id, sub_ids) & due_where(table, now))
        # Concurrent runs skip what another one is running
        cursor.execute(*dialect.lock_skip_locked(query, table))
        claimed.extend(i for i, in cursor)
    if claimed and not dialect.skip_locked_supported():
        # Writers are serialized on SQLite but mark the rows at once
        for sub_ids in grouped_slice(claimed, MAX_QUERY_PARAMS):
            cursor.execute(*table.update(
                    [table.write_date], [CurrentTimestamp()],
                    where=_IN(table.id, sub_ids)))
    return claimed


def run(ids):
    "Run the record activities of ids and return the ids of their records"
    Activity = Pool().get(ACTIVITY)
    ids = claim(ids)
    if not ids:
        return []
    # The rows are read in SQL: going through the instances costs more
    # than the actions themselves; only the actions make instances
    rows = read_rows(ids)
    activities = {a.id: a for a in Activity.browse(
            sorted({r.activity for r in rows}))}
    rows = without_happened(rows, activities)
    cancel_opposites(rows, activities)
    existing = existing_targets(rows)

    by_activity = defaultdict(list)
    for row in rows:
        by_activity[row.activity].append(row)
    notes, postponed = {}, {}
    pacer = pacing.Pacer()
    for activity_id, activity_rows in by_activity.items():
        activity = activities[activity_id]
        candidates = []
        for row in activity_rows:
            if row.target in existing:
                candidates.append(row)
            else:
                notes[row.id] = Note('record_gone', gettext(
                        'marketing_automation.msg_record_gone'))
        if activity.condition:
            candidates = _matching(activity, candidates, notes)
        if activity.action == 'send_email' and candidates:
            waiting = pacer.postponed(
                activity, candidates, target_parties(candidates))
            postponed.update(waiting)
            candidates = [r for r in candidates if r.id not in waiting]
        if activity.action and candidates:
            notes.update(activity.run_action(candidates) or {})

    reschedule(postponed)
    rows = [r for r in rows if r.id not in postponed]
    # Done when the pacing decided: an e-mail it postponed for the cap
    # waits exactly the period after this one
    mark_done([r.id for r in rows], notes, pacer.now)
    by_activity = defaultdict(list)
    for row in rows:
        by_activity[activities[row.activity]].append(row.record)
    schedule_children(by_activity)
    clear_cache()
    return [r.record for r in rows]


def by_target(rows, read):
    "Return what read(Model, ids) gives for the targets of the rows"
    pool = Pool()
    by_model = defaultdict(list)
    for row in rows:
        model, id_ = row.target
        by_model[model].append(id_)
    values = {}
    for model, ids in by_model.items():
        for id_, value in read(pool.get(model), ids).items():
            values[(model, id_)] = value
    return values


def target_parties(rows):
    "Return the party id of the targets of the rows"
    return by_target(rows, lambda Model, ids: Model._marketing_parties(ids))


def reschedule(due):
    "Make the record activities due again at their new time"
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    by_time = defaultdict(list)
    for id_, at in due.items():
        by_time[at].append(id_)
    for at, ids in by_time.items():
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.update(
                    [table.at, table.write_date],
                    [at, CurrentTimestamp()],
                    where=_IN(table.id, sub_ids)))


def _matching(activity, rows, notes):
    "Return the rows whose target matches the condition; note the others"
    targets = instances(r.target for r in rows)
    matches = activity.match_records(list(targets.values()))
    matching = []
    for row in rows:
        matched = matches[targets[row.target]]
        if matched:
            matching.append(row)
        elif matched is None:
            # Tells nothing of the values the author cannot read
            notes[row.id] = Note('condition_unreadable', gettext(
                    'marketing_automation.msg_condition_unreadable'))
        else:
            notes[row.id] = Note('condition_false', gettext(
                    'marketing_automation.msg_condition_false'))
    return matching


def read_rows(ids):
    "Return the rows of the record activities of ids, by id"
    table = _table(RECORD_ACTIVITY)
    record = _table(RECORD)
    cursor = _cursor()
    rows = []
    for sub_ids in grouped_slice(sorted(ids), MAX_QUERY_PARAMS):
        cursor.execute(*table.join(
                record, condition=table.record == record.id
                ).select(
                table.id, table.activity, table.record, record.record,
                table.uuid, record.uuid,
                where=_IN(table.id, sub_ids),
                order_by=[table.id.asc]))
        rows.extend(
            Row(i, a, r, reference(t), u, ru)
            for i, a, r, t, u, ru in cursor)
    return rows


def instances(references):
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


def existing_targets(rows):
    "Return the (model, id) targets of the rows that still exist"
    by_model = defaultdict(set)
    for row in rows:
        if row.target is not None:
            model, id_ = row.target
            by_model[model].add(id_)
    existing = set()
    pool = Pool()
    cursor = _cursor()
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


def mark_done(ids, notes, now=None):
    """Mark the record activities done at now with their note and its
    reason"""
    transaction = Transaction()
    if now is None:
        now = dialect.schedule_time()
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    by_note = defaultdict(list)
    for id_ in ids:
        note = notes.get(id_) or None
        by_note[(skip_reason(note), note)].append(id_)
    for (reason, note), note_ids in by_note.items():
        for sub_ids in grouped_slice(note_ids, MAX_QUERY_PARAMS):
            # The time it was done, as Tryton's own module keeps it
            cursor.execute(*table.update(
                    [table.state, table.note, table.skip_reason, table.at,
                        table.write_date, table.write_uid],
                    ['done', str(note) if note else None, reason, now,
                        CurrentTimestamp(), transaction.user],
                    where=_IN(table.id, sub_ids)))


def without_happened(rows, activities):
    """Return the rows but those of negative children whose event happened,
    which are cancelled

    The public routes leave the events pending until the next process: one
    may have happened since the last one applied them."""
    by_parent = defaultdict(list)
    for row in rows:
        activity = activities[row.activity]
        if activity.event and activity.negative:
            by_parent[(activity.parent.id, activity.event)].append(row)
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    happened = defaultdict(list)
    for (parent_id, event), parent_rows in by_parent.items():
        by_record = {r.record: r for r in parent_rows}
        for sub in grouped_slice(sorted(by_record), MAX_QUERY_PARAMS):
            cursor.execute(*table.select(table.record,
                    where=(table.activity == parent_id)
                    & _IN(table.record, sub)
                    & (getattr(table, event) == Literal(True))))
            for record_id, in cursor:
                row = by_record[record_id]
                happened[row.activity].append(row)
    if not happened:
        return rows
    for activity_id, happened_rows in happened.items():
        cancel_waiting([activity_id], [r.record for r in happened_rows])
    cancelled = {r.id for rs in happened.values() for r in rs}
    return [r for r in rows if r.id not in cancelled]


def cancel_opposites(rows, activities):
    "Cancel the waiting siblings of the opposite outcome"
    by_pair = defaultdict(list)
    for row in rows:
        activity = activities[row.activity]
        if activity.event and activity.negative:
            by_pair[(activity.parent, activity.event)].append(row.record)
    for (parent, event), record_ids in by_pair.items():
        siblings = [c.id for c in parent.children
            if c.event == event and not c.negative]
        cancel_waiting(siblings, record_ids)


def cancel_waiting(activity_ids, record_ids):
    "Cancel the waiting record activities of the activities and records"
    if not activity_ids or not record_ids:
        return
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS):
        cursor.execute(*table.update(
                [table.state, table.write_date, table.write_uid],
                ['cancelled', CurrentTimestamp(), Transaction().user],
                where=_IN(table.record, sub_ids)
                & _IN(table.activity, activity_ids)
                & (table.state == 'waiting')))


def sending_failed(failures):
    "Reschedule with back-off or fail the record activities not sent"
    max_tries = _config_int('automation_retries', 5)
    retry_delay = _config_int('automation_retry_delay', 300)
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    now = dialect.schedule_time()
    ids = sorted(failures)
    withdraw_emails(ids)
    rows = []
    for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
        cursor.execute(*table.select(
                table.id, table.tries, table.at,
                where=_IN(table.id, sub_ids)))
        rows.extend(cursor)
    for id_, tries, at in rows:
        tries = (tries or 0) + 1
        if tries < max_tries:
            at = now + dt.timedelta(seconds=retry_delay * 2 ** (tries - 1))
        cursor.execute(*table.update(
                [table.state, table.at, table.tries, table.note,
                    table.email_handoff, table.write_date],
                ['failed' if tries >= max_tries else 'waiting', at, tries,
                    failures[id_][:200], Null, CurrentTimestamp()],
                where=table.id == id_))
    clear_cache()


def withdraw_emails(ids):
    "Delete the archives and the waiting children of e-mails not sent"
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    by_activity = defaultdict(list)
    for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
        cursor.execute(*table.select(
                table.activity, table.record, where=_IN(table.id, sub_ids)))
        for activity_id, record_id in cursor:
            by_activity[activity_id].append(record_id)
    children = children_of(by_activity)
    for activity_id, record_ids in by_activity.items():
        _delete_archives(activity_id, record_ids)
        # Children wait for a message that was not sent; they are created
        # again when it is
        child_ids = [c.id for c in children[activity_id]]
        if not child_ids:
            continue
        for sub_ids in grouped_slice(
                record_ids, MAX_QUERY_PARAMS - len(child_ids)):
            cursor.execute(*table.delete(
                    where=_IN(table.record, sub_ids)
                    & _IN(table.activity, child_ids)
                    & (table.state == 'waiting')))


def _delete_archives(activity_id, record_ids):
    "Delete the archived e-mails of the activity to the records"
    Email = Pool().get('ir.email')
    # Only what was sent is archived; the archives are the module's own
    with without_check_access():
        for sub_ids in grouped_slice(record_ids, MAX_QUERY_PARAMS - 1):
            Email.delete(Email.search([
                        ('marketing_automation_activity', '=', activity_id),
                        ('marketing_automation_record', 'in', list(sub_ids)),
                        ], order=[]))


# Hand-off of the e-mails to the SMTP server: each step is committed before
# the next one, so that a process stopped at any time leaves a known state

# The state an e-mail must be in to take each step
HANDOFF_FROM = {
    'pending': None,
    'sending': 'pending',
    'sent': 'sending',
    }


def set_email_handoff(ids, step):
    "Move the e-mails of ids to the step of their hand-off; return those moved"
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    previous = HANDOFF_FROM[step]
    moved = []
    for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
        sub_ids = list(sub_ids)
        where = _IN(table.id, sub_ids)
        if previous:
            where &= table.email_handoff == previous
        cursor.execute(*table.update(
                [table.email_handoff, table.write_date],
                [step, dialect.now()], where=where))
        if cursor.rowcount == len(sub_ids):
            moved.extend(sub_ids)
        else:
            # What the recovery took back meanwhile is not sent
            cursor.execute(*table.select(
                    table.id,
                    where=_IN(table.id, sub_ids)
                    & (table.email_handoff == step)))
            moved.extend(i for i, in cursor)
    clear_cache()
    return moved


def recover_handoffs(before):
    """Schedule again the e-mails left pending since before and flag as
    interrupted those left being sent since before"""
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    cursor.execute(*table.select(
            table.id,
            where=(table.email_handoff == 'pending')
            & (table.write_date < before)))
    requeue([i for i, in cursor], 'pending', gettext(
            'marketing_automation.msg_email_handoff_requeued'))
    # They may or may not have reached the server: sending them again could
    # send them twice
    cursor.execute(*table.update(
            [table.email_handoff, table.note, table.write_date],
            ['interrupted',
                gettext('marketing_automation.msg_email_handoff_interrupted'),
                CurrentTimestamp()],
            where=(table.email_handoff == 'sending')
            & (table.write_date < before)))
    clear_cache()


def requeue(ids, handoff, note=None):
    """Make due now, as never sent, the e-mails of ids still at the step
    handoff of their hand-off; return their ids"""
    table = _table(RECORD_ACTIVITY)
    cursor = _cursor()
    requeued = []
    for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
        sub_ids = list(sub_ids)
        cursor.execute(*table.update(
                [table.state, table.at, table.email_handoff, table.note,
                    table.write_date],
                ['waiting', dialect.schedule_time(), Null, note,
                    CurrentTimestamp()],
                where=_IN(table.id, sub_ids)
                & (table.email_handoff == handoff)))
        cursor.execute(*table.select(
                table.id,
                where=_IN(table.id, sub_ids) & (table.email_handoff == Null)
                & (table.state == 'waiting')))
        requeued.extend(i for i, in cursor)
    withdraw_emails(requeued)
    clear_cache()
    return requeued


# Events

def _sent():
    """Return the record activities' table and the condition of those whose
    e-mail was sent"""
    table = _table(RECORD_ACTIVITY)
    activity = _table(ACTIVITY)
    sends_email = activity.select(
        activity.id, where=activity.action == 'send_email')
    return table, (table.state == 'done') & table.activity.in_(sends_email)


def fire(ids, events):
    "Set the events on the sent e-mails of ids and make their children due"
    now = dialect.schedule_time()
    table, sent = _sent()
    cursor = _cursor()
    returning = dialect.returning_supported()
    if not returning:
        rows = []
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.select(
                    table.id, table.activity, table.record,
                    table.email_opened, table.email_clicked,
                    where=_IN(table.id, sub_ids) & sent))
            rows.extend(cursor)
    flags = {'email_opened': 3, 'email_clicked': 4}
    fired = []
    for event in events:
        column = getattr(table, event)
        # When it happened, for the attribution of conversions
        date_column = getattr(table, event + '_date')
        if returning:
            # The flags are set and the rows they changed are read at once
            # (none when a concurrent event set them first)
            pending = []
            for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
                cursor.execute(*table.update(
                        [column, date_column, table.write_date],
                        [Literal(True), now, CurrentTimestamp()],
                        where=_IN(table.id, sub_ids) & sent
                        & ((column == Null) | (column == Literal(False))),
                        returning=[table.id, table.activity, table.record]))
                pending.extend(cursor)
        else:
            pending = [r for r in rows if not r[flags[event]]]
            for sub in grouped_slice(pending, MAX_QUERY_PARAMS):
                cursor.execute(*table.update(
                        [column, date_column, table.write_date],
                        [Literal(True), now, CurrentTimestamp()],
                        where=_IN(table.id, [r[0] for r in sub])))
        fired.extend(
            (row[0], row[1], row[2], {event: now}) for row in pending)
    event_children_due(fired)
    clear_cache()


def event_children_due(fired):
    """Make due the children waiting for the events and cancel the negative
    ones; fired holds (record activity id, activity id, record id, {event:
    its date})"""
    children = children_of({a for _, a, _, _ in fired})
    due, cancel = defaultdict(list), defaultdict(list)
    for id_, activity_id, record_id, dates in fired:
        for child in children[activity_id]:
            date = dates.get(child.event)
            if not date:
                continue
            if child.negative:
                cancel[child.id].append(record_id)
            else:
                due[child].append((id_, record_id, date))
    for child_id, record_ids in cancel.items():
        cancel_waiting([child_id], record_ids)
    for child, rows in due.items():
        _make_due(child, rows)


def _make_due(child, rows):
    """Make the child due for the (record activity id, record id, event
    date) of its parent at the date plus its delay"""
    cursor = _cursor()
    delay = child.delay or dt.timedelta()
    if not dialect.interval_arithmetic_supported():
        # In the process (SQLite): a statement per record costs little
        for _, record_id, date in rows:
            execute(cursor, 'child due', _child_due,
                record=record_id, activity=child.id, at=date + delay)
        return
    table = _table(RECORD_ACTIVITY)
    parent = _table(RECORD_ACTIVITY)
    # The date of the parent's event: a join on the ids of the parents
    # keeps the plan on the indexes
    at = getattr(parent, child.event + '_date') + delay
    for sub in grouped_slice(rows, MAX_QUERY_PARAMS):
        cursor.execute(*table.update(
                [table.at, table.write_date], [at, CurrentTimestamp()],
                from_=[parent],
                where=_IN(parent.id, [r[0] for r in sub])
                & (table.record == parent.record)
                & (table.activity == child.id)
                & (table.state == 'waiting') & (table.at == Null)))


def _child_due():
    table = _table(RECORD_ACTIVITY)
    return table.update([table.at, table.write_date],
        [param('at'), CurrentTimestamp()],
        where=(table.record == param('record'))
        & (table.activity == param('activity'))
        & (table.state == 'waiting') & (table.at == Null))


def children_of(activity_ids):
    "Return the children (id, event, negative, delay) of the activities"
    activity = _table(ACTIVITY)
    cursor = _cursor()
    children = {}
    parents = {}
    for activity_id in activity_ids:
        cached = children_cache.get(activity_id)
        if cached is not None:
            children[activity_id] = [_Child(*c) for c in cached]
        else:
            parents['%s,%s' % (ACTIVITY, activity_id)] = activity_id
    found = defaultdict(list)
    for sub in grouped_slice(sorted(parents), MAX_QUERY_PARAMS):
        cursor.execute(*activity.select(
                activity.id, activity.parent, activity.event,
                activity.negative, activity.delay,
                where=_IN(activity.parent, sub),
                order_by=[activity.id.asc]))
        for id_, parent, event, negative, delay in cursor:
            found[parents[parent]].append(
                _Child(id_, event, bool(negative), delay))
    for activity_id in parents.values():
        children[activity_id] = found[activity_id]
        children_cache.set(
            activity_id, tuple(tuple(c) for c in found[activity_id]))
    return children


def clear_cache(name=RECORD_ACTIVITY):
    "Clear the transaction's caches of the model (the record activities)"
    # The rows were written in SQL
    transaction = Transaction()
    transaction.counter += 1
    for cache in transaction.cache.values():
        if name in cache:
            cache[name].clear()
