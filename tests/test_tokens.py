# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"The token mixin shared by records and record activities"
import re

from trytond.pool import Pool
from trytond.tests.test_tryton import DBTestCase, with_transaction

HEX32 = re.compile(r'^[0-9a-f]{32}$')
MODELS = {
    'marketing.automation.record': (
        "The unguessable token of the record in public URLs.",
        'marketing_automation.msg_record_uuid_unique'),
    'marketing.automation.record.activity': (
        "The unguessable token of the activity in public URLs.",
        'marketing_automation.msg_record_activity_uuid_unique'),
    }


class TokenTestCase(DBTestCase):
    "Test the token mixin"
    module = 'marketing_automation'

    @with_transaction()
    def test_interface(self):
        "Test the field, its help and the constraint of each model"
        pool = Pool()
        for name, (help_, message) in MODELS.items():
            Model = pool.get(name)
            self.assertEqual(Model.uuid.string, "UUID")
            self.assertEqual(Model.uuid.help, help_)
            self.assertTrue(Model.uuid.readonly)
            constraints = {
                n: m for n, _, m in Model._sql_constraints}
            self.assertEqual(constraints['uuid_unique'], message)

    @with_transaction()
    def test_token_lifecycle(self):
        "Test a token at creation, found back, and a new one on copy"
        pool = Pool()
        Scenario = pool.get('marketing.automation.scenario')
        Activity = pool.get('marketing.automation.activity')
        Record = pool.get('marketing.automation.record')
        RecordActivity = pool.get('marketing.automation.record.activity')
        Party = pool.get('party.party')
        party, = Party.create([{'name': "Token"}])
        scenario, = Scenario.create([{
                    'name': "Token", 'model': 'party.party'}])
        activity, = Activity.create([{
                    'name': "Token", 'parent': str(scenario)}])
        record, = Record.create([{
                    'scenario': scenario.id, 'record': str(party)}])
        record_activity, = RecordActivity.create([{
                    'record': record.id, 'activity': activity.id}])
        for instance in [record, record_activity]:
            Model = instance.__class__
            self.assertRegex(instance.uuid, HEX32)
            self.assertEqual(Model.from_token(instance.uuid), instance)
            self.assertIsNone(Model.from_token('0' * 32))
            self.assertIsNone(Model.from_token(None))
            self.assertIsNone(Model.from_token(42))
        party2, = Party.create([{'name': "Token 2"}])
        copy, = Record.copy([record], default={'record': str(party2)})
        self.assertRegex(copy.uuid, HEX32)
        self.assertNotEqual(copy.uuid, record.uuid)
