# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Read records in templates with the rights of the transaction's user

As trytond's ModelAccessProxy, but the rights are checked once per batch of
e-mails: the model and its record rules for all the records at once (one
query instead of one per record), each field once, and the values read are
kept for the other expressions of the same message."""
from trytond.model import Model
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.transaction import (
    Transaction, check_access, inactive_records, without_check_access)

from .sandbox import RecordProxy, TemplateError


class RecordReader:
    "Give proxies of records checked with the rights of the current user"

    def __init__(self):
        self._allowed = {}
        self._refused = {}
        self._fields = {}
        self._classes = {}

    def prefetch(self, model, ids):
        "Check at once the rights to read the records ids of model"
        pool = Pool()
        ModelAccess = pool.get('ir.model.access')
        Rule = pool.get('ir.rule')
        transaction = Transaction()
        allowed = self._allowed.setdefault(model.__name__, {})
        ids = [i for i in ids if i not in allowed]
        if not ids:
            return
        with check_access():
            try:
                ModelAccess.check(model.__name__)
            except AccessError as exception:
                # Raised for each record, as its e-mail is rendered
                self._refused[model.__name__] = exception
                allowed.update(dict.fromkeys(ids, False))
                return
            domain = Rule.domain_get(model.__name__, mode='read')
        if not domain:
            allowed.update(dict.fromkeys(ids, True))
            return
        with transaction.set_user(0, set_context=True), inactive_records(), \
                without_check_access():
            found = set(map(int, model.search(
                        [('id', 'in', ids), domain], order=[])))
        allowed.update({i: i in found for i in ids})

    def check_record(self, record):
        "Raise AccessError if the user cannot read the record"
        model = record.__class__
        allowed = self._allowed.get(model.__name__, {})
        if record.id not in allowed:
            self.prefetch(model, [record.id])
            allowed = self._allowed[model.__name__]
        if not allowed[record.id]:
            if model.__name__ in self._refused:
                raise self._refused[model.__name__]
            # The error of the framework, with the rules that refuse it
            Rule = Pool().get('ir.rule')
            with check_access():
                Rule.check(model.__name__, [record.id])

    def check_field(self, model, name):
        "Raise AccessError if the user cannot read the field of model"
        checked = self._fields.setdefault(model.__name__, set())
        if name not in checked:
            FieldAccess = Pool().get('ir.model.field.access')
            with check_access():
                FieldAccess.check(model.__name__, [name])
            checked.add(name)

    def proxy(self, record):
        "Return the proxy of the record, which must be readable"
        self.check_record(record)
        model = record.__class__
        if model not in self._classes:
            self._classes[model] = _proxy_class(model)
        return self._classes[model](record, self)

    def wrap(self, value):
        if isinstance(value, Model):
            return self.proxy(value)
        elif isinstance(value, (list, tuple)):
            return [self.proxy(v) if isinstance(v, Model) else v
                for v in value]
        return value


def _proxy_class(model):

    class Proxy(RecordProxy):
        "A record of the model as templates see it: its readable fields"
        __slots__ = ('id', '_record', '_reader', '_values')
        # As ModelAccessProxy, the proxy passes for an instance of the model
        __class__ = model

        def __init__(self, record, reader):
            self.id = record.id
            self._record = record
            self._reader = reader
            self._values = {}

        def template_field(self, name):
            values = self._values
            if name in values:
                return values[name]
            if name == 'id':
                return self.id
            if name not in model._fields:
                raise TemplateError(
                    f"{model.__name__} has no field {name!r}")
            try:
                self._reader.check_field(model, name)
            except AccessError as exception:
                raise TemplateError(exception.message) from exception
            value = values[name] = self._reader.wrap(
                getattr(self._record, name))
            return value

        def template_record(self):
            return self._record

        def __getattr__(self, name):
            # Python and the helpers probe attributes (__html__, digits of a
            # currency...): they get fields only
            if name.startswith('_') or name not in model._fields:
                raise AttributeError(name)
            return self.template_field(name)

        def __int__(self):
            return int(self.id)

        def __str__(self):
            return f'{model.__name__},{self.id}'

    return Proxy
