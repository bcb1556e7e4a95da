# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.

from . import routes  # noqa: F401  registers the public routes on the app
