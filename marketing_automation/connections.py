# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Release the SQLite connections of the short transactions

trytond opens a connection for each transaction and, on SQLite, leaves it
to the garbage collector when the transaction ends. With one transaction
per open, click or batch of activities, the connections freed late fragment
the memory of the process, which then grows with the traffic."""
from trytond import backend

# Closing the last connection to a database checkpoints its WAL: one
# connection per database stays open, idle, so that closing the others does
# not
_idle = {}


def close_at_end(transaction):
    "Close the SQLite connection of the transaction when it ends"
    database = transaction.database
    if backend.name != 'sqlite' or database.name == ':memory:':
        return
    if database.name not in _idle:
        _idle[database.name] = database
    else:
        transaction.atexit(database.close)
