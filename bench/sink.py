#!/usr/bin/env python3
# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""A minimal SMTP server counting the recipients of the messages it accepts

It runs in a process of its own (``python sink.py PORT DUMP``), so that
its CPU time is measured apart from the benchmark's and from the trytond
processes sending the e-mails: the module must not be charged for the
cost of the server receiving them.  It answers every command at once and
advertises PIPELINING as real servers do; it keeps nothing of the
messages but their count per recipient.  Two commands of its own serve
the benchmark: XSTAT answers the number and size of the messages
accepted, XDUMP writes the count per recipient as JSON to DUMP."""
import asyncio
import json
import signal
import sys
from collections import Counter

MAX_LINE = 4096


class Counts:

    def __init__(self, dump_path):
        self.dump_path = dump_path
        self.recipients = Counter()
        self.total = 0
        self.size = 0

    def add(self, recipients, size):
        self.total += 1
        self.size += size
        for recipient in recipients:
            self.recipients[recipient.lower()] += 1

    def dump(self):
        with open(self.dump_path, 'w') as fp:
            json.dump({
                    'total': self.total,
                    'size': self.size,
                    'recipients': self.recipients,
                    }, fp)


def _address(argument):
    "Return the address of a MAIL FROM:<a> or RCPT TO:<a> argument"
    _, _, value = argument.partition(b':')
    value = value.strip().split(b' ', 1)[0]
    if value.startswith(b'<') and value.endswith(b'>'):
        value = value[1:-1]
    return value.decode('utf-8', 'replace')


class SMTPProtocol(asyncio.Protocol):
    "One SMTP session: commands line by line, then the data of a message"

    def __init__(self, counts):
        self.counts = counts
        self.buffer = b''
        self.in_data = False
        self.sender = None
        self.recipients = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b'220 bench-sink ESMTP\r\n')

    def data_received(self, data):
        self.buffer += data
        replies = []
        while True:
            if self.in_data:
                if self.buffer.startswith(b'.\r\n'):
                    end, size = -2, 0
                else:
                    end = self.buffer.find(b'\r\n.\r\n')
                    if end < 0:
                        break
                    size = end + 2
                self.buffer = self.buffer[end + 5:]
                self.counts.add(self.recipients, size)
                self.in_data = False
                self.sender, self.recipients = None, []
                replies.append(b'250 OK queued')
                continue
            line, found, rest = self.buffer.partition(b'\r\n')
            if not found:
                if len(self.buffer) > MAX_LINE:
                    replies.append(b'500 line too long')
                    self.buffer = b''
                break
            self.buffer = rest
            reply = self.command(line)
            if reply is None:
                if replies:
                    self.transport.write(b'\r\n'.join(replies) + b'\r\n')
                self.transport.write(b'221 Bye\r\n')
                self.transport.close()
                return
            replies.append(reply)
        if replies:
            self.transport.write(b'\r\n'.join(replies) + b'\r\n')

    def command(self, line):
        "Return the reply to the command line, None to close"
        verb, _, argument = line.partition(b' ')
        verb = verb.upper()
        if verb == b'EHLO':
            return (b'250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n'
                b'250-SMTPUTF8\r\n250 SIZE 33554432')
        elif verb == b'HELO':
            return b'250 bench-sink'
        elif verb == b'MAIL':
            self.sender = _address(argument)
            self.recipients = []
            return b'250 OK'
        elif verb == b'RCPT':
            if self.sender is None:
                return b'503 MAIL first'
            self.recipients.append(_address(argument))
            return b'250 OK'
        elif verb == b'DATA':
            if not self.recipients:
                return b'503 RCPT first'
            self.in_data = True
            return b'354 End data with <CR><LF>.<CR><LF>'
        elif verb == b'RSET':
            self.sender, self.recipients = None, []
            return b'250 OK'
        elif verb == b'NOOP':
            return b'250 OK'
        elif verb == b'QUIT':
            return None
        elif verb == b'XSTAT':
            return b'250 %d %d' % (self.counts.total, self.counts.size)
        elif verb == b'XDUMP':
            self.counts.dump()
            return b'250 dumped'
        return b'500 unknown command'


async def serve(port, dump_path):
    loop = asyncio.get_running_loop()
    counts = Counts(dump_path)
    server = await loop.create_server(
        lambda: SMTPProtocol(counts), '127.0.0.1', port)
    stop = loop.create_future()
    for signum in [signal.SIGTERM, signal.SIGINT]:
        loop.add_signal_handler(signum, stop.set_result, None)
    async with server:
        # Ready: the benchmark waits for this line
        print('ready', flush=True)
        await stop


def main():
    port, dump_path = int(sys.argv[1]), sys.argv[2]
    asyncio.run(serve(port, dump_path))


if __name__ == '__main__':
    main()
