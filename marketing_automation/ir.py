# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
from sql import Null

from trytond.cache import Cache
from trytond.model import Index, fields
from trytond.pool import Pool, PoolMeta
from trytond.transaction import Transaction

from .links import new_token


class Cron(metaclass=PoolMeta):
    __name__ = 'ir.cron'

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.method.selection.extend([
                ('marketing.automation.scenario|trigger',
                    "Trigger Marketing Scenarios"),
                ('marketing.automation.record.activity|process',
                    "Process Marketing Activities"),
                ('marketing.automation.record.activity|recover_handoffs',
                    "Recover Interrupted Marketing E-mails"),
                ('marketing.automation.statistics.pruned|prune',
                    "Prune Old Marketing Data"),
                ])


class Configuration(metaclass=PoolMeta):
    __name__ = 'ir.configuration'

    marketing_automation_secret = fields.Char(
        "Marketing Automation Secret", readonly=True, strip=False)

    # Every click reads the secret, which never changes once created
    _marketing_automation_secret_cache = Cache(
        'ir.configuration.marketing_automation_secret', context=False)

    @classmethod
    def get_marketing_automation_secret(cls):
        "Return the key signing tracked links, created on first use"
        cache = cls._marketing_automation_secret_cache
        secret = cache.get(None)
        if secret:
            return secret
        table = cls.__table__()
        cursor = Transaction().connection.cursor()
        cursor.execute(*table.select(
                table.marketing_automation_secret,
                where=table.marketing_automation_secret != Null,
                limit=1))
        row = cursor.fetchone()
        if row:
            cache.set(None, row[0])
            return row[0]
        if Transaction().readonly:
            return None
        secret = new_token() + new_token()
        cursor.execute(*table.select(table.id, limit=1))
        if cursor.fetchone():
            cursor.execute(*table.update(
                    [table.marketing_automation_secret], [secret]))
        else:
            cls.create([{'marketing_automation_secret': secret}])
        # Until the commit the cache of this transaction is its own: a
        # rolled back secret is never shared
        cache.clear()
        return secret


def without_email_archives(toolbar):
    "Return the toolbar without the generic relate to the e-mail archives"
    # It searches e-mails by resource, but those of marketing automation
    # are archived with the enrolled record as resource
    archives = Pool().get('ir.model.data').get_id(
        'ir', 'act_email_form_relate')
    return {
        **toolbar,
        'relate': [r for r in toolbar['relate'] if r['id'] != archives],
        }


class Email(metaclass=PoolMeta):
    __name__ = 'ir.email'

    marketing_automation_activity = fields.Many2One(
        'marketing.automation.activity', "Marketing Activity",
        readonly=True, ondelete='SET NULL')
    marketing_automation_record = fields.Many2One(
        'marketing.automation.record', "Marketing Record",
        readonly=True, ondelete='SET NULL')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        t = cls.__table__()
        cls._sql_indexes.update({
                Index(t, (t.marketing_automation_record, Index.Range()),
                    where=t.marketing_automation_record != Null),
                Index(t, (t.marketing_automation_activity, Index.Range()),
                    where=t.marketing_automation_activity != Null),
                })
