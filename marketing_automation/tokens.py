# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The unguessable token that names a record in the public URLs."""
from sql import Null

from trytond.model import Unique, fields
from trytond.transaction import Transaction

from . import dialect
from .links import new_token
from .statements import execute, param


class TokenMixin:
    "Give each record a unique random token, found back by from_token"
    __slots__ = ()

    uuid = fields.Char(
        "UUID", readonly=True, strip=False,
        help="The unguessable token of the record in public URLs.")

    @classmethod
    def _token_constraint(cls, message):
        "Return the SQL constraint of unique tokens with the message id"
        t = cls.__table__()
        return ('uuid_unique', Unique(t, t.uuid), message)

    @classmethod
    def __register__(cls, module):
        super().__register__(module)
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        # Rows created before the uuid column need a token
        cursor.execute(*table.update(
                [table.uuid], [dialect.token()], where=table.uuid == Null))

    @classmethod
    def preprocess_values(cls, mode, values):
        values = super().preprocess_values(mode, values)
        if mode == 'create' and not values.get('uuid'):
            values['uuid'] = new_token()
        return values

    @classmethod
    def copy(cls, records, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('uuid', None)
        return super().copy(records, default=default)

    @classmethod
    def from_token(cls, token):
        "Return the instance of the token or None"
        # One indexed query: a public route runs it for every hit
        if not token or not isinstance(token, str):
            return None

        def build():
            table = cls.__table__()
            return table.select(
                table.id, where=table.uuid == param('token'), limit=1)
        cursor = Transaction().connection.cursor()
        execute(cursor, ('from_token', cls.__name__), build, token=token)
        row = cursor.fetchone()
        return cls(row[0]) if row else None
