# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Where the e-mails of the benchmark go: sinks counting the messages

In one process, trytond.sendmail.get_smtp_server is replaced by an object
that serializes each message as smtplib does; when trytond-worker or
trytond-cron processes send them, a real SMTP server on the loopback
interface receives them: sink.py in a process of its own, whose CPU time
is measured apart."""
import io
import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
from collections import Counter
from email.generator import BytesGenerator
from email.utils import getaddresses


class MessageCounter:
    "Count the messages received per recipient"

    def __init__(self):
        self.lock = threading.Lock()
        self.recipients = Counter()
        self.total = 0
        self.size = 0

    def add(self, recipients, size):
        with self.lock:
            self.total += 1
            self.size += size
            for recipient in recipients:
                self.recipients[recipient.lower()] += 1


def flatten(msg):
    "Return the bytes of the message as smtplib sends them"
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=msg.policy).flatten(msg, linesep='\r\n')
    return buffer.getvalue()


class InProcessSMTP:
    """Stand for trytond.sendmail.get_smtp_server: an SMTP connection that
    flattens each message as smtplib does and counts it, without network"""

    def __init__(self, counter, duplicate=False):
        self.counter = counter
        self.uri = 'smtp://in-process'
        self.duplicate = duplicate
        self.saved = None

    def __call__(self, uri=None, strict=False):
        return self

    def install(self):
        "Make trytond send its e-mails through this connection"
        import trytond.sendmail as sendmail
        self.saved = sendmail.get_smtp_server
        sendmail.get_smtp_server = self

    def uninstall(self):
        "Give trytond back its SMTP connections"
        import trytond.sendmail as sendmail
        if self.saved is not None:
            sendmail.get_smtp_server = self.saved
            self.saved = None

    def send_message(self, msg, from_addr=None, to_addrs=None):
        if not to_addrs:
            to_addrs = [a for _, a in getaddresses(msg.get_all('To', []))]
        elif isinstance(to_addrs, str):
            to_addrs = [to_addrs]
        size = len(flatten(msg))
        self.counter.add(to_addrs, size)
        if self.duplicate:
            # Fault injected to prove that the checks catch it
            self.duplicate = False
            self.counter.add(to_addrs, size)
        return {}

    def quit(self):
        pass

    def close(self):
        pass


def free_port():
    "Return a TCP port of the loopback interface that is free now"
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class SinkProcess:
    """The SMTP server of sink.py in a process of its own, counting the
    recipients; it stands for a MessageCounter (total and recipients)"""

    def __init__(self, port, results):
        self.port = port
        self.dump_path = os.path.join(results, 'sink-%s.json' % port)
        self.process = None
        self.uri = 'smtp://127.0.0.1:%s' % port

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__),
                    'sink.py'), str(self.port), self.dump_path],
            stdout=subprocess.PIPE)
        if self.process.stdout.readline().strip() != b'ready':
            raise RuntimeError("the SMTP sink did not start")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        if self.process:
            self.process.stdout.close()
        self.process = None
        if os.path.exists(self.dump_path):
            os.remove(self.dump_path)

    def command(self, verb):
        "Return the text of the sink's reply to verb"
        with smtplib.SMTP('127.0.0.1', self.port) as server:
            code, text = server.docmd(verb)
        if code != 250:
            raise RuntimeError("%s: %s %s" % (verb, code, text))
        return text.decode()

    @property
    def total(self):
        return int(self.command('XSTAT').split()[0])

    @property
    def size(self):
        return int(self.command('XSTAT').split()[1])

    @property
    def recipients(self):
        self.command('XDUMP')
        with open(self.dump_path) as fp:
            return Counter(json.load(fp)['recipients'])

    def pids(self):
        return [self.process.pid] if self.process else []
