# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Practical limits measured without the engine

The best the engine could do: rendering and building the messages without
database, committing one-row updates on the same database, and requests
of the pixel and click routes that find nothing to do."""
import datetime as dt

from hits import hit_pixels, load_phase
from mail import flatten
from measure import Stopwatch
from workload import build_message

RENDER_SECRET = 'bench-secret-' * 4


def raw_render(db, n):
    "Render the template and build the message without database"
    count = min(max(n // 10, 500), 3000)
    size = 0
    with Stopwatch() as watch:
        for i in range(count):
            size += len(flatten(build_message(i, db.name, RENDER_SECRET)))
    return watch.phase(
        'raw render + MIME (no database)', count,
        note='%.1f KB per message' % (size / count / 1024))


def raw_commits(db, ids):
    "Commit one-row updates on the database without the engine"
    from trytond import backend
    table = db.table('marketing.automation.record.activity')
    record_activities = [i for i, in db.sql(
            'SELECT id FROM %s WHERE activity = %%s ORDER BY id'
            % table, (ids['root'],))][:2000]
    query = db.paramstyle(
        'UPDATE %s SET write_date = %%s WHERE id = %%s' % table)
    database = backend.Database(db.name).connect()
    connection = database.get_connection()
    with Stopwatch() as watch:
        try:
            for id_ in record_activities:
                cursor = connection.cursor()
                cursor.execute(query, (dt.datetime.now(), id_))
                connection.commit()
        finally:
            database.put_connection(connection)
    return watch.phase('raw one-row update commits', len(record_activities))


def empty_hits(db, n):
    "Hit the pixel route with unknown tokens: a transaction, no event"
    count = min(max(n // 10, 300), 2000)
    paths = unknown_pixel_paths(db, count)
    with Stopwatch() as watch:
        hit_pixels(paths)
    return watch.phase(
        'pixel hits of unknown tokens', count,
        note='one transaction, no event')


def unknown_pixel_paths(db, count):
    "Return count pixel paths of well-formed tokens that name nothing"
    from trytond.modules.marketing_automation import links
    base = links.automation_base()
    return [links.open_url(db.name, links.new_token())[len(base):]
        for _ in range(count)]


def unknown_click_paths(db, count):
    """Return count tracked link paths, genuinely signed, of well-formed
    tokens that name nothing"""
    from hits import read_secret
    from workload import DESTINATION

    from trytond.modules.marketing_automation import links
    base = links.automation_base()
    secret = read_secret(db)
    return [links.click_url(
            db.name, links.new_token(), DESTINATION, secret)[len(base):]
        for _ in range(count)]


# The floor of each hit phase over HTTP: the requests of its route that
# find nothing, measured the same way
SERVER_FLOORS = {
    'pixel hits': ('pixel hits of unknown tokens', 'pixel',
        unknown_pixel_paths),
    'clicks': ('clicks of unknown tokens', 'unknown click',
        unknown_click_paths),
    }


def server_floor(db, server, phase, count, clients):
    """Hit the route of the phase on the server with unknown tokens over
    HTTP: the floor of the phase, measured as it is"""
    name, kind, paths = SERVER_FLOORS[phase]
    return load_phase(
        server, db, name, kind, paths(db, count), clients,
        note='no event')
