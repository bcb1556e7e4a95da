# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""What comes back to the sender, read without the database

Delivery status notifications (RFC 3464) and the plain-text bounces of the
MTAs that send none, feedback reports (RFC 5965, ARF), auto-replies
(RFC 3834) and the requests sent to the List-Unsubscribe mailto; the VERP
return path carrying the token of the record activity."""
import email
import email.errors
import email.message
import email.policy
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import getaddresses, parseaddr
from urllib.parse import parse_qs, urlsplit

from .links import is_token

BOUNCE = 'bounce'
COMPLAINT = 'complaint'
AUTO_REPLY = 'auto_reply'
OTHER = 'other'

# The feedback types (RFC 5965, RFC 6650) of a recipient who does not want
# the message; "not-spam", "virus" or "auth-failure" are about the message
COMPLAINT_TYPES = {'abuse', 'fraud', 'opt-out', 'unsubscribe'}
# Only the notice part of a plain-text bounce is read for its status
MAX_NOTICE = 20000
MAX_DETAIL = 300

_POLICY = email.policy.compat32
_TOKEN = r'[0-9a-f]{32}|[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}'
_TOKEN_SEARCH = re.compile(r'(?<![0-9a-z-])(%s)(?![0-9a-z-])' % _TOKEN, re.I)
_UNSUBSCRIBE_TOKEN = re.compile(
    r'(?:unsubscribe\W+|[?&]r=)(%s)(?![0-9a-z-])' % _TOKEN, re.I)
_ENHANCED_STATUS = re.compile(r'(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})\b')
_REPLY_CODE = re.compile(r'(?<![\d.])([45])\d\d(?=[ -])')
_QUOTED_RECIPIENT = re.compile(
    r'^\s*<([^<>\s]+@[^<>\s]+)>(?::|[ \t]*$)', re.M)
# The first header of the copy of the message returned in a plain-text
# bounce
_RETURNED_HEADERS = re.compile(
    r'^(?:Return-Path|Received|Message-ID|Date|From|To|Subject'
    r'|MIME-Version|List-Unsubscribe|DKIM-Signature):[ \t]', re.M | re.I)
_DAEMON = re.compile(
    r'^(?:mailer-daemon|mailerdaemon|mail-daemon|postmaster)$', re.I)
_BOUNCE_SUBJECT = re.compile(
    r'undeliver|not (?:be )?delivered|delivery (?:status|fail|has failed'
    r'|problem|notification)|mail delivery failed|returned mail'
    r'|returned to sender|failure notice|non-?delivery', re.I)
_AUTO_REPLY_SUBJECT = re.compile(
    r'^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?'
    r'[- ]?(?:reply|response|antwort)|autoreply|auto:|abwesenheit'
    r'|r[ée]ponse automatique|vacation|away from)', re.I)
# The headers that carry the address the report was delivered to
_ENVELOPE_HEADERS = [
    'Delivered-To', 'X-Original-To', 'Envelope-To', 'X-Envelope-To',
    'X-Rcpt-To', 'To', 'Cc']
# The fields of the reports that carry the envelope sender of the message
_SENDER_FIELDS = ['Original-Mail-From', 'X-Postfix-Sender', 'Return-Path']


class InvalidMessage(ValueError):
    "The data is not an e-mail message"


@dataclass(frozen=True)
class Recipient:
    """The fate of the message for one recipient of a bounce; the address
    is empty when the bounce does not tell it"""
    address: str
    action: str = 'failed'
    status: str = ''
    diagnostic: str = ''

    @property
    def permanent(self):
        "Tell if delivering to the address failed for good"
        return self.action == 'failed' and self.status.startswith('5')

    @property
    def transient(self):
        "Tell if delivering to the address failed for now or is delayed"
        return (self.action in {'failed', 'delayed'}
            and not self.status.startswith(('2', '5')))


@dataclass(frozen=True)
class Report:
    "What an inbound message says about a message we sent"
    kind: str
    token: str = None
    message_id: str = None
    record_token: str = None
    recipients: tuple = ()
    addresses: tuple = ()
    feedback_type: str = ''
    standard: bool = False
    details: tuple = ()

    @property
    def bounce(self):
        "Return 'hard', 'soft' or None for what a bounce tells"
        if self.kind != BOUNCE:
            return None
        if any(r.permanent for r in self.recipients):
            return 'hard'
        if any(r.transient for r in self.recipients):
            return 'soft'
        return None

    @property
    def undelivered(self):
        "Tell if the bounce says the message was not delivered (not delayed)"
        return bool(self.bounce) and any(
            r.action == 'failed' for r in self.recipients)

    @property
    def complaint(self):
        "Tell if the report is a recipient's complaint"
        return self.kind == COMPLAINT and (
            self.feedback_type in COMPLAINT_TYPES)

    def summary(self):
        "Return the report as a few lines of fields, for the record"
        return '\n'.join('%s: %s' % (name, value[:MAX_DETAIL])
            for name, value in self.details if value)


def verp_address(bounce_address, token):
    "Return the envelope sender carrying the token of the bounce address"
    local, domain = _split_address(bounce_address)
    if not local or not domain:
        raise ValueError(f"invalid bounce address {bounce_address!r}")
    if not is_token(token):
        raise ValueError(f"invalid token {token!r}")
    return f'{local}+{token}@{domain}'


def parse(raw, bounce_address=None):
    "Return the Report of the raw message; raise InvalidMessage if none"
    message = _message(raw)
    verp = _verp_pattern(bounce_address)
    report_type = _report_type(message)
    if report_type == 'delivery-status':
        return _delivery_status(message, verp)
    elif report_type == 'feedback-report':
        return _feedback_report(message, verp)
    elif _from_daemon(message) or message.get('X-Failed-Recipients'):
        return _plain_bounce(message, verp)
    elif is_auto_reply(message):
        return Report(AUTO_REPLY, token=_envelope_token(message, verp),
            details=_top_details(message))
    elif (not report_type and _null_sender(message)
            and _BOUNCE_SUBJECT.search(_header(message, 'Subject'))):
        return _plain_bounce(message, verp)
    return Report(OTHER, token=_envelope_token(message, verp),
        details=_top_details(message))


def unsubscribe_token(raw):
    """Return the record token an unsubscribe request carries, or None when
    the message is a report, an auto-reply or carries no token"""
    message = _message(raw)
    if (_report_type(message) or _from_daemon(message)
            or message.get('X-Failed-Recipients')
            or is_auto_reply(message, generated=False)):
        return None
    for text, pattern in [
            (_header(message, 'Subject'), _TOKEN_SEARCH),
            (' '.join(a for _, a in _addresses(message, ['To', 'Cc'])),
                _TOKEN_SEARCH),
            # Not any token of the body: a forwarded e-mail holds those of
            # its tracked links
            (_first_text(message)[:MAX_NOTICE], _UNSUBSCRIBE_TOKEN),
            ]:
        match = pattern.search(text)
        if match:
            return match.group(1).lower()
    return None


def is_auto_reply(message, generated=True):
    """Tell if the message was sent by a program and not by a person (RFC
    3834); only auto-replies count unless generated"""
    submitted = _header(message, 'Auto-Submitted').split(';')[0]
    submitted = submitted.strip().lower()
    if submitted == 'auto-replied' or (
            generated and submitted not in {'', 'no'}):
        return True
    if any(message.get(name) for name in [
                'X-Autoreply', 'X-Autorespond', 'X-Autoresponder']):
        return True
    if _header(message, 'Precedence').strip().lower() == 'auto_reply':
        return True
    return bool(_AUTO_REPLY_SUBJECT.match(_header(message, 'Subject')))


def _message(raw):
    if isinstance(raw, str):
        raw = raw.encode('utf-8', 'surrogateescape')
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise InvalidMessage(
            "not an e-mail message: %s data" % type(raw).__name__)
    raw = bytes(raw)
    if not raw.strip():
        raise InvalidMessage("not an e-mail message: no data")
    message = email.message_from_bytes(raw, policy=_POLICY)
    if not _header(message, 'From'):
        raise InvalidMessage("not an e-mail message: no From header")
    return message


def _header(message, name):
    "Return the decoded text of the header, on one line, or ''"
    value = message.get(name)
    if value is None:
        return ''
    return ' '.join(_header_value(value).split())


def _addresses(message, names):
    "Return the (name, address) pairs of the headers"
    values = []
    for name in names:
        values.extend(_header_value(v) for v in message.get_all(name) or [])
    return [(n, a) for n, a in getaddresses(values) if '@' in a]


def _header_value(value):
    "Return the decoded text of a header value"
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError,
            email.errors.HeaderParseError):
        return str(value)


def _split_address(address):
    _, address = parseaddr(address or '')
    local, at, domain = address.rpartition('@')
    return (local, domain) if at else ('', '')


def _verp_pattern(bounce_address):
    local, domain = _split_address(bounce_address)
    if not local or not domain:
        return None
    return re.compile(r'(?<![^\s<:;,"])%s\+(%s)@%s(?![\w.-])' % (
            re.escape(local), _TOKEN, re.escape(domain)), re.I)


def _verp_token(verp, values):
    "Return the token of the first VERP address in the values"
    if verp is None:
        return None
    for value in values:
        match = verp.search(value or '')
        if match:
            return match.group(1).lower()
    return None


def _envelope_token(message, verp, *fields):
    "Return the VERP token of the message, its report fields or original"
    values = []
    for name in _ENVELOPE_HEADERS:
        values.extend(_header_value(v) for v in message.get_all(name) or [])
    for headers in fields:
        if headers is not None:
            values.extend(
                _header_value(headers.get(n) or '') for n in _SENDER_FIELDS)
    return _verp_token(verp, values)


def _report_type(message):
    if message.get_content_type() != 'multipart/report':
        return None
    return (message.get_param('report-type') or '').strip().lower() or None


def _from_daemon(message):
    name, address = parseaddr(_header(message, 'From'))
    local = address.rpartition('@')[0] if '@' in address else address
    return bool(_DAEMON.match(local)) or bool(re.match(
            r'mail delivery (?:system|subsystem)$', name.strip(), re.I))


def _null_sender(message):
    return _header(message, 'Return-Path').strip() in {'<>', ''}


def _parts(message, content_type):
    return [p for p in message.walk() if p.get_content_type() == content_type]


def _fields(block):
    "Return the fields of a report block by lower-case name"
    return {k.lower(): _header_value(v) for k, v in block.items()}


def _status_blocks(part):
    "Return the blocks of fields of a message/delivery-status part"
    payload = part.get_payload()
    if isinstance(payload, list):
        return [_fields(b) for b in payload]
    text = _decoded(part)
    return [_fields(HeaderParser(policy=_POLICY).parsestr(b))
        for b in re.split(r'\n\s*\n', text.replace('\r\n', '\n'))
        if b.strip()]


def _decoded(part):
    "Return the decoded text of a non-multipart part"
    payload = part.get_payload(decode=True)
    if payload is None:
        return ''
    charset = part.get_content_charset() or 'utf-8'
    try:
        return payload.decode(charset, 'replace')
    except LookupError:
        return payload.decode('utf-8', 'replace')


def _first_text(message):
    for part in message.walk():
        if part.get_content_type() == 'text/plain':
            return _decoded(part)
    return ''


def _typed_value(value):
    "Return the value of a field as 'type; value' without its type"
    _, semicolon, rest = (value or '').partition(';')
    value = rest if semicolon else (value or '')
    return ' '.join(value.split()).strip('<>')


def _address(value):
    value = _typed_value(value)
    return value if '@' in value else ''


def _status(text):
    "Return the enhanced status code the text gives or implies"
    text = text or ''
    match = _ENHANCED_STATUS.search(text)
    if match:
        return '.'.join(match.groups())
    match = _REPLY_CODE.search(text)
    if match:
        return match.group(1) + '.0.0'
    if re.search(r'permanent(?:ly)? (?:error|fail)|given up', text, re.I):
        return '5.0.0'
    return ''


def _original(message):
    """Return the headers of the message returned in the report, or None"""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in {'message/rfc822', 'message/global'}:
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        elif content_type in {
                'text/rfc822-headers', 'message/global-headers'}:
            return BytesHeaderParser(policy=_POLICY).parsebytes(
                part.get_payload(decode=True) or b'')
    return None


def _record_token(headers):
    "Return the record token of the List-Unsubscribe of our message"
    if headers is None:
        return None
    for value in re.findall(r'<([^<>]*)>', _header(
                headers, 'List-Unsubscribe')):
        parts = urlsplit(value)
        if parts.scheme.lower() in {'http', 'https'}:
            tokens = parse_qs(parts.query).get('r', [])
        elif parts.scheme.lower() == 'mailto':
            tokens = _TOKEN_SEARCH.findall(
                ' '.join(parse_qs(parts.query).get('subject', [])))
        else:
            continue
        for token in tokens:
            if is_token(token):
                return token.lower()
    return None


def _message_id(headers):
    if headers is None:
        return None
    return _header(headers, 'Message-ID').strip() or None


def _top_details(message):
    return tuple((name, _header(message, name))
        for name in ['From', 'Subject', 'Date'])


def _delivery_status(message, verp):
    parts = _parts(message, 'message/delivery-status')
    blocks = _status_blocks(parts[0]) if parts else []
    per_message = blocks[0] if blocks else {}
    recipients = []
    for block in blocks[1:]:
        address = (_address(block.get('original-recipient'))
            or _address(block.get('final-recipient')))
        if not address:
            continue
        diagnostic = _typed_value(block.get('diagnostic-code'))
        status = (_status(block.get('status'))
            or _status(diagnostic) or '')
        recipients.append(Recipient(
                address=address,
                action=(block.get('action') or '').strip().lower(),
                status=status,
                diagnostic=diagnostic))
    original = _original(message)
    details = _top_details(message) + (
        ('Reporting-MTA', _typed_value(per_message.get('reporting-mta'))),)
    for recipient in recipients:
        details += (
            ('Recipient', recipient.address),
            ('Action', recipient.action),
            ('Status', recipient.status),
            ('Diagnostic-Code', recipient.diagnostic))
    return Report(BOUNCE,
        token=_envelope_token(message, verp, _sender_fields(
                per_message), original),
        # Gmail names the returned message in the report
        message_id=(_message_id(original)
            or per_message.get('x-original-message-id', '').strip() or None),
        record_token=_record_token(original),
        recipients=tuple(recipients),
        addresses=tuple(r.address for r in recipients),
        standard=True,
        details=details)


def _sender_fields(fields):
    "Return the fields of a report naming the envelope sender as headers"
    message = email.message.Message(policy=_POLICY)
    for name in _SENDER_FIELDS:
        if fields.get(name.lower()):
            message[name] = fields[name.lower()]
    return message


def _feedback_report(message, verp):
    parts = _parts(message, 'message/feedback-report')
    blocks = _status_blocks(parts[0]) if parts else []
    fields = {}
    for block in blocks:
        fields.update(block)
    feedback_type = (fields.get('feedback-type') or '').strip().lower()
    original = _original(message)
    addresses = [_address(fields.get('original-rcpt-to'))]
    if original is not None:
        addresses.extend(a for _, a in _addresses(original, ['To']))
    addresses = tuple(dict.fromkeys(a.lower() for a in addresses if a))
    details = _top_details(message) + (
        ('Feedback-Type', feedback_type),
        ('User-Agent', fields.get('user-agent', '')),
        ('Original-Rcpt-To', ', '.join(addresses)),
        ('Arrival-Date', fields.get('arrival-date', '')))
    return Report(COMPLAINT,
        token=_envelope_token(
            message, verp, _sender_fields(fields), original),
        message_id=_message_id(original),
        record_token=_record_token(original),
        addresses=addresses,
        feedback_type=feedback_type,
        standard=True,
        details=details)


def _plain_bounce(message, verp):
    "Return the Report of a bounce that is not a delivery status report"
    original = _original(message)
    text = _first_text(message)[:MAX_NOTICE]
    notice = text
    if original is None:
        match = _RETURNED_HEADERS.search(text)
        if match:
            notice = text[:match.start()]
            original = HeaderParser(policy=_POLICY).parsestr(
                text[match.start():])
    addresses = [a for _, a in _addresses(message, ['X-Failed-Recipients'])]
    addresses += _QUOTED_RECIPIENT.findall(notice)
    if not addresses and original is not None:
        addresses = [a for _, a in _addresses(original, ['To'])]
    addresses = list(dict.fromkeys(a.lower() for a in addresses))
    status = _status(notice)
    recipients = tuple(
        Recipient(address=a, status=status, diagnostic=_diagnostic(notice))
        for a in addresses or [''])
    details = _top_details(message) + tuple(
        (name, value) for r in recipients for name, value in [
            ('Recipient', r.address), ('Status', r.status),
            ('Diagnostic-Code', r.diagnostic)])
    return Report(BOUNCE,
        token=_envelope_token(message, verp, original),
        message_id=_message_id(original),
        record_token=_record_token(original),
        recipients=recipients,
        addresses=tuple(addresses),
        details=details)


def _diagnostic(notice):
    "Return the line of the notice that gives the status, or the first"
    lines = [' '.join(line.split()) for line in notice.splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if _ENHANCED_STATUS.search(line) or _REPLY_CODE.search(line):
            return line
    return lines[0] if lines else ''
