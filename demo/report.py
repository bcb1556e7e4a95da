# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The figures of the scenarios, as the Tryton client shows them

``collect_report`` reads them through proteus and returns plain data (the
test of the demo checks it); ``format_report`` makes the table printed at
the end of the demo.
"""
from collections import Counter

from proteus import Model

ON = {
    'email_opened': "opened",
    'email_opened_not': "not opened",
    'email_clicked': "clicked",
    'email_clicked_not': "not clicked",
    }


def _delay(delta):
    if not delta:
        return ''
    seconds = int(delta.total_seconds())
    for unit, size in [('day', 86400), ('hour', 3600), ('minute', 60)]:
        if seconds >= size and not seconds % size:
            count = seconds // size
            return '%s %s%s' % (count, unit, 's' if count > 1 else '')
    return str(delta)


def collect_report(config, scenario_ids=None):
    """Return the figures of the scenarios and of their activities

    {'scenarios': [{'name', 'model', 'state', 'records', 'unsubscribed',
    'block_rate', 'activities': [{'name', 'depth', 'on', 'delay',
    'records', 'sent', 'opened', 'clicked', 'unsubscribed', 'open_rate',
    'click_rate', 'click_through_rate', 'waiting', 'cancelled'}]}],
    'sent': total of e-mails sent, 'unsubscribed': total}

    records of an activity counts the record activities done (sent or
    skipped with a note); an unsubscribe is counted on the last e-mail the
    record received before it."""
    Scenario = Model.get('marketing.automation.scenario', config=config)
    Record = Model.get('marketing.automation.record', config=config)
    RecordActivity = Model.get(
        'marketing.automation.record.activity', config=config)
    Email = Model.get('ir.email', config=config)

    domain = [('id', 'in', scenario_ids)] if scenario_ids else []
    scenarios = Scenario.find(domain, order=[('id', 'ASC')])
    ids = [s.id for s in scenarios]

    emails = Email.find(
        [('marketing_automation_record.scenario', 'in', ids)],
        order=[('id', 'ASC')])
    sent = Counter(e.marketing_automation_activity.id for e in emails)
    last_email = {
        e.marketing_automation_record.id: e.marketing_automation_activity.id
        for e in emails}
    unsubscribed = Counter(
        last_email.get(r.id) for r in Record.find([
                ('scenario', 'in', ids), ('blocked', '=', True)]))
    states = Counter(
        (r.activity.id, r.state) for r in RecordActivity.find([
                ('record.scenario', 'in', ids),
                ('state', 'in', ['waiting', 'cancelled']),
                ]))

    def activities(parents, depth):
        for activity in sorted(parents, key=lambda a: a.id):
            yield {
                'id': activity.id,
                'name': activity.name,
                'depth': depth,
                'on': activity.on,
                'delay': activity.delay,
                'records': activity.record_count,
                'sent': sent[activity.id],
                'opened': activity.email_opened,
                'clicked': activity.email_clicked,
                'unsubscribed': unsubscribed[activity.id],
                'open_rate': activity.email_open_rate,
                'click_rate': activity.email_click_rate,
                'click_through_rate': activity.email_click_through_rate,
                'waiting': states[activity.id, 'waiting'],
                'cancelled': states[activity.id, 'cancelled'],
                }
            yield from activities(activity.children, depth + 1)

    result = []
    for scenario in scenarios:
        result.append({
                'id': scenario.id,
                'name': scenario.name,
                'model': scenario.model,
                'state': scenario.state,
                'records': scenario.record_count,
                'unsubscribed': scenario.record_count_blocked,
                'block_rate': scenario.block_rate,
                'activities': list(activities(scenario.activities, 0)),
                })
    return {
        'scenarios': result,
        'sent': sum(sent.values()),
        'unsubscribed': sum(s['unsubscribed'] for s in result),
        }


def _percent(value):
    return '%.0f%%' % ((value or 0) * 100)


COLUMNS = [
    ('Records', 'records', str),
    ('Sent', 'sent', str),
    ('Opened', 'opened', str),
    ('Clicked', 'clicked', str),
    ('Unsub.', 'unsubscribed', str),
    ('Open', 'open_rate', _percent),
    ('Click', 'click_rate', _percent),
    ('CTR', 'click_through_rate', _percent),
    ('Waiting', 'waiting', str),
    ('Cancelled', 'cancelled', str),
    ]


def _label(activity):
    if activity['depth'] == 0:
        return activity['name']
    when = ON.get(activity['on']) or 'then'
    if activity['delay']:
        if activity['on'] and activity['on'].endswith('_not'):
            when += ' in ' + _delay(activity['delay'])
        else:
            when += ', +' + _delay(activity['delay'])
    return '%s└ %s: %s' % (
        '  ' * (activity['depth'] - 1), when, activity['name'])


def format_report(data, width=38):
    "Return the report as lines of text"
    lines = []
    widths = [max(len(title), 4) + 1 for title, _, _ in COLUMNS]
    header = '  %-*s' % (width, 'Activity') + ''.join(
        '%*s' % (w, title) for w, (title, _, _) in zip(widths, COLUMNS))
    for scenario in data['scenarios']:
        lines.append('%s  (%s, %s)' % (
                scenario['name'], scenario['model'], scenario['state']))
        lines.append('  %s records, %s unsubscribed (block rate %s)' % (
                scenario['records'], scenario['unsubscribed'],
                _percent(scenario['block_rate'])))
        lines.append(header)
        for activity in scenario['activities']:
            label = _label(activity)
            if len(label) > width:
                label = label[:width - 1] + '…'
            lines.append('  %-*s' % (width, label) + ''.join(
                    '%*s' % (w, format_(activity[key]))
                    for w, (_, key, format_) in zip(widths, COLUMNS)))
        lines.append('')
    lines.extend(LEGEND)
    return lines


LEGEND = [
    "Records: the activity is done for them (e-mail sent, or skipped with",
    "  a note: no address, condition false). Open, Click: share of these",
    "  records; CTR: clicked / opened. Unsub.: counted on the last e-mail",
    "  before unsubscribing. Waiting: scheduled, or waiting for an event",
    "  that may never come; Cancelled: the opposite event happened.",
    ]
