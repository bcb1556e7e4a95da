# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Check what the domains and conditions of a marketer reach

A domain or a condition may only use the models and fields its author can
read: each step of a dotted path is checked with the rights of the
transaction's user, as trytond checks the domain of a search, and the
credentials that trytond hides on read but lets search are never allowed."""
from itertools import chain

from trytond.model import Model
from trytond.model.modelstorage import is_leaf
from trytond.pool import Pool
from trytond.pyson import PYSON, Eval
from trytond.transaction import Transaction, check_access

# Fields that nobody may read, even if the framework lets search them
SECRET_FIELDS = {
    'res.user': {'password_hash', 'password_reset', 'password'},
    'res.user.application': {'key'},
    'res.user.device': {'cookie'},
    'res.user.login.attempt': {'device_cookie'},
    'ir.session': {'key'},
    'ir.configuration': {'marketing_automation_secret'},
    }


class UnknownField(Exception):
    "A path names a field that does not exist"

    def __init__(self, model, path):
        super().__init__(model.__name__, path)
        self.model = model
        self.path = path


class ReadRefused(Exception):
    "The user cannot read the model or the field"

    def __init__(self, model, field=None):
        super().__init__(model.__name__, field)
        self.model = model
        self.field = field

    def names(self):
        "Return the translated names of the model and the field"
        return self.model.__names__(self.field)


def domain_fields(model, domain):
    "Yield the (model, field name) of each step of the paths of the domain"
    if is_leaf(domain):
        yield from _leaf_fields(model, domain)
    elif isinstance(domain, (list, tuple)) and domain:
        start = 1 if domain[0] in ('AND', 'OR') else 0
        for clause in domain[start:]:
            yield from domain_fields(model, clause)


def _leaf_fields(model, clause):
    name, operator = clause[:2]
    local, _, relate = name.partition('.')
    field = model._fields.get(local)
    if field is None:
        raise UnknownField(model, name)
    yield model, local
    target = None
    if hasattr(field, 'get_target'):
        target = field.get_target()
        if (not relate and operator.endswith(('child_of', 'parent_of'))
                and len(clause) >= 4):
            relate = clause[3]
            clause = clause[:3] + clause[4:]
    if field._type == 'reference' and len(clause) >= 4:
        target = Pool().get(clause[3])
        clause = clause[:3] + clause[4:]
    if relate:
        if target is None:
            raise UnknownField(model, name)
        yield from _leaf_fields(target, (relate,) + tuple(clause[1:]))
    elif operator.endswith('where') and target is not None:
        yield from domain_fields(target, clause[2])


def condition_paths(condition):
    "Yield the paths the decoded PYSON condition reads from self"
    if isinstance(condition, Eval):
        name = condition._value
        if isinstance(name, str) and name.startswith('self.'):
            yield name[len('self.'):]
        yield from condition_paths(condition._default)
    elif isinstance(condition, PYSON):
        yield from condition_paths(condition.pyson())
    elif isinstance(condition, dict):
        for value in condition.values():
            yield from condition_paths(value)
    elif isinstance(condition, (list, tuple)):
        for value in condition:
            yield from condition_paths(value)


def path_fields(model, path):
    "Yield the (model, field name) of each step of a path of a condition"
    names = path.split('.')
    for i, name in enumerate(names):
        name = name[len('_parent_'):] if name.startswith('_parent_') else name
        field = model._fields.get(name)
        if field is None:
            raise UnknownField(model, path)
        yield model, name
        if i < len(names) - 1:
            # Only a single record can be followed, as at run time
            if field._type not in {'many2one', 'one2one'}:
                raise UnknownField(model, path)
            model = field.get_target()


def check_read(model, steps):
    "Raise ReadRefused for the first model or field the user cannot read"
    if not Transaction().user:
        return
    pool = Pool()
    ModelAccess = pool.get('ir.model.access')
    FieldAccess = pool.get('ir.model.field.access')
    with check_access():
        for model, name in chain([(model, None)], steps):
            if not ModelAccess.check(
                    model.__name__, 'read', raise_exception=False):
                raise ReadRefused(model)
            if name is not None and (
                    name in SECRET_FIELDS.get(model.__name__, ())
                    or not FieldAccess.check(
                        model.__name__, [name], 'read',
                        raise_exception=False)):
                raise ReadRefused(model, name)


def check_domain(model, domain):
    "Raise if the user cannot read a model or a field used by the domain"
    check_read(model, domain_fields(model, domain))


def check_condition(model, condition):
    "Raise if the condition reads from self an unknown or unreadable field"
    steps = []
    for path in condition_paths(condition):
        steps.extend(path_fields(model, path))
    check_read(model, steps)


class RecordEnvironment:
    "Map the paths of fields of a record to their values for PYSON"
    # As trytond's EvalEnvironment (a relation gives its id, a reference its
    # string) but read with the rights of the reader, if any, and following
    # dotted paths through Many2One fields
    __slots__ = ('_record', '_reader')

    def __init__(self, record, reader=None):
        self._record = record
        self._reader = reader

    def __bool__(self):
        return True

    def __contains__(self, path):
        # A dotted path is looked up here, not one name at a time by Eval
        name = path.split('.', 1)[0]
        if name.startswith('_parent_'):
            name = name[len('_parent_'):]
        return name in self._record._fields

    def __getitem__(self, path):
        record, reader = self._record, self._reader
        names = path.split('.')
        for i, name in enumerate(names):
            parent = name.startswith('_parent_')
            if parent:
                name = name[len('_parent_'):]
            model = record.__class__
            field = model._fields.get(name)
            if field is None:
                raise KeyError(path)
            if reader is not None:
                reader.check_record(record)
                reader.check_field(model, name)
            value = getattr(record, name)
            if i < len(names) - 1:
                if not isinstance(value, Model):
                    raise KeyError(path)
                record = value
            elif parent:
                return (self.__class__(value, reader)
                    if isinstance(value, Model) else {})
            elif isinstance(value, Model):
                if field._type == 'reference':
                    return str(value)
                return value.id
            elif (isinstance(value, (list, tuple))
                    and value and isinstance(value[0], Model)):
                return [r.id for r in value]
            else:
                return value

    def get(self, path, default=None):
        try:
            return self[path]
        except KeyError:
            return default
