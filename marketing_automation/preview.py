# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Preview the e-mail of an activity for a record and send a test of it

Both build the message as the cron does (``mailing.build_email``), in the
language of the record's party, but read the record with the rights of the
user and put test tokens in the links (``links.new_test_token``): the links
lead where they say and record nothing.  Nothing is recorded either: no
record, record activity, archive nor statistics."""
from collections import namedtuple
from email.utils import getaddresses

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.sendmail import SMTPDataManager, send_message_transactional
from trytond.transaction import Transaction, check_access
from trytond.wizard import Button, StateTransition, StateView, Wizard

from . import engine, links, mailing, mime
from .access import RecordReader
from .exceptions import PreviewError, SendTestError

# A test is for a few colleagues, not a way around the scenario
MAX_TEST_ADDRESSES = 10
# The recipient of the preview of a record without e-mail address (RFC 2606)
PLACEHOLDER_ADDRESS = 'recipient@example.invalid'
HTML_FILENAME = 'preview.html'

PreviewEmail = namedtuple('PreviewEmail', [
        'message', 'subject', 'html', 'to', 'address', 'envelope_from'])
PreviewEmail.__doc__ = (
    "A message built for a preview or a test: the MIME message, its "
    "subject, HTML, To header, recipient address and envelope sender")


class Activity(metaclass=PoolMeta):
    __name__ = 'marketing.automation.activity'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls._buttons.update({
                'preview': {
                    'invisible': Eval('action') != 'send_email',
                    'icon': 'tryton-email',
                    'depends': ['action'],
                    },
                })

    @classmethod
    @ModelView.button_action('marketing_automation.wizard_activity_preview')
    def preview(cls, activities):
        pass

    def preview_record(self, record=None):
        """Return the record to preview: record if given, else the first
        record matching the scenario's domain that the user may read"""
        pool = Pool()
        scenario = self.scenario
        if record is not None and (record.id or -1) >= 0:
            if record.__name__ != scenario.model:
                raise PreviewError(gettext(
                        'marketing_automation.msg_preview_wrong_model',
                        scenario=scenario.rec_name,
                        model=pool.get('ir.model').get_name(scenario.model)))
            return record
        Model = pool.get(scenario.model)
        domain = scenario.get_domain()
        # With the rights of the user, as the count of a draft scenario
        scenario.check_domain_rights(Model, domain)
        with check_access():
            records = Model.search(domain, order=[('id', 'ASC')], limit=1)
        if not records:
            raise PreviewError(gettext(
                    'marketing_automation.msg_preview_no_record',
                    scenario=scenario.rec_name))
        return records[0]

    def build_test_emails(self, record, addresses=None):
        """Return the PreviewEmail of the activity for the record to each
        address, or to the record's recipient, as the cron builds it

        The record is read with the rights of the user; mailing's _Failed
        is raised with the note of the cron if a message cannot be built.
        Nothing is sent nor recorded."""
        pool = Pool()
        Configuration = pool.get('ir.configuration')
        if self.action != 'send_email':
            raise PreviewError(gettext(
                    'marketing_automation.msg_preview_not_email',
                    activity=self.rec_name))
        secret = Configuration.get_marketing_automation_secret()
        target = (record.__name__, record.id)

        def row():
            # Fresh tokens for each message, as the cron's rows have
            return engine.Row(
                None, self.id, None, target,
                links.new_test_token(secret), links.new_test_token(secret))

        name, address, language = (
            mailing._recipients([row()]).get(target) or (None,) * 3)
        if addresses is None:
            recipients = [(name, address or PLACEHOLDER_ADDRESS)]
        else:
            recipients = [(None, a) for a in addresses]
        emails = []
        with Transaction().set_context(language=language):
            # The templates and the record in the language of the e-mail
            activity = self.__class__(self.id)
            target_record = pool.get(record.__name__)(record.id)
            reader = RecordReader()
            reader.check_record(target_record)
            sender = mailing._Sender(activity)
            for to_name, to_address in recipients:
                to_row = row()
                msg, subject, html, _ = mailing.build_email(
                    activity, sender, reader, to_row, target_record,
                    to_name, to_address)
                emails.append(PreviewEmail(
                        msg, subject, html,
                        mime.display_address(to_name, to_address),
                        to_address, sender.return_path(to_row)))
        return emails

    def preview_email(self, record=None):
        """Return the preview of the e-mail for the record (the first
        matching one if None) as a dictionary of the preview's fields"""
        record = self.preview_record(record)
        values = {'record_name': record.rec_name}
        try:
            email, = self.build_test_emails(record)
        except mailing._Failed as failure:
            values['error'] = str(failure)
            return values
        if email.address == PLACEHOLDER_ADDRESS:
            values['note'] = gettext(
                'marketing_automation.msg_preview_no_address')
        else:
            values['to'] = email.to
        values.update({
                'subject': email.subject,
                'html': email.html,
                'html_file': email.html.encode('utf-8'),
                'html_filename': HTML_FILENAME,
                'text': mime.html_to_text(email.html),
                })
        return values

    def send_test_email(self, addresses, record=None):
        """Send the e-mail of the activity for the record (the first
        matching one if None) to the addresses after the commit, its subject
        marked as a test; return the addresses"""
        record = self.preview_record(record)
        addresses = parse_test_addresses(addresses)
        try:
            emails = self.build_test_emails(record, addresses)
        except mailing._Failed as failure:
            raise SendTestError(gettext(
                    'marketing_automation.msg_test_send_failed',
                    error=str(failure))) from None
        datamanager = SMTPTestDataManager(strict=True)
        for email in emails:
            message = email.message
            del message['Subject']
            message['Subject'] = gettext(
                'marketing_automation.msg_test_email_subject',
                subject=email.subject)
            send_message_transactional(
                message, email.envelope_from, [email.address],
                datamanager=datamanager)
        return [e.address for e in emails]


def parse_test_addresses(text):
    """Return the addresses of the text, separated by commas, or raise
    SendTestError"""
    addresses = []
    for name, address in getaddresses([text or '']):
        if not name and not address:
            continue
        address = address.strip()
        try:
            mime.recipient(None, address)
        except ValueError:
            raise SendTestError(gettext(
                    'marketing_automation.msg_test_send_invalid_address',
                    address=(address or name))) from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise SendTestError(gettext(
                'marketing_automation.msg_test_send_no_address'))
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise SendTestError(gettext(
                'marketing_automation.msg_test_send_too_many',
                count=MAX_TEST_ADDRESSES))
    return addresses


class SMTPTestDataManager(SMTPDataManager):
    """Send test e-mails after the commit, apart from the messages of the
    record activities whose hand-off is recorded"""

    def __eq__(self, other):
        # SMTPDataManager would be equal to the record activities' one and
        # so be joined into it
        if not isinstance(other, SMTPTestDataManager):
            return NotImplemented
        return self.uri == other.uri and self.strict == other.strict

    def __hash__(self):
        return hash((self.__class__, self.uri, self.strict))


class PreviewStart(ModelView):
    __name__ = 'marketing.automation.activity.preview.start'
    __string__ = "Preview Email"

    activity = fields.Many2One(
        'marketing.automation.activity', "Activity", readonly=True)
    model = fields.Char("Model", readonly=True)
    record = fields.Reference(
        "Record", selection='get_record_models',
        help="The record the e-mail is rendered for; leave empty for the "
        "first record matching the domain of the scenario.")
    addresses = fields.Char(
        "Test Addresses",
        help="The e-mail addresses that receive the test e-mail, separated "
        "by commas.")
    sent = fields.Char(
        "Sent", readonly=True,
        states={
            'invisible': ~Eval('sent'),
            })

    @fields.depends('model')
    def get_record_models(self):
        Model = Pool().get('ir.model')
        models = [(None, "")]
        if self.model:
            models.append((self.model, Model.get_name(self.model)))
        return models


class PreviewResult(ModelView):
    __name__ = 'marketing.automation.activity.preview.result'
    __string__ = "Email Preview"

    record_name = fields.Char("Record", readonly=True)
    to = fields.Char("To", readonly=True)
    note = fields.Char(
        "Note", readonly=True,
        states={
            'invisible': ~Eval('note'),
            })
    error = fields.Text(
        "Error", readonly=True,
        states={
            'invisible': ~Eval('error'),
            })
    subject = fields.Char("Subject", readonly=True)
    html_file = fields.Binary(
        "Open in Browser", filename='html_filename', readonly=True,
        help="The e-mail as the recipient sees it.")
    html_filename = fields.Char("HTML File Name", readonly=True)
    html = fields.Text("HTML", readonly=True)
    text = fields.Text(
        "Text", readonly=True,
        help="The plain text version of the e-mail, for the mail readers "
        "that do not show HTML.")


class Preview(Wizard):
    __name__ = 'marketing.automation.activity.preview'

    start = StateView(
        'marketing.automation.activity.preview.start',
        'marketing_automation.activity_preview_start_view_form', [
            Button("Close", 'end', 'tryton-close'),
            Button("Send Test", 'send_test', 'tryton-send',
                states={
                    'readonly': ~Eval('addresses'),
                    }),
            Button("Preview", 'preview', 'tryton-ok', default=True),
            ])
    preview = StateView(
        'marketing.automation.activity.preview.result',
        'marketing_automation.activity_preview_result_view_form', [
            Button("Back", 'start', 'tryton-back'),
            Button("Close", 'end', 'tryton-close', default=True),
            ])
    send_test = StateTransition()

    def default_start(self, fields):
        pool = Pool()
        User = pool.get('res.user')
        start = self.start
        if getattr(start, 'activity', None):
            # Back from the preview or the test
            record = getattr(start, 'record', None)
            return {
                'activity': start.activity.id,
                'model': getattr(start, 'model', None),
                'record': str(record) if record else None,
                'addresses': getattr(start, 'addresses', None),
                'sent': getattr(start, 'sent', None),
                }
        activity = self.record
        user = User(Transaction().user)
        model = (activity.scenario.model
            if activity and activity.scenario else None)
        return {
            'activity': activity.id if activity else None,
            'model': model,
            # The model chosen, the record left to choose
            'record': '%s,-1' % model if model else None,
            'addresses': user.email if user.id else None,
            }

    def default_preview(self, fields):
        self.start.sent = None
        return self.start.activity.preview_email(self.start.record)

    def transition_send_test(self):
        sent = self.start.activity.send_test_email(
            self.start.addresses, self.start.record)
        self.start.sent = gettext(
            'marketing_automation.msg_test_sent', addresses=', '.join(sent))
        return 'start'
