# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The pipelined SMTP conversation: the same messages, replies and errors
as smtplib's, in two round trips"""
import smtplib
import unittest
from email.message import EmailMessage

from trytond.modules.marketing_automation import pipelining
from trytond.modules.marketing_automation.testing import SMTPSink
from trytond.sendmail import get_smtp_server


class RefusingSink(SMTPSink):
    "Refuse the recipients and the data of the addresses given"

    def __init__(self, refuse_rcpt=(), refuse_data=(), **kwargs):
        super().__init__(**kwargs)
        self.refuse_rcpt = dict(refuse_rcpt)
        self.refuse_data = dict(refuse_data)
        self.commands = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.commands.append(('RCPT', address))
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return '250 OK'

    async def handle_DATA(self, server, session, envelope):
        address, = envelope.rcpt_tos
        self.commands.append(('DATA', address))
        if address in self.refuse_data:
            return self.refuse_data[address]
        return await super().handle_DATA(server, session, envelope)


def message(address, body="Hello\n.\n..two dots\n"):
    msg = EmailMessage()
    msg['From'] = 'Shop <shop@example.com>'
    msg['To'] = address
    msg['Subject'] = "News"
    msg.set_content(body)
    return msg


class PipeliningTestCase(unittest.TestCase):

    def send(self, sink, addresses):
        "Send a message to each address on one connection; return errors"
        server = get_smtp_server(sink.uri, strict=True)
        errors = {}
        try:
            for address in addresses:
                try:
                    server = pipelining.send_message(
                        message(address), 'shop@example.com', [address],
                        server)
                except smtplib.SMTPException as exception:
                    errors[address] = exception
        finally:
            try:
                server.quit()
            except smtplib.SMTPServerDisconnected:
                # trytond's retries closed it
                pass
        return errors

    def test_pipelinable(self):
        "A server advertising PIPELINING gets the messages pipelined"
        for advertised in [True, False]:
            with self.subTest(advertised=advertised), \
                    SMTPSink(pipelining=advertised) as sink:
                server = get_smtp_server(sink.uri, strict=True)
                try:
                    self.assertEqual(pipelining._pipelinable(
                            message('a@example.com'), 'shop@example.com',
                            ['a@example.com'], server), advertised)
                finally:
                    server.quit()

    def test_messages(self):
        "Each message arrives once, whole, with its leading dots"
        addresses = ['p%s@example.com' % i for i in range(5)]
        with SMTPSink() as sink:
            self.assertEqual(self.send(sink, addresses), {})
            messages = sink.pop()
        self.assertEqual([m['To'] for m in messages], addresses)
        self.assertEqual(
            {m.get_content() for m in messages},
            {"Hello\r\n.\r\n..two dots\r\n"})
        self.assertEqual(
            set(sink.senders.values()), {'shop@example.com'})

    def test_refused_recipient(self):
        "A refused recipient raises as smtplib does; the next one is sent"
        with RefusingSink(
                refuse_rcpt={'b@example.com': '550 No such user'}) as sink:
            errors = self.send(
                sink, ['a@example.com', 'b@example.com', 'c@example.com'])
            messages = sink.pop()
        self.assertEqual(list(errors), ['b@example.com'])
        self.assertIsInstance(
            errors['b@example.com'], smtplib.SMTPRecipientsRefused)
        self.assertEqual(
            [m['To'] for m in messages], ['a@example.com', 'c@example.com'])

    def test_refused_data(self):
        "Data refused for good raises SMTPDataError; the next one is sent"
        with RefusingSink(
                refuse_data={'b@example.com': '554 Spam'}) as sink:
            errors = self.send(
                sink, ['a@example.com', 'b@example.com', 'c@example.com'])
            messages = sink.pop()
        self.assertIsInstance(errors['b@example.com'], smtplib.SMTPDataError)
        self.assertEqual(errors['b@example.com'].smtp_code, 554)
        self.assertEqual(
            [m['To'] for m in messages], ['a@example.com', 'c@example.com'])

    def test_temporary_failure_retried(self):
        "A 4xx goes to trytond's send_message, which retries"
        with RefusingSink(refuse_data={
                    'b@example.com': '451 Try again later'}) as sink:
            errors = self.send(sink, ['b@example.com'])
        # trytond retries the message then gives up with the error
        self.assertIsInstance(errors['b@example.com'], smtplib.SMTPDataError)
        self.assertEqual(errors['b@example.com'].smtp_code, 451)
        self.assertGreater(
            sink.commands.count(('DATA', 'b@example.com')), 1)

    def test_quote(self):
        "The envelope addresses are quoted as smtplib does"
        for address in ['a@example.com', 'a.b+c=d@sub.example.com',
                'Name <a@example.com>', '<a@example.com>', 'a b@c']:
            self.assertEqual(
                pipelining._quote(address), smtplib.quoteaddr(address))

    def test_data(self):
        "The data are stuffed and ended as smtplib does"
        for data in [b'.a\r\nb\r\n.c', b'a\r\n..b\r\n', b'x', b'a\n.b']:
            expected = smtplib._quote_periods(data)
            if not expected.endswith(b'\r\n'):
                expected += b'\r\n'
            self.assertEqual(pipelining._data(data), expected + b'.\r\n')
