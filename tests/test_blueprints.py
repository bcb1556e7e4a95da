# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The blueprints create ready-made scenarios that run as they are

Each blueprint is created with the wizard as a marketing user who can read
sales, then run on real records: sales with lines and taxes of a company,
parties in English and in French.  The e-mails are read from their
archives (ir.email), which the sending writes in the transaction.  The
browser check renders them in headless Chromium at a desktop and a phone
width."""
import datetime as dt
import os
import shutil
import tempfile
import unittest
from decimal import Decimal

from trytond.modules.marketing_automation import blueprint, rendering
from trytond.modules.marketing_automation.exceptions import BlueprintError
from trytond.pool import Pool
from trytond.pyson import PYSONDecoder
from trytond.tests.test_tryton import DBTestCase, with_transaction
from trytond.transaction import Transaction, check_access

from .builders import create_party, enrol, marketing_user, process_due

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
# Where the browser check keeps its screenshots, else a temporary directory
SHOTS = os.environ.get('BLUEPRINT_SHOTS')
WIDTHS = {'desktop': 1024, 'phone': 375}
PRICES = [Decimal('45'), Decimal('12.50')]


class BlueprintTestCase(DBTestCase):
    "Test the blueprints"
    module = 'marketing_automation'
    extras = ['sale']

    def setup_shop(self):
        "Create the company, its tax, the products and the marketer"
        from trytond.modules.account.tests import create_chart
        from trytond.modules.company.tests import create_company, set_company
        pool = Pool()
        Tax = pool.get('account.tax')
        Uom = pool.get('product.uom')
        ModelData = pool.get('ir.model.data')
        User = pool.get('res.user')

        self.company = company = create_company(name="Storefront")
        unit, = Uom.search([('symbol', '=', 'u')])
        with set_company(company):
            create_chart(company, tax=True)
            self.tax, = Tax.search([('name', '=', '20% VAT')])
            teapot, mug = self.create_products(unit)
        self.products = [teapot.products[0], mug.products[0]]
        self.unit = unit
        self.marketer = marketing_user()
        User.write([self.marketer], {
                'groups': [('add', [ModelData.get_id('sale', 'group_sale')])],
                'companies': [('add', [company.id])],
                'company': company.id,
                })

    def create_products(self, unit):
        Template = Pool().get('product.template')
        return Template.create([{
                    'name': name,
                    'type': 'goods',
                    'salable': True,
                    'default_uom': unit.id,
                    'sale_uom': unit.id,
                    'list_price': price,
                    'products': [('create', [{}])],
                    } for name, price in zip(
                    ["Cast iron teapot", "Stoneware mug"], PRICES)])

    def create_customer(self, name, email, lang=None):
        "Create a customer with an e-mail and an address"
        Address = Pool().get('party.address')
        party = create_party(name, email, lang)
        Address.create([{
                    'party': party.id,
                    'street_unstructured': "12 Harbour Street",
                    'postal_code': "BS1 4RN",
                    'city': "Bristol",
                    }])
        return type(party)(party.id)

    def create_sale(self, party, state='draft', **values):
        "Create a sale of 2 teapots and a mug with the tax"
        Sale = Pool().get('sale.sale')
        address = party.addresses[0]
        sale, = Sale.create([{
                    'party': party.id,
                    'company': self.company.id,
                    'currency': self.company.currency.id,
                    'invoice_address': address.id,
                    'shipment_address': address.id,
                    'sale_date': dt.date.today(),
                    'lines': [('create', [{
                                    'type': 'line',
                                    'product': product.id,
                                    'quantity': quantity,
                                    'unit': self.unit.id,
                                    'unit_price': price,
                                    'taxes': [('add', [self.tax.id])],
                                    } for product, quantity, price in zip(
                                    self.products, [2, 1], PRICES)])],
                    **values,
                    }])
        if state != 'draft':
            # As the workflow leaves them, without the accounting
            Sale.write([sale], {'state': state})
        return sale

    def backdate(self, Model, records, **delta):
        "Move the creation of the records back in time"
        table = Model.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.update(
                [table.create_date, table.write_date],
                [dt.datetime.now() - dt.timedelta(**delta), None],
                where=table.id.in_([r.id for r in records])))

    def create_blueprint(self, key, **values):
        "Create the scenario of the blueprint as the marketer; return it"
        pool = Pool()
        Start = pool.get('marketing.automation.scenario.blueprint.start')
        Wizard = pool.get(
            'marketing.automation.scenario.blueprint', type='wizard')
        Scenario = pool.get('marketing.automation.scenario')
        with Transaction().set_user(self.marketer.id), \
                Transaction().set_context(company=self.company.id):
            defaults = Start.default_get(list(Start._fields))
            start = Start(**{
                    **defaults,
                    'blueprint': key,
                    'shop_url': 'https://shop.example.com/',
                    **values,
                    })
            scenario_id = Wizard.create_scenario(start)
        return Scenario(scenario_id)

    def sent_emails(self, scenario):
        "Return the archived e-mails of the scenario by recipient address"
        Email = Pool().get('ir.email')
        emails = Email.search([
                ('marketing_automation_record.scenario', '=', scenario.id),
                ])
        return {e.recipients: e for e in emails}

    def tree(self, scenario):
        "Return the activities of the scenario as nested tuples"
        def describe(activity):
            return (
                activity.name, activity.on, activity.delay,
                PYSONDecoder({'self': {'state': 'draft'}}).decode(
                    activity.condition) if activity.condition else None,
                activity.transactional,
                [describe(c) for c in activity.children])
        return [describe(a) for a in scenario.activities]

    @with_transaction()
    def test_blueprints_offered(self):
        "The sale blueprints are offered with sale, the shop is the company"
        pool = Pool()
        Start = pool.get('marketing.automation.scenario.blueprint.start')
        self.setup_shop()
        with Transaction().set_user(self.marketer.id), \
                Transaction().set_context(company=self.company.id):
            self.assertEqual([k for k, _ in Start.get_blueprints()], [
                    'abandoned_cart', 'new_order', 'welcome', 'win_back',
                    'post_purchase'])
            self.assertEqual(Start.default_shop_name(), "Storefront")
            self.assertEqual(Start.default_languages(), ['en', 'fr'])
        with Transaction().set_context(language='fr'):
            self.assertEqual(
                dict(Start.get_blueprints())['abandoned_cart'],
                "Panier abandonné")
        # Only the blueprints on parties for who cannot read sales
        with Transaction().set_user(marketing_user('nosale').id), \
                check_access():
            self.assertEqual(
                [k for k, _ in Start.get_blueprints()], ['welcome'])

    @with_transaction()
    def test_wizard_opens_scenario(self):
        "The wizard creates the draft scenario and opens its form"
        pool = Pool()
        Wizard = pool.get(
            'marketing.automation.scenario.blueprint', type='wizard')
        Scenario = pool.get('marketing.automation.scenario')
        self.setup_shop()
        with Transaction().set_user(self.marketer.id), \
                Transaction().set_context(company=self.company.id):
            session_id, _, _ = Wizard.create()
            result = Wizard.execute(session_id, {}, 'start')
            defaults = result['view']['defaults']
            self.assertEqual(defaults['shop_name'], "Storefront")
            result = Wizard.execute(session_id, {'start': {
                        **defaults,
                        'blueprint': 'welcome',
                        'shop_url': 'https://shop.example.com',
                        }}, 'create_')
            Wizard.delete(session_id)
        (action, data), = result['actions']
        self.assertEqual(action['res_model'], 'marketing.automation.scenario')
        self.assertEqual(action['views'][0][1], 'form')
        scenario, = Scenario.browse(data['res_id'])
        self.assertEqual(scenario.name, "Storefront Welcome")
        self.assertEqual(scenario.state, 'draft')

    @with_transaction()
    def test_parameters_checked(self):
        "A shop URL that is no web address or a missing parameter is refused"
        self.setup_shop()
        for values in [
                {'shop_url': 'javascript:alert(1)'},
                {'shop_url': 'shop.example.com'},
                {'languages': []},
                {'shop_name': ' '},
                {'blueprint': 'abandoned_cart', 'cart_idle': None},
                {'blueprint': 'abandoned_cart',
                    'reminder_delay': dt.timedelta()},
                {'blueprint': 'win_back', 'win_back_days': 0},
                {'blueprint': 'post_purchase', 'post_purchase_days': -1},
                ]:
            with self.subTest(values=values):
                with self.assertRaises(BlueprintError):
                    self.create_blueprint(
                        values.pop('blueprint', 'welcome'), **values)

    @with_transaction()
    def test_shop_name_is_literal(self):
        "The shop name is text in the templates, never an expression"
        self.setup_shop()
        scenario = self.create_blueprint(
            'welcome', shop_name="Tom & ${Jerry} <Shop>")
        self.assertEqual(scenario.name, "Tom & ${Jerry} <Shop> Welcome")
        activity, = scenario.activities
        self.assertIn("Tom &amp; $${Jerry} &lt;Shop&gt;",
            activity.email_template)
        party = self.create_customer("Ann", 'ann@example.com')
        enrol(scenario)
        process_due()
        email = self.sent_emails(scenario)['Ann <ann@example.com>']
        self.assertEqual(
            email.subject, "Welcome to Tom & ${Jerry} <Shop>, Ann!")
        self.assertIn("Tom &amp; ${Jerry} &lt;Shop&gt;", email.body)
        self.assertTrue(party)

    @with_transaction()
    def test_templates_valid(self):
        "Every template of every language compiles and links to the web"
        for key, build in blueprint.BLUEPRINTS.items():
            for language in blueprint.languages():
                for step in self.steps(build):
                    with self.subTest(key=key, step=step.key,
                            language=language):
                        rendering.check_title(blueprint.email_title(
                                step, language, "Shop"))
                        rendering.check_html(blueprint.email_template(
                                step, language, "Shop",
                                'https://shop.example.com', key))

    def steps(self, build):
        parameters = type('Parameters', (), {
                'cart_idle': dt.timedelta(hours=2),
                'reminder_delay': dt.timedelta(days=1),
                'win_back_days': 90,
                'post_purchase_days': 7,
                })
        todo = list(build(parameters).steps)
        while todo:
            step = todo.pop(0)
            todo.extend(step.children)
            yield step

    def test_campaign_url(self):
        "The campaign tags are added to the query of the shop URL"
        self.assertEqual(
            blueprint.campaign_url(
                'https://shop.example.com/fr/?a=1&utm_source=x#top',
                'welcome'),
            'https://shop.example.com/fr/?a=1&utm_source=email'
            '&utm_medium=email&utm_campaign=welcome#top')

    @with_transaction()
    def test_abandoned_cart(self):
        "The idle carts get the e-mail of their lines, in their language"
        pool = Pool()
        Sale = pool.get('sale.sale')
        Scenario = pool.get('marketing.automation.scenario')
        self.setup_shop()
        scenario = self.create_blueprint(
            'abandoned_cart', cart_idle=dt.timedelta(hours=3),
            reminder_delay=dt.timedelta(hours=20))
        self.assertEqual(scenario.name, "Storefront Abandoned Cart")
        self.assertEqual(scenario.model, 'sale.sale')
        self.assertEqual(scenario.state, 'draft')
        self.assertTrue(scenario.unsubscribable)
        still_cart = ['draft', 'quotation']
        self.assertEqual(self.tree(scenario), [
                ("Cart reminder", None, None, True, False, [
                        ("Second reminder (not opened)", 'email_opened_not',
                            dt.timedelta(hours=20), True, False, []),
                        ("Nudge (clicked, not ordered)", 'email_clicked',
                            dt.timedelta(hours=20), True, False, []),
                        ]),
                ])
        condition = scenario.activities[0].children[1].condition
        for state in ['draft', 'quotation', 'confirmed']:
            self.assertEqual(
                PYSONDecoder({'self': {'state': state}}).decode(condition),
                state in still_cart)
        with Transaction().set_context(language='fr'):
            french = Scenario(scenario.id)
            self.assertEqual(french.name, "Storefront Panier abandonné")
            self.assertEqual(
                french.activities[0].name, "Rappel du panier")

        ann = self.create_customer("Ann", 'ann@example.com')
        jean = self.create_customer("Jean", 'jean@example.fr', 'fr')
        nobody = self.create_customer("Nobody", None)
        idle = [self.create_sale(ann), self.create_sale(jean),
            self.create_sale(nobody)]
        fresh = self.create_sale(ann)
        forgotten = self.create_sale(jean)
        ordered = self.create_sale(ann, 'confirmed')
        self.backdate(Sale, idle + [ordered], hours=4)
        self.backdate(Sale, [forgotten], days=30)
        self.assertEqual(scenario.record_count, 2)

        records = enrol(scenario)
        self.assertEqual(
            sorted(r.record.id for r in records),
            sorted(s.id for s in idle[:2]))
        self.assertNotIn(fresh, [r.record for r in records])
        process_due()
        emails = self.sent_emails(scenario)
        self.assertEqual(sorted(emails), [
                'Ann <ann@example.com>', 'Jean <jean@example.fr>'])
        english = emails['Ann <ann@example.com>']
        self.assertEqual(
            english.subject, "Your cart at Storefront is waiting for you")
        for text in ["Cast iron teapot", "Stoneware mug", "Hello Ann,",
                "Complete my order", "Unsubscribe", 'lang="en"',
                "123.00", "utm_campaign"]:
            self.assertIn(text, english.body)
        self.assertNotIn("https://shop.example.com/?utm", english.body)
        french = emails['Jean <jean@example.fr>']
        self.assertEqual(
            french.subject, "Votre panier chez Storefront vous attend")
        for text in ["Bonjour Jean,", "Finaliser ma commande",
                "Se désabonner", 'lang="fr"', "Cast iron teapot"]:
            self.assertIn(text, french.body)

    @with_transaction()
    def test_new_order(self):
        "The confirmed orders get their transactional confirmation"
        self.setup_shop()
        scenario = self.create_blueprint('new_order', languages=['en'])
        self.assertEqual(scenario.name, "Storefront New Order Placed")
        self.assertFalse(scenario.unsubscribable)
        self.assertEqual(self.tree(scenario), [
                ("Order confirmation", None, None, None, True, [])])

        ann = self.create_customer("Ann", 'ann@example.com')
        jean = self.create_customer("Jean", 'jean@example.fr', 'fr')
        order = self.create_sale(ann, 'confirmed', number='SO-42')
        self.create_sale(jean, 'processing', number='SO-43')
        self.create_sale(ann)
        self.assertEqual(len(enrol(scenario)), 2)
        process_due()
        emails = self.sent_emails(scenario)
        english = emails['Ann <ann@example.com>']
        self.assertEqual(
            english.subject, "Your order SO-42 at Storefront is confirmed")
        for text in ["SO-42", "Cast iron teapot", "20% VAT", "Subtotal",
                "102.50", "20.50", "123.00", "Billing address",
                "Shipping address", "12 Harbour Street", "Bristol"]:
            self.assertIn(text, english.body)
        self.assertNotIn("unsubscribe", english.body.lower())
        self.assertTrue(order)
        # Only English was chosen: Jean reads it too
        self.assertIn("Thank you", emails['Jean <jean@example.fr>'].body)

    @with_transaction()
    def test_welcome(self):
        "The new parties with an e-mail are welcomed"
        Party = Pool().get('party.party')
        self.setup_shop()
        scenario = self.create_blueprint('welcome', shop_name="Storefront")
        self.assertEqual(self.tree(scenario), [
                ("Welcome e-mail", None, None, None, False, [])])
        ann = self.create_customer("Ann", 'ann@example.com')
        jean = self.create_customer("Jean", 'jean@example.fr', 'fr')
        old = self.create_customer("Old", 'old@example.com')
        self.create_customer("Nomail", None)
        self.backdate(Party, [old], days=30)
        records = enrol(scenario)
        self.assertEqual(
            sorted(r.record.id for r in records), sorted([ann.id, jean.id]))
        process_due()
        emails = self.sent_emails(scenario)
        self.assertEqual(emails['Ann <ann@example.com>'].subject,
            "Welcome to Storefront, Ann!")
        self.assertEqual(emails['Jean <jean@example.fr>'].subject,
            "Bienvenue chez Storefront, Jean !")

    @with_transaction()
    def test_win_back(self):
        "The customers without an order for the inactivity are won back"
        self.setup_shop()
        scenario = self.create_blueprint('win_back', win_back_days=60)
        self.assertEqual(scenario.name, "Storefront Win-back")
        ann = self.create_customer("Ann", 'ann@example.com')
        bob = self.create_customer("Bob", 'bob@example.com')
        self.create_customer("Carl", 'carl@example.com')
        dan = self.create_customer("Dan", 'dan@example.com')
        long_ago = dt.date.today() - dt.timedelta(days=90)
        self.create_sale(ann, 'done', sale_date=long_ago)
        self.create_sale(bob, 'done', sale_date=long_ago)
        self.create_sale(bob, 'confirmed')
        # A cart is no order
        self.create_sale(dan, sale_date=long_ago)
        records = enrol(scenario)
        self.assertEqual([r.record for r in records], [ann])
        process_due()
        email, = self.sent_emails(scenario).values()
        self.assertEqual(email.subject, "We miss you at Storefront")

    @with_transaction()
    def test_post_purchase(self):
        "The shipped orders get the follow-up after the delay"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        self.setup_shop()
        scenario = self.create_blueprint(
            'post_purchase', post_purchase_days=5)
        self.assertEqual(self.tree(scenario), [
                ("Follow-up after delivery", None, dt.timedelta(days=5),
                    None, False, [])])
        ann = self.create_customer("Ann", 'ann@example.com')
        shipped = self.create_sale(
            ann, 'processing', shipment_state='sent', number='SO-7')
        self.create_sale(ann, 'processing', shipment_state='waiting')
        records = enrol(scenario)
        self.assertEqual([r.record for r in records], [shipped])
        record_activity, = RecordActivity.search([
                ('record', 'in', [r.id for r in records])])
        self.assertGreater(
            record_activity.at, dt.datetime.now() + dt.timedelta(days=4))
        RecordActivity.write([record_activity], {'at': dt.datetime.now()})
        process_due()
        email, = self.sent_emails(scenario).values()
        self.assertEqual(email.subject, "How is your order SO-7?")
        self.assertIn("Share my opinion", email.body)

    @unittest.skipUnless(CHROMIUM and CHROMEDRIVER,
        "chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver)")
    def test_browser_layout(self):
        "The e-mails fit a desktop and a phone screen in Chromium"
        pages = self.render_samples()
        directory = SHOTS or tempfile.mkdtemp(prefix='blueprint-shots-')
        os.makedirs(directory, exist_ok=True)
        overflows = check_layout(pages, directory)
        self.assertEqual(overflows, [])

    @with_transaction()
    def render_samples(self):
        "Return the HTML of the first e-mail of each blueprint by name"
        Sale = Pool().get('sale.sale')
        self.setup_shop()
        ann = self.create_customer(
            "Annabelle Featherstonehaugh-Wolfeschlegel", 'ann@example.com')
        jean = self.create_customer("Jean", 'jean@example.fr', 'fr')
        for party in [ann, jean]:
            cart = self.create_sale(party)
            self.backdate(Sale, [cart], hours=3)
            self.create_sale(party, 'processing', shipment_state='sent',
                number='SO-%s' % party.id)
        # Customers who have not ordered for long, to be won back
        long_ago = dt.date.today() - dt.timedelta(days=200)
        for name, address, lang in [
                ("Ann Old", 'ann.old@example.com', None),
                ("Jean Ancien", 'jean.old@example.fr', 'fr')]:
            party = self.create_customer(name, address, lang)
            self.create_sale(party, 'done', sale_date=long_ago)
        pages = {}
        for key in blueprint.BLUEPRINTS:
            scenario = self.create_blueprint(key, post_purchase_days=0)
            enrol(scenario)
            process_due()
            emails = self.sent_emails(scenario)
            for address, language in [('ann', 'en'), ('jean', 'fr')]:
                if key == 'win_back':
                    address += '.old'
                email, = [e for a, e in emails.items()
                    if '<%s@' % address in a]
                pages['%s.%s' % (key, language)] = email.body
        return pages


def check_layout(pages, directory):
    """Screenshot the pages at each width in directory; return the
    overflows found"""
    from selenium import webdriver
    os.environ.setdefault('SE_OFFLINE', 'true')
    profile = tempfile.mkdtemp(prefix='chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
            '--headless', '--no-sandbox', '--disable-gpu',
            '--hide-scrollbars', '--no-first-run',
            '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--user-data-dir=%s' % profile,
            ]:
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    overflows = []
    try:
        for name, html in sorted(pages.items()):
            path = os.path.join(directory, name + '.html')
            with open(path, 'w', encoding='utf-8') as file:
                file.write(html)
            for device, width in WIDTHS.items():
                # The size of the viewport, whatever the window decorations
                driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
                        'width': width, 'height': 900,
                        'deviceScaleFactor': 1, 'mobile': False,
                        })
                driver.get('file://' + path)
                wide = driver.execute_script(OVERFLOW_SCRIPT)
                if wide:
                    overflows.append((name, device, wide))
                height = driver.execute_script(
                    'return document.documentElement.scrollHeight')
                driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
                        'width': width, 'height': height,
                        'deviceScaleFactor': 1, 'mobile': False,
                        })
                driver.save_screenshot(
                    os.path.join(directory, '%s.%s.png' % (name, device)))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return overflows


# The page and each element must fit in the viewport's width
OVERFLOW_SCRIPT = '''
const width = window.innerWidth;
const wide = [];
if (document.documentElement.scrollWidth > width) {
    wide.push('page: ' + document.documentElement.scrollWidth);
}
for (const element of document.body.querySelectorAll('*')) {
    const box = element.getBoundingClientRect();
    if (box.width && (box.right > width + 0.5 || box.left < -0.5)) {
        wide.push(element.tagName + ' ' + Math.round(box.left) + '-'
            + Math.round(box.right));
    }
}
return wide.slice(0, 10);
'''
