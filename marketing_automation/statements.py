# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The statements of the public routes, built once

Each open or click is a request of its own that runs a few one-row
statements: python-sql takes longer to build them than the database to run
them.  A statement is built once per key and parameter style with Param
markers for its values, then run with the values of each request."""
from sql import Flavor, Literal

_statements = {}


class Param(str):
    "The name of a value of a statement run by execute"
    __slots__ = ()


def param(name):
    "Return the SQL expression of the value named name"
    return Literal(Param(name))


def execute(cursor, key, build, **values):
    """Execute the statement that build() returns with the values of its
    params

    key names the statement: build is called the first time only, for
    each parameter style."""
    key = (key, Flavor.get().paramstyle)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = tuple(build())
    query, params = statement
    cursor.execute(query, [
            values[p] if isinstance(p, Param) else p for p in params])
