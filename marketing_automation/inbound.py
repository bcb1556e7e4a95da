# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The actions of inbound_email's rules: bounces, complaints and the
unsubscribe requests sent to the List-Unsubscribe mailto

Whatever arrives, an action either changes what the report is about and
returns the record it changed, or logs one line and returns None: the
inbound e-mail is kept by inbound_email and the webhook never fails on bad
input."""
import json
import logging

from sql import Null

import trytond.config as config
from trytond.model import Index
from trytond.pool import Pool, PoolMeta
from trytond.transaction import without_check_access

from . import bounces
from .consent import normalize_address

logger = logging.getLogger(__name__)

REPORT_ACTION = 'marketing.automation.suppression|handle_inbound_report'
UNSUBSCRIBE_ACTION = 'marketing.automation.record|handle_inbound_unsubscribe'


class Rule(metaclass=PoolMeta):
    __name__ = 'inbound.email.rule'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.action.selection.extend([
                (REPORT_ACTION, "Marketing: Bounces and Complaints"),
                (UNSUBSCRIBE_ACTION, "Marketing: Unsubscribe by E-mail"),
                ])


class Email(metaclass=PoolMeta):
    __name__ = 'ir.email'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # The reports that carry no VERP token are matched on the
        # Message-ID of the e-mail they return
        cls._sql_indexes.add(
            Index(t, (t.message_id, Index.Equality()),
                where=t.marketing_automation_record != Null))


class Suppression(metaclass=PoolMeta):
    __name__ = 'marketing.automation.suppression'

    @classmethod
    @without_check_access
    def handle_inbound_report(cls, email_, rule):
        """Suppress the address of a hard bounce or a complaint, count a soft
        bounce; return the suppression"""
        try:
            report = _read(
                email_, lambda raw: bounces.parse(raw, bounce_address()))
        except _Unreadable:
            return None
        if not (report.bounce or report.complaint):
            _ignore(email_, ' '.join(
                    filter(None, [report.kind, report.feedback_type])))
            return None
        record_activity, address = _sent_to(report)
        if record_activity and report.undelivered:
            record_activity.__class__.mark_bounced([record_activity])
        if address:
            reasons = {address: _reason(report)}
        else:
            reasons = _reasons_by_address(report)
        if not reasons:
            _ignore(email_, "no address matches the report")
            return None
        summary = report.summary()
        changed = []
        for reason in ['complaint', 'hard_bounce']:
            addresses = [a for a, r in reasons.items() if r == reason]
            if addresses:
                changed.extend(cls.suppress(addresses, reason,
                        report=summary, record_activity=record_activity))
        for address in sorted(a for a, r in reasons.items()
                if r == 'soft_bounce'):
            changed.append(cls.soft_bounce(address, report=summary,
                    record_activity=record_activity))
        return changed[0] if changed else None


class Record(metaclass=PoolMeta):
    __name__ = 'marketing.automation.record'

    @classmethod
    @without_check_access
    def handle_inbound_unsubscribe(cls, email_, rule):
        """Unsubscribe the record named by an e-mail sent to the
        List-Unsubscribe mailto; return the record"""
        try:
            token = _read(email_, bounces.unsubscribe_token)
        except _Unreadable:
            return None
        record = cls.from_token(token) if token else None
        if record is None:
            if token:
                _ignore(email_, "unknown token")
            else:
                _ignore(email_, "no unsubscribe request")
            return None
        cls.unsubscribe([record], source='mailto')
        return record


def bounce_address():
    "Return the configured bounce address or None"
    return config.get('marketing', 'automation_bounce_address', default=None)


def raw_message(email_):
    "Return the raw message of the inbound e-mail or None"
    if email_.data_type == 'raw':
        return email_.data
    # The providers that post JSON give the raw message in a key
    key = {
        'mailchimp': 'raw_msg',
        'mailpace': 'raw',
        'sendgrid': 'email',
        }.get(email_.data_type)
    if key is None:
        return None
    try:
        payload = json.loads(email_.data)
    except ValueError:
        return None
    return payload.get(key) if isinstance(payload, dict) else None


class _Unreadable(Exception):
    "The inbound e-mail has no message to read; it was logged"


def _read(email_, parse):
    "Return what parse gives for the raw message"
    raw = raw_message(email_)
    if raw is None:
        _ignore(email_, "no raw message in %s data" % email_.data_type)
        raise _Unreadable
    try:
        return parse(raw)
    except bounces.InvalidMessage as exception:
        _ignore(email_, exception)
        raise _Unreadable


def _ignore(email_, reason):
    logger.info("inbound e-mail of inbox %s changes nothing: %s",
        email_.inbox.id if email_.inbox else None, reason)


def _reason(report):
    "Return the reason of suppression of the report"
    if report.complaint:
        return 'complaint'
    return 'hard_bounce' if report.bounce == 'hard' else 'soft_bounce'


def _reasons_by_address(report):
    "Return the reason of suppression of each address the report names"
    if report.complaint:
        return {normalize_address(a): 'complaint' for a in report.addresses}
    reasons = {}
    for recipient in report.recipients:
        address = normalize_address(recipient.address)
        if not address:
            continue
        elif recipient.permanent:
            reasons[address] = 'hard_bounce'
        elif recipient.transient:
            reasons.setdefault(address, 'soft_bounce')
    return reasons


def _sent_to(report):
    """Return the record activity of the e-mail the report is about and the
    address it was sent to, or (None, None)"""
    pool = Pool()
    RecordActivity = pool.get('marketing.automation.record.activity')
    Record = pool.get('marketing.automation.record')
    record_activity = RecordActivity.from_token(report.token)
    if record_activity:
        email = _archive([
                ('marketing_automation_record', '=',
                    record_activity.record.id),
                ('marketing_automation_activity', '=',
                    record_activity.activity.id),
                ])
        return record_activity, _address(email, record_activity.record)
    if report.message_id:
        email = _archive([
                ('message_id', '=', report.message_id),
                ('marketing_automation_record', '!=', None),
                ])
        if email:
            activity = email.marketing_automation_activity
            record_activities = RecordActivity.search([
                    ('record', '=', email.marketing_automation_record.id),
                    ('activity', '=', activity.id if activity else None),
                    ], order=[('id', 'DESC')], limit=1)
            return (record_activities[0] if record_activities else None,
                _address(email, email.marketing_automation_record))
    record = Record.from_token(report.record_token)
    if record:
        email = _archive([('marketing_automation_record', '=', record.id)])
        return None, _address(email, record)
    return None, None


def _archive(domain):
    "Return the last archived e-mail of the domain or None"
    Email = Pool().get('ir.email')
    emails = Email.search(domain, order=[('id', 'DESC')], limit=1)
    return emails[0] if emails else None


def _address(email, record):
    "Return the address the e-mail was sent to, else that of the record"
    if email and email.addresses:
        return normalize_address(email.addresses[0].address)
    target = record.record
    if target is None or target.id is None or target.id < 0:
        return None
    recipient = target.__class__.get_marketing_recipients(
        [target.id]).get(target.id)
    return normalize_address(recipient[1]) if recipient else None
