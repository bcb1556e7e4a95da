# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Pacing: the send windows of the scenarios and the frequency cap of
marketing e-mails per party across scenarios.

The engine asks, before an action sends, which rows must wait and until
when; those stay waiting with their new due time, the others go on.  The
cap is decided over the whole batch with one query per model of the
records."""
import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sql import Literal, Null
from sql.operators import Concat

from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import dialect
from .mixin import marketing_models

_IN = fields.SQL_OPERATORS['in']
WEEKDAYS = [
    ('0', "Monday"),
    ('1', "Tuesday"),
    ('2', "Wednesday"),
    ('3', "Thursday"),
    ('4', "Friday"),
    ('5', "Saturday"),
    ('6', "Sunday"),
    ]


class Pacer:
    "The pacing of the rows of one batch of the engine"

    def __init__(self, now=None):
        pool = Pool()
        Configuration = pool.get('marketing.automation.configuration')
        self.configuration = Configuration(1)
        self.now = now or dialect.schedule_time()
        # The e-mails this batch already decided to send, per party
        self.sending = defaultdict(int)

    def postponed(self, activity, rows, parties):
        """Return {row id: when} for the rows that must wait

        parties gives the party id of the target of each row."""
        if activity.action != 'send_email':
            return {}
        start = next_window_start(
            activity.scenario, self.configuration.timezone, self.now)
        if start is not None:
            return {r.id: start for r in rows}
        if activity.transactional or not self.configuration.email_cap:
            return {}
        return self._over_cap(rows, parties)

    def _over_cap(self, rows, parties):
        cap = self.configuration.email_cap
        period = self.configuration.email_cap_period
        since = self.now - period
        sent = sent_since(
            {p for p in parties.values() if p is not None}, since)
        postponed = {}
        for row in rows:
            party = parties.get(row.target)
            if party is None:
                continue
            times = sent.get(party, [])
            count = len(times) + self.sending[party]
            if count < cap:
                self.sending[party] += 1
            elif times:
                # A slot frees when the oldest e-mail of the period leaves
                # it; the row is decided again then
                postponed[row.id] = min(times) + period
            else:
                postponed[row.id] = self.now + period
        return postponed


def next_window_start(scenario, timezone, now):
    """Return when the next send window of the scenario opens, or None when
    it is open at now (naive UTC)"""
    weekdays = {int(d) for d in (scenario.send_weekdays or [])}
    start_time, end_time = scenario.send_time_from, scenario.send_time_to
    if not weekdays and not start_time and not end_time:
        return None
    zone = _zone(timezone)
    local = now.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    start_time = start_time or dt.time()
    end_time = end_time or dt.time.max
    for days in range(8):
        day = local.date() + dt.timedelta(days=days)
        if weekdays and day.weekday() not in weekdays:
            continue
        opens = dt.datetime.combine(day, start_time, tzinfo=zone)
        closes = dt.datetime.combine(day, end_time, tzinfo=zone)
        if local >= closes:
            continue
        if local >= opens:
            return None
        return opens.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return None


def _zone(name):
    try:
        return ZoneInfo(name or 'UTC')
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo('UTC')


def sent_since(party_ids, since):
    "Return the times of the marketing e-mails sent to each party since"
    pool = Pool()
    Record = pool.get('marketing.automation.record')
    RecordActivity = pool.get('marketing.automation.record.activity')
    Activity = pool.get('marketing.automation.activity')
    cursor = Transaction().connection.cursor()
    times = defaultdict(list)
    if not party_ids:
        return times
    for model in marketing_models():
        Model = pool.get(model)
        for sub_parties in grouped_slice(sorted(party_ids), MAX_QUERY_PARAMS):
            target_ids = Model.marketing_party_records(list(sub_parties))
            record = Record.__table__()
            record_activity = RecordActivity.__table__()
            activity = Activity.__table__()
            cursor.execute(*record_activity
                .join(record, condition=record_activity.record == record.id)
                .join(activity,
                    condition=record_activity.activity == activity.id)
                .select(record.record, record_activity.at,
                    where=record.record.in_(target_ids.select(
                            Concat(model + ',', target_ids.id)))
                    & (record_activity.state == 'done')
                    & (record_activity.note == Null)
                    & (record_activity.at > since)
                    & (activity.action == 'send_email')
                    & ((activity.transactional == Null)
                        | (activity.transactional == Literal(False)))))
            rows = [(int(r.split(',')[1]), at) for r, at in cursor]
            parties = Model._marketing_parties(sorted({i for i, _ in rows}))
            for id_, at in rows:
                if parties.get(id_) is not None:
                    times[parties[id_]].append(at)
    return times
