# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Three ready-made scenarios of an online shop, in English and French

Each scenario is named after the shop and the template ("<Shop> Welcome"),
and its e-mails are built from the files of ``templates/``: a common layout
around a body per language, where ``@SHOP@``, ``@SITE@``, ``@CAMPAIGN@``,
``@LINES@`` and ``@FOOTER@`` are filled in when the scenario is created;
``${...}`` and ``py:`` attributes are left to Genshi when each e-mail is
sent.  The English text is the value of the fields, the French one their
translation (written with the context language ``fr``).
"""
import datetime as dt
import os
from dataclasses import dataclass, field

from proteus import Model

from trytond.pyson import Date, DateTime, Eval, PYSONEncoder

TEMPLATES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'templates')
LANGUAGES = ('en', 'fr')


@dataclass
class ActivitySpec:
    key: str
    names: dict
    titles: dict
    body: str
    on: str = None
    delay: dt.timedelta = None
    condition: object = None
    # An e-mail the customer asked for: it ignores the marketing opt-outs
    transactional: bool = False
    # A variant of an A/B split with its siblings of the same weight field
    variant_weight: int = None
    children: list = field(default_factory=list)


@dataclass
class ScenarioSpec:
    key: str
    names: dict
    model: str
    domain: list
    activities: list
    unsubscribable: bool = True
    # The conversion goal: {field: value} of the scenario
    goal: dict = field(default_factory=dict)


def _idle_for(delta_hours):
    "Domain of the records untouched for the number of hours"
    limit = DateTime(delta_hours=-delta_hours)
    return ['OR',
        [('write_date', '=', None), ('create_date', '<=', limit)],
        [('write_date', '<=', limit)],
        ]


def specifications():
    "Return the scenarios to create, in order"
    welcome = ScenarioSpec(
        key='welcome',
        names={'en': "Welcome", 'fr': "Bienvenue"},
        model='party.party',
        # The parties registered during the last week with an e-mail
        domain=[
            ('create_date', '>=', DateTime(delta_days=-7)),
            ('contact_mechanisms.type', '=', 'email'),
            ],
        activities=[
            ActivitySpec(
                key='welcome',
                names={
                    'en': "Welcome e-mail A",
                    'fr': "E-mail de bienvenue A",
                    },
                titles={
                    'en': "Welcome to @SHOP@, ${record.name.split()[0]}!",
                    'fr': "Bienvenue chez @SHOP@, "
                    "${record.name.split()[0]} !",
                    },
                body='welcome',
                # Variant A of an A/B split: each new customer gets either
                # this e-mail or variant B, half and half
                variant_weight=1),
            ActivitySpec(
                key='welcome_b',
                names={
                    'en': "Welcome e-mail B",
                    'fr': "E-mail de bienvenue B",
                    },
                # Variant B: the same e-mail with a shorter, more personal
                # subject
                titles={
                    'en': "${record.name.split()[0]}, your coffees "
                    "are waiting",
                    'fr': "${record.name.split()[0]}, vos cafés vous "
                    "attendent",
                    },
                body='welcome',
                variant_weight=1),
            ],
        # A first order within a week of a click on the welcome e-mail
        goal={
            'goal': 'sale',
            'goal_state': 'confirmed',
            'attribution': 'click',
            'goal_window': dt.timedelta(days=7),
            })
    cart = ScenarioSpec(
        key='cart',
        names={'en': "Abandoned Cart", 'fr': "Panier abandonné"},
        model='sale.sale',
        # Draft sales with products that nobody touched for an hour
        domain=[
            ('state', '=', 'draft'),
            ('lines.product', '!=', None),
            _idle_for(1),
            ],
        activities=[
            ActivitySpec(
                key='cart',
                names={'en': "Cart reminder", 'fr': "Rappel du panier"},
                titles={
                    'en': "${record.party.name.split()[0]}, "
                    "your cart is waiting for you",
                    'fr': "${record.party.name.split()[0]}, "
                    "votre panier vous attend",
                    },
                body='cart',
                children=[
                    ActivitySpec(
                        key='cart_reminder',
                        names={
                            'en': "Second reminder",
                            'fr': "Deuxième rappel",
                            },
                        titles={
                            'en': "Still thinking it over? "
                            "Your cart is saved",
                            'fr': "Vous hésitez encore ? "
                            "Votre panier est gardé",
                            },
                        body='cart_reminder',
                        on='email_opened_not',
                        delay=dt.timedelta(days=1),
                        # Not to those who ordered in the meantime
                        condition=Eval('self.state') == 'draft'),
                    ActivitySpec(
                        key='cart_offer',
                        names={
                            'en': "Discount offer",
                            'fr': "Offre de réduction",
                            },
                        titles={
                            'en': "10% off to complete your order",
                            'fr': "-10 % pour finaliser votre commande",
                            },
                        body='cart_offer',
                        on='email_clicked',
                        delay=dt.timedelta(hours=2),
                        condition=Eval('self.state') == 'draft'),
                    ]),
            ],
        # The cart itself ordered within a week of a reminder
        goal={
            'goal': 'sale',
            'goal_state': 'confirmed',
            'attribution': 'send',
            'goal_window': dt.timedelta(days=7),
            'goal_enrolled_sale': True,
            })
    order = ScenarioSpec(
        key='order',
        names={'en': "New Order Placed", 'fr': "Nouvelle commande"},
        model='sale.sale',
        # The sales confirmed during the last two days
        domain=[
            ('state', 'in', ['confirmed', 'processing', 'done']),
            ('sale_date', '>=', Date(delta_days=-2)),
            ],
        unsubscribable=False,
        activities=[
            ActivitySpec(
                key='order',
                names={
                    'en': "Order confirmation",
                    'fr': "Confirmation de commande",
                    },
                titles={
                    'en': "Thank you! Order ${record.number} is confirmed",
                    'fr': "Merci ! Votre commande ${record.number} "
                    "est confirmée",
                    },
                body='order',
                transactional=True),
            ])
    return [welcome, cart, order]


def _read(name):
    with open(os.path.join(TEMPLATES, name), encoding='utf-8') as fp:
        return fp.read()


def _fill(text, values):
    for key, value in values.items():
        text = text.replace('@%s@' % key, value)
    return text


def email_template(body, language, shop_name, site, campaign):
    "Return the Genshi template of the body in the language"
    values = {
        'SHOP': shop_name,
        'SITE': site,
        'CAMPAIGN': campaign,
        'LANG': language,
        }
    filled = {
        'LINES': _fill(_read('lines.%s.html' % language), values),
        'FOOTER': _fill(_read('footer.%s.html' % language), values),
        'BODY': _read('%s.%s.html' % (body, language)),
        }
    # The body may use @LINES@ and the common values
    filled['BODY'] = _fill(_fill(filled['BODY'], filled), values)
    return _fill(_fill(_read('layout.html'), filled), values)


def _activity_values(spec, language, shop_name, site, campaign):
    return {
        'name': spec.names[language],
        'email_title': spec.titles[language].replace('@SHOP@', shop_name),
        'email_template': email_template(
            spec.body, language, shop_name, site, campaign),
        }


def create_scenarios(config, shop_name, site, run=True):
    """Create the scenarios, translate them in French and run them

    Return {key: scenario id} and {key: activity id}."""
    Scenario = Model.get('marketing.automation.scenario', config=config)
    Activity = Model.get('marketing.automation.activity', config=config)
    encoder = PYSONEncoder()
    scenario_ids, activity_ids = {}, {}

    def create_activities(parent, specs, campaign):
        for spec in specs:
            activity = Activity(parent=parent)
            for name, value in _activity_values(
                    spec, 'en', shop_name, site, campaign).items():
                setattr(activity, name, value)
            activity.action = 'send_email'
            activity.transactional = spec.transactional
            if spec.on:
                activity.on = spec.on
            if spec.delay is not None:
                activity.delay = spec.delay
            if spec.variant_weight is not None:
                activity.variant_weight = spec.variant_weight
            if spec.condition is not None:
                activity.condition = encoder.encode(spec.condition)
            activity.save()
            activity_ids[spec.key] = activity.id
            create_activities(activity, spec.children, campaign)

    specs = specifications()
    for spec in specs:
        scenario = Scenario(name='%s %s' % (shop_name, spec.names['en']))
        scenario.model = spec.model
        scenario.domain = encoder.encode(spec.domain)
        scenario.unsubscribable = spec.unsubscribable
        for name, value in spec.goal.items():
            setattr(scenario, name, value)
        scenario.save()
        scenario_ids[spec.key] = scenario.id
        create_activities(scenario, spec.activities, spec.key)

    # The French translation of the translatable fields
    with config.set_context(language='fr'):
        for spec in specs:
            scenario = Scenario(scenario_ids[spec.key])
            scenario.name = '%s %s' % (shop_name, spec.names['fr'])
            scenario.save()
            todo = list(spec.activities)
            while todo:
                activity_spec = todo.pop(0)
                todo.extend(activity_spec.children)
                activity = Activity(activity_ids[activity_spec.key])
                for name, value in _activity_values(
                        activity_spec, 'fr', shop_name, site,
                        spec.key).items():
                    setattr(activity, name, value)
                activity.save()

    if run:
        Scenario.click(
            [Scenario(i) for i in scenario_ids.values()], 'run')
    return scenario_ids, activity_ids
