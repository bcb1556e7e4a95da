# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import datetime as dt
from zoneinfo import available_timezones

from trytond.model import ModelSingleton, ModelSQL, ModelView, fields


class Configuration(ModelSingleton, ModelSQL, ModelView):
    __name__ = 'marketing.automation.configuration'
    __string__ = "Marketing Automation Configuration"

    email_cap = fields.Integer(
        "E-mail Cap",
        domain=['OR', ('email_cap', '=', None), ('email_cap', '>', 0)],
        help="The most marketing e-mails a party receives within the "
        "period, across scenarios; the others wait. Leave empty for no "
        "cap. Transactional e-mails are not counted.")
    email_cap_period = fields.TimeDelta(
        "E-mail Cap Period", required=True,
        domain=[('email_cap_period', '>', dt.timedelta())],
        help="The rolling period of the e-mail cap.")
    open_tracking = fields.Boolean(
        "Open Tracking",
        help="The default of new scenarios: uncheck where privacy rules "
        "forbid tracking pixels.")
    timezone = fields.Selection(
        'get_timezones', "Time Zone", required=True,
        help="The time zone of the send windows of the scenarios.")

    @classmethod
    def default_email_cap_period(cls):
        return dt.timedelta(days=7)

    @classmethod
    def default_open_tracking(cls):
        return True

    @classmethod
    def default_timezone(cls):
        return 'UTC'

    @classmethod
    def get_timezones(cls):
        return [(z, z) for z in sorted(available_timezones())]
