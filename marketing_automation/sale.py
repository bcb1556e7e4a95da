# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
from sql.conditionals import Coalesce

from trytond.model import Index, fields
from trytond.pool import Pool, PoolMeta

from .mixin import MarketingAutomationMixin


class Sale(MarketingAutomationMixin, metaclass=PoolMeta):
    __name__ = 'sale.sale'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # The conversions read the sales changed since their last run
        cls._sql_indexes.add(
            Index(t, (Coalesce(t.write_date, t.create_date), Index.Range())))

    def get_marketing_party(self, name):
        return self.party.id if self.party else None

    @classmethod
    def search_marketing_party(cls, name, clause):
        path, operator, operand, *extra = clause
        _, _, nested = path.partition('.')
        if not nested and isinstance(operand, str):
            # As a Many2One searches a text, without the warning
            nested = 'rec_name'
        return [
            ('party.' + nested if nested else 'party', operator, operand,
                *extra)]

    @property
    def marketing_access_context(self):
        pool = Pool()
        ModelData = pool.get('ir.model.data')
        context = super().marketing_access_context
        context['_groups'] = context.get('_groups', []) + [
            ModelData.get_id('sale', 'group_sale')]
        if self.company:
            context['_companies'] = context.get('_companies', []) + [
                self.company.id]
        return context

    @classmethod
    def marketing_party_column(cls, table):
        return table.party


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    marketing_sales = fields.One2Many(
        'sale.sale', 'party', "Marketing Sales", readonly=True,
        help="The sales of the party, for the domains of the scenarios "
        "such as the win-back blueprint.")
