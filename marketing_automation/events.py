# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The opens and clicks of the public routes

Each hit is a request of its own: it sets the flags of the e-mail, counts
the click and keeps the event as pending in one statement (PostgreSQL).
The children the event makes due, and the negative ones it cancels, are
scheduled by the next ``process``, before it looks for what is due, at the
time of the event plus their delay: they run when they would have run had
the request scheduled them."""
import datetime as dt
import functools

from sql import Literal, With
from sql.conditionals import Case, Coalesce
from sql.functions import CurrentTimestamp

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import ModelSQL, fields
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect, engine
from .statements import execute, param

EVENT = 'marketing.automation.record.activity.event'
LINK_CLICK = 'marketing.automation.link.click'
EVENTS = ['email_opened', 'email_clicked']


class PendingEvent(ModelSQL):
    "The events a public route set whose children are not scheduled yet"
    __name__ = EVENT

    # No index on record_activity: the table only holds the events since
    # the last process, and each index is one more write per hit
    record_activity = fields.Many2One(
        'marketing.automation.record.activity', "Record Activity",
        required=True, ondelete='CASCADE')
    email_opened = fields.Boolean("Email Opened")
    email_clicked = fields.Boolean("Email Clicked")


def record_hit(token, events, url=None):
    """Set the events on the sent e-mail of token, keep those it set as
    pending, count the click on url; return its record activity id or None
    """
    if not token or not isinstance(token, str):
        return None
    transaction = Transaction()
    values = {
        'token': token, 'user': transaction.user,
        'now': dialect.schedule_time(),
        }
    if url is not None:
        today = dt.date.today()
        values.update(url=url, today=today,
            midnight=dt.datetime.combine(today, dt.time()))
    cursor = engine._cursor()
    if dialect.returning_supported():
        durable = config.getboolean(
            'marketing', 'automation_durable_events', default=False)
        execute(cursor, ('hit', tuple(events), url is not None, durable),
            functools.partial(_hit, events, url is not None, durable),
            **values)
        row = cursor.fetchone()
        engine.clear_cache()
        return row[0] if row else None
    # SQLite: a few statements, in the process
    execute(cursor, 'hit read', _hit_read, token=token)
    row = cursor.fetchone()
    if not row:
        return None
    id_, opened, clicked, sent = row
    were_set = {'email_opened': opened, 'email_clicked': clicked}
    fired = [e for e in events if sent and not were_set[e]]
    values['id'] = id_
    if fired:
        execute(cursor, ('hit flags', tuple(fired)),
            functools.partial(_flags_update, fired), **values)
        execute(cursor, ('hit pending', tuple(fired)),
            functools.partial(_pending_insert, fired), **values)
    if url is not None:
        execute(cursor, 'hit click', _click_insert, **values)
    engine.clear_cache()
    return id_


def _hit_read():
    table, sent = engine._sent()
    return table.select(
        table.id, table.email_opened, table.email_clicked, sent,
        where=table.uuid == param('token'))


def _flags_update(events):
    "Return the UPDATE setting the flags of the events on the row of id"
    table = engine._table(engine.RECORD_ACTIVITY)
    columns, values = [table.write_date], [CurrentTimestamp()]
    for event in events:
        columns += [getattr(table, event), getattr(table, event + '_date')]
        values += [Literal(True), param('now')]
    return table.update(columns, values, where=table.id == param('id'))


def _pending_rows(record_activity, opened, clicked):
    "Return the table, columns and values of a pending event"
    pending = engine._table(EVENT)
    return pending, [pending.record_activity, pending.email_opened,
        pending.email_clicked, pending.create_uid, pending.create_date], [
        record_activity, opened, clicked, param('user'), param('now')]


def _pending_insert(events):
    "Return the INSERT of the pending event of id for the events"
    pending, columns, values = _pending_rows(param('id'),
        *(Literal(e in events) for e in EVENTS))
    return pending.insert(columns, [values])


def _click_rows(activity):
    "Return the columns and values of a click on the link of activity"
    click = engine._table(LINK_CLICK)
    # Neither the record activity nor the time of the click are kept: the
    # clicks of an e-mail cannot be told from those of its audience
    return click, [click.activity, click.url, click.date, click.create_uid,
        click.create_date], [activity, param('url'), param('today'),
        Literal(0), param('midnight')]


def _click_insert():
    "Return the INSERT of a click on url of the record activity of id"
    table = engine._table(engine.RECORD_ACTIVITY)
    click, columns, values = _click_rows(table.activity)
    return click.insert(columns, table.select(
            *values, where=table.id == param('id')))


def _hit(events, click, durable):
    """Return the statement of record_hit on PostgreSQL (data-modifying
    WITH): the row of the token, the flags it did not have set, the
    pending event, the click and its id

    Unless durable, the transaction commits without waiting for the disk.
    """
    table = engine._table(engine.RECORD_ACTIVITY)
    target = With('id', 'activity', query=table.select(
            table.id, table.activity, where=table.uuid == param('token')))
    updated, sent = engine._sent()
    before = engine._table(engine.RECORD_ACTIVITY)
    columns, values, unset = [updated.write_date], [CurrentTimestamp()], []
    for event in events:
        column = getattr(updated, event)
        date_column = getattr(updated, event + '_date')
        # The flags it changed are those that were not set (a concurrent
        # update of the row fails with a serialization error in
        # repeatable read and the request is retried)
        unset.append(~Coalesce(getattr(before, event), Literal(False)))
        columns += [column, date_column]
        values += [Literal(True), Case(
                (unset[-1], param('now')), else_=date_column)]
    any_unset = functools.reduce(lambda a, b: a | b, unset)
    fired = With('id', *events, query=updated.update(columns, values,
            from_=[before, target],
            where=(updated.id == target.id) & (before.id == target.id)
            & sent & any_unset,
            returning=[updated.id] + unset))
    pending, columns, values = _pending_rows(fired.id, *(
            getattr(fired, e) if e in events else Literal(False)
            for e in EVENTS))
    with_ = [target, fired, With(query=pending.insert(
                columns, fired.select(*values)))]
    if click:
        link_click, columns, values = _click_rows(target.activity)
        with_.append(With(query=link_click.insert(
                    columns, target.select(*values))))
    columns = [target.id]
    relaxed = None if durable else dialect.asynchronous_commit()
    if relaxed is not None:
        # An open or a click is one commit per request: waiting for the
        # disk halves their rate, and a crash of the database server
        # losing the last of them loses statistics, not consent
        columns.append(relaxed)
    return target.select(*columns, with_=with_)


def apply_pending(batch_size=None):
    """Make due the children of the pending events and cancel their negative
    ones, in batches; return the number of events applied"""
    if batch_size is None:
        batch_size = engine._config_int('automation_process_batch', 500)
    pending = engine._table(EVENT)
    cursor = engine._cursor()
    applied = 0
    while True:
        query = pending.select(
            pending.id, pending.record_activity, pending.email_opened,
            pending.email_clicked, order_by=[pending.id.asc],
            limit=batch_size)
        # Concurrent processes skip the events another one applies; on
        # SQLite applying them twice changes nothing
        cursor.execute(*dialect.lock_skip_locked(query, pending))
        rows = cursor.fetchall()
        if not rows:
            break
        _apply(rows)
        for sub_ids in grouped_slice([r[0] for r in rows], MAX_QUERY_PARAMS):
            cursor.execute(*pending.delete(
                    where=engine._IN(pending.id, sub_ids)))
        applied += len(rows)
        if len(rows) < batch_size:
            break
    if applied:
        engine.clear_cache()
    return applied


def _apply(rows):
    "Schedule the children of the pending events of rows"
    table = engine._table(engine.RECORD_ACTIVITY)
    cursor = engine._cursor()
    parents = {}
    for sub_ids in grouped_slice(sorted({r[1] for r in rows}),
            MAX_QUERY_PARAMS):
        cursor.execute(*table.select(
                table.id, table.activity, table.record,
                table.email_opened_date, table.email_clicked_date,
                where=engine._IN(table.id, sub_ids)))
        parents.update((r[0], r[1:]) for r in cursor)
    fired = []
    for _, id_, opened, clicked in rows:
        if id_ not in parents:
            continue
        activity, record, opened_date, clicked_date = parents[id_]
        # The children are due from the time of the event
        fired.append((id_, activity, record, {
                    'email_opened': opened and opened_date,
                    'email_clicked': clicked and clicked_date,
                    }))
    engine.event_children_due(fired)
