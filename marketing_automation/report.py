# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
from trytond.report import Report


class UnsubscribePage(Report):
    "The page of the unsubscribe links, a report so that it can be changed"
    __name__ = 'marketing.automation.unsubscribe'

    @classmethod
    def get_context(cls, records, header, data):
        context = super().get_context(records, header, data)
        # The template reads the values of the page by their names
        context.update(data['page'])
        return context

    @classmethod
    def render_page(cls, **values):
        "Return the HTML of the page showing the values"
        _, html, _, _ = cls.execute([], {'page': values})
        if isinstance(html, bytes):
            html = html.decode('utf-8')
        return html
