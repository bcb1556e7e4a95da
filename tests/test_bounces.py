# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The reading of what comes back: bounces as MTAs and providers write them,
feedback reports, auto-replies, unsubscribe requests and garbage

The samples in tests/bounces/ were written in the formats of the named
senders; they are about messages sent by us with the bounce address
bounces@shop.example, the VERP token TOKEN and the Message-ID MESSAGE_ID."""
import email
import email.policy
import random
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from trytond.modules.marketing_automation import bounces, mime

SAMPLES = Path(__file__).resolve().parent / 'bounces'
BOUNCE_ADDRESS = 'bounces@shop.example'
TOKEN = '3f6b0d2a9c8e4f71b5a2c9d04e7f1a6b'
RECORD_TOKEN = '8e1d4c7b2a5f4e9c9b0a6d3f2c1e7b58'
MESSAGE_ID = '<171265050112.4242.1234567890123456789@shop.example>'

# sample: (kind, bounce, VERP token found, addresses, statuses)
EXPECTED = {
    'postfix_hard': (
        bounces.BOUNCE, 'hard', True, ['ann@example.com'], ['5.1.1']),
    'postfix_delayed': (
        bounces.BOUNCE, 'soft', True, ['cid@example.net'], ['4.4.1']),
    'exim_hard': (
        bounces.BOUNCE, 'hard', True, ['dan@example.org'], ['5.0.0']),
    'exim_plain': (
        bounces.BOUNCE, 'hard', False, ['eve@example.org'], ['5.2.1']),
    'qmail_plain': (
        bounces.BOUNCE, 'soft', True, ['cid@example.net'], ['4.2.2']),
    'gmail_hard': (
        bounces.BOUNCE, 'hard', False, ['fay@example.com'], ['5.1.1']),
    'gmail_delayed': (
        bounces.BOUNCE, 'soft', False, ['cid@example.net'], ['4.4.1']),
    'microsoft_hard': (
        bounces.BOUNCE, 'hard', True, ['gus@example.com'], ['5.1.10']),
    'microsoft_soft': (
        bounces.BOUNCE, 'soft', True, ['hal@example.com'], ['4.4.7']),
    'arf_yahoo': (
        bounces.COMPLAINT, None, True, ['ivy@example.com'], []),
    'arf_microsoft': (bounces.COMPLAINT, None, False, [], []),
    'auto_reply_vacation': (bounces.AUTO_REPLY, None, True, [], []),
    'auto_reply_exchange': (bounces.AUTO_REPLY, None, True, [], []),
    'unsubscribe_gmail': (bounces.OTHER, None, False, [], []),
    }


def sample(name):
    return (SAMPLES / (name + '.eml')).read_bytes()


def test_samples_all_expected():
    "Every sample but garbage has its expectation"
    names = {p.stem for p in SAMPLES.glob('*.eml')}
    assert names - {'garbage'} == set(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_parse_sample(name):
    kind, bounce, verp, addresses, statuses = EXPECTED[name]
    report = bounces.parse(sample(name), BOUNCE_ADDRESS)
    assert report.kind == kind
    assert report.bounce == bounce
    assert report.token == (TOKEN if verp else None)
    assert list(report.addresses) == addresses
    assert [r.status for r in report.recipients] == statuses
    if kind in {bounces.BOUNCE, bounces.COMPLAINT}:
        # The e-mail it is about is named by its returned headers
        assert report.message_id == MESSAGE_ID
        assert report.record_token == RECORD_TOKEN
    assert report.complaint == (kind == bounces.COMPLAINT)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_parse_sample_crlf(name):
    "Line endings of the network give the same report"
    raw = sample(name).replace(b'\n', b'\r\n')
    assert bounces.parse(raw, BOUNCE_ADDRESS) == bounces.parse(
        sample(name), BOUNCE_ADDRESS)


def test_standard_reports():
    "Only the RFC 3464 and RFC 5965 reports are said standard"
    standard = {name for name in EXPECTED
        if bounces.parse(sample(name), BOUNCE_ADDRESS).standard}
    assert standard == {
        'postfix_hard', 'postfix_delayed', 'exim_hard', 'gmail_hard',
        'gmail_delayed', 'microsoft_hard', 'microsoft_soft', 'arf_yahoo',
        'arf_microsoft'}


def test_recipient_fields():
    "A DSN gives the action and the diagnostic of each recipient"
    report = bounces.parse(sample('postfix_hard'), BOUNCE_ADDRESS)
    recipient, = report.recipients
    assert recipient.action == 'failed'
    assert recipient.permanent and not recipient.transient
    assert recipient.diagnostic == (
        '550 5.1.1 <ann@example.com>: Recipient address rejected: '
        'User unknown in virtual mailbox table')
    delayed, = bounces.parse(
        sample('postfix_delayed'), BOUNCE_ADDRESS).recipients
    assert delayed.action == 'delayed'
    assert delayed.transient and not delayed.permanent


def test_summary():
    "The summary tells who reported what, as fields"
    summary = bounces.parse(sample('microsoft_hard'), BOUNCE_ADDRESS).summary()
    lines = summary.splitlines()
    assert lines[0].startswith('From: Microsoft Outlook <MicrosoftExchange')
    assert 'Subject: Undeliverable: Spring offers for Gus' in lines
    assert 'Reporting-MTA: DB8PR04MB1234.eurprd04.prod.outlook.com' in lines
    assert 'Recipient: gus@example.com' in lines
    assert 'Status: 5.1.10' in lines
    assert all(len(line) < 400 for line in lines)
    complaint = bounces.parse(sample('arf_yahoo'), BOUNCE_ADDRESS).summary()
    assert 'Feedback-Type: abuse' in complaint.splitlines()
    assert 'Original-Rcpt-To: ivy@example.com' in complaint.splitlines()


def test_plain_bounce_diagnostic():
    "A bounce without report gives the line of its status as diagnostic"
    recipient, = bounces.parse(
        sample('exim_plain'), BOUNCE_ADDRESS).recipients
    assert recipient.diagnostic == (
        'host mx.example.org [198.51.100.20]: 550 5.2.1 '
        'This mailbox is disabled')


def test_plain_bounce_null_sender():
    "A bounce from an unknown daemon is known by its null sender and subject"
    raw = (
        b'Return-Path: <>\n'
        b'From: Mail Administrator <admin@mail.example.net>\n'
        b'To: bounces+' + TOKEN.encode() + b'@shop.example\n'
        b'Subject: Returned mail: see transcript for details\n'
        b'\n'
        b'The original message was received at Tue, 9 Apr 2024.\n'
        b'   ----- The following addresses had permanent fatal errors -----\n'
        b'<joe@example.net>\n'
        b'    (reason: 550 Requested action not taken: mailbox unavailable)\n')
    report = bounces.parse(raw, BOUNCE_ADDRESS)
    assert report.kind == bounces.BOUNCE
    assert report.token == TOKEN
    assert report.bounce == 'hard'
    # Without the null sender, a person's message about a delivery
    raw = raw.replace(b'Return-Path: <>', b'Return-Path: <admin@example.net>')
    assert bounces.parse(raw, BOUNCE_ADDRESS).kind == bounces.OTHER


def test_plain_bounce_without_status():
    "A bounce that gives no status counts as soft, never as hard"
    raw = (
        b'From: MAILER-DAEMON@mail.example.net\n'
        b'To: bounces+' + TOKEN.encode() + b'@shop.example\n'
        b'Subject: failure notice\n'
        b'\n'
        b'Your message could not be delivered to some recipients.\n')
    report = bounces.parse(raw, BOUNCE_ADDRESS)
    assert report.kind == bounces.BOUNCE
    assert report.token == TOKEN
    assert report.addresses == ()
    recipient, = report.recipients
    assert recipient.address == ''
    assert report.bounce == 'soft'


def test_success_notification():
    "A DSN of a delivered message is no bounce"
    raw = sample('postfix_hard').replace(
        b'Action: failed\nStatus: 5.1.1', b'Action: delivered\nStatus: 2.0.0')
    report = bounces.parse(raw, BOUNCE_ADDRESS)
    assert report.kind == bounces.BOUNCE
    assert report.bounce is None


def test_multiple_recipients():
    "Each recipient of a DSN has its own status"
    raw = sample('postfix_hard').replace(
        b'\n--4VQ2xK1RzTz9sWd.1712650502/mx1.shop.example\n'
        b'Content-Description: Undelivered Message Headers',
        b'\nFinal-Recipient: rfc822; bob@example.com\n'
        b'Action: delayed\n'
        b'Status: 4.2.2\n'
        b'\n--4VQ2xK1RzTz9sWd.1712650502/mx1.shop.example\n'
        b'Content-Description: Undelivered Message Headers')
    report = bounces.parse(raw, BOUNCE_ADDRESS)
    assert [(r.address, r.permanent, r.transient)
        for r in report.recipients] == [
        ('ann@example.com', True, False), ('bob@example.com', False, True)]
    assert report.bounce == 'hard'


def test_feedback_types():
    "Only the feedback of a recipient who does not want it is a complaint"
    for feedback_type, complaint in [
            ('abuse', True), ('fraud', True), ('opt-out', True),
            ('not-spam', False), ('virus', False), ('auth-failure', False)]:
        raw = sample('arf_yahoo').replace(
            b'Feedback-Type: abuse',
            b'Feedback-Type: ' + feedback_type.encode())
        report = bounces.parse(raw, BOUNCE_ADDRESS)
        assert report.kind == bounces.COMPLAINT
        assert report.feedback_type == feedback_type
        assert report.complaint == complaint, feedback_type


def test_verp_address():
    assert bounces.verp_address(BOUNCE_ADDRESS, TOKEN) == (
        'bounces+%s@shop.example' % TOKEN)
    assert bounces.verp_address('Shop <bounces@shop.example>', TOKEN) == (
        'bounces+%s@shop.example' % TOKEN)
    for address in ['', 'bounces', '@shop.example', 'bounces@']:
        with pytest.raises(ValueError):
            bounces.verp_address(address, TOKEN)
    with pytest.raises(ValueError):
        bounces.verp_address(BOUNCE_ADDRESS, 'not a token')


def test_verp_token_of_configured_address_only():
    "The token is read from the configured bounce address only"
    raw = sample('postfix_hard')
    assert bounces.parse(raw, 'BOUNCES@Shop.Example').token == TOKEN
    assert bounces.parse(raw, None).token is None
    assert bounces.parse(raw, 'other@shop.example').token is None
    assert bounces.parse(raw, 'bounces@example.com').token is None
    # Not a token of another local part ending like ours
    raw = raw.replace(b'bounces+', b'nobounces+')
    assert bounces.parse(raw, BOUNCE_ADDRESS).token is None


def test_verp_round_trip():
    "The address built for a token gives it back from a bounce"
    token = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
    raw = sample('qmail_plain').replace(
        TOKEN.encode(), bounces.verp_address(
            BOUNCE_ADDRESS, token).split('+')[1].split('@')[0].encode())
    assert bounces.parse(raw, BOUNCE_ADDRESS).token == token


def test_auto_reply_is_no_bounce():
    "Auto-replies reach the bounce address but are no bounce"
    for name in ['auto_reply_vacation', 'auto_reply_exchange']:
        report = bounces.parse(sample(name), BOUNCE_ADDRESS)
        assert report.bounce is None and not report.complaint
    # A bounce says it is auto-replied too: it stays a bounce
    assert b'Auto-Submitted: auto-replied' in sample('exim_plain')


def test_auto_reply_signs():
    "Each sign of an auto-reply is enough"
    base = b'From: Joe <joe@example.net>\nTo: news@shop.example\n'
    for header in [
            b'Auto-Submitted: auto-replied\n',
            b'Auto-Submitted: auto-generated\n',
            b'X-Autoreply: yes\n',
            b'X-Autorespond: Out of office\n',
            b'Precedence: auto_reply\n',
            b'Subject: Out of Office: Spring offers\n',
            b'Subject: Automatic reply: Spring offers\n',
            b'Subject: =?utf-8?q?R=C3=A9ponse_automatique=3A_offres?=\n']:
        report = bounces.parse(base + header + b'\nAway.\n')
        assert report.kind == bounces.AUTO_REPLY, header
    for header in [b'Auto-Submitted: no\n', b'Subject: Re: Spring offers\n']:
        report = bounces.parse(base + header + b'\nThanks!\n')
        assert report.kind == bounces.OTHER, header


def test_other_reports():
    "A read receipt (RFC 8098) is neither a bounce nor a complaint"
    raw = (
        b'From: joe@example.net\n'
        b'To: news@shop.example\n'
        b'Subject: Read: Spring offers\n'
        b'MIME-Version: 1.0\n'
        b'Content-Type: multipart/report; '
        b'report-type=disposition-notification; boundary="b"\n'
        b'\n--b\nContent-Type: text/plain\n\nRead.\n'
        b'--b\nContent-Type: message/disposition-notification\n\n'
        b'Final-Recipient: rfc822; joe@example.net\n'
        b'Disposition: manual-action/MDN-sent-manually; displayed\n'
        b'--b--\n')
    report = bounces.parse(raw, BOUNCE_ADDRESS)
    assert report.kind == bounces.OTHER
    assert report.bounce is None and not report.complaint


@pytest.mark.parametrize('raw', [
        None, 42, b'', b' \r\n\t', bytearray(b'\n\n'),
        b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01',
        b'{"mandrill_events": []}',
        'hello world',
        b'Subject: no sender\n\nbody\n',
        ])
def test_garbage(raw):
    "What is not an e-mail message raises a clear error"
    with pytest.raises(bounces.InvalidMessage) as info:
        bounces.parse(raw, BOUNCE_ADDRESS)
    assert str(info.value).startswith('not an e-mail message')
    with pytest.raises(bounces.InvalidMessage):
        bounces.unsubscribe_token(raw)


def test_garbage_sample():
    with pytest.raises(bounces.InvalidMessage,
            match='not an e-mail message: no From header'):
        bounces.parse(sample('garbage'), BOUNCE_ADDRESS)


def test_mangled_samples():
    "Truncated and damaged samples give a report or InvalidMessage only"
    rng = random.Random(3464)
    for path in sorted(SAMPLES.glob('*.eml')):
        raw = path.read_bytes()
        variants = [raw[:rng.randrange(len(raw))] for _ in range(30)]
        for _ in range(30):
            damaged = bytearray(raw)
            for _ in range(20):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            variants.append(bytes(damaged))
        for variant in variants:
            for read in [
                    lambda r: bounces.parse(r, BOUNCE_ADDRESS),
                    bounces.unsubscribe_token]:
                try:
                    read(variant)
                except bounces.InvalidMessage:
                    pass


def test_unsubscribe_token():
    "The record token of a mailto request is read from its subject"
    assert bounces.unsubscribe_token(sample('unsubscribe_gmail')) == (
        RECORD_TOKEN)
    raw = sample('unsubscribe_gmail').replace(
        b'Subject: unsubscribe', b'Subject: Re: Unsubscribe')
    assert bounces.unsubscribe_token(raw) == RECORD_TOKEN
    raw = sample('unsubscribe_gmail').replace(
        RECORD_TOKEN.encode(), RECORD_TOKEN.upper().encode())
    assert bounces.unsubscribe_token(raw) == RECORD_TOKEN


def test_unsubscribe_token_in_body():
    "A client that drops the subject may keep the request in the body"
    raw = (
        b'From: Nat <nat@example.com>\nTo: unsubscribe@shop.example\n'
        b'Subject: \n\nPlease unsubscribe ' + RECORD_TOKEN.encode() + b'\n')
    assert bounces.unsubscribe_token(raw) == RECORD_TOKEN
    # Not the token of a tracked link of a forwarded e-mail
    raw = (
        b'From: Nat <nat@example.com>\nTo: unsubscribe@shop.example\n'
        b'Subject: Fwd: Spring offers\n\n'
        b'https://shop.example/m/c2hvcA/c/' + TOKEN.encode() + b'/x\n')
    assert bounces.unsubscribe_token(raw) is None
    raw += (b'https://shop.example/m/c2hvcA/unsubscribe?r='
        + RECORD_TOKEN.encode() + b'\n')
    assert bounces.unsubscribe_token(raw) == RECORD_TOKEN


def test_unsubscribe_token_of_reports():
    "Bounces and auto-replies reaching the mailto unsubscribe nobody"
    for name in [
            'postfix_hard', 'exim_plain', 'qmail_plain', 'arf_yahoo',
            'auto_reply_vacation']:
        assert bounces.unsubscribe_token(sample(name)) is None, name
    # A client may mark the request it sends for the user as generated
    raw = sample('unsubscribe_gmail').replace(
        b'MIME-Version: 1.0\n',
        b'MIME-Version: 1.0\nAuto-Submitted: auto-generated\n')
    assert bounces.unsubscribe_token(raw) == RECORD_TOKEN


def test_unsubscribe_mailto():
    "The mailto of List-Unsubscribe carries the record token in its subject"
    assert mime.unsubscribe_mailto('unsubscribe@shop.example', RECORD_TOKEN) \
        == 'mailto:unsubscribe@shop.example?subject=unsubscribe%20' \
        + RECORD_TOKEN
    assert mime.unsubscribe_mailto(
        'MAILTO:u@shop.example?Subject=stop&body=Bye%20now', RECORD_TOKEN) \
        == 'mailto:u@shop.example?subject=unsubscribe%20' + RECORD_TOKEN \
        + '&body=Bye%20now'


def test_unsubscribe_mailto_round_trip():
    """A request sent as the mailto says, and a report returning the
    message, both give the record token"""
    mailto = mime.unsubscribe_mailto('unsubscribe@shop.example', RECORD_TOKEN)
    msg = mime.build_message(
        from_addr='news@shop.example', to_addr='ann@example.com',
        subject="Offers", html='<html><body>Hi</body></html>',
        unsubscribe_url='https://shop.example/m/c2hvcA/unsubscribe?r=x',
        unsubscribe_mailto=mailto)
    assert msg['List-Unsubscribe'].endswith('<%s>' % mailto)
    # What a mail client sends for the mailto
    address, _, query = mailto[len('mailto:'):].partition('?')
    subject, = parse_qs(query)['subject']
    request = email.message.EmailMessage()
    request['From'] = 'ann@example.com'
    request['To'] = address
    request['Subject'] = subject
    request.set_content('Unsubscribe me')
    assert bounces.unsubscribe_token(request.as_bytes()) == RECORD_TOKEN
    # What an ARF report returning the message gives
    headers = msg.as_bytes(policy=email.policy.SMTP).split(b'\r\n\r\n')[0]
    raw = sample('arf_microsoft').replace(
        b'\nList-Unsubscribe: <https://shop.example/m/c2hvcA/unsubscribe?r='
        + RECORD_TOKEN.encode() + b'>',
        b'').replace(
        b'X-HmXmrOriginalRecipient: <removed>\n',
        headers.replace(b'\r\n', b'\n') + b'\n')
    report = bounces.parse(raw, BOUNCE_ADDRESS)
    assert report.record_token == RECORD_TOKEN
