# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from collections import defaultdict

from sql import Literal

from trytond.backend import MAX_QUERY_PARAMS
from trytond.model import Index, ModelSQL, ModelView, Unique, fields
from trytond.pool import Pool, PoolMeta
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.transaction import Transaction

from .mixin import MarketingAutomationMixin


class Party(MarketingAutomationMixin, metaclass=PoolMeta):
    __name__ = 'party.party'

    marketing_scenario_unsubscribed = fields.Many2Many(
        'party.party-unsubscribed-marketing.automation.scenario',
        'party', 'scenario', "Marketing Automation Unsubscribed",
        help="The marketing scenarios the party does not enter any more.")
    marketing_email_opt_out = fields.Boolean(
        "Marketing E-mails Opt-out", readonly=True,
        help="If checked, the party receives no marketing e-mail from any "
        "scenario; transactional e-mails still go out.")
    marketing_consents = fields.One2Many(
        'marketing.automation.consent', 'party', "Marketing Consents",
        readonly=True,
        help="When and how the party left or came back to marketing "
        "e-mails.")
    marketing_automation_records = fields.Function(
        fields.Many2Many(
            'marketing.automation.record', None, None, "Marketing Records",
            help="The entries of the party and of its documents in the "
            "marketing scenarios."),
        'get_marketing_automation_records')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        # The enrolment leaves out the few opted-out parties: without it,
        # each of its batches reads the whole table to find them
        cls._sql_indexes.add(
            Index(t, (t.id, Index.Range()),
                where=t.marketing_email_opt_out == Literal(True)))
        cls._buttons.update({
                'marketing_opt_out': {
                    'invisible': Eval('marketing_email_opt_out', False),
                    'depends': ['marketing_email_opt_out'],
                    },
                'marketing_opt_in': {
                    'invisible': ~Eval('marketing_email_opt_out', False),
                    'depends': ['marketing_email_opt_out'],
                    },
                })

    @classmethod
    def default_marketing_email_opt_out(cls):
        return False

    @classmethod
    def copy(cls, parties, default=None):
        default = default.copy() if default is not None else {}
        default.setdefault('marketing_consents')
        return super().copy(parties, default=default)

    @classmethod
    @ModelView.button
    def marketing_opt_out(cls, parties):
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        Consent.record([p.id for p in parties], True, 'manual')

    @classmethod
    @ModelView.button
    def marketing_opt_in(cls, parties):
        pool = Pool()
        Consent = pool.get('marketing.automation.consent')
        Consent.record([p.id for p in parties], False, 'manual')

    @classmethod
    def marketing_opted_out(cls, party_ids):
        "Return the ids of the parties opted out of marketing e-mails"
        party = cls.__table__()
        cursor = Transaction().connection.cursor()
        opted_out = set()
        for sub_ids in grouped_slice(sorted(party_ids), MAX_QUERY_PARAMS):
            cursor.execute(*party.select(party.id,
                    where=fields.SQL_OPERATORS['in'](party.id, sub_ids)
                    & (party.marketing_email_opt_out == Literal(True))))
            opted_out.update(i for i, in cursor)
        return opted_out

    @classmethod
    def get_marketing_automation_records(cls, parties, name):
        pool = Pool()
        Record = pool.get('marketing.automation.record')
        records = defaultdict(list)
        for sub_parties in grouped_slice(parties, MAX_QUERY_PARAMS):
            for record in Record.search([
                        ('party', 'in', [p.id for p in sub_parties]),
                        ], order=[('create_date', 'DESC'), ('id', 'DESC')]):
                records[record.party.id].append(record.id)
        return {p.id: records[p.id] for p in parties}

    def get_marketing_party(self, name):
        return self.id

    @classmethod
    def search_marketing_party(cls, name, clause):
        # A party is its own marketing party
        path, operator, operand, *extra = clause
        _, _, nested = path.partition('.')
        if nested:
            return [(nested, operator, operand, *extra)]
        if operator in {'where', 'not where'}:
            parties = cls.search(operand, order=[], query=True)
            in_ = 'in' if operator == 'where' else 'not in'
            return [('id', in_, parties)]
        field = 'rec_name' if isinstance(operand, str) else 'id'
        return [(field, operator, operand, *extra)]

    @classmethod
    def marketing_party_column(cls, table):
        return table.id

    @classmethod
    def marketing_party_recipients(cls, party_ids):
        "Return for each party id its (name, address, language code)"
        # In SQL: the language is a multi-value field whose reading record
        # by record costs more than rendering the e-mail
        pool = Pool()
        ContactMechanism = pool.get('party.contact_mechanism')
        PartyLang = pool.get('party.party.lang')
        Lang = pool.get('ir.lang')
        party = cls.__table__()
        mechanism = ContactMechanism.__table__()
        party_lang = PartyLang.__table__()
        lang = Lang.__table__()
        cursor = Transaction().connection.cursor()
        in_ = fields.SQL_OPERATORS['in']

        company = Transaction().context.get('company')
        per_company = 'company' in PartyLang._fields
        default = cls.default_lang(
            **({'company': company} if per_company else {}))
        default = Lang(default).code if default else None

        names, emails, languages = {}, {}, {}
        for sub_ids in grouped_slice(sorted(party_ids), MAX_QUERY_PARAMS):
            sub_ids = list(sub_ids)
            cursor.execute(*party.select(
                    party.id, party.name, party.code,
                    where=in_(party.id, sub_ids)))
            for id_, name, code in cursor:
                names[id_] = name or '[%s]' % code

            # As Party.contact_mechanism_get: the first active e-mail
            cursor.execute(*mechanism.select(
                    mechanism.party, mechanism.sequence, mechanism.id,
                    mechanism.name, mechanism.value,
                    where=in_(mechanism.party, sub_ids)
                    & (mechanism.type == 'email')
                    & (mechanism.active == Literal(True))))
            for party_id, _, _, name, value in sorted(
                    cursor, key=lambda r: (
                        r[0], r[1] is not None, r[1] or 0, r[2])):
                emails.setdefault(party_id, (name, value))

            # As the multi-value lang: the value of the company or else of
            # no company, or else the default; then any language of the
            # party
            columns = [party_lang.party, party_lang.id, lang.code]
            if per_company:
                columns.append(party_lang.company)
            cursor.execute(*party_lang.join(lang, 'LEFT',
                    condition=party_lang.lang == lang.id
                    ).select(*columns,
                    where=in_(party_lang.party, sub_ids),
                    order_by=[party_lang.id.asc]))
            values = defaultdict(list)
            for party_id, id_, code, *value_company in cursor:
                value_company = value_company[0] if value_company else None
                values[party_id].append((code, value_company))
            for party_id in sub_ids:
                matching = sorted(
                    (v for v in values[party_id]
                        if v[1] is None or v[1] == company),
                    key=lambda v: v[1] is None)
                code = matching[0][0] if matching else default
                if not code:
                    code = next(
                        (c for c, _ in values[party_id] if c), None)
                languages[party_id] = code

        recipients = {}
        for id_, name in names.items():
            email_name, address = emails.get(id_, (None, None))
            recipients[id_] = (
                email_name or name, address or None, languages.get(id_))
        return recipients


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
