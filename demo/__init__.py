# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The demo of marketing_automation: a small shop on an embedded database

``demo/run.py`` (``make demo``) builds it from scratch and plays it; the
modules of this package are also used by ``tests/test_demo.py``:

- ``server``: configuration file, trytond processes and the SMTP outbox
- ``shop``: the sample shop (company, products, customers, sales)
- ``scenarios``: the three ready-made scenarios and their e-mails
- ``recipients``: people reading their e-mails over HTTP
- ``report``: the figures of the scenarios and their printing
- ``main``: the whole story, step by step
"""
