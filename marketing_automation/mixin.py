# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import Transaction


class MarketingAutomationMixin:
    "Models whose records can enter marketing automation scenarios"
    __slots__ = ()

    marketing_party = fields.Function(
        fields.Many2One('party.party', "Marketing Party"),
        'get_marketing_party')

    def get_marketing_party(self, name):
        raise NotImplementedError

    @classmethod
    def marketing_party_column(cls, table):
        "Return the SQL column of table holding the party id"
        raise NotImplementedError

    @classmethod
    def get_marketing_recipients(cls, ids):
        """Return for each record id its (name, address, language code)

        The tuple is None for a record without party, and its address is
        None when the party has no e-mail."""
        pool = Pool()
        Party = pool.get('party.party')
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        parties = {}
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.select(
                    table.id, cls.marketing_party_column(table),
                    where=fields.SQL_OPERATORS['in'](table.id, sub_ids)))
            parties.update(cursor)
        recipients = Party.marketing_party_recipients(
            {p for p in parties.values() if p is not None})
        return {id_: recipients.get(party) for id_, party in parties.items()}


class ActivityActionMixin:
    "Models with an activity, showing its action"
    __slots__ = ()

    activity_action = fields.Function(
        fields.Selection('get_activity_actions', "Activity Action"),
        'on_change_with_activity_action')

    @classmethod
    def get_activity_actions(cls):
        pool = Pool()
        Activity = pool.get('marketing.automation.activity')
        return Activity.get_actions()

    @fields.depends('activity', '_parent_activity.action')
    def on_change_with_activity_action(self, name=None):
        if self.activity:
            return self.activity.action


def marketing_models():
    "Return the names of the models that carry the marketing mixin"
    pool = Pool()
    return sorted(
        name for name, klass in pool.iterobject()
        if issubclass(klass, MarketingAutomationMixin))
