# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import fields
from trytond.pool import Pool
from trytond.tools import grouped_slice
from trytond.transaction import (
    Transaction, inactive_records, without_check_access)


class MarketingAutomationMixin:
    "Models whose records can enter marketing automation scenarios"
    __slots__ = ()

    marketing_party = fields.Function(
        fields.Many2One('party.party', "Marketing Party"),
        'get_marketing_party', searcher='search_marketing_party')

    def get_marketing_party(self, name):
        raise NotImplementedError

    @classmethod
    def search_marketing_party(cls, name, clause):
        raise NotImplementedError

    @property
    def marketing_access_context(self):
        "The context giving the rights to read the record for marketing"
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        return {
            '_groups': [ModelData.get_id('marketing', 'group_marketing')],
            }

    @classmethod
    def marketing_party_column(cls, table):
        """Return the SQL column of table holding the party id

        or None when the model gives its party only as Tryton's own module
        asks: get_marketing_party and search_marketing_party."""
        return None

    @classmethod
    def marketing_party_records(cls, parties):
        "Return the query of the ids of the records whose party is in parties"
        table = cls.__table__()
        column = cls.marketing_party_column(table)
        if column is not None:
            return table.select(table.id, where=column.in_(parties))
        # Every record counts, as with the column
        with without_check_access(), inactive_records():
            return cls.search(
                [('marketing_party', 'in', parties)], order=[], query=True)

    @classmethod
    def get_marketing_recipients(cls, ids):
        """Return for each record id its (name, address, language code)

        The tuple is None for a record without party, and its address is
        None when the party has no e-mail."""
        pool = Pool()
        Party = pool.get('party.party')
        parties = cls._marketing_parties(ids)
        recipients = Party.marketing_party_recipients(
            {p for p in parties.values() if p is not None})
        return {id_: recipients.get(party) for id_, party in parties.items()}

    @classmethod
    def _marketing_parties(cls, ids):
        "Return the party id (or None) of each id of an existing record"
        table = cls.__table__()
        column = cls.marketing_party_column(table)
        if column is None:
            return cls._marketing_parties_read(ids)
        cursor = Transaction().connection.cursor()
        parties = {}
        for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
            cursor.execute(*table.select(
                    table.id, column,
                    where=fields.SQL_OPERATORS['in'](table.id, sub_ids)))
            parties.update(cursor)
        return parties

    @classmethod
    def _marketing_parties_read(cls, ids):
        "Return the marketing party of each existing record, read in batches"
        parties = {}
        with without_check_access(), inactive_records():
            for sub_ids in grouped_slice(ids, MAX_QUERY_PARAMS):
                # The instances of a search read marketing_party together
                for record in cls.search(
                        [('id', 'in', list(sub_ids))], order=[]):
                    party = record.marketing_party
                    parties[record.id] = party.id if party else None
        return parties


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
