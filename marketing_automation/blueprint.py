# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Ready-made scenarios of an online shop, created as drafts by a wizard

A blueprint is a model, a domain and a tree of e-mail activities whose
templates are assembled from the files of ``blueprints/``: a common
``layout.html`` around a body per language (``<key>.<lang>.html``), where
``@SHOP@``, ``@SITE@``, ``@LINES@``, ``@ADDRESSES@``, ``@BUTTON(label)@``,
``@L:label@``... are filled in when the scenario is created, and ``${...}``
and ``py:`` attributes are left to Genshi for each e-mail.  The names and
titles of each language are in ``<lang>.json``: adding a language is adding
its files.

The text of the database's language (or the first chosen) is the value of
the translatable fields, the others their translations, so that each
recipient gets the e-mail in the language of the party as any scenario.
"""
import datetime as dt
import functools
import json
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from genshi.core import escape

from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.model.exceptions import AccessError
from trytond.pool import Pool
from trytond.pyson import Date, DateTime, Eval, In, PYSONEncoder
from trytond.transaction import Transaction
from trytond.wizard import (
    Button, StateAction, StateTransition, StateView, Wizard)

from . import links
from .exceptions import BlueprintError

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)),
    'blueprints')
CART_STATES = ['draft', 'quotation']
ORDER_STATES = ['confirmed', 'processing', 'done']
# The carts idle for longer than that are not reminded any more
CART_MAX_AGE = dt.timedelta(days=7)
# How recent a confirmed sale must be to get its confirmation
ORDER_MAX_AGE_DAYS = 2
# How recent a new party must be to be welcomed
WELCOME_MAX_AGE_DAYS = 2
# The delivered orders older than the delay plus this are not followed up
POST_PURCHASE_WINDOW_DAYS = 30


@dataclass
class Step:
    "An e-mail activity of a blueprint, its body and texts named by key"
    key: str
    on: str = None
    delay: dt.timedelta = None
    condition: object = None
    transactional: bool = False
    footer: str = 'footer'
    children: list = field(default_factory=list)


@dataclass
class Blueprint:
    "A ready-made scenario: its model, domain and activities"
    key: str
    model: str
    domain: list
    steps: list
    unsubscribable: bool = True


def _seconds(delta):
    return int(delta.total_seconds())


def _idle(delay):
    "Domain of the sales untouched for delay but not for too long"
    limit = DateTime(delta_seconds=-_seconds(delay))
    oldest = DateTime(delta_seconds=-_seconds(delay + CART_MAX_AGE))
    return ['OR',
        [('write_date', '=', None),
            ('create_date', '<=', limit), ('create_date', '>=', oldest)],
        [('write_date', '<=', limit), ('write_date', '>=', oldest)],
        ]


def abandoned_cart(parameters):
    still_cart = In(Eval('self.state', ''), CART_STATES)
    return Blueprint(
        key='abandoned_cart',
        model='sale.sale',
        domain=[
            ('state', 'in', CART_STATES),
            _idle(parameters.cart_idle),
            ('lines.product', '!=', None),
            ('party.contact_mechanisms.type', '=', 'email'),
            ],
        steps=[
            Step('cart', condition=still_cart, children=[
                    Step('cart_reminder', on='email_opened_not',
                        delay=parameters.reminder_delay,
                        condition=still_cart),
                    Step('cart_nudge', on='email_clicked',
                        delay=parameters.reminder_delay,
                        condition=still_cart),
                    ]),
            ])


def new_order(parameters):
    return Blueprint(
        key='new_order',
        model='sale.sale',
        domain=[
            ('state', 'in', ORDER_STATES),
            ('sale_date', '>=', Date(delta_days=-ORDER_MAX_AGE_DAYS)),
            ],
        steps=[
            Step('order', transactional=True, footer='footer_order'),
            ],
        unsubscribable=False)


def welcome(parameters):
    return Blueprint(
        key='welcome',
        model='party.party',
        domain=[
            ('create_date', '>=', DateTime(delta_days=-WELCOME_MAX_AGE_DAYS)),
            ('contact_mechanisms.type', '=', 'email'),
            ],
        steps=[Step('welcome')])


def win_back(parameters):
    return Blueprint(
        key='win_back',
        model='party.party',
        domain=[
            # Customers, with no order since the inactivity
            ('marketing_sales', 'where', [('state', 'in', ORDER_STATES)]),
            ('marketing_sales', 'not where', [
                    ('state', 'in', ORDER_STATES),
                    ('sale_date', '>=',
                        Date(delta_days=-parameters.win_back_days)),
                    ]),
            ('contact_mechanisms.type', '=', 'email'),
            ],
        steps=[Step('win_back')])


def post_purchase(parameters):
    return Blueprint(
        key='post_purchase',
        model='sale.sale',
        domain=[
            # Enrolled when shipped, followed up after the delay
            ('state', 'in', ['processing', 'done']),
            ('shipment_state', '=', 'sent'),
            ('sale_date', '>=', Date(delta_days=-(
                        parameters.post_purchase_days
                        + POST_PURCHASE_WINDOW_DAYS))),
            ],
        steps=[
            Step('post_purchase',
                delay=dt.timedelta(days=parameters.post_purchase_days)),
            ])


BLUEPRINTS = {
    'abandoned_cart': abandoned_cart,
    'new_order': new_order,
    'welcome': welcome,
    'win_back': win_back,
    'post_purchase': post_purchase,
    }
# The parameters each blueprint needs, with their minimum: a delay must be
# more than nothing, a number of days at least the value
PARAMETERS = {
    'abandoned_cart': [
        ('cart_idle', dt.timedelta()), ('reminder_delay', dt.timedelta())],
    'win_back': [('win_back_days', 1)],
    'post_purchase': [('post_purchase_days', 0)],
    }
# The models each blueprint needs besides party
REQUIRES = {
    'abandoned_cart': {'sale.sale'},
    'new_order': {'sale.sale'},
    'welcome': set(),
    'win_back': {'sale.sale'},
    'post_purchase': {'sale.sale'},
    }


def _read(name):
    with open(os.path.join(DIRECTORY, name), encoding='utf-8') as file:
        return file.read()


@functools.lru_cache(maxsize=None)
def texts(language):
    "Return the names, titles and labels of the language"
    return json.loads(_read('%s.json' % language))


@functools.lru_cache(maxsize=None)
def languages():
    "Return the codes of the languages the blueprints are written in"
    return sorted(name[:-len('.json')] for name in os.listdir(DIRECTORY)
        if name.endswith('.json'))


def _literal(value):
    "Return value as a literal of Genshi templates: no expression in it"
    return value.replace('$', '$$')


def campaign_url(url, campaign):
    "Return the URL with the tags of the e-mail campaign in its query"
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in {'utm_source', 'utm_medium', 'utm_campaign'}]
    query += [
        ('utm_source', 'email'),
        ('utm_medium', 'email'),
        ('utm_campaign', campaign),
        ]
    return urlunsplit(parts._replace(query=urlencode(query)))


_BUTTON = re.compile(r'@BUTTON\((.*?)\)@')
_LABEL = re.compile(r'@L:(\w+)@')


def _fill(text, values):
    for key, value in values.items():
        text = text.replace('@%s@' % key, value)
    return text


def email_template(step, language, shop_name, site, campaign):
    "Return the Genshi template of the step's e-mail in the language"
    labels = texts(language)['labels']
    activity = texts(language)['activities'][step.key]
    html = functools.partial(escape, quotes=True)
    values = {
        'SHOP': _literal(html(shop_name)),
        'SITE': _literal(html(site)),
        'LANG': language,
        'PREHEADER': _literal(html(activity.get('preheader', ''))),
        }
    button = _read('button.html')
    href = _literal(html(campaign_url(site, campaign)))

    def fill(text):
        text = _BUTTON.sub(
            lambda m: _fill(button, {'HREF': href, 'LABEL': m.group(1)}),
            text)
        text = _LABEL.sub(lambda m: html(labels[m.group(1)]), text)
        return _fill(text, values)
    body = _read('%s.%s.html' % (step.key, language))
    body = _fill(body, {
            'LINES': _read('lines.html').replace(
                '@TAXES@', str(step.transactional)),
            'ADDRESSES': _read('addresses.html'),
            })
    return fill(_fill(_read('layout.html'), {
                'BODY': body,
                'FOOTER': _read('%s.%s.html' % (step.footer, language)),
                }))


def email_title(step, language, shop_name):
    "Return the Genshi text template of the step's subject in the language"
    title = texts(language)['activities'][step.key]['title']
    return title.replace('@SHOP@', _literal(shop_name))


def blueprint_name(key, language):
    return texts(language)['blueprints'][key]


def _can_read(name):
    "Tell if the model is activated and the user may read it"
    pool = Pool()
    ModelAccess = pool.get('ir.model.access')
    try:
        pool.get(name)
    except KeyError:
        return False
    transaction = Transaction()
    # As the scenario's models: its domain will be checked with the rights
    # of the user, with a clearer message
    if transaction.user and transaction.check_access:
        return ModelAccess.check(name, 'read', raise_exception=False)
    return True


class CreateBlueprintStart(ModelView):
    __name__ = 'marketing.automation.scenario.blueprint.start'
    __string__ = "Create Scenario from Blueprint"

    blueprint = fields.Selection('get_blueprints', "Blueprint", required=True,
        sort=False,
        help="The ready-made scenario to create.")
    shop_name = fields.Char("Shop Name", required=True,
        help="The name of the shop: it starts the name of the scenario and "
        "signs the e-mails.")
    shop_url = fields.Char("Shop URL", required=True,
        help="The address of the shop's website, where the links of the "
        "e-mails lead (with campaign tags).")
    languages = fields.MultiSelection('get_languages', "Languages",
        required=True,
        help="The languages the e-mails are written in; each recipient "
        "gets the language of the party, or the first of these.")
    cart_idle = fields.TimeDelta("Cart Idle Time",
        domain=['OR', ('cart_idle', '=', None),
            ('cart_idle', '>', dt.timedelta())],
        states={
            'invisible': Eval('blueprint') != 'abandoned_cart',
            'required': Eval('blueprint') == 'abandoned_cart',
            },
        help="How long a cart must be left untouched to be reminded.")
    reminder_delay = fields.TimeDelta("Reminder Delay",
        domain=['OR', ('reminder_delay', '=', None),
            ('reminder_delay', '>', dt.timedelta())],
        states={
            'invisible': Eval('blueprint') != 'abandoned_cart',
            'required': Eval('blueprint') == 'abandoned_cart',
            },
        help="How long to wait after the first e-mail before the reminder "
        "(not opened) or the nudge (clicked but not ordered).")
    win_back_days = fields.Integer("Inactivity Days",
        domain=['OR', ('win_back_days', '=', None),
            ('win_back_days', '>', 0)],
        states={
            'invisible': Eval('blueprint') != 'win_back',
            'required': Eval('blueprint') == 'win_back',
            },
        help="The number of days without any order after which a customer "
        "is won back.")
    post_purchase_days = fields.Integer("Days After Delivery",
        domain=['OR', ('post_purchase_days', '=', None),
            ('post_purchase_days', '>=', 0)],
        states={
            'invisible': Eval('blueprint') != 'post_purchase',
            'required': Eval('blueprint') == 'post_purchase',
            },
        help="The number of days after the shipment of the order to ask "
        "the customer's opinion.")

    @classmethod
    def get_blueprints(cls):
        language = cls._text_language()
        return [(key, blueprint_name(key, language))
            for key in BLUEPRINTS if all(map(_can_read, REQUIRES[key]))]

    @classmethod
    def get_languages(cls):
        Lang = Pool().get('ir.lang')
        langs = Lang.search(
            [('code', 'in', languages())], order=[('code', 'ASC')])
        return [(lang.code, lang.name) for lang in langs]

    @classmethod
    def _text_language(cls):
        "Return the language of the blueprints' names for the user"
        language = Transaction().language
        return language if language in languages() else 'en'

    @classmethod
    def default_blueprint(cls):
        blueprints = cls.get_blueprints()
        return blueprints[0][0] if blueprints else None

    @classmethod
    def default_shop_name(cls):
        pool = Pool()
        try:
            Company = pool.get('company.company')
        except KeyError:
            return None
        company_id = Transaction().context.get('company')
        try:
            if company_id is not None and company_id >= 0:
                company = Company(company_id)
            else:
                company = next(iter(Company.search([], limit=1)), None)
            return company.rec_name if company else None
        except AccessError:
            return None

    @classmethod
    def default_languages(cls):
        return [code for code, _ in cls.get_languages()]

    @classmethod
    def default_cart_idle(cls):
        return dt.timedelta(hours=2)

    @classmethod
    def default_reminder_delay(cls):
        return dt.timedelta(days=1)

    @classmethod
    def default_win_back_days(cls):
        return 90

    @classmethod
    def default_post_purchase_days(cls):
        return 7


class CreateBlueprint(Wizard):
    "Create a ready-made scenario"
    __name__ = 'marketing.automation.scenario.blueprint'

    start = StateView(
        'marketing.automation.scenario.blueprint.start',
        'marketing_automation.scenario_blueprint_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Create", 'create_', 'tryton-ok', default=True),
            ])
    create_ = StateTransition()
    open_ = StateAction('marketing_automation.act_scenario_form')

    def transition_create_(self):
        self.created_scenario = self.create_scenario(self.start)
        return 'open_'

    def do_open_(self, action):
        # The form of the new scenario first
        action['views'].reverse()
        return action, {'res_id': [self.created_scenario]}

    @classmethod
    def create_scenario(cls, parameters):
        "Create the draft scenario of the blueprint; return its id"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        Configuration = pool.get('ir.configuration')
        transaction = Transaction()
        cls.check_parameters(parameters)
        blueprint = BLUEPRINTS[parameters.blueprint](parameters)
        chosen = [c for c in languages() if c in parameters.languages]
        default = Configuration.get_language()
        base = default if default in chosen else chosen[0]
        shop_name = parameters.shop_name.strip()
        site = parameters.shop_url.strip()
        encoder = PYSONEncoder()

        def scenario_name(language):
            return '%s %s' % (
                shop_name, blueprint_name(blueprint.key, language))

        def texts_of(step, language):
            return {
                'name': texts(language)['activities'][step.key]['name'],
                'email_title': email_title(step, language, shop_name),
                'email_template': email_template(
                    step, language, shop_name, site, blueprint.key),
                }

        with transaction.set_context(language=default):
            scenario, = Scenario.create([{
                        'name': scenario_name(base),
                        'model': blueprint.model,
                        'domain': encoder.encode(blueprint.domain),
                        'unsubscribable': blueprint.unsubscribable,
                        }])
            created = []

            def create(parent, steps):
                for step in steps:
                    values = texts_of(step, base)
                    values.update({
                            'parent': str(parent),
                            'action': 'send_email',
                            'transactional': step.transactional,
                            'on': step.on,
                            'delay': step.delay,
                            'condition': (encoder.encode(step.condition)
                                if step.condition is not None else None),
                            })
                    activity, = Activity.create([values])
                    created.append((activity, step))
                    create(activity, step.children)
            create(scenario, blueprint.steps)

        for language in chosen:
            if language in {base, default}:
                continue
            with transaction.set_context(language=language):
                Scenario.write([Scenario(scenario.id)], {
                        'name': scenario_name(language),
                        })
                for activity, step in created:
                    Activity.write(
                        [Activity(activity.id)], texts_of(step, language))
        return scenario.id

    @classmethod
    def check_parameters(cls, parameters):
        if not links.is_trackable((parameters.shop_url or '').strip()):
            raise BlueprintError(gettext(
                    'marketing_automation.msg_blueprint_shop_url',
                    url=parameters.shop_url))
        if not (set(parameters.languages or []) & set(languages())):
            raise BlueprintError(gettext(
                    'marketing_automation.msg_blueprint_no_language'))
        if not (parameters.shop_name or '').strip():
            raise BlueprintError(gettext(
                    'marketing_automation.msg_blueprint_shop_name'))
        for name, minimum in PARAMETERS.get(parameters.blueprint, []):
            value = getattr(parameters, name)
            if value is None or value < minimum or (
                    value == minimum and isinstance(value, dt.timedelta)):
                raise BlueprintError(gettext(
                        'marketing_automation.msg_blueprint_parameter',
                        parameter=parameters.__names__(name)['field']))
