# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import logging

from trytond.pool import Pool
from trytond.sendmail import SMTPDataManager, send_message
from trytond.transaction import Transaction

logger = logging.getLogger(__name__)


class RecordActivitySMTPDataManager(SMTPDataManager):
    """Send the messages of record activities after the commit

    and give back to the engine those that could not be sent."""

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
        try:
            super().tpc_vote(trans)
        except Exception as exception:
            # The database must commit anyway: the failure is handled as
            # a retry of the record activities once committed
            logger.warning("fail to connect to SMTP server", exc_info=True)
            self.error = exception

    def tpc_finish(self, trans):
        failures = {}
        try:
            for record_activity_id, (from_addr, to_addrs, msg) in zip(
                    self.record_activities, self.queue):
                if self._server is None:
                    failures[record_activity_id] = str(self.error)
                    continue
                try:
                    server = send_message(
                        msg, from_addr, to_addrs, server=self._server,
                        strict=True)
                except Exception as exception:
                    logger.warning(
                        "fail to send email of record activity %s",
                        record_activity_id, exc_info=True)
                    failures[record_activity_id] = str(exception)
                    self._server = None
                    self._reconnect()
                else:
                    if server:
                        self._server = server
            if self._server is not None:
                try:
                    self._server.quit()
                except Exception:
                    pass
        finally:
            database_name = trans.database.name
            self._finish()
            self.record_activities = []
        if failures:
            self._report_failures(database_name, failures)

    def _reconnect(self):
        try:
            super().tpc_vote(None)
        except Exception as exception:
            self.error = exception

    def tpc_abort(self, trans):
        super().tpc_abort(trans)
        self.record_activities = []

    @staticmethod
    def _report_failures(database_name, failures):
        pool = Pool(database_name)
        try:
            with Transaction().new_transaction() as transaction:
                RecordActivity = pool.get(
                    'marketing.automation.record.activity')
                RecordActivity.sending_failed(failures)
                transaction.commit()
        except Exception:
            logger.critical(
                "fail to reschedule unsent record activities %s",
                list(failures), exc_info=True)
