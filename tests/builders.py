# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Builders of the test data: parties, users, scenarios, activities and
enrolments

They use the pool of the current transaction: call them inside
``@with_transaction()`` tests, ``setUpDatabase`` or a transaction of one's
own (test_server.py's script imports them as ``tests.builders``); and the
readers of what the tests receive: the links of a message, the path of an
URL."""
import datetime as dt
from html.parser import HTMLParser
from urllib.parse import urlsplit

from trytond.pool import Pool
from trytond.transaction import Transaction

HTML = '<html><body><p>${record.name}</p></body></html>'
# The children of an e-mail activity: a key and its event
EVENTS = [
    ('opened', 'email_opened'),
    ('not_opened', 'email_opened_not'),
    ('clicked', 'email_clicked'),
    ('not_clicked', 'email_clicked_not'),
    ]


def create_party(name, email=None, lang=None):
    "Create a party with the e-mail address and the language code if given"
    pool = Pool()
    Party = pool.get('party.party')
    Lang = pool.get('ir.lang')
    values = {'name': name}
    if email:
        values['contact_mechanisms'] = [('create', [{
                        'type': 'email', 'value': email}])]
    if lang:
        values['lang'], = Lang.search([('code', '=', lang)])
    party, = Party.create([values])
    return party


def marketing_user(login='marketer'):
    "Create a user of the marketing group only"
    pool = Pool()
    User = pool.get('res.user')
    ModelData = pool.get('ir.model.data')
    group = ModelData.get_id('marketing', 'group_marketing')
    user, = User.create([{
                'name': login.title(),
                'login': login,
                'groups': [('add', [group])],
                }])
    return user


def create_scenario(**values):
    "Create a scenario, named Scenario and on parties unless values say"
    Scenario = Pool().get('marketing.automation.scenario')
    values.setdefault('name', "Scenario")
    values.setdefault('model', 'party.party')
    scenario, = Scenario.create([values])
    return scenario


def create_activity(parent, **values):
    "Create an activity under parent, a scenario or an activity"
    Activity = Pool().get('marketing.automation.activity')
    values.setdefault('name', "Activity")
    activity, = Activity.create([{**values, 'parent': str(parent)}])
    return activity


def email_values(**values):
    "Return the values of an activity sending an e-mail, with defaults"
    values.setdefault('action', 'send_email')
    values.setdefault('email_title', "Hello ${record.name}")
    values.setdefault('email_template', HTML)
    return values


def create_event_activities(email, names=None):
    """Create a child of the e-mail activity for each event of EVENTS and
    return them by key

    names are the names of the children in the order of EVENTS, their keys
    by default.  A positive event waits 1 day, a negative one 2 days."""
    names = names or [key for key, _ in EVENTS]
    return {
        key: create_activity(
            email, name=name, on=on,
            delay=dt.timedelta(days=2 if on.endswith('_not') else 1))
        for (key, on), name in zip(EVENTS, names)}


def enrol(scenario):
    "Run the scenario if it is a draft, enrol its records now; return them"
    pool = Pool()
    Scenario = pool.get('marketing.automation.scenario')
    Record = pool.get('marketing.automation.record')
    # A fresh instance: the state of the one given may be stale
    scenario = Scenario(scenario.id)
    if scenario.state == 'draft':
        Scenario.run([scenario])
    Scenario.trigger(Scenario.browse([scenario.id]))
    return Record.search(
        [('scenario', '=', scenario.id)], order=[('id', 'ASC')])


def sql_write(model, ids, **values):
    "Write the values of the rows in SQL (to date the past)"
    table = Pool().get(model).__table__()
    columns = [getattr(table, name) for name in values]
    Transaction().connection.cursor().execute(*table.update(
            columns, list(values.values()), where=table.id.in_(ids)))


def mark_sent(email):
    """Mark the waiting record activities of the e-mail activity done as if
    their e-mails were sent, schedule their children and return them"""
    RecordActivity = Pool().get('marketing.automation.record.activity')
    sent = RecordActivity.search([
            ('activity', '=', email.id),
            ('state', '=', 'waiting'),
            ], order=[('id', 'ASC')])
    RecordActivity.write(sent, {'state': 'done'})
    RecordActivity.schedule_children(sent)
    return sent


def process_due():
    "Run the due record activities now, in the current transaction"
    RecordActivity = Pool().get('marketing.automation.record.activity')
    RecordActivity.process(RecordActivity.search([('state', '=', 'waiting')]))


def delete_scenario(scenario_id, party_ids):
    "Delete the scenario, its archived e-mails and the parties"
    pool = Pool()
    Email = pool.get('ir.email')
    Scenario = pool.get('marketing.automation.scenario')
    Party = pool.get('party.party')
    Email.delete(Email.search([
                ('marketing_automation_record.scenario', '=', scenario_id)]))
    Scenario.delete([Scenario(scenario_id)])
    Party.delete(Party.browse(party_ids))


def path_of(url):
    "Return the path and query of url, as the client requests them"
    parts = urlsplit(url)
    return parts.path + ('?' + parts.query if parts.query else '')


class MessageLinks(HTMLParser):
    "The hrefs of the links and the srcs of the images of an HTML body"

    def __init__(self, message):
        super().__init__()
        self.hrefs, self.images = [], []
        self.feed(message.get_body(('html',)).get_content())
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'a':
            self.hrefs.append(attrs.get('href'))
        elif tag == 'img':
            self.images.append(attrs.get('src'))
