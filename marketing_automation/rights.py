# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Check what the domains and conditions of a marketer reach

A domain or a condition may only use the models and fields its author can
read: each step of a dotted path is checked with the rights of the
transaction's user, as trytond checks the domain of a search, and the
credentials that trytond hides on read but lets search are never allowed."""
from itertools import chain

from trytond.const import OPERATORS
from trytond.model import Model
from trytond.pool import Pool
from trytond.pyson import PYSON, Eval, Get
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


# The operators that only some types of field accept
RELATION_OPERATORS = {
    'where', 'not where',
    'child_of', 'not child_of', 'parent_of', 'not parent_of',
    }
RELATION_TYPES = {'many2one', 'one2one', 'one2many', 'many2many'}
LIKE_OPERATORS = {'like', 'not like', 'ilike', 'not ilike'}
NOT_TEXT_TYPES = {
    'boolean', 'integer', 'biginteger', 'float', 'numeric',
    'date', 'datetime', 'timestamp', 'time', 'timedelta', 'binary',
    }


class InvalidDomain(Exception):
    "A domain or a condition is not well built"


class UnknownField(InvalidDomain):
    "A path names a field that does not exist"

    def __init__(self, model, path, name=None):
        super().__init__(model.__name__, path)
        self.model = model
        self.path = path
        # The step of the path that is not a field of the model
        self.name = name or path.split('.', 1)[0]


class InvalidOperator(InvalidDomain):
    "A clause uses an operator that its field does not accept"

    def __init__(self, model, field, operator):
        super().__init__(model.__name__, field, operator)
        self.model = model
        self.field = field
        self.operator = operator

    def names(self):
        "Return the translated names of the model and the field"
        return self.model.__names__(self.field)

    def operators(self):
        "Return the operators the field accepts"
        return field_operators(self.model._fields[self.field])


class InvalidClause(InvalidDomain):
    "A part of a domain is neither a clause nor a list of clauses"

    def __init__(self, clause):
        super().__init__(clause)
        self.clause = clause


class InvalidName(InvalidDomain):
    "A condition reads a name that is neither of self nor of the context"

    def __init__(self, name):
        super().__init__(name)
        self.name = name


class ReadRefused(Exception):
    "The user cannot read the model or the field"

    def __init__(self, model, field=None):
        super().__init__(model.__name__, field)
        self.model = model
        self.field = field

    def names(self):
        "Return the translated names of the model and the field"
        return self.model.__names__(self.field)


def field_operators(field):
    "Return the operators that the field accepts in a clause"
    return [o for o in OPERATORS
        if (o not in RELATION_OPERATORS or field._type in RELATION_TYPES)
        and (o not in LIKE_OPERATORS or field._type not in NOT_TEXT_TYPES)]


def domain_fields(model, domain):
    """Yield the (model, field name) of each step of the paths of the domain

    Raise InvalidDomain for what trytond would not search: the walk goes
    through the whole domain, so the caller must consume it all."""
    if not isinstance(domain, (list, tuple)):
        raise InvalidClause(domain)
    if domain and isinstance(domain[0], str) and domain[0] not in (
            'AND', 'OR'):
        # trytond takes a clause with an unknown operator for a list of
        # clauses and recurses into its strings without end
        yield from _leaf_fields(model, domain, domain[0])
    else:
        start = 1 if domain and domain[0] in ('AND', 'OR') else 0
        for clause in domain[start:]:
            yield from domain_fields(model, clause)


def _leaf_fields(model, clause, path):
    if len(clause) < 3 or not isinstance(clause[1], str):
        raise InvalidClause(clause)
    name, operator = clause[:2]
    local, _, relate = name.partition('.')
    field = model._fields.get(local)
    if field is None:
        raise UnknownField(model, path, local)
    yield model, local
    target = None
    if hasattr(field, 'get_target'):
        target = field.get_target()
        if (not relate and operator.endswith(('child_of', 'parent_of'))
                and len(clause) >= 4):
            relate = clause[3]
            clause = clause[:3] + clause[4:]
            if not isinstance(relate, str):
                raise InvalidClause(clause)
    if field._type == 'reference' and relate:
        try:
            target = Pool().get(clause[3])
        except (IndexError, KeyError, TypeError):
            raise InvalidClause(clause) from None
        clause = clause[:3] + clause[4:]
    if relate and field._type == 'dict':
        # The key of a dictionary field
        target = None
    elif relate:
        if target is None:
            raise UnknownField(model, path, relate.split('.', 1)[0])
        yield from _leaf_fields(
            target, (relate,) + tuple(clause[1:]), path)
        return
    if len(clause) > 3:
        raise InvalidClause(clause)
    if operator not in field_operators(field):
        raise InvalidOperator(model, local, operator)
    if operator.endswith('where'):
        yield from domain_fields(target, clause[2])


def condition_paths(condition):
    "Yield the paths the decoded PYSON condition reads from self"
    if (isinstance(condition, Get) and isinstance(condition._obj, Eval)
            and condition._obj._value == 'self'):
        # Eval('self', {}).get('name'), as conditions are often written
        if not isinstance(condition._key, str):
            raise InvalidName('self')
        yield condition._key
        yield from condition_paths(condition._obj._default)
        yield from condition_paths(condition._default)
    elif isinstance(condition, Eval):
        name = condition._value
        if isinstance(name, str) and name.startswith('self.'):
            yield name[len('self.'):]
        elif not isinstance(name, str) or (
                name != 'context' and not name.startswith('context.')):
            # Eval('state') would always give its default
            raise InvalidName(name)
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
            raise UnknownField(model, path, name)
        yield model, name
        if i < len(names) - 1:
            # Only a single record can be followed, as at run time
            if field._type not in {'many2one', 'one2one'}:
                raise UnknownField(model, path, names[i + 1])
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
    "Raise if the domain is not valid or uses what the user cannot read"
    check_read(model, list(domain_fields(model, domain)))


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
