# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from trytond.model import ModelSQL, Unique, fields
from trytond.pool import PoolMeta

from .mixin import MarketingAutomationMixin


class Party(MarketingAutomationMixin, metaclass=PoolMeta):
    __name__ = 'party.party'

    marketing_scenario_unsubscribed = fields.Many2Many(
        'party.party-unsubscribed-marketing.automation.scenario',
        'party', 'scenario', "Marketing Automation Unsubscribed",
        help="The marketing scenarios the party does not enter any more.")

    def get_marketing_party(self, name):
        return self.id

    def _marketing_party(self):
        return self

    @classmethod
    def marketing_party_column(cls, table):
        return table.id


class PartyUnsubscribedScenario(ModelSQL):
    __name__ = 'party.party-unsubscribed-marketing.automation.scenario'

    party = fields.Many2One(
        'party.party', "Party", required=True, ondelete='CASCADE')
    scenario = fields.Many2One(
        'marketing.automation.scenario', "Scenario",
        required=True, ondelete='CASCADE')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_constraints = [
            ('party_scenario_unique', Unique(t, t.party, t.scenario),
                'marketing_automation.msg_party_unsubscribed_unique'),
            ]
