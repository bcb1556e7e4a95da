# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Send a message over an SMTP connection with its commands pipelined

smtplib waits for the reply to each command: MAIL, RCPT, DATA and the
data make four round trips per message.  With a server that allows
PIPELINING (RFC 2920), as the usual relays do, the envelope and DATA go in
one write and the data in another: two round trips.  The replies are read
and handled as smtplib does, and every case it would not handle the same
way (no PIPELINING, Bcc or Resent- headers, non-ASCII addresses, a server
that disconnects or answers 4xx) goes through trytond's send_message, so
the retries are trytond's own."""
import io
import logging
import re
import smtplib
from email.generator import BytesGenerator
from email.utils import formatdate, make_msgid

from trytond.sendmail import send_message as trytond_send_message
from trytond.url import host

logger = logging.getLogger(__name__)

# An address smtplib.quoteaddr would give back as it is, between <>
_PLAIN_ADDRESS = re.compile(r'[^\s<>()",;:\\\[\]@]+@[^\s<>()",;:\\\[\]@]+')
# The headers smtplib's send_message reads or removes before sending
_RESENT_OR_BCC = ['Bcc', 'Resent-Bcc', 'Resent-Date']


def send_message(msg, from_addr, to_addrs, server):
    """Send msg on the connection as trytond.sendmail.send_message does
    with strict; return the connection to use for the next messages"""
    # Reading a header parses it: testing its presence does not
    if 'Message-ID' not in msg:
        msg['Message-ID'] = make_msgid(domain=host())
    if 'Date' not in msg:
        msg['Date'] = formatdate()
    if _pipelinable(msg, from_addr, to_addrs, server):
        try:
            refused = _send_pipelined(server, msg, from_addr, to_addrs)
        except smtplib.SMTPServerDisconnected:
            # trytond's send_message connects again and retries
            pass
        except smtplib.SMTPResponseException as exception:
            if not 400 <= exception.smtp_code <= 499:
                raise
        else:
            if refused:
                logger.warning('fail to send email to %s', refused)
            return server
    return trytond_send_message(
        msg, from_addr, to_addrs, server=server, strict=True) or server


def _pipelinable(msg, from_addr, to_addrs, server):
    "Tell if the message can go pipelined on the connection"
    if (not isinstance(server, smtplib.SMTP) or not from_addr
            or not to_addrs or isinstance(to_addrs, str)
            or not ''.join([from_addr, *to_addrs]).isascii()
            or any(h in msg for h in _RESENT_OR_BCC)):
        return False
    try:
        server.ehlo_or_helo_if_needed()
    except smtplib.SMTPException:
        # Left to trytond's send_message, which handles it
        return False
    return server.does_esmtp and server.has_extn('pipelining')


def _flatten(msg):
    "Return the bytes of the message with CRLF, as smtplib sends it"
    with io.BytesIO() as buffer:
        BytesGenerator(buffer).flatten(msg, linesep='\r\n')
        return buffer.getvalue()


def _quote(address):
    "Return the address of an envelope as smtplib.quoteaddr does"
    if _PLAIN_ADDRESS.fullmatch(address):
        # quoteaddr parses it as a header: ten times slower
        return '<%s>' % address
    return smtplib.quoteaddr(address)


def _data(data):
    "Return the data of the message with its dots doubled and the end"
    data = data.replace(b'\n.', b'\n..')
    if data.startswith(b'.'):
        data = b'.' + data
    if not data.endswith(b'\r\n'):
        data += b'\r\n'
    return data + b'.\r\n'


def _send_pipelined(server, msg, from_addr, to_addrs):
    """Send the message in two round trips; return the refused recipients
    or raise as smtplib's sendmail does"""
    data = _flatten(msg)
    options = ''
    if server.has_extn('size'):
        options = ' SIZE=%d' % len(data)
    commands = ['MAIL FROM:%s%s' % (_quote(from_addr), options)]
    commands.extend('RCPT TO:%s' % _quote(a) for a in to_addrs)
    commands.append('DATA')
    server.send(('\r\n'.join(commands) + '\r\n').encode('ascii'))
    mail_reply = server.getreply()
    refused = {}
    for address in to_addrs:
        code, text = server.getreply()
        if code not in {250, 251}:
            refused[address] = (code, text)
    data_reply = server.getreply()
    accepted = mail_reply[0] == 250 and len(refused) < len(to_addrs)
    if data_reply[0] != 354 or not accepted:
        codes = {mail_reply[0], data_reply[0]} | {
            c for c, _ in refused.values()}
        # A server that takes the data of a refused envelope: only dropping
        # the connection ensures nothing is delivered
        if data_reply[0] == 354 or 421 in codes:
            server.close()
        else:
            _reset(server)
        if mail_reply[0] != 250:
            raise smtplib.SMTPSenderRefused(*mail_reply, from_addr)
        if not accepted:
            raise smtplib.SMTPRecipientsRefused(refused)
        raise smtplib.SMTPDataError(*data_reply)
    server.send(_data(data))
    code, text = server.getreply()
    if code != 250:
        if code == 421:
            server.close()
        else:
            _reset(server)
        raise smtplib.SMTPDataError(code, text)
    return refused


def _reset(server):
    "End the mail transaction as smtplib does after an error"
    try:
        server.rset()
    except smtplib.SMTPServerDisconnected:
        pass
