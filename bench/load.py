# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The recipients over real HTTP: many concurrent clients in a process

Run as a process of its own, so that the clients share no interpreter lock
with the benchmark: it reads the requests to make as JSON on its standard
input and writes what it measured as JSON on its standard output.  Each
request is an HTTP/1.1 request on a new TCP connection (as the mail clients
of different recipients make them), made by one of C clients running at
once on asyncio streams: a cheap client, as it shares the cores with the
server.

The input: host, port, virtual_host, method, paths, concurrency, status
(expected), content_type (expected prefix or null), location (expected or
null) and body (of a POST or null).  The output: seconds (from the first
request to the last answer), cpu_seconds (of this process), statuses (the
count of each status), unexpected (the first unexpected answers)."""
import asyncio
import json
import sys
import time
from collections import Counter

# The first unexpected answers kept for the report
KEEP = 10


def request_bytes(spec, path):
    "Return the bytes of the request of path"
    lines = ['%s %s HTTP/1.1' % (spec['method'], path),
        'Host: %s' % spec['virtual_host'],
        'User-Agent: bench-load',
        'Connection: close']
    body = (spec.get('body') or '').encode()
    if spec['method'] == 'POST':
        lines.append('Content-Type: application/x-www-form-urlencoded')
        lines.append('Content-Length: %s' % len(body))
    return ('\r\n'.join(lines) + '\r\n\r\n').encode() + body


def parse_head(data):
    "Return the status and the headers (lowercase names) of a response"
    head, _, _ = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    parts = lines[0].split(' ', 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    return status, headers


def problem(spec, status, headers):
    "Return what is wrong with the answer or None"
    if status != spec['status']:
        return 'status %s' % status
    content_type = spec.get('content_type')
    if content_type and not headers.get('content-type', '').startswith(
            content_type):
        return 'content type %s' % headers.get('content-type')
    location = spec.get('location')
    if location and headers.get('location') != location:
        return 'location %s' % headers.get('location')
    return None


async def fetch(spec, path):
    "Make the request of path and return its status and headers"
    reader, writer = await asyncio.open_connection(
        spec['host'], spec['port'])
    try:
        writer.write(request_bytes(spec, path))
        # The server closes the connection after the answer
        data = await reader.read()
    finally:
        writer.close()
    return parse_head(data)


async def client(spec, paths, statuses, unexpected):
    "Request the paths one after the other until none is left"
    while paths:
        path = paths.pop()
        try:
            status, headers = await fetch(spec, path)
        except OSError as exception:
            status, headers = 0, {'error': str(exception)}
        statuses[status] += 1
        wrong = problem(spec, status, headers)
        if wrong:
            statuses['unexpected'] += 1
            if len(unexpected) < KEEP:
                unexpected.append(
                    '%s %s: %s' % (spec['method'], path, wrong))


async def drive(spec):
    paths = list(reversed(spec['paths']))
    statuses = Counter()
    unexpected = []
    await asyncio.gather(*(client(spec, paths, statuses, unexpected)
            for _ in range(min(spec['concurrency'], len(paths) or 1))))
    return statuses, unexpected


def main():
    spec = json.load(sys.stdin)
    start_cpu = time.process_time()
    start = time.perf_counter()
    statuses, unexpected = asyncio.run(drive(spec))
    seconds = time.perf_counter() - start
    json.dump({
            'seconds': seconds,
            'cpu_seconds': time.process_time() - start_cpu,
            'statuses': {str(k): v for k, v in statuses.items()},
            'unexpected': unexpected,
            }, sys.stdout)


if __name__ == '__main__':
    main()
