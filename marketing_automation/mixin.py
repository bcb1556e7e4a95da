# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from trytond.model import fields
from trytond.pool import Pool


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

    def _marketing_party(self):
        "Return the party of the record as an instance or None"
        # The Function field is read record by record, which costs more
        # than the relation it follows
        return self.marketing_party

    def get_marketing_language(self):
        "Return the language code to render e-mails for this record"
        party = self._marketing_party()
        if not party:
            return None
        if getattr(party, 'lang', None):
            return party.lang.code
        # Without a company in the context (as for crons) the language that
        # is stored per company is not read
        for value in getattr(party, 'langs', None) or []:
            if value.lang:
                return value.lang.code

    def get_marketing_email(self):
        "Return the (name, address) to send e-mails to, or None"
        party = self._marketing_party()
        if not party:
            return None
        mechanism = party.contact_mechanism_get({'email'})
        if not mechanism or not mechanism.value:
            return None
        return (mechanism.name or party.rec_name, mechanism.value)


def marketing_models():
    "Return the names of the models that carry the marketing mixin"
    pool = Pool()
    return sorted(
        name for name, klass in pool.iterobject()
        if issubclass(klass, MarketingAutomationMixin))
