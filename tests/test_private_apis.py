# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The private APIs of trytond, Genshi and the standard library we rely on

Each test states one behaviour the module depends on and is not promised
by a public interface; it fails loudly when an upgrade changes it, naming
what to look at.  doc/design.rst lists them."""
import ast
import inspect
from collections import deque
from email.policy import EmailPolicy

from genshi.template import MarkupTemplate, NewTextTemplate, Template
from genshi.template.base import Context
from genshi.template.eval import Code, Expression, LookupBase, _compile

from trytond import _safe_genshi
from trytond.modules.marketing_automation import mime, sandbox
from trytond.transaction import Transaction


def test_genshi_code_init_chooses_the_transformer():
    "sandbox._install wraps Code.__init__, where Genshi compiles the code"
    parameters = list(inspect.signature(Code.__init__).parameters)
    assert parameters[:6] == [
        'self', 'source', 'filename', 'lineno', 'lookup', 'xform'], (
        "genshi Code.__init__ changed: check sandbox._install")
    assert getattr(Code.__init__, 'marketing_automation_sandbox', False)


def test_genshi_compile_takes_the_transformer():
    "sandbox recompiles the AST kept by Code with genshi's _compile"
    parameters = list(inspect.signature(_compile).parameters)
    assert parameters == [
        'node', 'source', 'mode', 'filename', 'lineno', 'xform'], (
        "genshi.template.eval._compile changed: check sandbox._install")
    expression = Expression('a + 1')
    assert isinstance(expression.ast, ast.Expression)
    assert expression.mode == 'eval'


def test_genshi_code_reads_the_lookup_globals():
    "The compiled code reaches values only through the lookup's globals"
    globals_ = LookupBase.globals({})
    assert {'_lookup_name', '_lookup_attr', '_lookup_item'} <= set(
        globals_), "genshi's lookup globals changed: check SandboxLookup"
    code = Expression('a.b[c]', lookup=sandbox.SandboxLookup)
    names = set(code.code.co_names)
    assert {'_lookup_name', '_lookup_attr', '_lookup_item'} & names


def test_trytond_forces_its_transformer():
    "trytond replaces the transformer in Code.__init__ (trytond/_safe_genshi)"
    assert issubclass(
        sandbox._ExpressionTransformer,
        _safe_genshi.SafeExpressionASTTransformer)
    assert issubclass(
        sandbox._SuiteTransformer, _safe_genshi.SafeTemplateASTTransformer)
    # The guards are in the code of sandboxed expressions only
    guarded = Expression('a * 2', lookup=sandbox.SandboxLookup)
    plain = Expression('a * 2')
    assert '_guard_binop' in guarded.code.co_names
    assert '_guard_binop' not in plain.code.co_names


def test_genshi_context_pushes_through_an_attribute():
    "SandboxContext counts loops by replacing Context.push, set in __init__"
    context = Context(a=1)
    assert isinstance(context.frames, deque), (
        "genshi Context.frames changed: check SandboxContext")
    assert context.push == context.frames.appendleft
    budget = sandbox.Budget(iterations=1)
    context = sandbox.SandboxContext(budget, a=1)
    context.push({})
    assert budget.iterations == 0


def test_genshi_for_calls_iter():
    "Genshi evaluates each py:for as iter(...): the sandbox provides iter"
    template = MarkupTemplate(
        '<p xmlns:py="http://genshi.edgewall.org/">'
        '<i py:for="x in items">${x}</i></p>',
        lookup=sandbox.SandboxLookup)
    output = template.generate(
        sandbox.SandboxContext(sandbox.Budget(), items=[1, 2])).render()
    assert output.count('<i>') == 2


def test_genshi_text_template_allow_exec():
    "NewTextTemplate sets allow_exec in _parse: rendering._TextTemplate"
    assert '_parse' in vars(NewTextTemplate)
    assert 'allow_exec' in inspect.signature(Template.__init__).parameters


def test_email_policy_header_hooks():
    "mime._Policy overrides the two header hooks of EmailPolicy"
    for name in ['header_store_parse', 'header_fetch_parse']:
        assert list(inspect.signature(getattr(EmailPolicy, name)).parameters
            ) == ['self', 'name', 'value'], name
    assert issubclass(mime._Policy, EmailPolicy)


def test_transaction_cache_and_counter():
    "RecordActivity._clear_cache clears the transaction's record caches"
    source = inspect.getsource(Transaction)
    assert 'self.counter' in source and 'self.cache' in source, (
        "trytond Transaction.counter or .cache changed: check "
        "RecordActivity._clear_cache")
