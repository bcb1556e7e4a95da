# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Consent: the history of the parties' opt-outs and the suppression list of
e-mail addresses, honoured by every scenario at enrolment and at send
time."""
import datetime as dt

from sql import Literal, Null
from sql.functions import CurrentTimestamp, Lower

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.i18n import gettext
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import engine

SOURCES = [
    ('page', "Unsubscribe Page"),
    ('one_click', "One-Click"),
    ('mailto', "Mailto"),
    ('bounce', "Bounce"),
    ('complaint', "Complaint"),
    ('manual', "Manual"),
    ('import', "Import"),
    ]
# What keeps even transactional e-mails from an address
UNDELIVERABLE = {'hard_bounce', 'complaint'}


def normalize_address(address):
    "Return the e-mail address as it is compared: stripped and lower case"
    return (address or '').strip().lower()


def parties_with_addresses(addresses):
    "Return the ids of the parties having one of the addresses"
    pool = Pool()
    ContactMechanism = pool.get('party.contact_mechanism')
    mechanism = ContactMechanism.__table__()
    cursor = Transaction().connection.cursor()
    parties = set()
    for sub_addresses in grouped_slice(sorted(addresses), MAX_QUERY_PARAMS):
        # The case of the stored addresses may differ
        cursor.execute(*mechanism.select(mechanism.party,
                where=(mechanism.type == 'email')
                & (mechanism.active == Literal(True))
                & fields.SQL_OPERATORS['in'](
                    Lower(mechanism.value), list(sub_addresses))))
        parties.update(p for p, in cursor)
    return parties


class Consent(ModelSQL, ModelView):
    __name__ = 'marketing.automation.consent'
    __string__ = "Marketing Consent"

    party = fields.Many2One(
        'party.party', "Party", required=True, ondelete='CASCADE',
        readonly=True)
    date = fields.DateTime("Date", required=True, readonly=True)
    opted_out = fields.Boolean(
        "Opted Out", readonly=True,
        help="Checked when the party left, unchecked when it came back.")
    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario", ondelete='CASCADE',
        readonly=True,
        help="The scenario the party left or came back to; "
        "empty for all marketing e-mails.")
    source = fields.Selection(SOURCES, "Source", required=True, readonly=True)
    note = fields.Char("Note", readonly=True)

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__.add('party')
        t = cls.__table__()
        cls._sql_indexes.add(
            Index(t, (t.party, Index.Range()), (t.date, Index.Range())))
        cls._order = [('date', 'DESC'), ('id', 'DESC')]

    @classmethod
    def default_date(cls):
        return dt.datetime.now()

    @classmethod
    def default_opted_out(cls):
        return True

    @classmethod
    def record(cls, party_ids, opted_out, source, scenario=None, note=None):
        """Record the opt-out (or opt-in) of the parties, for all marketing
        e-mails or for the scenario"""
        pool = Pool()
        Party = pool.get('party.party')
        Unsubscribed = pool.get(
            'party.party-unsubscribed-marketing.automation.scenario')
        party_ids = sorted(set(party_ids))
        if not party_ids:
            return
        transaction = Transaction()
        cursor = transaction.connection.cursor()
        table = cls.__table__()
        now = dt.datetime.now()
        scenario_id = scenario.id if scenario else None
        columns = [table.party, table.date, table.opted_out, table.scenario,
            table.source, table.note, table.create_uid, table.create_date]
        for sub_ids in grouped_slice(
                party_ids, MAX_QUERY_PARAMS // len(columns)):
            cursor.execute(*table.insert(columns, [
                        [p, now, opted_out, scenario_id, source, note,
                            transaction.user, CurrentTimestamp()]
                        for p in sub_ids]))
        if scenario is None:
            party = Party.__table__()
            for sub_ids in grouped_slice(party_ids, MAX_QUERY_PARAMS):
                cursor.execute(*party.update(
                        [party.marketing_email_opt_out],
                        [Literal(bool(opted_out))],
                        where=fields.SQL_OPERATORS['in'](party.id, sub_ids)))
            engine.clear_cache(Party.__name__)
        elif opted_out:
            existing = {u.party.id for u in Unsubscribed.search([
                        ('party', 'in', party_ids),
                        ('scenario', '=', scenario.id),
                        ])}
            Unsubscribed.create([{'party': p, 'scenario': scenario.id}
                    for p in party_ids if p not in existing])
        else:
            Unsubscribed.delete(Unsubscribed.search([
                        ('party', 'in', party_ids),
                        ('scenario', '=', scenario.id),
                        ]))


class Suppression(ModelSQL, ModelView):
    __name__ = 'marketing.automation.suppression'
    __string__ = "Suppressed E-mail Address"
    _rec_name = 'email'

    email = fields.Char(
        "E-mail", required=True,
        states={
            'readonly': Eval('id', -1) >= 0,
            },
        help="The address that receives no marketing e-mail.")
    reason = fields.Selection([
            ('hard_bounce', "Hard Bounce"),
            ('soft_bounce', "Soft Bounces"),
            ('complaint', "Complaint"),
            ('manual', "Manual"),
            ('import', "Import"),
            ], "Reason", required=True, readonly=True)
    suppressed = fields.Boolean(
        "Suppressed", readonly=True,
        help="Unchecked while the soft bounces stay under the limit.")
    date = fields.DateTime("Date", readonly=True)
    soft_bounces = fields.Integer(
        "Soft Bounces", readonly=True,
        help="The soft bounces counted in the current period.")
    soft_bounce_since = fields.DateTime(
        "Soft Bounces Since", readonly=True,
        help="The start of the period of the soft bounces.")
    report = fields.Text(
        "Report", readonly=True,
        help="The report (bounce, complaint) that caused the suppression.")
    record_activity = fields.Many2One(
        'marketing.automation.record.activity', "Record Activity",
        readonly=True, ondelete='SET NULL',
        help="The e-mail the report was about.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('email_unique', Unique(t, t.email),
                'marketing_automation.msg_suppression_email_unique'),
            ]
        # Deleting a record activity clears the link of its suppression
        cls._sql_indexes.add(
            Index(t, (t.record_activity, Index.Range()),
                where=t.record_activity != Null))
        cls._order = [('date', 'DESC NULLS LAST'), ('id', 'DESC')]

    @classmethod
    def default_reason(cls):
        return 'manual'

    @classmethod
    def default_suppressed(cls):
        return True

    @classmethod
    def default_date(cls):
        return dt.datetime.now()

    @classmethod
    def default_soft_bounces(cls):
        return 0

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if 'email' in values:
            values['email'] = normalize_address(values['email'])
        return values

    @classmethod
    def suppressed_addresses(cls, addresses, transactional=False):
        "Return the reason of each of the addresses that gets no e-mail"
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        addresses = sorted({normalize_address(a) for a in addresses if a})
        where = table.suppressed == Literal(True)
        if transactional:
            where &= fields.SQL_OPERATORS['in'](
                table.reason, sorted(UNDELIVERABLE))
        reasons = {}
        for sub in grouped_slice(addresses, MAX_QUERY_PARAMS):
            cursor.execute(*table.select(table.email, table.reason,
                    where=where
                    & fields.SQL_OPERATORS['in'](table.email, list(sub))))
            reasons.update(cursor)
        return reasons

    @classmethod
    def suppress(cls, addresses, reason, report=None, record_activity=None):
        "Suppress the addresses for the reason"
        addresses = {normalize_address(a) for a in addresses} - {''}
        existing = {s.email: s for s in cls.search([
                    ('email', 'in', sorted(addresses)),
                    ])}
        to_save = []
        for address in sorted(addresses):
            suppression = existing.get(address) or cls(email=address)
            if (suppression.id is not None and suppression.suppressed
                    and suppression.reason in UNDELIVERABLE
                    and reason not in UNDELIVERABLE):
                # A weaker reason never hides a bounce or a complaint
                continue
            suppression.reason = reason
            suppression.suppressed = True
            suppression.date = dt.datetime.now()
            suppression.report = report
            suppression.record_activity = record_activity
            to_save.append(suppression)
        cls.save(to_save)
        if reason == 'complaint':
            cls._opt_out_parties(addresses, 'complaint')
        return to_save

    @classmethod
    def soft_bounce(cls, address, report=None, record_activity=None):
        "Count a soft bounce of the address; suppress it over the limit"
        limit = config.getint(
            'marketing', 'automation_soft_bounce_limit', default=3)
        period = dt.timedelta(days=config.getint(
                'marketing', 'automation_soft_bounce_days', default=15))
        address = normalize_address(address)
        now = dt.datetime.now()
        suppression = next(iter(cls.search([('email', '=', address)])), None)
        if suppression is None:
            suppression = cls(email=address, reason='soft_bounce',
                suppressed=False, soft_bounces=0, soft_bounce_since=None)
        elif suppression.reason != 'soft_bounce':
            # Already suppressed for a stronger reason
            return suppression
        if (not suppression.soft_bounce_since
                or now - suppression.soft_bounce_since > period):
            suppression.soft_bounces = 0
            suppression.soft_bounce_since = now
        suppression.soft_bounces += 1
        suppression.suppressed = suppression.soft_bounces >= limit
        suppression.date = now
        suppression.report = report
        suppression.record_activity = record_activity
        suppression.save()
        return suppression

    @classmethod
    def _opt_out_parties(cls, addresses, source):
        "Opt the parties of the addresses out of all marketing e-mails"
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        parties = parties_with_addresses(addresses)
        if parties:
            Consent.record(parties, True, source)

    def get_rec_name(self, name):
        return self.email

    @classmethod
    def note(cls, reason):
        "Return the note of a record activity not sent for the reason"
        return gettext('marketing_automation.msg_address_suppressed',
            reason=dict(cls.fields_get(['reason'])['reason']['selection'])
            .get(reason, reason))
