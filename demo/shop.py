# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The sample shop: a coffee roaster selling online in English and French

Everything is created through proteus, with the access rights of the
admin user: the company with its wizard, the products as records, and
the customers and sales in bulk with the models' ``create`` (what the
client sends when a form is saved), which is much faster than setting
field after field.  Only the history is written in SQL: to look like a
shop that has been open for a while, some customers registered long ago
and some carts were left hours ago (``backdate``).
"""
import datetime as dt
import random
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal

from proteus import Model

from trytond.modules.company.tests.tools import create_company, get_company
from trytond.pool import Pool
from trytond.transaction import Transaction

SHOP_NAME = 'Blue Heron Coffee'
SHOP_SITE = 'https://blueheron.example.com'
CURRENCY = 'EUR'

# (English name, French name, list price)
PRODUCTS = [
    ("Ethiopia Yirgacheffe beans 250 g",
        "Café en grains Éthiopie Yirgacheffe 250 g", '12.50'),
    ("Colombia Huila beans 250 g",
        "Café en grains Colombie Huila 250 g", '11.00'),
    ("House espresso blend 1 kg",
        "Mélange espresso maison 1 kg", '34.00'),
    ("Hand grinder", "Moulin à café manuel", '49.00'),
    ("Pour-over dripper", "Dripper pour café filtre", '24.00'),
    ("Stoneware mug", "Mug en grès", '14.00'),
    ("Paper filters (100)", "Filtres en papier (100)", '5.50'),
    ]

ENGLISH_NAMES = [
    "Alice Walker", "Ben Carter", "Chloe Bennett", "Daniel Hughes",
    "Emily Foster", "Frank Morgan", "Grace Turner", "Henry Collins",
    "Isla Murphy", "Jack Reynolds", "Kate Russell", "Liam Parker",
    "Mia Chapman", "Noah Fletcher", "Olivia Grant", "Peter Lawson",
    "Quinn Harper", "Ruby Sutton", "Samuel Price", "Tessa Howard",
    "Umar Patel", "Victoria Shaw", "William Boyd", "Yasmin Clarke",
    "Zoe Dawson", "Adam Kerr", "Bella Knight", "Connor Webb",
    "Daisy Holmes", "Ethan Stone",
    ]
FRENCH_NAMES = [
    "Amélie Durand", "Bastien Lefèvre", "Camille Moreau", "Damien Girard",
    "Élodie Fournier", "François Lambert", "Gaëlle Rousseau",
    "Hugo Mercier", "Inès Bonnet", "Julien Faure", "Léa Chevalier",
    "Mathis Garnier", "Noémie Perrin", "Olivier Roux", "Pauline Marchand",
    "Quentin Blanc", "Rose Gauthier", "Sébastien Leroy", "Théo Masson",
    "Zoé Lemaire",
    ]


@dataclass
class Shop:
    "What was loaded, for the next steps of the demo"
    name: str
    company: int
    products: list = field(default_factory=list)
    customers: list = field(default_factory=list)
    new_customers: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    carts: list = field(default_factory=list)
    idle_carts: list = field(default_factory=list)


def email_address(name, domain):
    "Return the e-mail address of a person: first.last@domain in ASCII"
    ascii_name = (unicodedata.normalize('NFKD', name)
        .encode('ascii', 'ignore').decode('ascii'))
    return '%s@%s' % ('.'.join(ascii_name.lower().split()), domain)


def backdate(database_name, model, ids, when):
    """Pretend that the records were created (and last modified) at when

    when is a naive UTC datetime or a function of the id returning one."""
    with Transaction().start(database_name, 0) as transaction:
        Model = Pool().get(model)
        table = Model.__table__()
        cursor = transaction.connection.cursor()
        for id_ in ids:
            date = when(id_) if callable(when) else when
            cursor.execute(*table.update(
                    [table.create_date, table.write_date], [date, date],
                    where=table.id == id_))
        transaction.commit()


def create_products(config):
    Uom = Model.get('product.uom', config=config)
    Template = Model.get('product.template', config=config)
    unit, = Uom.find([('name', '=', "Unit")])
    templates = []
    for name, _, price in PRODUCTS:
        template = Template(name=name)
        template.default_uom = unit
        template.type = 'goods'
        template.salable = True
        template.list_price = Decimal(price)
        templates.append(template)
    Template.save(templates)
    with config.set_context(language='fr'):
        translated = Template.find([('id', 'in', [t.id for t in templates])])
        french = {english: french for english, french, _ in PRODUCTS}
        for template in translated:
            template.name = french[template.name]
        Template.save(translated)
    # What a sale line needs: (product id, unit id, unit price)
    return [
        (t.products[0].id, unit.id, t.list_price) for t in templates]


def languages(config):
    "Return {code: id} of the languages of the customers"
    Lang = Model.get('ir.lang', config=config)
    return {l.code: l.id for l in Lang.find([('code', 'in', ['en', 'fr'])])}


def customer_values(name, language, lang_id, email_domain, city, number):
    "Return the values to create a customer speaking the language"
    if language == 'fr':
        street = '%s rue des Cafés' % number
    else:
        street = '%s Harbour Street' % number
    return {
        'name': name,
        'lang': lang_id,
        'addresses': [('create', [{'street': street, 'city': city}])],
        'contact_mechanisms': [('create', [{
                            'type': 'email',
                            'value': email_address(name, email_domain),
                            }])],
        }


def create(config, model, vlist, **context):
    """Create the records from values through the model's RPC

    It is what the client sends once a form is filled in; setting each
    field of a proteus record would run its on_change calls one by one."""
    Model_ = Model.get(model, config=config)
    return Model_._proxy.create(vlist, {**config.context, **context})


def create_customers(config, vlist):
    """Create the customers with a language valid for every company

    The language of a party depends on the company in the context (it is
    stored per company); the crons of marketing_automation run without
    company, where a language set for the company is not seen, so the
    customers are created without company."""
    return create(config, 'party.party', vlist, company=None)


def sale_values(config, customer_id, products, rng):
    "Return the values of a draft sale of one to three products"
    Party = Model.get('party.party', config=config)
    customer = Party(customer_id)
    address = customer.addresses[0]
    lines = []
    for product, unit, price in rng.sample(products, rng.randint(1, 3)):
        lines.append({
                'type': 'line',
                'product': product,
                'quantity': rng.choice([1, 1, 1, 2, 3]),
                'unit': unit,
                'unit_price': price,
                })
    return {
        'party': customer.id,
        'invoice_address': address.id,
        'shipment_address': address.id,
        # Invoices and shipments are out of the demo's scope
        'invoice_method': 'manual',
        'shipment_method': 'manual',
        'lines': [('create', lines)],
        }


def confirm(config, sale_ids):
    Sale = Model.get('sale.sale', config=config)
    sales = Sale.find([('id', 'in', sale_ids)])
    Sale.click(sales, 'quote')
    Sale.click(sales, 'confirm')


def number_sales(config, prefix='BH-'):
    "Give the sales numbers like BH-00001"
    Configuration = Model.get('sale.configuration', config=config)
    sequence = Configuration(1).sale_sequence
    sequence.prefix = prefix
    sequence.padding = 5
    sequence.save()


def load_shop(config, name=SHOP_NAME, seed=42):
    """Create the company, products, customers, orders and carts

    - 50 customers (30 in English, 20 in French) with an e-mail address;
      36 registered during the last week, 14 a year or more ago;
    - 14 orders placed today (confirmed sales);
    - 12 draft sales: 10 carts left between 2 and 6 hours ago and 2 carts
      of customers shopping right now."""
    rng = random.Random(seed)
    database_name = config.database_name
    Party = Model.get('party.party', config=config)

    company_party = Party(name=name)
    company_party.save()
    create_company(company_party, CURRENCY, config=config)
    company = get_company(config=config)
    number_sales(config)

    products = create_products(config)

    lang_ids = languages(config)
    vlist = []
    for index, customer_name in enumerate(ENGLISH_NAMES):
        vlist.append(customer_values(
                customer_name, 'en', lang_ids['en'], 'example.com',
                ['Bristol', 'Leeds', 'York'][index % 3], index + 1))
    for index, customer_name in enumerate(FRENCH_NAMES):
        vlist.append(customer_values(
                customer_name, 'fr', lang_ids['fr'], 'example.fr',
                ['Lyon', 'Nantes', 'Lille'][index % 3], index + 1))
    customers = create_customers(config, vlist)

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    order = list(customers)
    rng.shuffle(order)
    old, new = sorted(order[:14]), sorted(order[14:])
    backdate(database_name, 'party.party', old,
        lambda id_: now - dt.timedelta(days=400 + 7 * (id_ % 50)))
    backdate(database_name, 'party.party', new,
        lambda id_: now - dt.timedelta(hours=3 + 11 * (id_ % 13)))

    buyers = rng.sample(customers, 26)
    sales = create(config, 'sale.sale', [
            sale_values(config, c, products, rng) for c in buyers])
    orders, idle, fresh = sales[:14], sales[14:24], sales[24:]
    confirm(config, orders)
    backdate(database_name, 'sale.sale', idle,
        lambda id_: now - dt.timedelta(minutes=120 + 25 * (id_ % 10)))

    return Shop(
        name=name, company=company.id, products=products,
        customers=customers, new_customers=new, orders=orders,
        carts=idle + fresh, idle_carts=idle)


def sign_up_and_order(config, shop, seed=7):
    "A new customer registers and places an order; return the sale id"
    rng = random.Random(seed)
    customer, = create_customers(config, [customer_values(
                "Nora Whitfield", 'en', languages(config)['en'],
                'example.com', 'Bath', 7)])
    sale, = create(config, 'sale.sale', [
            sale_values(config, customer, shop.products, rng)])
    confirm(config, [sale])
    shop.customers.append(customer)
    shop.new_customers.append(customer)
    shop.orders.append(sale)
    return sale


def order_after_click(config, shop, customer_ids, seed=11):
    "The customers order after clicking an e-mail; return the sale ids"
    rng = random.Random(seed)
    sales = create(config, 'sale.sale', [
            sale_values(config, c, shop.products, rng)
            for c in customer_ids])
    if sales:
        confirm(config, sales)
    shop.orders.extend(sales)
    return sales


def complete_cart(config, sale_id):
    "The customer comes back and orders what is in the cart"
    confirm(config, [sale_id])
