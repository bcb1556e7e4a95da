# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Helpers shared by the tests, the demo and the benchmark"
import email
import email.policy
import socket
import threading


def free_port():
    "Return a TCP port of the loopback interface that is free now"
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class SMTPSink:
    """A real SMTP server on 127.0.0.1 keeping the messages it receives

    Messages are parsed with the default policy; `on_message` is called with
    each raw message when given (e.g. to write it to a file).  `senders`
    keeps the envelope sender of each recipient; with `return_path` the
    messages get it as a Return-Path header, as a delivering MTA adds it.
    It advertises PIPELINING, as the usual relays do, unless `pipelining`
    is false."""

    def __init__(self, port=None, on_message=None, return_path=False,
            pipelining=True):
        self.port = port or free_port()
        self.messages = []
        self.senders = {}
        self.on_message = on_message
        self.return_path = return_path
        self.pipelining = pipelining
        self._lock = threading.Lock()
        self._controller = None

    @property
    def uri(self):
        return 'smtp://127.0.0.1:%s' % self.port

    async def handle_EHLO(self, server, session, envelope, hostname,
            responses):
        session.host_name = hostname
        if self.pipelining:
            # aiosmtpd reads the pipelined commands in their order
            responses.insert(-1, '250-PIPELINING')
        return responses

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if self.return_path:
            raw = b'Return-Path: <%s>\r\n' % envelope.mail_from.encode() + raw
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
            for recipient in envelope.rcpt_tos:
                self.senders[recipient] = envelope.mail_from
        if self.on_message:
            self.on_message(raw, message)
        return '250 Message accepted for delivery'

    def start(self):
        from aiosmtpd.controller import Controller
        self._controller = Controller(
            self, hostname='127.0.0.1', port=self.port)
        self._controller.start()
        return self

    def stop(self):
        if self._controller:
            self._controller.stop()
            self._controller = None

    def pop(self):
        "Return and forget the messages received so far"
        with self._lock:
            messages, self.messages = self.messages, []
        return messages

    def __enter__(self):
        return self.start()

    def __exit__(self, *args):
        self.stop()
