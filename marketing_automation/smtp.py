# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import copy
import logging
import threading

import trytond.config as config
from trytond.pool import Pool
from trytond.sendmail import SMTPDataManager
from trytond.transaction import Transaction

from . import dialect
from .pipelining import send_message

logger = logging.getLogger(__name__)
RECORD_ACTIVITY = 'marketing.automation.record.activity'

# The thread handing the messages of the last batch to the SMTP server
# while the process goes on, at most one per process
_handing = None
_handing_lock = threading.Lock()


class RecordActivitySMTPDataManager(SMTPDataManager):
    """Send the messages of record activities after the commit

    and record their hand-off on the record activities: pending with the
    commit, then chunk after chunk sending before it is handed to the server
    and sent once accepted, each step committed before the next, so that a
    process stopped at any time leaves each message in a known state.  Those
    that could not be sent are given back to the engine."""

    def __init__(self, uri=None):
        super().__init__(uri=uri, strict=True)
        self.record_activities = []
        self.error = None

    def __eq__(self, other):
        if not isinstance(other, RecordActivitySMTPDataManager):
            return NotImplemented
        return self.uri == other.uri

    def __hash__(self):
        return hash((self.__class__, self.uri))

    def put_record_activity(
            self, record_activity_id, msg, from_addr=None, to_addrs=None):
        "Queue the message of a record activity"
        # Given envelope addresses spare smtplib parsing the headers again
        self.put(from_addr, to_addrs, msg)
        self.record_activities.append(record_activity_id)

    def tpc_vote(self, trans):
        if not self.queue:
            return
        # Committed with the record activities marked done, or not at all
        Pool(trans.database.name).get(RECORD_ACTIVITY).set_email_handoff(
            self.record_activities, 'pending')
        try:
            super().tpc_vote(trans)
        except Exception as exception:
            # The database must commit anyway: the failure is handled as
            # a retry of the record activities once committed
            logger.warning("fail to connect to SMTP server", exc_info=True)
            self.error = exception

    def tpc_finish(self, trans):
        if not self.queue:
            return
        database_name = trans.database.name
        if not _in_background():
            self._hand_off(database_name)
            return
        # The thread takes the queue: the transaction may commit again
        handing = copy.copy(self)
        self._finish()
        global _handing
        with _handing_lock:
            # Waiting for the previous batch keeps one connection and one
            # batch in flight per process
            wait_for_handoff()
            _handing = threading.Thread(
                target=handing._hand_off, args=(database_name,),
                name='marketing automation hand-off')
            _handing.start()

    def _hand_off(self, database_name):
        "Hand the queued messages to the server, recording each chunk"
        failures = {}
        try:
            with _HandOff(database_name) as handoff:
                for chunk in self._chunks():
                    if not self._send_chunk(chunk, handoff, failures):
                        # Unrecorded, a message could be sent twice; the
                        # recovery schedules the pending ones again
                        break
        except Exception:
            logger.critical(
                "fail to record the hand-off of record activities %s",
                self.record_activities, exc_info=True)
        finally:
            self._quit()
            self._finish()
        if failures:
            _report_failures(database_name, failures)

    def _send_chunk(self, chunk, handoff, failures):
        "Send the chunk once recorded as sending; tell if it was recorded"
        if self._server is None:
            failures.update((i, str(self.error)) for i, _ in chunk)
            return True
        sending = handoff.start([i for i, _ in chunk])
        if sending is None:
            return False
        for record_activity_id, message in chunk:
            if record_activity_id not in sending:
                continue
            error = self._send(record_activity_id, message)
            if error is None:
                handoff.sent.append(record_activity_id)
            else:
                failures[record_activity_id] = error
        return True

    def _chunks(self):
        "Yield the (record activity id, message) of the queue in chunks"
        size = max(config.getint(
                'marketing', 'automation_handoff_chunk', default=50), 1)
        items = list(zip(self.record_activities, self.queue))
        for index in range(0, len(items), size):
            yield items[index:index + size]

    def _send(self, record_activity_id, message):
        "Send the message over the connection; return the error or None"
        from_addr, to_addrs, msg = message
        if self._server is None:
            return str(self.error)
        try:
            self._server = send_message(
                msg, from_addr, to_addrs, server=self._server)
        except Exception as exception:
            logger.warning(
                "fail to send email of record activity %s",
                record_activity_id, exc_info=True)
            self._server = None
            self._reconnect()
            return str(exception)

    def _quit(self):
        if self._server is not None:
            try:
                self._server.quit()
            except Exception:
                pass

    def _reconnect(self):
        try:
            super().tpc_vote(None)
        except Exception as exception:
            self.error = exception

    def _finish(self):
        super()._finish()
        # The record activities of the messages go with the queue
        self.record_activities = []


def _in_background():
    return (config.getboolean(
            'marketing', 'automation_handoff_background', default=False)
        # Its writes would wait for the lock of the process's next batch
        and not dialect.is_sqlite())


def wait_for_handoff():
    "Wait until the messages handed in the background are handed"
    if _handing is not None:
        _handing.join()


class _HandOff:
    """The hand-off of a batch, recorded and committed chunk after chunk in
    a transaction of its own"""

    def __init__(self, database_name):
        self.database_name = database_name
        self.sent = []
        self.transaction = None

    def __enter__(self):
        # Started anew: the hand-off may run in a thread of its own
        self.transaction = Transaction(new=True).start(
            self.database_name, 0)
        dialect.close_at_end(self.transaction)
        return self

    def __exit__(self, *exc_info):
        try:
            if self.sent:
                self._record([])
        except Exception:
            # Left sending: the recovery flags them as interrupted
            logger.critical(
                "fail to record the sent record activities %s", self.sent,
                exc_info=True)
        finally:
            self.transaction.stop()

    def start(self, ids):
        """Record the messages sent so far and those of ids about to be
        sent; return the latter or None if it could not be recorded"""
        try:
            return set(self._record(ids))
        except Exception:
            logger.critical(
                "fail to record the hand-off of record activities %s: "
                "stop sending", ids, exc_info=True)

    def _record(self, sending_ids):
        transaction = self.transaction
        try:
            with transaction.set_current_transaction(transaction):
                RecordActivity = Pool(self.database_name).get(
                    RECORD_ACTIVITY)
                if self.sent:
                    RecordActivity.set_email_handoff(self.sent, 'sent')
                sending = RecordActivity.set_email_handoff(
                    sending_ids, 'sending')
            transaction.commit()
        except Exception:
            transaction.rollback()
            raise
        self.sent = []
        return sending


def _report_failures(database_name, failures):
    "Give the record activities not sent to the engine"
    try:
        with Transaction(new=True).start(database_name, 0) as transaction:
            dialect.close_at_end(transaction)
            RecordActivity = Pool(database_name).get(RECORD_ACTIVITY)
            RecordActivity.sending_failed(failures)
            transaction.commit()
    except Exception:
        logger.critical(
            "fail to reschedule unsent record activities %s",
            list(failures), exc_info=True)
