# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
from trytond.model import DeactivableMixin, ModelSQL, ModelView, fields
from trytond.modules.marketing_automation.mixin import MarketingAutomationMixin
from trytond.pool import PoolMeta


class Subscription(
        MarketingAutomationMixin, DeactivableMixin, ModelSQL, ModelView):
    "A record of another module whose party receives the marketing"
    __name__ = 'test.marketing.automation.thirdparty'

    name = fields.Char("Name")
    party = fields.Many2One('party.party', "Party")
    marked = fields.Integer("Marked")

    @classmethod
    def default_marked(cls):
        return 0

    def get_marketing_party(self, name):
        return self.party.id if self.party else None

    @classmethod
    def search_marketing_party(cls, name, clause):
        path, *rest = clause
        return [('party' + path[len(name):], *rest)]

    @property
    def marketing_access_context(self):
        context = super().marketing_access_context
        context['thirdparty'] = True
        return context


class Activity(metaclass=PoolMeta):
    __name__ = 'marketing.automation.activity'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.action.selection.append(('thirdparty_mark', "Mark"))

    def execute_thirdparty_mark(self, record_activity, **kwargs):
        "Count on the subscription each time the action runs"
        target = record_activity.record.record
        target.marked += 1
        target.save()
