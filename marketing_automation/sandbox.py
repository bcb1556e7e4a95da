# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""What the expressions of a marketer's template can reach, and for how long

Templates are written by marketing users, not administrators, so their
expressions are evaluated through an allow-list:

- names: the values of the render context and a few harmless builtins;
- attributes and items: the fields of record proxies (read with the
  author's rights by ``access.RecordReader``), the keys of dictionaries and
  the listed attributes and methods of plain values (text, numbers, dates,
  lists); never a module, a class, a function's internals or an ORM method;
- operators and loops: guarded so that one expression cannot build a huge
  value or loop for ever.

Each rendering runs under a ``Budget``: a deadline, a number of iterations
(loops, comprehensions, macro calls) and an output size.  Going over any of
them raises ``TemplateError``, which fails the e-mail of one record, never
the batch.
"""
import ast
import contextvars
import datetime as dt
import operator
import re
import time
from decimal import Decimal

from genshi.core import Markup
from genshi.template.base import Context
from genshi.template.eval import (
    UNDEFINED, Code, LookupBase, UndefinedError, _compile)

import trytond.config as config
# The sandbox of trytond (private names, imports) is applied first
from trytond._safe_genshi import (
    SafeExpressionASTTransformer, SafeTemplateASTTransformer)
from trytond.report import Report

__all__ = [
    'TemplateError', 'Budget', 'new_budget', 'SandboxLookup',
    'SandboxContext', 'DateTimeTypes', 'RecordProxy', 'helpers']

DEFAULT_TIMEOUT = 2  # seconds
DEFAULT_ITERATIONS = 100_000
DEFAULT_SIZE = 1_000_000  # characters
# The largest integer an operator may produce, in bits
MAX_INT_BITS = 100_000
# The width or precision of a format specification
MAX_FORMAT_WIDTH = 1000
MAX_DIGITS = 30


class TemplateError(Exception):
    "A template that cannot be compiled or rendered"


class RecordProxy:
    "The base of the read-only proxies of records given to templates"
    __slots__ = ()

    def template_field(self, name):
        "Return the value of the field name or raise TemplateError"
        raise NotImplementedError

    def template_record(self):
        "Return the real record, for the helpers only"
        raise NotImplementedError


class Budget:
    "The time, iterations and output size left to one rendering"
    __slots__ = ('deadline', 'iterations', 'size', 'timeout')

    def __init__(self, timeout=DEFAULT_TIMEOUT, iterations=DEFAULT_ITERATIONS,
            size=DEFAULT_SIZE):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.iterations = iterations
        self.size = size

    def step(self, count=1):
        "Count iterations and check the deadline"
        self.iterations -= count
        if self.iterations < 0:
            raise TemplateError("the template runs too many iterations")
        self.check_deadline()

    def output(self, length):
        "Count characters of output and check the deadline"
        self.size -= length
        if self.size < 0:
            raise TemplateError("the template output is too large")
        self.check_deadline()

    def check_deadline(self):
        "Raise TemplateError once the time of the rendering is over"
        if time.monotonic() > self.deadline:
            raise TemplateError(
                f"the template takes more than {self.timeout} seconds")

    def check_length(self, value):
        "Raise TemplateError if the value is longer than the output allowed"
        if isinstance(value, (str, bytes, list, tuple)):
            if len(value) > max(self.size, 0):
                raise TemplateError("the template builds a too large value")
        elif isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > MAX_INT_BITS:
                raise TemplateError("the template builds a too large number")
        return value


_budget = contextvars.ContextVar('marketing_automation_budget', default=None)


def new_budget():
    "Return the budget of one message, as configured"
    return Budget(
        timeout=config.getfloat(
            'marketing', 'automation_render_timeout',
            default=DEFAULT_TIMEOUT),
        iterations=config.getint(
            'marketing', 'automation_render_iterations',
            default=DEFAULT_ITERATIONS),
        size=config.getint(
            'marketing', 'automation_render_size', default=DEFAULT_SIZE))


def current_budget():
    "Return the budget of the rendering, or the default one outside"
    budget = _budget.get()
    if budget is None:
        # The constant expressions evaluated at compilation
        budget = Budget(timeout=float('inf'))
    return budget


def use_budget(budget):
    "Make budget the budget of the rendering in this context"
    return _budget.set(budget)


def reset_budget(token):
    _budget.reset(token)


# Operators and iterations


def _is_sequence(value):
    return isinstance(value, (str, bytes, list, tuple))


def _int_bits(value):
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value.bit_length()


_FORMAT_NUMBERS = re.compile(r'%[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?')


def _check_format_text(text):
    for width, precision in _FORMAT_NUMBERS.findall(text):
        for number in (width, precision):
            # A star takes the width from the arguments
            if number == '*' or (number and int(number) > MAX_FORMAT_WIDTH):
                raise TemplateError("the format width is too large")


def _pow(left, right):
    if isinstance(right, (int, float, Decimal)) and not isinstance(
            left, bool):
        bits = max(_int_bits(left), 1)
        if isinstance(left, Decimal):
            bits = max(abs(left.adjusted()), 1) * 4
        if abs(left) > 1 and abs(right) * bits > MAX_INT_BITS:
            raise TemplateError("the template builds a too large number")
    return left ** right


def _mul(left, right):
    budget = current_budget()
    for sequence, count in [(left, right), (right, left)]:
        if _is_sequence(sequence) and isinstance(count, int):
            if len(sequence) * max(count, 0) > max(budget.size, 0):
                raise TemplateError("the template builds a too large value")
    if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
        raise TemplateError("the template builds a too large number")
    return left * right


def _lshift(left, right):
    if isinstance(right, int) and right + _int_bits(left) > MAX_INT_BITS:
        raise TemplateError("the template builds a too large number")
    return left << right


def _add(left, right):
    if _is_sequence(left) and _is_sequence(right):
        if len(left) + len(right) > max(current_budget().size, 0):
            raise TemplateError("the template builds a too large value")
    return left + right


def _mod(left, right):
    if isinstance(left, (str, bytes)):
        _check_format_text(
            left if isinstance(left, str) else left.decode('latin-1'))
        return current_budget().check_length(left % right)
    return left % right


_GUARDED_OPERATORS = {
    ast.Pow: _pow,
    ast.Mult: _mul,
    ast.LShift: _lshift,
    ast.Add: _add,
    ast.Mod: _mod,
    }
_GUARDS = {f.__name__: f for f in _GUARDED_OPERATORS.values()}
_BINARY = {
    ast.Sub: operator.sub, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.RShift: operator.rshift,
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    }


def guard_binop(name, left, right):
    "Apply the guarded binary operator name"
    return _GUARDS[name](left, right)


def guard_iter(iterable):
    "Iterate, counting each item against the budget"
    budget = current_budget()
    for item in iterable:
        budget.step()
        yield item


def _bounded_range(*args):
    values = range(*args)
    if len(values) > DEFAULT_ITERATIONS:
        raise TemplateError(
            f"range of {len(values)} items is too large for a template")
    return values


def _checked_sum(iterable, start=0):
    # Adding lists or tuples copies them again at each item
    if not isinstance(start, (int, float, Decimal)):
        raise TemplateError("sum only adds numbers in templates")
    return sum(iterable, start)


def _checked_round(number, ndigits=None):
    if ndigits is not None and (
            not isinstance(ndigits, int) or abs(ndigits) > MAX_DIGITS):
        raise TemplateError(f"ndigits must be between -{MAX_DIGITS} and "
            f"{MAX_DIGITS}")
    return round(number, ndigits)


def _iter(iterable):
    # Genshi evaluates each py:for as iter(...); the form with a sentinel
    # would call a function for ever
    return iter(iterable)


def _checked_int(value=0, *args):
    if isinstance(value, Decimal) and value.is_finite():
        if value.adjusted() > MAX_INT_BITS // 4:
            raise TemplateError("the template builds a too large number")
    return int(value, *args)


_ALLOWED_BUILTINS = {
    'abs': abs, 'all': all, 'any': any, 'bool': bool, 'chr': chr,
    'dict': dict, 'divmod': divmod, 'enumerate': enumerate,
    'filter': filter, 'float': float, 'int': _checked_int, 'iter': _iter,
    'len': len,
    'list': list, 'map': map, 'max': max, 'min': min, 'next': next,
    'ord': ord, 'range': _bounded_range, 'reversed': reversed,
    'round': _checked_round, 'set': set, 'sorted': sorted, 'str': str,
    'sum': _checked_sum, 'tuple': tuple, 'zip': zip, 'Markup': Markup,
    }


# Constant expressions are evaluated at compilation, so that what is too
# large is refused when the template is saved

def _constant(node):
    "Return the value of a constant arithmetic node or UNDEFINED"
    if isinstance(node, ast.Constant) and isinstance(
            node.value, (int, float, str)):
        return node.value
    elif isinstance(node, ast.UnaryOp) and isinstance(
            node.op, (ast.USub, ast.UAdd)):
        value = _constant(node.operand)
        if value is UNDEFINED or isinstance(value, str):
            return UNDEFINED
        return -value if isinstance(node.op, ast.USub) else value
    elif isinstance(node, ast.BinOp):
        left, right = _constant(node.left), _constant(node.right)
        if left is UNDEFINED or right is UNDEFINED:
            return UNDEFINED
        function = (_GUARDED_OPERATORS.get(type(node.op))
            or _BINARY.get(type(node.op)))
        if function is None:
            return UNDEFINED
        try:
            return function(left, right)
        except TemplateError as exception:
            raise ValueError(str(exception)) from exception
        except Exception:
            return UNDEFINED
    return UNDEFINED


def _call(name, *args):
    return ast.Call(
        func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


class _SandboxTransformer:
    """Guard operators and comprehensions; refuse lambdas

    Genshi's code generator is itself an allow-list of node types: sets,
    f-strings, dict and set comprehensions and assignment expressions
    cannot be compiled."""

    def visit_Lambda(self, node):
        raise ValueError("lambda is not allowed")

    def visit_BinOp(self, node):
        _constant(node)
        node = super().visit_BinOp(node)
        guard = _GUARDED_OPERATORS.get(type(node.op))
        if guard is None:
            return node
        return ast.copy_location(_call(
                '_guard_binop', ast.Constant(guard.__name__),
                node.left, node.right), node)

    def visit_Call(self, node):
        if (isinstance(node.func, ast.Name) and node.func.id == 'range'
                and not node.keywords):
            args = [_constant(a) for a in node.args]
            if args and all(isinstance(a, int) for a in args):
                try:
                    _bounded_range(*args)
                except TemplateError as exception:
                    raise ValueError(str(exception)) from exception
                except ValueError:
                    pass
        return super().visit_Call(node)

    def _guard_generators(self, node):
        for generator in node.generators:
            generator.iter = ast.copy_location(
                _call('_guard_iter', generator.iter), generator.iter)
        return node

    def visit_GeneratorExp(self, node):
        return self._guard_generators(super().visit_GeneratorExp(node))

    def visit_ListComp(self, node):
        return self._guard_generators(super().visit_ListComp(node))


class _ExpressionTransformer(
        _SandboxTransformer, SafeExpressionASTTransformer):
    pass


class _SuiteTransformer(_SandboxTransformer, SafeTemplateASTTransformer):
    pass


def _install():
    "Compile the code of sandboxed templates with the guards"
    # Genshi chooses the AST transformer in Code.__init__ only (trytond
    # replaces it there with its own); the lookup class is the one thing a
    # template passes on to its expressions, so it selects the guards
    if getattr(Code.__init__, 'marketing_automation_sandbox', False):
        return
    previous = Code.__init__

    def __init__(self, source, filename=None, lineno=-1, lookup='strict',
            xform=None):
        previous(self, source, filename=filename, lineno=lineno,
            lookup=lookup, xform=xform)
        if lookup is SandboxLookup:
            transformer = (_ExpressionTransformer if self.mode == 'eval'
                else _SuiteTransformer)
            self.code = _compile(
                self.ast, self.source, mode=self.mode, filename=filename,
                lineno=lineno, xform=transformer)
    __init__.marketing_automation_sandbox = True
    Code.__init__ = __init__


# Attributes

class DateTimeTypes:
    "The date and time types offered to templates as ``datetime``"
    __slots__ = ()
    date = dt.date
    datetime = dt.datetime
    time = dt.time
    timedelta = dt.timedelta

    def __repr__(self):
        return 'datetime'


def _limited(method, check_arguments=None):
    "Return a wrapper of the method of value checking its result size"
    def wrapper(value):
        bound = getattr(value, method)

        def call(*args, **kwargs):
            if check_arguments:
                check_arguments(value, *args, **kwargs)
            return current_budget().check_length(bound(*args, **kwargs))
        return call
    return wrapper


def _check_width(value, width=0, *args):
    if isinstance(width, int) and width > current_budget().size:
        raise TemplateError("the template builds a too large value")


def _check_replace(value, old='', new='', count=-1):
    if isinstance(old, str) and isinstance(new, str):
        if old:
            size = len(value) + value.count(old) * (len(new) - len(old))
        else:
            size = (len(value) + 1) * len(new) + len(value)
        if size > current_budget().size:
            raise TemplateError("the template builds a too large value")


def _check_join(separator, iterable=()):
    items = list(iterable) if not isinstance(
        iterable, (list, tuple)) else iterable
    size = sum(len(i) for i in items if isinstance(i, str))
    size += len(separator) * len(items)
    if size > current_budget().size:
        raise TemplateError("the template builds a too large value")


def _join(value):
    def join(iterable):
        items = list(iterable)
        _check_join(value, items)
        return value.join(items)
    return join


def _check_strftime(value, format=''):
    if isinstance(format, str):
        if len(format) > MAX_FORMAT_WIDTH:
            raise TemplateError("the format is too long")


_TEXT_METHODS = {
    name: None for name in [
        'capitalize', 'casefold', 'count', 'endswith', 'find', 'index',
        'isalnum', 'isalpha', 'isdigit', 'islower', 'isnumeric', 'isspace',
        'istitle', 'isupper', 'lower', 'lstrip', 'partition', 'rfind',
        'rindex', 'rpartition', 'rsplit', 'rstrip', 'split', 'splitlines',
        'startswith', 'strip', 'swapcase', 'title', 'upper',
        'removeprefix', 'removesuffix']}
_TEXT_METHODS.update({
        'replace': _limited('replace', _check_replace),
        'center': _limited('center', _check_width),
        'ljust': _limited('ljust', _check_width),
        'rjust': _limited('rjust', _check_width),
        'zfill': _limited('zfill', _check_width),
        'join': _join,
        })
_DATE_ATTRIBUTES = {
    name: None for name in [
        'year', 'month', 'day', 'weekday', 'isoweekday', 'isoformat',
        'isocalendar', 'toordinal', 'replace', 'ctime']}
_DATE_ATTRIBUTES['strftime'] = _limited('strftime', _check_strftime)
_TIME_ATTRIBUTES = {
    name: None for name in [
        'hour', 'minute', 'second', 'microsecond', 'isoformat', 'replace']}
_TIME_ATTRIBUTES['strftime'] = _limited('strftime', _check_strftime)
_NUMBER_ATTRIBUTES = {name: None for name in ['real', 'imag', 'is_integer']}

# The attributes allowed on values of each type: None to read the attribute,
# or a function of the value returning what the template gets
_ATTRIBUTES = {
    str: _TEXT_METHODS,
    Markup: {
        **_TEXT_METHODS,
        'striptags': None, 'stripentities': None, 'unescape': None},
    int: _NUMBER_ATTRIBUTES,
    float: _NUMBER_ATTRIBUTES,
    bool: {},
    Decimal: {
        name: None for name in [
            'is_signed', 'is_zero', 'as_integer_ratio', 'normalize',
            'quantize', 'to_integral_value', 'adjusted']},
    dt.date: _DATE_ATTRIBUTES,
    dt.datetime: {
        **_DATE_ATTRIBUTES, **_TIME_ATTRIBUTES,
        'date': None, 'time': None, 'timestamp': None},
    dt.time: _TIME_ATTRIBUTES,
    dt.timedelta: {
        name: None for name in [
            'days', 'seconds', 'microseconds', 'total_seconds']},
    list: {name: None for name in ['count', 'index']},
    tuple: {name: None for name in ['count', 'index']},
    dict: {name: None for name in ['get', 'keys', 'values', 'items']},
    DateTimeTypes: {
        name: None for name in ['date', 'datetime', 'time', 'timedelta']},
    }
# The class attributes allowed on the types templates can reach
_TYPE_ATTRIBUTES = {
    dt.date: {
        name: None for name in [
            'today', 'fromisoformat', 'fromordinal', 'min', 'max']},
    dt.datetime: {
        name: None for name in [
            'now', 'today', 'fromisoformat', 'combine', 'min', 'max']},
    dt.time: {name: None for name in ['fromisoformat', 'min', 'max']},
    dt.timedelta: {name: None for name in ['min', 'max', 'resolution']},
    }


def _refused(obj, key):
    return TemplateError(
        f"templates cannot read {key!r} of {type(obj).__name__!s} values")


class SandboxLookup(LookupBase):
    "The allow-list lookup of the names, attributes and items of templates"

    @classmethod
    def globals(cls, data):
        return {
            '__data__': data,
            '_lookup_name': cls.lookup_name,
            '_lookup_attr': cls.lookup_attr,
            '_lookup_item': cls.lookup_item,
            '_guard_binop': guard_binop,
            '_guard_iter': guard_iter,
            'UndefinedError': UndefinedError,
            # What the lookups do not give is not reachable either; C code
            # (strftime) imports through the builtins of the frame
            '__builtins__': {'__import__': __import__},
            }

    @classmethod
    def lookup_name(cls, data, name):
        value = data.get(name, UNDEFINED)
        if value is UNDEFINED:
            value = _ALLOWED_BUILTINS.get(name, UNDEFINED)
            if value is UNDEFINED:
                raise UndefinedError(name)
        return value

    @classmethod
    def lookup_attr(cls, obj, key):
        if isinstance(obj, RecordProxy):
            return obj.template_field(key)
        if isinstance(obj, type):
            attributes = _TYPE_ATTRIBUTES.get(obj, {})
        else:
            attributes = _ATTRIBUTES.get(type(obj))
            if attributes is None:
                raise _refused(obj, key)
            if type(obj) is dict and key not in attributes:
                return cls.lookup_item(obj, (key,))
        if key not in attributes:
            raise _refused(obj, key)
        wrapper = attributes[key]
        if wrapper is not None:
            return wrapper(obj)
        return getattr(obj, key)

    @classmethod
    def lookup_item(cls, obj, key):
        if len(key) == 1:
            key, = key
        if isinstance(obj, RecordProxy) and isinstance(key, str):
            return obj.template_field(key)
        if type(obj) not in {str, Markup, list, tuple, dict}:
            raise _refused(obj, key)
        try:
            return obj[key]
        except KeyError:
            raise UndefinedError(key, owner=obj)

    @classmethod
    def undefined(cls, key, owner=UNDEFINED):
        raise UndefinedError(key, owner=owner)


class SandboxContext(Context):
    "The context of a rendering, counting loops and macro calls"

    def __init__(self, budget, **data):
        super().__init__(**data)
        push = self.frames.appendleft

        # Genshi pushes a frame for each item of py:for and each py:def call
        def counted_push(frame):
            budget.step()
            push(frame)
        self.push = counted_push


# Helpers

def _real(value):
    if isinstance(value, RecordProxy):
        return value.template_record()
    return value


def _check_digits(digits):
    if digits is not None and (
            not isinstance(digits, int) or not 0 <= digits <= MAX_DIGITS):
        raise TemplateError(f"digits must be between 0 and {MAX_DIGITS}")


def _check_format(format):
    if format is not None and (
            not isinstance(format, str) or len(format) > MAX_FORMAT_WIDTH):
        raise TemplateError("the format is not valid")


def format_date(value, lang=None, format=None):
    _check_format(format)
    return Report.format_date(value, _real(lang), format)


def format_datetime(value, lang=None, format=None, timezone=None):
    _check_format(format)
    if timezone is not None and not isinstance(timezone, str):
        raise TemplateError("the time zone must be a name")
    return Report.format_datetime(
        value, _real(lang), format, timezone=timezone)


def format_timedelta(value, converter=None, lang=None):
    if converter is not None:
        raise TemplateError("the converter of format_timedelta is fixed")
    return Report.format_timedelta(value, lang=_real(lang))


def format_currency(
        value, lang, currency, symbol=True, grouping=True, digits=None):
    _check_digits(digits)
    return Report.format_currency(
        value, _real(lang), _real(currency), symbol=bool(symbol),
        grouping=bool(grouping), digits=digits)


def format_number(value, lang, digits=None, grouping=True):
    _check_digits(digits)
    return Report.format_number(
        value, _real(lang), digits=digits, grouping=bool(grouping))


def helpers():
    "Return the documented helpers of the templates, besides record"
    return {
        'format_date': format_date,
        'format_datetime': format_datetime,
        'format_timedelta': format_timedelta,
        'format_currency': format_currency,
        'format_number': format_number,
        'datetime': DateTimeTypes(),
        }


_install()
