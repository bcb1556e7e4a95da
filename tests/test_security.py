# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Regression tests of what a marketing user's input can reach

Each test is named after what it proves; together they cover the findings
of the security review: code execution and ORM methods from templates,
domains and conditions as oracles, tokens in the archive, denial of service,
a bad address stopping a batch and the public routes."""
import json
import time
import tracemalloc
from http import HTTPStatus
from unittest.mock import patch

import pytest

from trytond.model.exceptions import AccessError
from trytond.modules.marketing_automation import (
    enrolment, links, rendering, rights, sandbox)
from trytond.modules.marketing_automation.exceptions import (
    ConditionError, DomainError)
from trytond.modules.marketing_automation.sandbox import TemplateError
from trytond.pool import Pool
from trytond.pyson import Bool, Eval, PYSONDecoder, PYSONEncoder
from trytond.tests.test_tryton import (
    DB_NAME, DBTestCase, RouteTestCase, with_transaction)
from trytond.transaction import Transaction, check_access

from . import builders
from .builders import path_of
from .test_routes import create_data

# --- Templates: allow-list, rights of the author, limits -------------------


def html(expression):
    return '<html><body><p>${%s}</p></body></html>' % expression


def render(template, budget=None, **context):
    context = {**sandbox.helpers(), **context}
    return rendering.render_html(
        template, context, lambda url: url, lambda next_url: 'unsubscribe',
        'https://t.example/o.gif', budget=budget)


def render_refused(template, **context):
    with pytest.raises(TemplateError) as info:
        render(template, **context)
    return str(info.value)


@pytest.mark.parametrize('expression', [
        "datetime.sys.modules['os'].popen('id').read()",
        "datetime.datetime.sys",
        "datetime.date.__subclasses__()",
        "format_date.__globals__",
        "format_date.__self__",
        "datetime.timedelta.__init__",
        "str.format('{0.__class__}', 1)",
        "'{0.__class__}'.format(1)",
        "Markup.__init__",
        "range(2).__iter__",
        ])
def test_template_reaches_no_module_class_or_function_internals(expression):
    "The helpers are values: no attribute leads from them to the server"
    render_refused(html(expression))


@pytest.mark.parametrize('name', [
        'open', 'getattr', 'setattr', 'type', 'vars', 'globals', 'locals',
        'eval', 'exec', 'compile', 'dir', 'hasattr', 'object', 'format',
        'pow', 'bytes', 'bytearray', 'breakpoint', 'input', 'help',
        'memoryview', 'super', 'classmethod', 'property', 'isinstance',
        ])
def test_template_builtins_are_an_allow_list(name):
    "Only the harmless builtins are names a template can use"
    with pytest.raises(TemplateError):
        render(html(name))


def test_template_datetime_offers_the_types_and_their_constructors():
    "Existing templates using datetime keep rendering"
    output = render(html(
            "datetime.date(2026, 1, 31).isoformat()"
            " + ' ' + str(datetime.timedelta(days=1).days)"
            " + ' ' + str(datetime.date.today() >= datetime.date.min)"
            " + ' ' + datetime.datetime.now().strftime('%Y')[:2]"))
    assert '2026-01-31 1 True 20' in output


def test_template_iter_refuses_the_sentinel_form():
    "iter(callable, sentinel) would call a function for ever"
    render_refused(html("list(iter(int, 1))"))


def test_template_lambda_refused_at_save():
    "A lambda could recurse exponentially without any loop"
    with pytest.raises(TemplateError):
        rendering.check_html(html("(lambda f: f(f))(lambda f: f(f))"))


@pytest.mark.parametrize('expression', [
        "10 ** 10 ** 10",
        "'x' * 10 ** 9",
        "1 &lt;&lt; 10 ** 9",
        "range(10 ** 9)",
        "len(range(10 ** 12))",
        ])
def test_template_too_large_constant_refused_at_save(expression):
    "What is too large and constant is seen when the template is saved"
    with pytest.raises(TemplateError):
        rendering.check_html(html(expression))
    with pytest.raises(TemplateError):
        rendering.check_title('${%s}' % expression)


@pytest.mark.parametrize('expression', [
        "n ** n ** n",
        "'x' * n",
        "[0] * n",
        "1 &lt;&lt; n",
        "range(n)",
        "'%0999999999d' % 1",
        "'%*d' % (n, 1)",
        "'x'.ljust(n)",
        "'x'.center(n)",
        "('ab' * 1000).replace('', 'x' * 1000)",
        "('x' * 100000).join(['y'] * 100)",
        "sum([[1] * 1000] * 1000, [])",
        "round(1, -n)",
        "format_number(1, None, n)",
        ])
def test_template_operations_cannot_build_huge_values(expression):
    "Operators and methods check the size of what they build"
    assert render_refused(html(expression), n=10 ** 9)


def test_template_endless_loop_stops_on_iterations():
    "Nested loops stop at the iteration limit, quickly and in little memory"
    template = (
        '<html xmlns:py="http://genshi.edgewall.org/"><body>'
        '<py:for each="i in range(10000)"><py:for each="j in range(10000)">'
        '<p>${i} ${j}</p></py:for></py:for></body></html>')
    tracemalloc.start()
    start = time.monotonic()
    try:
        message = render_refused(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 'iterations' in message or 'seconds' in message
    assert time.monotonic() - start < 10
    assert peak < 100 * 1024 * 1024


def test_template_comprehensions_count_iterations():
    "Comprehensions are loops too"
    render_refused(html("sum(1 for i in range(10000) for j in range(10000))"))


def test_template_time_limit():
    "A rendering stops at its deadline"
    template = (
        '<html xmlns:py="http://genshi.edgewall.org/"><body>'
        '<py:for each="i in range(100000)">'
        '${len(sorted(range(100000)))}</py:for></body></html>')
    budget = sandbox.Budget(timeout=0.2, iterations=10 ** 9)
    start = time.monotonic()
    with pytest.raises(TemplateError) as info:
        render(template, budget=budget)
    assert 'seconds' in str(info.value)
    assert time.monotonic() - start < 5


def test_template_output_size_limit():
    "A rendering stops when its output is over the size limit"
    template = (
        '<html xmlns:py="http://genshi.edgewall.org/"><body>'
        '<p py:for="i in range(1000)">${text}</p></body></html>')
    budget = sandbox.Budget(size=100000)
    with pytest.raises(TemplateError) as info:
        render(template, budget=budget, text='x' * 1000)
    assert 'large' in str(info.value)


@pytest.mark.parametrize('href', [
        'javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,x',
        'vbscript:x', 'file:///etc/passwd', '/relative', 'shop.html',
        'unsubscribe|javascript:alert(1)', 'https:', 'http:///path',
        ])
def test_links_other_than_web_refused_at_save(href):
    "Only http(s), mailto:, tel:, anchors and unsubscribe are links"
    with pytest.raises(TemplateError):
        rendering.check_html(
            '<html><body><a href="%s">x</a></body></html>' % href)


def test_links_untracked_left_alone_and_web_tracked():
    "mailto:, tel: and anchors are not rewritten; web links are"
    calls = []
    output = rendering.render_html(
        '<html><body><a href="mailto:a@example.com">m</a>'
        '<a href="tel:+321">t</a><a href="#top">a</a>'
        '<a href="https://shop.example/">s</a></body></html>',
        sandbox.helpers(), lambda url: calls.append(url) or 'tracked',
        lambda next_url: 'unsubscribe', 'https://t.example/o.gif')
    assert calls == ['https://shop.example/']
    for href in ['mailto:a@example.com', 'tel:+321', '#top', 'tracked']:
        assert 'href="%s"' % href in output


def test_dynamic_link_other_than_web_fails_the_rendering():
    "A link whose value is not a web link is refused when rendered"
    render_refused(
        '<html><body><a href="${url}">x</a></body></html>',
        url='javascript:alert(1)')


class TemplateSecurityTestCase(DBTestCase):
    "Templates run with the author's rights and fail one record at a time"
    module = 'marketing_automation'

    def setup_scenario(self, author, templates, parties):
        """Create a running scenario with an e-mail activity per template
        written by author, and the parties enrolled in it"""
        scenario = builders.create_scenario(
            domain='[["name", "in", %s]]' % json.dumps(
                [n for n, _ in parties]))
        with Transaction().set_user(author.id):
            for name, template in templates:
                builders.create_activity(scenario, **builders.email_values(
                        name=name, email_title="Hello",
                        email_template=template))
        for name, address in parties:
            builders.create_party(name, address)
        builders.enrol(scenario)
        return scenario

    def process(self):
        "Process the due record activities; return the notes and e-mails"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Email = pool.get('ir.email')
        # Messages go to the SMTP server at commit: never in these tests
        builders.process_due()
        notes = {
            (r.record.record.name, r.activity.name): (r.state, r.note)
            for r in RecordActivity.search([])}
        return notes, Email.search([])

    @with_transaction()
    def test_template_cannot_call_orm_methods(self):
        "record offers field values only: no write, search or save"
        pool = Pool()
        Party = pool.get('party.party')
        User = pool.get('res.user')
        marketer = builders.marketing_user()
        groups = len(marketer.groups)
        expressions = [
            "record.write([record], {'name': 'Pwned'})",
            "record.save()",
            "record.search([])",
            "record.create_uid.write([record.create_uid], {'groups': []})",
            "record.__class__.search([])",
            "record.browse([1])",
            ]
        self.setup_scenario(
            marketer,
            [(e, html(e)) for e in expressions]
            + [("Name", html("record.name"))],
            [("Ann", 'ann@example.com')])
        notes, emails = self.process()

        for expression in expressions:
            state, note = notes[("Ann", expression)]
            self.assertEqual(state, 'done')
            self.assertIn('could not be rendered', note)
        self.assertEqual(notes[("Ann", "Name")], ('done', None))
        self.assertEqual(len(emails), 1)
        ann, = Party.search([('name', '=', "Ann")])
        self.assertEqual(ann.name, "Ann")
        self.assertEqual(len(User(marketer.id).groups), groups)

    @with_transaction()
    def test_template_runs_with_the_author_rights(self):
        "A field the author cannot read fails the e-mail of the record"
        pool = Pool()
        FieldAccess = pool.get('ir.model.field.access')
        FieldAccess.create([{
                    'model': 'party.party',
                    'field': 'code',
                    'perm_read': False,
                    }])
        marketer = builders.marketing_user()
        self.setup_scenario(
            marketer, [("Code", html("record.code"))],
            [("Ann", 'ann@example.com')])
        notes, emails = self.process()
        state, note = notes[("Ann", "Code")]
        self.assertIn('could not be rendered', note)
        self.assertFalse(emails)

    @with_transaction()
    def test_endless_template_fails_its_records_not_the_batch(self):
        "A template over the limits fails its e-mails; the others are sent"
        marketer = builders.marketing_user()
        endless = (
            '<html xmlns:py="http://genshi.edgewall.org/"><body>'
            '<py:for each="i in range(10000)">'
            '<py:for each="j in range(10000)">${j}</py:for></py:for>'
            '</body></html>')
        self.setup_scenario(
            marketer, [("Endless", endless), ("Name", html("record.name"))],
            [("Ann", 'ann@example.com'), ("Bob", 'bob@example.com')])
        notes, emails = self.process()
        for name in ["Ann", "Bob"]:
            state, note = notes[(name, "Endless")]
            self.assertEqual(state, 'done')
            self.assertRegex(note, 'iterations|seconds')
            self.assertEqual(notes[(name, "Name")], ('done', None))
        self.assertEqual(len(emails), 2)

    @with_transaction()
    def test_bad_address_fails_its_record_not_the_batch(self):
        "An address without @ is noted on its record; the others are sent"
        marketer = builders.marketing_user()
        self.setup_scenario(
            marketer, [("Name", html("record.name"))],
            [("Ann", 'ann@example.com'), ("Bad", 'no-at-sign'),
                ("Worse", 'a@b@c'), ("Bob", 'bob@example.com')])
        notes, emails = self.process()
        self.assertEqual(notes[("Ann", "Name")], ('done', None))
        self.assertEqual(notes[("Bob", "Name")], ('done', None))
        for name in ["Bad", "Worse"]:
            state, note = notes[(name, "Name")]
            self.assertEqual(state, 'done')
            self.assertIn('not valid', note)
        self.assertEqual(
            sorted(e.recipients for e in emails),
            ['Ann <ann@example.com>', 'Bob <bob@example.com>'])


# --- Domains and conditions: rights of the author --------------------------


class AuthorRightsTestCase(DBTestCase):
    "Test domains and conditions use only what their author can read"
    module = 'marketing_automation'
    extras = ['sale']

    def deny_party_code(self):
        "Forbid every user but the administrator to read the party code"
        FieldAccess = Pool().get('ir.model.field.access')
        FieldAccess.create([{
                    'model': 'party.party',
                    'field': 'code',
                    'perm_read': False,
                    }])

    def create_scenario(self, user, **values):
        "Create a scenario as user, or as the module itself when None"
        with Transaction().set_user(user.id if user else 0):
            scenario = builders.create_scenario(**values)
        return type(scenario)(scenario.id)

    def create_activity(self, user, scenario, condition):
        "Create an activity as user, or as the module itself when None"
        with Transaction().set_user(user.id if user else 0):
            activity = builders.create_activity(
                scenario, condition=PYSONEncoder().encode(condition))
        return type(activity)(activity.id)

    @with_transaction()
    def test_draft_count_does_not_reveal_password_hash(self):
        "A draft count over the password hash of the creator gives 0"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        User = pool.get('res.user')
        victim, = User.create([{
                    'name': "Victim", 'login': 'victim',
                    'password': 'a secret password 42'}])
        with Transaction().set_user(victim.id):
            Party.create([{'name': "Created by the victim"}])
        marketer = builders.marketing_user()
        # Saved by the module (root), as an old scenario could be
        scenario = self.create_scenario(
            None, domain='[["create_uid.password_hash", "!=", null]]')
        with Transaction().set_user(0):
            self.assertEqual(Scenario(scenario.id).record_count, 1)

        with Transaction().set_user(marketer.id):
            self.assertEqual(Scenario(scenario.id).record_count, 0)

    @with_transaction()
    def test_draft_count_uses_rights_of_reader(self):
        "A draft count over a field the reader cannot read gives 0"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        marketer = builders.marketing_user()
        Party.create([{'name': "Coded", 'code': 'SECRET'}])
        scenario = self.create_scenario(
            marketer, domain='[["code", "=", "SECRET"]]')
        self.deny_party_code()

        with Transaction().set_user(marketer.id):
            self.assertEqual(Scenario(scenario.id).record_count, 0)

    @with_transaction()
    def test_domain_on_unreadable_field_refused_at_save(self):
        "A domain on a field the author cannot read is refused at save"
        marketer = builders.marketing_user()
        self.deny_party_code()
        for domain, field in [
                ('[["create_uid.password_hash", ">=", "$2b$"]]',
                    "Password Hash"),
                ('[["code", "=", "C1"]]', "Code"),
                ('[["OR", [["name", "=", "A"]], '
                    '[["addresses.party.code", "=", "C1"]]]]', "Code"),
                ]:
            with self.subTest(domain=domain):
                with self.assertRaises(DomainError) as context:
                    self.create_scenario(marketer, domain=domain)
                self.assertIn(field, context.exception.message)
        # The same fields stay allowed to the module itself
        self.create_scenario(None, domain='[["code", "=", "C1"]]')

    @with_transaction()
    def test_scenario_on_sale_refused_without_sale_rights(self):
        "A scenario on sales is refused to a user without sale rights"
        marketer = builders.marketing_user()
        with self.assertRaises(DomainError) as context:
            self.create_scenario(marketer, model='sale.sale')
        self.assertIn("Sale", context.exception.message)
        self.create_scenario(None, model='sale.sale')

    @with_transaction()
    def test_model_selection_offers_only_readable_models(self):
        "The model selection offers only the models the user can read"
        Scenario = Pool().get('marketing.automation.scenario')
        marketer = builders.marketing_user()
        models = dict(Scenario.get_models())
        self.assertIn('sale.sale', models)

        with Transaction().set_user(marketer.id), check_access():
            models = dict(Scenario.get_models())
        self.assertEqual(list(models), ['party.party'])

    @with_transaction()
    def test_trigger_skips_scenario_its_author_cannot_read(self):
        "A running scenario whose author lost the rights enrols nobody"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        Record = pool.get('marketing.automation.record')
        marketer = builders.marketing_user()
        Party.create([{'name': "Coded", 'code': 'C1'}])
        scenario = self.create_scenario(
            marketer, domain='[["code", "=", "C1"]]')
        with Transaction().set_user(marketer.id):
            Scenario.run([scenario])
        self.deny_party_code()

        with self.assertLogs(enrolment.logger, 'ERROR') as logs:
            Scenario.trigger([Scenario(scenario.id)])
        self.assertEqual(len(logs.records), 1)
        self.assertIsNone(logs.records[0].exc_info)
        self.assertFalse(Record.search([('scenario', '=', scenario.id)]))

    @with_transaction()
    def test_condition_on_unreadable_field_refused_at_save(self):
        "A condition on an unknown or unreadable field is refused at save"
        marketer = builders.marketing_user()
        self.deny_party_code()
        scenario = self.create_scenario(marketer)
        for condition, name in [
                (Eval('self.create_uid.password_hash', '') == '$2b$',
                    "Password Hash"),
                (Eval('self.code') == 'C1', "Code"),
                (Bool(Eval('self._parent_create_uid.password_hash')),
                    "Password Hash"),
                (Eval('self.no_such_field', 0) == 1, 'no_such_field'),
                (Eval('self.name.upper') == 'A', 'name.upper'),
                ]:
            with self.subTest(condition=condition):
                with self.assertRaises(ConditionError) as context:
                    self.create_activity(marketer, scenario, condition)
                self.assertIn(name, context.exception.message)
        self.create_activity(None, scenario, Eval('self.code') == 'C1')

    @with_transaction()
    def test_condition_note_reveals_nothing(self):
        "A condition the author can no longer read says nothing of values"
        pool = Pool()
        Party = pool.get('party.party')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        marketer = builders.marketing_user()
        Party.create([
                {'name': "Match", 'code': 'C1'},
                {'name': "Other", 'code': 'C2'}])
        scenario = self.create_scenario(
            marketer, domain='[["code", "in", ["C1", "C2"]]]')
        self.create_activity(marketer, scenario, Eval('self.code') == 'C1')
        builders.enrol(scenario)
        self.deny_party_code()

        builders.process_due()
        notes = {
            ra.record.record.name: ra.note
            for ra in RecordActivity.search([])}
        self.assertEqual(len(Record.search([])), 2)
        self.assertEqual(notes['Match'], notes['Other'])
        self.assertEqual(
            notes['Match'],
            "The condition could not be evaluated with the rights of the "
            "author of the activity.")

    @with_transaction()
    def test_domain_walker_yields_every_step_of_every_path(self):
        "The domain walker yields each step of nested and related paths"
        pool = Pool()
        Party = pool.get('party.party')
        Address = pool.get('party.address')
        User = pool.get('res.user')
        steps = set(rights.domain_fields(Party, [
                    'OR', ('name', '=', 'A'),
                    [('addresses.party.code', '=', 'C')],
                    ('addresses', 'where', [('city', '=', 'X')]),
                    ('create_uid.password_hash', '>=', '$'),
                    ]))
        self.assertEqual(steps, {
                (Party, 'name'), (Party, 'addresses'), (Address, 'party'),
                (Party, 'code'), (Address, 'city'), (Party, 'create_uid'),
                (User, 'password_hash')})

    @with_transaction()
    def test_condition_walker_yields_every_path_of_self(self):
        "The condition walker yields the paths of self, also in defaults"
        condition = PYSONDecoder(noeval=True).decode(PYSONEncoder().encode(
                    (Eval('self.name') == 'A')
                    | (Eval('context.x', Eval('self._parent_create_uid.login'))
                        == 'B')))
        self.assertEqual(
            set(rights.condition_paths(condition)),
            {'name', '_parent_create_uid.login'})

    @with_transaction()
    def test_condition_reads_with_rights_of_author(self):
        "A condition the author can read matches as with EvalEnvironment"
        pool = Pool()
        Party = pool.get('party.party')
        RecordActivity = pool.get('marketing.automation.record.activity')
        marketer = builders.marketing_user()
        Party.create([{'name': "Match"}, {'name': "Other"}])
        scenario = self.create_scenario(marketer)
        self.create_activity(
            marketer, scenario,
            (Eval('self.name') == 'Match')
            & (Eval('self.create_uid', 0) == 1)
            & (Eval('self.create_uid.login') == 'admin')
            & Bool(Eval('self._parent_create_uid.name'))
            & ~Bool(Eval('self.addresses')))
        builders.enrol(scenario)

        builders.process_due()
        notes = {
            ra.record.record.name: ra.note
            for ra in RecordActivity.search([])}
        self.assertEqual(notes, {
                'Match': None,
                'Other': "The record does not match the condition."})


# --- Tokens in the archive ------------------------------------------------

class ArchiveTokensTestCase(TemplateSecurityTestCase):
    "Archived e-mails give no working link to whoever may read them"

    @with_transaction()
    def test_archived_body_holds_no_token(self):
        "The tokens of the links, pixel and unsubscribe are not archived"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Record = pool.get('marketing.automation.record')
        marketer = builders.marketing_user()
        self.setup_scenario(
            marketer, [("Name", (
                        '<html><body><a href="https://shop.example/">s</a>'
                        '<a href="unsubscribe|https://shop.example/bye">u</a>'
                        '</body></html>'))],
            [("Ann", 'ann@example.com')])
        builders.process_due()
        Email = pool.get('ir.email')
        email, = Email.search([])
        record_activity, = RecordActivity.search([])
        record, = Record.search([])
        for token in [record_activity.uuid, record.uuid]:
            self.assertNotIn(token, email.body)
        # The destinations are kept: they tell the known next URLs
        self.assertTrue(record.is_known_url('https://shop.example/bye'))
        self.assertTrue(record.is_known_url('https://shop.example/'))

    @with_transaction()
    def test_tokens_readable_only_by_marketing(self):
        "A user outside the marketing group cannot read the tokens"
        pool = Pool()
        User = pool.get('res.user')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        marketer = builders.marketing_user()
        self.setup_scenario(
            marketer, [("Name", html("record.name"))],
            [("Ann", 'ann@example.com')])
        stranger, = User.create([{'name': "Stranger", 'login': 'stranger'}])
        for Model in [Record, RecordActivity]:
            ids = [r.id for r in Model.search([])]
            with Transaction().set_user(stranger.id), check_access():
                with self.assertRaises(AccessError):
                    Model.read(ids, ['uuid'])
            with Transaction().set_user(marketer.id), check_access():
                self.assertTrue(all(
                        v['uuid'] for v in Model.read(ids, ['uuid'])))


# --- Public routes ---------------------------------------------------------

NO_STORE = {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    }


def other_spellings(name):
    "Return the base64 spellings of name that are not the one of our links"
    canonical = links.database_segment(name)
    padded = links.database_segment(name, padded=True)
    spellings = {canonical + '=', canonical + '==', canonical + '===',
        padded + '=', padded.rstrip('=') + '=' * (len(padded) % 3)}
    if len(name.encode('utf-8')) % 3:
        # The last character carries unused bits: flip the lowest one
        alphabet = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
            '0123456789-_')
        last = alphabet[alphabet.index(canonical[-1]) ^ 1]
        spellings.add(canonical[:-1] + last)
        spellings.add(padded.replace(canonical, canonical[:-1] + last, 1))
    return sorted(spellings - {canonical, padded})


class PublicRoutesSecurityTestCase(RouteTestCase):
    "Test the public routes resist what the security review found"
    module = 'marketing_automation'

    def events(self, data):
        "Return the flags of the root and the state of its children"
        with Transaction().start(DB_NAME, 0, readonly=True):
            pool = Pool()
            RecordActivity = pool.get('marketing.automation.record.activity')
            root = RecordActivity(data.root)
            children = RecordActivity.search([
                    ('record', '=', data.record),
                    ('activity', 'in', list(data.children.values())),
                    ])
            return (root.email_opened, root.email_clicked,
                sorted((c.activity.name, c.state, c.at is None)
                    for c in children))

    def assertNoEvent(self, data):
        self.assertEqual(self.events(data), (False, False, [
                    ('clicked', 'waiting', True),
                    ('not_clicked', 'waiting', False),
                    ('not_opened', 'waiting', False),
                    ('opened', 'waiting', True),
                    ]))

    def blocked(self, data):
        "Tell if the record is blocked"
        with Transaction().start(DB_NAME, 0, readonly=True):
            Record = Pool().get('marketing.automation.record')
            return Record(data.record).blocked

    def assertNotStored(self, response):
        for name, value in NO_STORE.items():
            self.assertEqual(response.headers.get(name), value, name)

    def click(self, data, url='https://shop.example/'):
        return path_of(links.click_url(DB_NAME, data.token, url, data.secret))

    def unsubscribe(self, data):
        return path_of(links.unsubscribe_url(DB_NAME, data.record_token))

    def paths(self, data, database):
        "Return the method and path of each route for the database segment"
        db = '/m/%s/' % links.database_segment(DB_NAME)
        replace = '/m/%s/' % database
        return [
            ('GET', '/m/%s/o/%s.gif' % (database, data.token)),
            ('GET', self.click(data).replace(db, replace, 1)),
            ('GET', self.unsubscribe(data).replace(db, replace, 1)),
            ('POST', self.unsubscribe(data).replace(db, replace, 1)),
            ]

    def test_click_refuses_javascript_url(self):
        "Test a signed javascript: URL is not found and records no event"
        data = create_data()
        client = self.client()
        for url in [
                'javascript:alert(1)',
                'JavaScript:alert(document.domain)//https://shop.example/',
                ' javascript:alert(1)',
                'java\tscript:alert(1)',
                'java\nscript:alert(1)',
                '\x00javascript:alert(1)',
                ]:
            for method in ['GET', 'HEAD']:
                with self.subTest(url=url, method=method):
                    response = client.open(
                        self.click(data, url), method=method)
                    self.assertEqual(
                        response.status_code, HTTPStatus.NOT_FOUND)
                    self.assertNotIn('Location', response.headers)
        self.assertNoEvent(data)

    def test_click_refuses_non_web_urls(self):
        "Test a signed URL that is not absolute HTTP(S) is not found"
        data = create_data()
        client = self.client()
        for url in [
                'data:text/html,<script>alert(1)</script>',
                'vbscript:msgbox(1)',
                'file:///etc/passwd',
                'ftp://shop.example/',
                'mailto:shop@example.com',
                '/relative/path',
                '//evil.example/',
                'https:evil.example',
                'https:/evil.example',
                'https:\\\\evil.example/',
                'https://',
                'shop.example',
                ]:
            with self.subTest(url=url):
                response = client.get(self.click(data, url))
                self.assertEqual(response.status_code, HTTPStatus.NOT_FOUND)
                self.assertNotIn('Location', response.headers)
        self.assertNoEvent(data)

    def test_click_still_redirects_web_urls(self):
        "Test a signed absolute HTTP(S) URL still redirects"
        data = create_data()
        client = self.client()
        for url in ['http://shop.example/', 'HTTPS://Shop.Example/a?b=c#d']:
            with self.subTest(url=url):
                response = client.head(self.click(data, url))
                self.assertEqual(response.status_code, HTTPStatus.FOUND)
                self.assertEqual(
                    response.headers['Location'],
                    links.redirect_location(url))

    def test_database_without_module_not_found(self):
        "Test a database without the module activated is not found"
        data = create_data()
        client = self.client()
        get = Pool.get

        def get_activated(pool, name, type='model'):
            # As the pool of a database where the module is not activated
            if name.startswith('marketing.automation.'):
                raise KeyError(name)
            return get(pool, name, type=type)

        with patch.object(Pool, 'get', get_activated):
            for method, path in self.paths(
                    data, links.database_segment(DB_NAME)):
                with self.subTest(method=method, path=path):
                    response = client.open(path, method=method)
                    self.assertEqual(
                        response.status_code, HTTPStatus.NOT_FOUND)
                    self.assertNotStored(response)
        self.assertNoEvent(data)

    def test_database_other_spellings_not_found(self):
        "Test only the spelling of our links finds the database"
        data = create_data()
        client = self.client()
        spellings = other_spellings(DB_NAME)
        self.assertTrue(spellings)
        for database in spellings:
            for method, path in self.paths(data, database):
                with self.subTest(database=database, path=path):
                    response = client.open(path, method=method)
                    self.assertEqual(
                        response.status_code, HTTPStatus.NOT_FOUND)
        self.assertNoEvent(data)
        self.assertEqual(self.blocked(data), False)

    def test_database_padded_spelling_only_for_unsubscribe(self):
        "Test the padded spelling of older e-mails finds only unsubscribe"
        data = create_data()
        client = self.client()
        padded = links.database_segment(DB_NAME, padded=True)
        pixel, click, unsubscribe, _ = self.paths(data, padded)
        if padded != links.database_segment(DB_NAME):
            for method, path in [pixel, click]:
                with self.subTest(path=path):
                    response = client.open(path, method=method)
                    self.assertEqual(
                        response.status_code, HTTPStatus.NOT_FOUND)
            self.assertNoEvent(data)
        method, path = unsubscribe
        response = client.open(path, method=method)
        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(self.blocked(data), False)
        response = client.post(path)
        self.assertEqual(response.status_code, HTTPStatus.OK)
        self.assertEqual(self.blocked(data), True)

    def test_errors_are_not_stored(self):
        "Test 404, 405, 413 and OPTIONS answers are not stored nor sniffed"
        data = create_data()
        client = self.client()
        url = 'https://shop.example/'
        db = links.database_segment(DB_NAME)
        pixel = '/m/%s/o/%s.gif' % (db, data.token)
        click = self.click(data, url)
        unsubscribe = self.unsubscribe(data)
        for method, path, status in [
                ('GET', '/m/%s/o/%s.gif' % (
                        links.database_segment('no_such_database'),
                        data.token), HTTPStatus.NOT_FOUND),
                ('GET', '/m/%s/c/%s?u=%s&s=x' % (
                        db, data.token, url), HTTPStatus.NOT_FOUND),
                ('GET', '/m/%s/unsubscribe?r=%s' % (
                        db, links.new_token()), HTTPStatus.NOT_FOUND),
                ('GET', '/m/!/unsubscribe', HTTPStatus.NOT_FOUND),
                ('POST', pixel, HTTPStatus.METHOD_NOT_ALLOWED),
                ('PUT', pixel, HTTPStatus.METHOD_NOT_ALLOWED),
                ('POST', click, HTTPStatus.METHOD_NOT_ALLOWED),
                ('DELETE', unsubscribe, HTTPStatus.METHOD_NOT_ALLOWED),
                ('PATCH', unsubscribe, HTTPStatus.METHOD_NOT_ALLOWED),
                ('PROPFIND', unsubscribe, HTTPStatus.METHOD_NOT_ALLOWED),
                ('OPTIONS', unsubscribe, HTTPStatus.NO_CONTENT),
                ('POST', '/m/empty.gif', HTTPStatus.METHOD_NOT_ALLOWED),
                ]:
            with self.subTest(method=method, path=path):
                response = client.open(path, method=method)
                self.assertEqual(response.status_code, status)
                self.assertNotStored(response)
        response = client.post(
            unsubscribe, data={'List-Unsubscribe': 'x' * 100_000})
        self.assertEqual(
            response.status_code, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        self.assertNotStored(response)
        self.assertNoEvent(data)
        self.assertEqual(self.blocked(data), False)

    def test_method_not_allowed_tells_allowed_methods(self):
        "Test the 405 answers of the routes list the allowed methods"
        data = create_data()
        client = self.client()
        db = links.database_segment(DB_NAME)
        for path, allow in [
                ('/m/empty.gif', {'GET', 'HEAD', 'OPTIONS'}),
                ('/m/%s/o/%s.gif' % (db, data.token),
                    {'GET', 'HEAD', 'OPTIONS'}),
                (self.unsubscribe(data), {'GET', 'HEAD', 'OPTIONS', 'POST'}),
                ]:
            with self.subTest(path=path):
                response = client.put(path)
                self.assertEqual(
                    response.status_code, HTTPStatus.METHOD_NOT_ALLOWED)
                self.assertEqual(set(response.allow), allow)
