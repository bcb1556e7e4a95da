# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The figures of the scenarios, as the Tryton client shows them

``collect_report`` reads them through proteus and returns plain data (the
test of the demo checks it); ``format_report`` makes the table printed at
the end of the demo.
"""
import datetime as dt
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
    record received before it.  The scenarios also have their conversion
    figures, their funnel (see _funnel) and the variants of their A/B
    splits (see _variants)."""
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

    funnel = _funnel(config, ids)
    splits = _variants(config, ids)
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
                'goal': scenario.goal,
                'conversions': scenario.conversion_count,
                'revenue': scenario.conversion_revenue,
                'conversion_rate': scenario.conversion_rate,
                'funnel': funnel.get(scenario.id),
                'variants': splits.get(scenario.id, []),
                })
    return {
        'scenarios': result,
        'sent': sum(sent.values()),
        'unsubscribed': sum(s['unsubscribed'] for s in result),
        }


def _funnel(config, ids):
    """Return {scenario id: (enrolled, sent, opened, clicked, converted,
    revenue, revenue per e-mail sent)} of the last 30 days"""
    Funnel = Model.get('marketing.automation.reporting.funnel', config=config)
    today = dt.date.today()
    totals = {}
    with config.set_context(
            from_date=today - dt.timedelta(days=30), to_date=today,
            period='year'):
        for row in Funnel.find([('scenario', 'in', ids)]):
            total = totals.setdefault(row.scenario.id, [0] * 6)
            for i, value in enumerate([
                    row.record_count, row.email_sent, row.email_opened,
                    row.email_clicked, row.conversion_count, row.revenue]):
                total[i] += value or 0
    return {
        i: (*t, (t[5] / t[1]) if t[1] else 0) for i, t in totals.items()}


def _variants(config, ids):
    """Return {scenario id: [{'name', 'group', 'share', 'sent', 'opened',
    'clicked', 'conversions', and the rate and p-value of open, click and
    conversion}]}: the variants of the A/B splits, as Marketing ›
    Reporting › A/B Splits shows them"""
    Variant = Model.get(
        'marketing.automation.reporting.variant', config=config)
    result = {}
    for row in Variant.find([('scenario', 'in', ids)]):
        values = {
            'name': row.activity.name,
            'group': row.variant_group,
            'share': row.share,
            'sent': row.email_sent,
            'opened': row.email_opened,
            'clicked': row.email_clicked,
            'conversions': row.conversion_count,
            }
        for name in ['open', 'click', 'conversion']:
            for suffix in ['rate', 'p_value']:
                key = '%s_%s' % (name, suffix)
                values[key] = getattr(row, key)
        result.setdefault(row.scenario.id, []).append(values)
    return result


def _p_value(value):
    return '%.2f' % value if value is not None else '-'


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


VARIANT_COLUMNS = [
    ('Share', 'share', _percent),
    ('Sent', 'sent', str),
    ('Open', 'open_rate', _percent),
    ('p', 'open_p_value', _p_value),
    ('Click', 'click_rate', _percent),
    ('p', 'click_p_value', _p_value),
    ('Conv.', 'conversion_rate', _percent),
    ('p', 'conversion_p_value', _p_value),
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
        if scenario.get('goal'):
            lines.append(
                '  %s conversions, revenue %s EUR (conversion rate %s)' % (
                    scenario['conversions'], scenario['revenue'],
                    _percent(scenario['conversion_rate'])))
        if scenario.get('funnel'):
            funnel = scenario['funnel']
            lines.append(
                '  funnel: %s enrolled > %s sent > %s opened > %s clicked '
                '> %s converted; %.2f EUR per e-mail sent' % (
                    *funnel[:5], funnel[6]))
        lines.append(header)
        for activity in scenario['activities']:
            label = _label(activity)
            if len(label) > width:
                label = label[:width - 1] + '…'
            lines.append('  %-*s' % (width, label) + ''.join(
                    '%*s' % (w, format_(activity[key]))
                    for w, (_, key, format_) in zip(widths, COLUMNS)))
        lines.extend(_format_variants(scenario.get('variants'), width))
        lines.append('')
    lines.extend(LEGEND)
    return lines


def _format_variants(rows, width):
    "Return the lines comparing the variants of each A/B split"
    lines = []
    widths = [max(len(title), 4) + 1 for title, _, _ in VARIANT_COLUMNS]
    groups = {}
    for row in rows or []:
        groups.setdefault(row['group'], []).append(row)
    for members in groups.values():
        lines.append('  ' + '%-*s' % (width, 'A/B split') + ''.join(
                '%*s' % (w, title)
                for w, (title, _, _) in zip(widths, VARIANT_COLUMNS)))
        for row in members:
            label = row['name']
            if len(label) > width:
                label = label[:width - 1] + '…'
            lines.append('  %-*s' % (width, label) + ''.join(
                    '%*s' % (w, format_(row[key]))
                    for w, (_, key, format_) in zip(
                        widths, VARIANT_COLUMNS)))
    return lines


LEGEND = [
    "Records: the activity is done for them (e-mail sent, or skipped with",
    "  a note: no address, condition false). Open, Click: share of these",
    "  records; CTR: clicked / opened. Unsub.: counted on the last e-mail",
    "  before unsubscribing. Waiting: scheduled, or waiting for an event",
    "  that may never come; Cancelled: the opposite event happened.",
    "A/B split: Share of the records given to each variant; Open, Click,",
    "  Conv.: share of its e-mails sent opened, clicked, converted; p: the",
    "  p-value against the best variant (the runner-up for the best one),",
    "  below 0.05 the difference is unlikely to be chance.",
    ]
