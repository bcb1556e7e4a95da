# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Modules written for Tryton's own marketing_automation work with ours

Each is activated with ours in its own database:

* ``marketing_automation_thirdparty`` (in ``tests/modules``) uses only what
  Tryton's own module offers to other modules: a model with the marketing
  mixin implementing ``get_marketing_party`` and ``search_marketing_party``,
  and an action added to the activities with its ``execute_<action>``;
* ``marketing_campaign`` is the published Tryton 8.2 module whose
  ``tryton.cfg`` names ``marketing_automation``: its wheel is downloaded
  and unpacked in ``.cache``, not installed, so that the environment stays
  as the Makefile builds it.

trytond finds the modules of its own directory and those declared by the
entry points of the installed distributions.  For these two, the tests add
their directories to the path of ``trytond.modules``, a distribution
declaring their entry points to ``sys.path`` and restart the pool; the end
of the tests undoes it.
"""
import glob
import importlib
import os
import re
import subprocess
import sys
import tempfile
import unittest
import zipfile
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import trytond.config as config
import trytond.modules
from trytond import tools
from trytond.const import MODULES_GROUP
from trytond.modules.marketing_automation.testing import SMTPSink
from trytond.pool import Pool
from trytond.tests.test_tryton import (
    DB_NAME, DBTestCase, ModuleTestCase, RouteTestCase, with_transaction)
from trytond.transaction import Transaction

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_MODULES = os.path.join(HERE, 'modules')
CACHE = os.path.join(os.path.dirname(HERE), '.cache', 'thirdparty')
THIRDPARTY = 'marketing_automation_thirdparty'
CAMPAIGN = 'marketing_campaign'
CAMPAIGN_REQUIREMENT = 'trytond_marketing_campaign>=8.2,<8.3'
SHOP = 'https://shop.example/spring'
TEMPLATE = (
    '<html><body><p>Hello ${record.name}</p>'
    '<a href="%s">Shop</a></body></html>' % SHOP)


def campaign_wheel():
    "Return the path of the 8.2 wheel of marketing_campaign, downloaded once"
    pattern = os.path.join(CACHE, 'trytond_marketing_campaign-8.2.*.whl')
    if not glob.glob(pattern):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([
                sys.executable, '-m', 'pip', 'download', '--no-deps',
                '--only-binary=:all:', '--disable-pip-version-check',
                '--dest', CACHE, CAMPAIGN_REQUIREMENT],
            capture_output=True, timeout=300)
    wheels = sorted(glob.glob(pattern))
    return wheels[-1] if wheels else None


def unpacked(wheel):
    "Return the directory holding the content of the wheel, unpacked once"
    directory = wheel[:-len('.whl')]
    if not os.path.isdir(directory):
        # Unpacked aside then renamed: a concurrent run sees all or nothing
        partial = tempfile.mkdtemp(dir=os.path.dirname(wheel))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)
        try:
            os.rename(partial, directory)
        except OSError:
            if not os.path.isdir(directory):
                raise
    return directory


def write_distribution(directory, module):
    "Write in directory a distribution declaring the entry point of module"
    info = os.path.join(directory, '%s-0.dist-info' % module)
    os.makedirs(info)
    with open(os.path.join(info, 'METADATA'), 'w') as metadata:
        metadata.write(
            'Metadata-Version: 2.1\nName: %s\nVersion: 0\n' % module)
    with open(os.path.join(info, 'entry_points.txt'), 'w') as entry_points:
        entry_points.write('[%s]\n%s = %s.%s\n' % (
                MODULES_GROUP, module, MODULES_GROUP, module))


def restart_pool():
    "Register again the classes of the modules that trytond finds now"
    importlib.invalidate_caches()
    for cached in [tools.entry_points, tools.import_module, tools.find_path,
            trytond.modules.parse_module_config]:
        cached.cache_clear()
    Pool.start()


class ExtraModules:
    "Tryton modules outside of trytond's directory, found while added"

    def __init__(self):
        self.module_paths = []
        self.distribution_paths = []
        self.temporary = tempfile.TemporaryDirectory()

    def add(self, module_path, distribution_path):
        """Add the modules of module_path, declared by the distributions of
        distribution_path"""
        trytond.modules.__path__.append(module_path)
        self.module_paths.append(module_path)
        sys.path.append(distribution_path)
        self.distribution_paths.append(distribution_path)

    def add_source(self, module_path, module):
        "Add the module of module_path declaring its entry point"
        distribution_path = os.path.join(self.temporary.name, module)
        write_distribution(distribution_path, module)
        self.add(module_path, distribution_path)

    def remove(self):
        for path in self.module_paths:
            trytond.modules.__path__.remove(path)
        for path in self.distribution_paths:
            sys.path.remove(path)
        self.temporary.cleanup()


_extra_modules = None
_campaign_missing = None


def setUpModule():
    global _extra_modules, _campaign_missing
    _extra_modules = ExtraModules()
    _extra_modules.add_source(TEST_MODULES, THIRDPARTY)
    wheel = campaign_wheel()
    if wheel:
        directory = unpacked(wheel)
        _extra_modules.add(
            os.path.join(directory, 'trytond', 'modules'), directory)
    else:
        _campaign_missing = (
            "The package index cannot be reached for %s"
            % CAMPAIGN_REQUIREMENT)
    restart_pool()


def tearDownModule():
    _extra_modules.remove()
    restart_pool()


class SMTPMixin:
    "Send the e-mails of the test case to a local SMTP server"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp = SMTPSink().start()
        cls.previous_uri = config.get('email', 'uri')
        config.set('email', 'uri', cls.smtp.uri)

    @classmethod
    def tearDownClass(cls):
        config.set('email', 'uri', cls.previous_uri)
        cls.smtp.stop()
        super().tearDownClass()

    def run_scenario(self, scenario_id):
        "Enrol and run the due activities of the scenario, committed"
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Scenario = pool.get('marketing.automation.scenario')
            Scenario.trigger([Scenario(scenario_id)])
            transaction.commit()
        with Transaction().start(DB_NAME, 0) as transaction:
            RecordActivity = Pool().get(
                'marketing.automation.record.activity')
            RecordActivity.process(RecordActivity.search([
                        ('record.scenario', '=', scenario_id),
                        ('state', '=', 'waiting'),
                        ]))
            transaction.commit()


def path_of(url):
    "Return the path and query of url, as a client requests them"
    parts = urlsplit(url)
    return parts.path + ('?' + parts.query if parts.query else '')


def html_of(message):
    return message.get_body(('html',)).get_content()


def tracked_link(message, url):
    "Return the tracked link of the message that leads to url"
    for href in re.findall(r'href="([^"]+)"', html_of(message)):
        href = href.replace('&amp;', '&')
        if parse_qs(urlsplit(href).query).get('u') == [url]:
            return href
    raise AssertionError("no tracked link to %s" % url)


class ThirdPartyModelTestCase(SMTPMixin, RouteTestCase):
    "A model marketed as Tryton's own module asks goes through scenarios"
    module = THIRDPARTY

    def create_subscriptions(self, *names):
        "Create a subscription per party name (None: without party)"
        pool = Pool()
        Party = pool.get('party.party')
        Subscription = pool.get('test.marketing.automation.thirdparty')
        subscriptions = []
        for name in names:
            party = None
            if name:
                party, = Party.create([{
                            'name': name,
                            'contact_mechanisms': [('create', [{
                                            'type': 'email',
                                            'value': '%s@example.com'
                                            % name.lower(),
                                            }])],
                            }])
            subscriptions.extend(Subscription.create([{
                            'name': "Subscription of %s" % (name or "nobody"),
                            'party': party,
                            }]))
        return subscriptions

    def create_scenario(self, **values):
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        scenario, = Scenario.create([{
                    'name': "Third party",
                    'model': 'test.marketing.automation.thirdparty',
                    **values,
                    }])
        return scenario

    def test_scenario(self):
        "Enrol, send to the party, search by party and unsubscribe"
        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Activity = pool.get('marketing.automation.activity')
            Scenario = pool.get('marketing.automation.scenario')
            Unsubscribed = pool.get(
                'party.party-unsubscribed-marketing.automation.scenario')
            ann, bob, nobody = self.create_subscriptions("Ann", "Bob", None)
            scenario = self.create_scenario(
                domain='[["name", "like", "Subscription of %"]]',
                unsubscribable=True)
            Activity.create([{
                        'name': "Hello",
                        'parent': str(scenario),
                        'action': 'send_email',
                        'email_title': "Hello ${record.party.name}",
                        'email_template': TEMPLATE,
                        }])
            Unsubscribed.create([{'party': bob.party, 'scenario': scenario}])
            Scenario.run([scenario])
            ids = {s.party.name if s.party else None: s.id
                for s in [ann, bob, nobody]}
            parties = {s.party.name: s.party.id for s in [ann, bob]}
            scenario_id = scenario.id
            transaction.commit()
        self.smtp.pop()

        self.run_scenario(scenario_id)

        with Transaction().start(DB_NAME, 0):
            pool = Pool()
            Record = pool.get('marketing.automation.record')
            Party = pool.get('party.party')
            records = Record.search([('scenario', '=', scenario_id)])
            # Bob is unsubscribed from the scenario
            self.assertEqual(
                {r.record.id: r.party.id if r.party else None
                    for r in records},
                {ids["Ann"]: parties["Ann"], ids[None]: None})
            record_ann, = [r for r in records if r.party]
            for clause in [
                    ('party', '=', parties["Ann"]),
                    ('party', 'in', [parties["Ann"], parties["Bob"]]),
                    ('party', 'ilike', 'an%'),
                    ('party.name', '=', "Ann"),
                    ('party', 'where', [('name', '=', "Ann")]),
                    ]:
                with self.subTest(clause=clause):
                    self.assertEqual(
                        Record.search([clause]), [record_ann])
            self.assertEqual(
                Record.search([('party', '=', parties["Bob"])]), [])
            self.assertEqual(
                Party(parties["Ann"]).marketing_automation_records,
                (record_ann,))

        message, = self.smtp.pop()
        self.assertEqual(message['To'], 'Ann <ann@example.com>')
        self.assertEqual(message['Subject'], "Hello Ann")
        self.assertIn("Hello Subscription of Ann", html_of(message))

        unsubscribe_url, = re.findall(
            r'<(https?://[^>]+)>', message['List-Unsubscribe'])
        response = self.client().post(
            path_of(unsubscribe_url),
            data={'List-Unsubscribe': 'One-Click'})
        self.assertEqual(response.status_code, HTTPStatus.OK)

        with Transaction().start(DB_NAME, 0) as transaction:
            pool = Pool()
            Record = pool.get('marketing.automation.record')
            Party = pool.get('party.party')
            record_ann, = Record.search([
                    ('scenario', '=', scenario_id),
                    ('party', '=', parties["Ann"]),
                    ])
            self.assertTrue(record_ann.blocked)
            self.assertEqual(
                [s.id for s in
                    Party(parties["Ann"]).marketing_scenario_unsubscribed],
                [scenario_id])
            # Ann's other records stay out, new parties enter
            Subscription = pool.get('test.marketing.automation.thirdparty')
            Subscription.create([{
                        'name': "Subscription of Ann again",
                        'party': parties["Ann"],
                        }])
            cyd, = self.create_subscriptions("Cyd")
            transaction.commit()

        self.run_scenario(scenario_id)

        with Transaction().start(DB_NAME, 0):
            Record = Pool().get('marketing.automation.record')
            self.assertEqual(
                {r.record.id for r in Record.search([
                            ('scenario', '=', scenario_id)])},
                {ids["Ann"], ids[None], cyd.id})
        message, = self.smtp.pop()
        self.assertEqual(message['To'], 'Cyd <cyd@example.com>')

    @with_transaction()
    def test_recipients(self):
        "The recipients are those of the parties, read in a batch"
        pool = Pool()
        Party = pool.get('party.party')
        Subscription = pool.get('test.marketing.automation.thirdparty')
        ann, bob, nobody = self.create_subscriptions("Ann", "Bob", None)
        Subscription.write([bob], {'active': False})
        gone, = self.create_subscriptions(None)
        gone_id = gone.id
        Subscription.delete([gone])
        parties = Party.get_marketing_recipients(
            [ann.party.id, bob.party.id])
        self.assertEqual(
            Subscription.get_marketing_recipients(
                [ann.id, bob.id, nobody.id, gone_id]), {
                ann.id: parties[ann.party.id],
                bob.id: parties[bob.party.id],
                nobody.id: None,
                })
        self.assertEqual(
            parties[ann.party.id], ("Ann", 'ann@example.com', None))

    @with_transaction()
    def test_action(self):
        "An action added as Tryton's own module asks runs once per record"
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        Scenario = pool.get('marketing.automation.scenario')
        RecordActivity = pool.get('marketing.automation.record.activity')
        self.assertIn(
            'thirdparty_mark',
            dict(Activity.fields_get(['action'])['action']['selection']))
        Subscription = pool.get('test.marketing.automation.thirdparty')
        ids = [s.id for s in self.create_subscriptions("Ann", None)]
        scenario = self.create_scenario(domain='[["id", "in", %s]]' % ids)
        mark, = Activity.create([{
                    'name': "Mark",
                    'parent': str(scenario),
                    'action': 'thirdparty_mark',
                    }])
        Scenario.run([scenario])
        scenario.enrol()
        domain = [('record.scenario', '=', scenario.id)]
        RecordActivity.process(RecordActivity.search(domain))

        record_activities = RecordActivity.search(domain)
        self.assertEqual(
            [(r.activity, r.activity_action, r.state)
                for r in record_activities],
            [(mark, 'thirdparty_mark', 'done')] * 2)
        self.assertEqual(
            [s.marked for s in Subscription.browse(ids)], [1, 1])

    @with_transaction()
    def test_access_context(self):
        "The access context of the mixin is there to extend"
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        ann, = self.create_subscriptions("Ann")
        self.assertEqual(ann.marketing_access_context, {
                '_groups': [ModelData.get_id('marketing', 'group_marketing')],
                'thirdparty': True,
                })


class PartyColumnTestCase(DBTestCase):
    "The searchers of party and sale agree with their SQL column"
    module = 'marketing_automation'
    extras = ['sale', 'web_shortener']

    def assertSameRecords(self, Model, domain):
        "Check the searcher and the column find the same records"
        pool = Pool()
        Party = pool.get('party.party')
        cursor = Transaction().connection.cursor()
        parties = Party.search(domain, order=[], query=True)
        cursor.execute(*Model.marketing_party_records(parties))
        by_column = sorted(i for i, in cursor)
        by_searcher = sorted(r.id for r in Model.search([
                    ('marketing_party', 'where', domain)]))
        self.assertEqual(by_searcher, by_column)
        return by_column

    @with_transaction()
    def test_searchers(self):
        "Test party and sale find their records by marketing party"
        from trytond.modules.company.tests import create_company
        pool = Pool()
        Party = pool.get('party.party')
        Sale = pool.get('sale.sale')
        company = create_company()
        ann, bob = Party.create([{'name': "Ann"}, {'name': "Bob"}])
        sales = Sale.create([{
                    'party': p.id, 'company': company.id,
                    'currency': company.currency.id,
                    } for p in [ann, bob, ann]])
        self.assertEqual(
            self.assertSameRecords(Party, [('name', '=', "Ann")]), [ann.id])
        self.assertEqual(
            self.assertSameRecords(Sale, [('name', '=', "Ann")]),
            sorted([sales[0].id, sales[2].id]))
        # The company has its party too
        candidates = {Party: [ann.id, bob.id], Sale: [s.id for s in sales]}
        for Model, domain, expected in [
                (Party, [('marketing_party', '=', ann.id)], [ann]),
                (Party, [('marketing_party', 'ilike', 'bo%')], [bob]),
                (Party, [('marketing_party.name', '=', "Bob")], [bob]),
                (Party, [('marketing_party', 'not where', [
                                ('name', '=', "Ann")])], [bob]),
                (Sale, [('marketing_party', '=', bob.id)], [sales[1]]),
                (Sale, [('marketing_party.name', '=', "Bob")], [sales[1]]),
                (Sale, [('marketing_party', 'ilike', 'bo%')], [sales[1]]),
                ]:
            with self.subTest(model=Model.__name__, domain=domain):
                self.assertEqual(
                    Model.search(
                        domain + [('id', 'in', candidates[Model])],
                        order=[('id', 'ASC')]),
                    expected)

    @with_transaction()
    def test_access_context(self):
        "Test a sale is read with the sale group and its company"
        from trytond.modules.company.tests import create_company
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        Party = pool.get('party.party')
        Sale = pool.get('sale.sale')
        company = create_company()
        ann, = Party.create([{'name': "Ann"}])
        sale, = Sale.create([{
                    'party': ann.id, 'company': company.id,
                    'currency': company.currency.id,
                    }])
        marketing = ModelData.get_id('marketing', 'group_marketing')
        self.assertEqual(ann.marketing_access_context, {
                '_groups': [marketing]})
        self.assertEqual(sale.marketing_access_context, {
                '_groups': [marketing, ModelData.get_id('sale', 'group_sale')],
                '_companies': [company.id],
                })


class CampaignMixin:
    "marketing_campaign with ours, skipped when it cannot be downloaded"
    module = CAMPAIGN
    extras = ['marketing_automation', 'web_shortener']

    @classmethod
    def setUpClass(cls):
        if _campaign_missing:
            raise unittest.SkipTest(_campaign_missing)
        super().setUpClass()


class CampaignModuleTestCase(CampaignMixin, ModuleTestCase):
    "The checks of Tryton's modules pass on marketing_campaign with ours"

    @unittest.skip(
        "Its views of the sale and opportunity reportings need modules "
        "that are not activated here")
    def test_view(self):
        super().test_view()


class CampaignTestCase(CampaignMixin, SMTPMixin, RouteTestCase):
    "The campaign of an activity tags the links of its e-mails"

    def create_scenario(self, name):
        "Create a running scenario sending an e-mail of a campaign to name"
        pool = Pool()
        Party = pool.get('party.party')
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        Campaign = pool.get('marketing.campaign')
        Medium = pool.get('marketing.medium')
        Party.create([{
                    'name': name,
                    'contact_mechanisms': [('create', [{
                                    'type': 'email',
                                    'value': '%s@example.com' % name.lower(),
                                    }])],
                    }])
        scenario, = Scenario.create([{
                    'name': "Spring",
                    'model': 'party.party',
                    'domain': '[["name", "=", "%s"]]' % name,
                    }])
        activity, = Activity.create([{
                    'name': "Spring",
                    'parent': str(scenario),
                    'action': 'send_email',
                    'email_title': "Spring",
                    'email_template': TEMPLATE,
                    'marketing_campaign': Campaign.from_name("Spring").id,
                    'marketing_medium': Medium.from_name("Email").id,
                    }])
        Scenario.run([scenario])
        return scenario, activity

    @with_transaction()
    def test_activity_form(self):
        "The activity form shows the campaign"
        Activity = Pool().get('marketing.automation.activity')
        view = Activity.fields_view_get(view_type='form')
        for name in ['marketing_campaign', 'marketing_medium',
                'marketing_source']:
            self.assertIn(name, view['fields'])

    def test_click(self):
        "A click on a link of the e-mail leads to the page with the campaign"
        with Transaction().start(DB_NAME, 0) as transaction:
            scenario, _ = self.create_scenario("Ann")
            scenario_id = scenario.id
            transaction.commit()
        self.smtp.pop()

        self.run_scenario(scenario_id)

        message, = self.smtp.pop()
        response = self.client().get(
            path_of(tracked_link(message, SHOP)))
        self.assertEqual(response.status_code, HTTPStatus.FOUND)
        location = urlsplit(response.headers['Location'])
        self.assertEqual(
            location._replace(query='').geturl(), SHOP)
        self.assertEqual(parse_qs(location.query), {
                'utm_campaign': ["spring"],
                'utm_medium': ["email"],
                })
        with Transaction().start(DB_NAME, 0):
            RecordActivity = Pool().get(
                'marketing.automation.record.activity')
            record_activity, = RecordActivity.search([
                    ('record.scenario', '=', scenario_id)])
            self.assertTrue(record_activity.email_clicked)

    @with_transaction()
    def test_shortened_url(self):
        "A link of the former module leads to the page with the campaign"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        RecordActivity = pool.get('marketing.automation.record.activity')
        ShortenedURL = pool.get('web.shortened_url')
        scenario, _ = self.create_scenario("Bea")
        Scenario.trigger([scenario])
        record_activity, = RecordActivity.search([
                ('record.scenario', '=', scenario.id)])
        RecordActivity.write([record_activity], {'state': 'done'})
        shortened, = ShortenedURL.create([{
                    'redirect_url': SHOP,
                    'record': str(record_activity),
                    'method': (
                        'marketing.automation.record.activity'
                        '|on_email_clicked'),
                    }])
        self.assertEqual(
            shortened.access(),
            SHOP + '?utm_campaign=spring&utm_medium=email')


del ModuleTestCase
