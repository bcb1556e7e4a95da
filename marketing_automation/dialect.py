# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Everything that differs between SQLite and PostgreSQL.

The engine asks these functions instead of testing the backend: the clock
and the random tokens as SQL expressions, ``ON CONFLICT``, ``RETURNING``,
``FOR UPDATE SKIP LOCKED``, savepoints, the page cache of bulk inserts and
the release of the connections of short transactions."""
import datetime as dt
from contextlib import contextmanager

from sql import Cast, Conflict, Expression, Literal, Select
from sql.aggregate import Max
from sql.functions import CurrentTimestamp, DateTrunc, Function, Lower

from trytond import backend
from trytond.transaction import Transaction


class _Hex(Function):
    __slots__ = ()
    _function = 'HEX'


class _RandomBlob(Function):
    __slots__ = ()
    _function = 'RANDOMBLOB'


class _Replace(Function):
    __slots__ = ()
    _function = 'REPLACE'


class _GenRandomUUID(Function):
    __slots__ = ()
    _function = 'GEN_RANDOM_UUID'


class _Date(Function):
    __slots__ = ()
    _function = 'DATE'


class _Unnest(Function):
    __slots__ = ()
    _function = 'UNNEST'


class _SetConfig(Function):
    __slots__ = ()
    _function = 'SET_CONFIG'


def is_sqlite():
    "Tell if the database backend is SQLite"
    return backend.name == 'sqlite'


def now():
    "Return an SQL expression of the timestamp of the transaction"
    # trytond computes CURRENT_TIMESTAMP on SQLite with a Python function
    # called for each row: a quarter of the time of a bulk insert
    if is_sqlite():
        try:
            from trytond.backend.sqlite.database import now as sqlite_now
        except ImportError:
            pass
        else:
            return Literal(sqlite_now())
    return CurrentTimestamp()


def period_start(column, period):
    "Return an SQL expression of the start of the period of column as a date"
    # trytond's DATE_TRUNC of SQLite is a Python function called for each
    # row: ten times slower than a reporting query without it
    if is_sqlite():
        if period == 'day':
            return _Date(column)
        return _Date(column, 'start of ' + period)
    return Cast(DateTrunc(period, column), 'DATE')


def schedule_time():
    "Return now as stored by a DateTime field, so it is due at once"
    # PostgreSQL rounds the microseconds of timestamp(0) up or down
    return dt.datetime.now().replace(microsecond=0)


def token():
    "Return an SQL expression of a fresh 128-bit random token in hexadecimal"
    if is_sqlite():
        return Lower(_Hex(_RandomBlob(16)))
    return _Replace(Cast(_GenRandomUUID(), 'VARCHAR'), '-', '')


def insert_on_conflict_nothing(table):
    "Return the on_conflict of an INSERT that skips duplicates, if any"
    if Transaction().database.has_insert_on_conflict():
        return Conflict(table)


class _Array(list):
    "The values of a column of bulk_rows, sent as a binary array"
    __slots__ = ()


def _dump_arrays_binary(connection):
    """Send the _Array parameters of the connection in binary: psycopg
    quotes each element of a text array in Python, tens of milliseconds
    for the bodies of the archive of a batch of e-mails"""
    from psycopg.adapt import PyFormat
    from psycopg.types.array import ListBinaryDumper
    adapters = connection.adapters
    if adapters.get_dumper(_Array, PyFormat.AUTO) is not ListBinaryDumper:
        adapters.register_dumper(_Array, ListBinaryDumper)


def bulk_rows(rows, types):
    """Return the rows of an INSERT as the statement takes them

    types gives the SQL type of each column; a column whose value is an SQL
    expression must have the same in every row.  On PostgreSQL the rows
    become a SELECT of one array per column that changes from row to row,
    unnested: psycopg parses the text of a statement of thousands of
    parameters in Python, which costs more than PostgreSQL inserting the
    rows.  Elsewhere they are the rows themselves."""
    if is_sqlite() or len(rows) < 2:
        return rows
    _dump_arrays_binary(Transaction().connection)
    values = [_Array(r[i] for r in rows) for i in range(len(types))]
    varying = [not isinstance(v[0], Expression)
        and any(x != v[0] for x in v) for v in values]
    if not any(varying):
        # The same row many times: one array gives their number
        varying[next(i for i, v in enumerate(values)
                if not isinstance(v[0], Expression))] = True
    columns = []
    for column, type_, varies in zip(values, types, varying):
        if varies:
            columns.append(_Unnest(Cast(column, type_ + '[]')))
        elif isinstance(column[0], Expression):
            columns.append(column[0])
        else:
            # Typed: a parameter of NULL would be text
            columns.append(Cast(Literal(column[0]), type_))
    return Select(columns)


def interval_arithmetic_supported():
    "Tell if SQL adds an interval to a timestamp column"
    # trytond stores the timestamps of SQLite as text
    return not is_sqlite()


def asynchronous_commit():
    """Return the SQL expression that lets the transaction commit without
    waiting for its WAL to be flushed, or None where it does not apply

    Select it in a statement of the transaction (PostgreSQL's
    synchronous_commit set locally): a crash of the database server may
    lose the last fraction of a second of such commits, never part of
    one."""
    if is_sqlite():
        return None
    return _SetConfig(
        Literal('synchronous_commit'), Literal('off'), Literal(True))


def returning_supported():
    "Tell if the database gives back rows with RETURNING"
    return Transaction().database.has_returning()


def insert_returning(cursor, table, columns, values, key):
    "Insert the values and return the (key, id) pairs of the new rows"
    if returning_supported():
        cursor.execute(*table.insert(
                columns, values, returning=[key, table.id]))
        return list(cursor)
    # Writers are serialized (SQLite): the new rows are those after the
    # last id
    cursor.execute(*table.select(Max(table.id)))
    last_id, = cursor.fetchone()
    cursor.execute(*table.insert(columns, values))
    cursor.execute(*table.select(
            key, table.id, where=(table.id > (last_id or 0))))
    return list(cursor)


def skip_locked_supported():
    "Tell if SELECT can lock rows and skip those locked by others"
    return Transaction().database.has_select_for()


def lock_skip_locked(query, table):
    "Return the query locking the rows of table it reads, skipping locked"
    database = Transaction().database
    if database.has_select_for():
        For = database.get_select_for_skip_locked()
        query.for_ = For('UPDATE', of=[table])
    return query


@contextmanager
def savepoint(cursor, name):
    "Roll back the work of the block when it raises an exception"
    # A savepoint keeps the transaction usable on PostgreSQL after an error
    if not name.isidentifier():
        raise ValueError("Invalid savepoint name: %r" % name)
    cursor.execute('SAVEPOINT %s' % name)
    try:
        yield
    except Exception:
        cursor.execute('ROLLBACK TO SAVEPOINT %s' % name)
        raise
    else:
        cursor.execute('RELEASE SAVEPOINT %s' % name)


@contextmanager
def bulk_cache(cursor):
    "Give the SQLite connection a larger page cache inside the block"
    if not is_sqlite():
        yield
        return
    # The token indexes of bulk inserts have random keys that thrash the
    # default cache of 2 MB
    cursor.execute('PRAGMA cache_size')
    size, = cursor.fetchone()
    cursor.execute('PRAGMA cache_size = -65536')
    try:
        yield
    finally:
        # trytond leaves the connection to the garbage collector, which may
        # keep it, and its cache, for long
        cursor.execute('PRAGMA cache_size = %d' % int(size))


# trytond opens a connection for each transaction and, on SQLite, leaves it
# to the garbage collector when the transaction ends. With one transaction
# per open, click or batch of activities, the connections freed late
# fragment the memory of the process, which then grows with the traffic.
# Closing the last connection to a database checkpoints its WAL: one
# connection per database stays open, idle, so that closing the others does
# not
_idle = {}


def close_at_end(transaction):
    "Close the SQLite connection of the transaction when it ends"
    database = transaction.database
    if not is_sqlite() or database.name == ':memory:':
        return
    if database.name not in _idle:
        _idle[database.name] = database
    else:
        transaction.atexit(database.close)
