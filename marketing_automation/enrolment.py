# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Enrolment: the records matching the domain of a running scenario enter
it, in batches of one INSERT ... SELECT each, and their root activities are
scheduled."""
import logging

from sql import Literal
from sql.aggregate import Max
from sql.operators import Concat, Exists

import trytond.config as config
from trytond.pool import Pool
from trytond.transaction import Transaction

from . import dialect, engine, rights

logger = logging.getLogger(__name__)


def trigger(scenarios):
    "Enrol the new records of the running scenarios, each on its own"
    cursor = Transaction().connection.cursor()
    with dialect.bulk_cache(cursor):
        for scenario in scenarios:
            if scenario.state != 'running':
                continue
            # The transaction stays usable when the domain of one scenario
            # fails in the database
            try:
                with dialect.savepoint(cursor, 'marketing_automation_trigger'):
                    if author_reads_domain(scenario):
                        scenario.enrol()
                    else:
                        logger.error(
                            "Skip %s: its domain is not valid or its author "
                            "cannot read it", scenario)
            except Exception:
                logger.exception("Fail to enrol records in %s", scenario)


def author_reads_domain(scenario):
    "Tell if the domain is valid and its author can read what it uses"
    author = scenario.write_uid or scenario.create_uid
    Model = Pool().get(scenario.model)
    try:
        domain = scenario.get_domain()
    except Exception:
        return False
    with Transaction().set_user(author.id if author else 0):
        try:
            rights.check_domain(Model, domain)
        except (rights.ReadRefused, rights.InvalidDomain):
            return False
    return True


def enrol(scenario, batch_size=None):
    "Insert the records matching the domain and schedule their roots"
    pool = Pool()
    Model = pool.get(scenario.model)
    Record = pool.get('marketing.automation.record')
    EnrolledStatistics = pool.get('marketing.automation.statistics.enrolled')
    Unsubscribed = pool.get(
        'party.party-unsubscribed-marketing.automation.scenario')
    transaction = Transaction()
    cursor = transaction.connection.cursor()
    if batch_size is None:
        batch_size = config.getint(
            'marketing', 'automation_enrol_batch', default=10000)

    table = Model.__table__()
    record = Record.__table__()
    unsubscribed = Unsubscribed.__table__()
    domain = scenario.get_domain()
    reference = Concat(scenario.model + ',', table.id)
    not_enrolled = (
        ~Exists(record.select(Literal(1),
                where=(record.scenario == scenario.id)
                & (record.record == reference)))
        & party_not_unsubscribed(Model, table, unsubscribed, scenario))
    if not scenario.has_transactional():
        not_enrolled &= party_not_opted_out(Model, table)
    on_conflict = dialect.insert_on_conflict_nothing(record)
    created = dialect.now()

    last_id = 0
    while True:
        # The domain is searched on the next range of ids only: a sub-query
        # of all the candidates would be read again by each statement
        # (SQLite materializes it)
        candidates = Model.search(
            [domain, ('id', '>', last_id)], order=[('id', 'ASC')],
            limit=batch_size, query=True)
        cursor.execute(*candidates.select(Max(candidates.id)))
        upper_id, = cursor.fetchone()
        if upper_id is None:
            break
        cursor.execute(*record.select(Max(record.id)))
        watermark, = cursor.fetchone()
        cursor.execute(*record.insert(
                [record.scenario, record.record, record.uuid,
                    record.blocked, record.create_uid, record.create_date],
                table.select(
                    Literal(scenario.id), reference, dialect.token(),
                    Literal(False), Literal(transaction.user), created,
                    # The range lets the planner read the batch's ids by
                    # index instead of hashing them against the whole table
                    where=(table.id > last_id) & (table.id <= upper_id)
                    & table.id.in_(candidates) & not_enrolled),
                on_conflict=on_conflict))
        entered = cursor.rowcount
        engine.schedule_roots(scenario, watermark or 0)
        EnrolledStatistics.add_entered(scenario.id, entered, created)
        last_id = upper_id


def party_not_unsubscribed(Model, table, unsubscribed, scenario):
    "Return the SQL condition on table: the party is not unsubscribed"
    party = Model.marketing_party_column(table)
    if party is not None:
        return ~Exists(unsubscribed.select(Literal(1),
                where=(unsubscribed.scenario == scenario.id)
                & (unsubscribed.party == party)))
    # Without a column, the model's searcher finds the records of the
    # unsubscribed parties
    parties = unsubscribed.select(
        unsubscribed.party, where=unsubscribed.scenario == scenario.id)
    return ~table.id.in_(Model.marketing_party_records(parties))


def party_not_opted_out(Model, table):
    "Return the SQL condition on table: the party takes marketing e-mails"
    Party = Pool().get('party.party')
    party = Party.__table__()
    opted_out = party.marketing_email_opt_out == Literal(True)
    column = Model.marketing_party_column(table)
    if column is not None:
        return ~Exists(party.select(Literal(1),
                where=(party.id == column) & opted_out))
    return ~table.id.in_(Model.marketing_party_records(
            party.select(party.id, where=opted_out)))
