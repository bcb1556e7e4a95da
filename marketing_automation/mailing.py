# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The send_email action: from the engine's rows to messages handed to SMTP

For a batch: the recipients (one SQL read per model), then per language
the records read with the author's rights, the render context, the
sandboxed rendering, the MIME message, the hand-off to the SMTP data
manager (sent after the commit) and the archive as ir.email."""
import logging
from collections import defaultdict
from email.utils import getaddresses

from sql.functions import CurrentTimestamp

import trytond.config as config
from trytond.backend import MAX_QUERY_PARAMS
from trytond.i18n import gettext
from trytond.model import fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from . import bounces, dialect, engine, links, mime, rendering, sandbox
from .access import RecordReader
from .consent import normalize_address
from .smtp import RecordActivitySMTPDataManager

logger = logging.getLogger(__name__)


class _Sender:
    "The addresses, secret and data manager shared by a batch's messages"

    def __init__(self, activity):
        pool = Pool()
        Configuration = pool.get('ir.configuration')
        transaction = Transaction()
        self.database_name = transaction.database.name
        self.secret = Configuration.get_marketing_automation_secret()
        self.datamanager = transaction.join(RecordActivitySMTPDataManager())
        default_from = (config.get('marketing', 'email_from')
            or config.get('email', 'from'))
        self.email_from = activity.email_from or default_from
        self.sender = (
            default_from if self.email_from != default_from else None)
        # The envelope sender, as smtplib would read it from the headers
        self.envelope_from = getaddresses(
            [self.sender or self.email_from])[0][1]
        self.open_tracking = activity.scenario.open_tracking
        self.unsubscribe_mailto = config.get(
            'marketing', 'automation_unsubscribe_mailto', default=None)
        self.bounce_address = config.get(
            'marketing', 'automation_bounce_address', default=None)

    def click_url(self, row, url):
        return links.click_url(self.database_name, row.token, url, self.secret)

    def unsubscribe_url(self, row, next_url=None):
        return links.unsubscribe_url(
            self.database_name, row.record_token, next_url)

    def return_path(self, row):
        "Return the envelope sender of the row's message"
        if self.bounce_address:
            # VERP: a bounce names the record activity it is about
            try:
                return bounces.verp_address(self.bounce_address, row.token)
            except ValueError:
                raise _Failed('build_error', gettext(
                        'marketing_automation.msg_invalid_bounce_address',
                        address=self.bounce_address))
        return self.envelope_from

    def unsubscribe_mailto_url(self, row):
        if self.unsubscribe_mailto:
            return mime.unsubscribe_mailto(
                self.unsubscribe_mailto, row.record_token)

    def open_url(self, row):
        if self.open_tracking:
            return links.open_url(self.database_name, row.token)


def send_emails(activity, rows):
    "Queue the e-mail of the activity for each row; return notes by id"
    rows = [r for r in rows if r.target]
    sender = _Sender(activity)
    recipients = _recipients(rows)
    notes = _refused(activity, rows, recipients)
    emails = []
    by_language = defaultdict(list)
    for row in rows:
        name, address, language = recipients.get(row.target) or (None,) * 3
        if row.id in notes:
            continue
        elif not address:
            notes[row.id] = engine.Note('no_address', gettext(
                    'marketing_automation.msg_no_email_address'))
        else:
            by_language[language].append((row, name, address))

    transaction = Transaction()
    author = activity.write_uid or activity.create_uid
    for language, language_rows in by_language.items():
        with transaction.set_context(language=language), \
                transaction.set_user(author.id if author else 0):
            # The templates and the records in the language of the e-mail
            localized = activity.__class__(activity.id)
            reader = RecordReader()
            targets = _read_targets(reader, [r.target for r, _, _ in
                    language_rows])
            # In the order of the browsed targets: each first read of a field
            # then fills the cache of the next ones (PostgreSQL claims the
            # rows in no particular order)
            language_rows.sort(key=lambda r: r[0].target)
            for row, name, address in language_rows:
                try:
                    email = _send_email(
                        localized, sender, reader, row, targets[row.target],
                        name, address)
                except _Failed as failure:
                    notes[row.id] = failure.note()
                else:
                    emails.append(email)
    archive(emails)
    return notes


class _Failed(Exception):
    "The e-mail of a row failed for the reason; the text is the note"

    def __init__(self, reason, text):
        super().__init__(text)
        self.reason = reason

    def note(self):
        return engine.Note(self.reason, str(self)[:200])


def _recipients(rows):
    "Return the (name, address, language) of the targets of the rows"
    return engine.by_target(
        rows, lambda Model, ids: Model.get_marketing_recipients(ids))


def _refused(activity, rows, recipients):
    """Return the notes of the rows whose recipient opted out, left the
    scenario or whose address is suppressed"""
    pool = Pool()
    Party = pool.get('party.party')
    Suppression = pool.get('marketing.automation.suppression')
    transactional = activity.transactional
    opted_out, unsubscribed = set(), set()
    if not transactional:
        parties = engine.target_parties(rows)
        party_ids = {p for p in parties.values() if p}
        opted_out_parties = Party.marketing_opted_out(party_ids)
        opted_out = {target for target, party in parties.items()
            if party in opted_out_parties}
        # Through another record of the scenario (e.g. another sale)
        unsubscribed_parties = _unsubscribed(party_ids, activity.scenario.id)
        unsubscribed = {target for target, party in parties.items()
            if party in unsubscribed_parties}
    suppressed = Suppression.suppressed_addresses(
        {r[1] for r in recipients.values() if r and r[1]},
        transactional=transactional)
    notes = {}
    for row in rows:
        address = (recipients.get(row.target) or (None,) * 3)[1]
        if row.target in opted_out:
            notes[row.id] = engine.Note('opted_out', gettext(
                    'marketing_automation.msg_opted_out'))
        elif row.target in unsubscribed:
            notes[row.id] = engine.Note('unsubscribed', gettext(
                    'marketing_automation.msg_unsubscribed_scenario'))
        elif address and normalize_address(address) in suppressed:
            notes[row.id] = engine.Note('suppressed', Suppression.note(
                    suppressed[normalize_address(address)]))
    return notes


def _unsubscribed(party_ids, scenario_id):
    "Return the ids of the parties unsubscribed from the scenario"
    Unsubscribed = Pool().get(
        'party.party-unsubscribed-marketing.automation.scenario')
    table = Unsubscribed.__table__()
    cursor = Transaction().connection.cursor()
    unsubscribed = set()
    for sub_ids in grouped_slice(sorted(party_ids), MAX_QUERY_PARAMS - 1):
        cursor.execute(*table.select(table.party,
                where=(table.scenario == scenario_id)
                & fields.SQL_OPERATORS['in'](table.party, sub_ids)))
        unsubscribed.update(i for i, in cursor)
    return unsubscribed


def _read_targets(reader, references):
    "Return the instances of the references, prefetched by the reader"
    pool = Pool()
    targets = {}
    for model in {m for m, _ in references}:
        Model = pool.get(model)
        ids = sorted({i for m, i in references if m == model})
        reader.prefetch(Model, ids)
        # Browse lists of a hundred: each instance checks all the ids of its
        # list
        for sub_ids in grouped_slice(ids, 100):
            targets.update(
                ((model, t.id), t) for t in Model.browse(list(sub_ids)))
    return targets


def _send_email(activity, sender, reader, row, target, name, address):
    "Render and queue the e-mail of the row; return its archive values"
    msg, subject, html, message_id = build_email(
        activity, sender, reader, row, target, name, address)
    sender.datamanager.put_record_activity(
        row.id, msg, sender.return_path(row), [address])
    return {
        # Decoded, to be found by a search on the name
        'recipients': mime.display_address(name, address),
        'addresses': [address],
        'subject': subject,
        'message_id': message_id,
        # The tokens give whoever reads them the recipient's events and
        # unsubscription
        'body': links.redact_tokens(html, [row.token, row.record_token]),
        'resource': '%s,%s' % row.target,
        'marketing_automation_activity': activity.id,
        'marketing_automation_record': row.record,
        }


def build_email(activity, sender, reader, row, target, name, address):
    """Return the message of the row for the target with its subject, HTML
    and Message-ID; raise _Failed with the note if it cannot be built

    Nothing is sent nor recorded: the preview and the test e-mails use it
    too."""
    try:
        to_addr = mime.recipient(name, address)
    except ValueError:
        raise _Failed('invalid_address', gettext(
                'marketing_automation.msg_invalid_email_address',
                address=address))
    budget = sandbox.new_budget()
    try:
        context = activity.email_context(target, reader)
        title = rendering.render_title(
            activity.email_title, context, budget=budget)
        html = rendering.render_html(
            activity.email_template, context,
            link_for=lambda url: sender.click_url(row, url),
            unsubscribe_for=lambda url: sender.unsubscribe_url(row, url),
            pixel_url=sender.open_url(row),
            budget=budget)
    except Exception as exception:
        # One line: a template failing for a whole batch would flood the
        # log with tracebacks
        logger.warning(
            "Fail to render %s for %s: %s", activity, target, exception)
        raise _Failed('render_error', gettext(
                'marketing_automation.msg_render_failed', error=exception))
    subject = ' '.join(title.split())
    message_id = mime.message_id(sender.email_from, sender.sender)
    try:
        msg = mime.build_message(
            from_addr=sender.email_from,
            sender=sender.sender,
            to_addr=to_addr,
            subject=subject,
            html=html,
            unsubscribe_url=sender.unsubscribe_url(row),
            unsubscribe_mailto=sender.unsubscribe_mailto_url(row),
            headers={'Message-ID': message_id})
    except ValueError as exception:
        logger.warning(
            "Fail to build %s for %s: %s", activity, target, exception)
        raise _Failed('build_error', gettext(
                'marketing_automation.msg_build_failed', error=exception))
    return msg, subject, html, message_id


def archive(emails):
    "Archive the messages as ir.email with their addresses"
    # In SQL: the creation through the model reads and validates each
    # e-mail back, which costs more than rendering it
    pool = Pool()
    Email = pool.get('ir.email')
    Address = pool.get('ir.email.address')
    transaction = Transaction()
    cursor = transaction.connection.cursor()
    email = Email.__table__()
    address = Address.__table__()
    user = transaction.user
    names = ['recipients', 'subject', 'message_id', 'body', 'resource',
        'marketing_automation_activity', 'marketing_automation_record']
    columns = [getattr(email, n) for n in names] + [
        email.create_uid, email.create_date]
    types = ['VARCHAR'] * 5 + ['INTEGER'] * 3 + [None]
    for sub in grouped_slice(emails, MAX_QUERY_PARAMS // len(columns)):
        sub = list(sub)
        rows = [[e[n] for n in names] + [user, CurrentTimestamp()]
            for e in sub]
        ids = dict(dialect.insert_returning(
                cursor, email, columns, dialect.bulk_rows(rows, types),
                email.message_id))
        addresses = [[ids[e['message_id']], a, user, CurrentTimestamp()]
            for e in sub for a in e['addresses']]
        if addresses:
            cursor.execute(*address.insert(
                    [address.email, address.address, address.create_uid,
                        address.create_date],
                    dialect.bulk_rows(
                        addresses, ['INTEGER', 'VARCHAR', 'INTEGER', None])))
