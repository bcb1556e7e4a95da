# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Tests of the A/B split: the choice of the variants and their comparison"
import datetime as dt
import hashlib
import os
import random
import subprocess
import sys
import unittest
from collections import Counter

from trytond.model.exceptions import ValidationError
from trytond.modules.marketing_automation.variants import (
    choose, compare, group_key, p_value, two_proportion_z)
from trytond.pool import Pool
from trytond.tests.test_tryton import activate_module, with_transaction

from .builders import (
    create_activity, create_scenario, email_values, enrol, mark_sent)

SCENARIO = 'marketing.automation.scenario'
ACTIVITY = 'marketing.automation.activity'


def tokens(count, seed=42):
    "Return count tokens like those of the records, the same on each run"
    generator = random.Random(seed)
    return ['%032x' % generator.getrandbits(128) for _ in range(count)]


class ChooseTestCase(unittest.TestCase):
    "Test the choice of the variant of a record"

    def test_same_token_same_variant(self):
        weights = [('a', 1), ('b', 1), ('c', 2)]
        for token in tokens(100):
            self.assertEqual(
                choose(token, 'group', weights),
                choose(token, 'group', weights))

    def test_known_choices(self):
        "Test the choice does not depend on the process (no hash())"
        weights = [('a', 1), ('b', 1)]
        script = (
            'from trytond.modules.marketing_automation.variants import '
            'choose\n'
            'import sys\n'
            'print("".join(choose(t, "group", [("a", 1), ("b", 1)]) '
            'for t in sys.argv[1:]))\n')
        sample = tokens(50)
        expected = ''.join(choose(t, 'group', weights) for t in sample)
        for seed in ['1', '2']:
            output = subprocess.run(
                [sys.executable, '-c', script, *sample],
                env={**os.environ, 'PYTHONHASHSEED': seed},
                capture_output=True, text=True, check=True).stdout
            self.assertEqual(output.strip(), expected)
        # Pinned: a change of the function would move enrolled records
        self.assertEqual(
            [choose(t, 'marketing.automation.scenario,1|', weights)
                for t in ['0' * 32, 'f' * 32, 'deadbeef' * 4]],
            [self.pinned(t) for t in ['0' * 32, 'f' * 32, 'deadbeef' * 4]])

    @staticmethod
    def pinned(token):
        "The documented computation, written out"
        digest = hashlib.sha256(
            ('marketing.automation.scenario,1|\x00' + token).encode()
            ).digest()
        return 'a' if int.from_bytes(digest[:8], 'big') * 2 >> 64 < 1 else 'b'

    def test_distribution(self):
        "Test each variant gets its share of 10,000 tokens"
        for weights in [
                [('a', 1), ('b', 1)],
                [('a', 1), ('b', 3)],
                [('a', 50), ('b', 30), ('c', 20)],
                ]:
            total = sum(w for _, w in weights)
            counts = Counter(
                choose(t, 'group', weights) for t in tokens(10000))
            for variant, weight in weights:
                with self.subTest(weights=weights, variant=variant):
                    self.assertAlmostEqual(
                        counts[variant] / 10000, weight / total, delta=0.02)

    def test_groups_independent(self):
        "Test two groups split the same tokens independently"
        weights = [('a', 1), ('b', 1)]
        same = sum(
            choose(t, 'first', weights) == choose(t, 'second', weights)
            for t in tokens(10000))
        self.assertAlmostEqual(same / 10000, 0.5, delta=0.02)

    def test_no_weight_never_chosen(self):
        weights = [('a', 0), ('b', 1), ('c', None)]
        self.assertEqual(
            {choose(t, 'group', weights) for t in tokens(200)}, {'b'})
        self.assertIsNone(choose('token', 'group', [('a', 0)]))

    def test_group_key(self):
        self.assertEqual(
            group_key('marketing.automation.activity,3', 'email_opened',
                True),
            'marketing.automation.activity,3|email_opened_not')
        self.assertEqual(
            group_key('marketing.automation.scenario,1', None, False),
            'marketing.automation.scenario,1|')
        # Negative means nothing without an event
        self.assertEqual(
            group_key('marketing.automation.scenario,1', None, True),
            'marketing.automation.scenario,1|')


class ZTestTestCase(unittest.TestCase):
    "Test the two-proportion z-test"

    def test_z(self):
        # 45/100 vs 30/100: pooled 0.375,
        # standard error sqrt(0.375 * 0.625 * (1/100 + 1/100)) = 0.0684653
        z = two_proportion_z(45, 100, 30, 100)
        self.assertAlmostEqual(z, 0.15 / 0.0684653, places=4)
        self.assertAlmostEqual(z, 2.1909, places=4)
        self.assertAlmostEqual(
            two_proportion_z(30, 100, 45, 100), -z, places=12)

    def test_z_unequal_samples(self):
        # 120/1000 vs 50/500: pooled 170/1500,
        # standard error sqrt(0.113333 * 0.886667 * 0.003) = 0.0173564
        z = two_proportion_z(120, 1000, 50, 500)
        self.assertAlmostEqual(z, 0.02 / 0.0173564, places=3)

    def test_z_degenerate(self):
        self.assertIsNone(two_proportion_z(0, 0, 3, 10))
        self.assertEqual(two_proportion_z(0, 10, 0, 20), 0)
        self.assertEqual(two_proportion_z(10, 10, 20, 20), 0)

    def test_p_value(self):
        # Values of the standard normal table
        self.assertAlmostEqual(p_value(1.959964), 0.05, places=6)
        self.assertAlmostEqual(p_value(-1.959964), 0.05, places=6)
        self.assertAlmostEqual(p_value(2.575829), 0.01, places=6)
        self.assertAlmostEqual(p_value(1.0), 0.317311, places=6)
        self.assertEqual(p_value(0), 1)
        self.assertIsNone(p_value(None))
        self.assertAlmostEqual(p_value(2.1909), 0.02846, places=5)

    def test_compare_two(self):
        result = compare({'a': (30, 100), 'b': (45, 100)})
        self.assertEqual(result['a'].rate, 0.3)
        self.assertEqual(result['b'].rate, 0.45)
        # Both are the same test: the leader b against a
        self.assertAlmostEqual(result['a'].z, 2.1909, places=4)
        self.assertAlmostEqual(result['b'].z, 2.1909, places=4)
        self.assertAlmostEqual(result['a'].p_value, 0.02846, places=5)
        self.assertEqual(result['a'].p_value, result['b'].p_value)

    def test_compare_three(self):
        samples = {'a': (30, 100), 'b': (45, 100), 'c': (40, 100)}
        result = compare(samples)
        # Each one against the leader b, b against the runner-up c
        self.assertAlmostEqual(
            result['a'].z, two_proportion_z(45, 100, 30, 100))
        self.assertAlmostEqual(
            result['c'].z, two_proportion_z(45, 100, 40, 100))
        self.assertAlmostEqual(
            result['b'].z, two_proportion_z(45, 100, 40, 100))
        self.assertLess(result['a'].p_value, result['c'].p_value)

    def test_compare_tie_and_empty(self):
        result = compare({'a': (10, 100), 'b': (10, 100), 'c': (0, 0)})
        self.assertEqual(result['a'].z, 0)
        self.assertEqual(result['a'].p_value, 1)
        self.assertEqual(result['c'], (None, None, None))
        alone = compare({'a': (10, 100), 'b': (0, 0)})
        self.assertEqual(alone['a'], (0.1, None, None))


def create_parties(count, prefix="Party"):
    "Create count parties with an e-mail address; return them"
    Party = Pool().get('party.party')
    return Party.create([{
                'name': '%s %s' % (prefix, i),
                'contact_mechanisms': [('create', [{
                                'type': 'email',
                                'value': 'p%s-%s@example.com' % (prefix, i),
                                }])],
                } for i in range(count)])


class VariantsEngineTestCase(unittest.TestCase):
    "Test the engine runs one variant per record"

    @classmethod
    def setUpClass(cls):
        activate_module('marketing_automation')

    def runs(self, activity):
        "Return the ids of the records that run the activity"
        RecordActivity = Pool().get('marketing.automation.record.activity')
        return {ra.record.id for ra in RecordActivity.search(
                [('activity', '=', activity.id)])}

    def assertSplit(self, records, variants, weights=None):
        "Assert each record runs the one variant its token chooses"
        pool = Pool()
        Activity = pool.get(ACTIVITY)
        variants = Activity.browse([v.id for v in variants])
        runs = [self.runs(v) for v in variants]
        key = variants[0].variant_group_key
        pairs = [(v, v.variant_weight) for v in variants]
        for record in records:
            chosen = [v for v, r in zip(variants, runs) if record.id in r]
            self.assertEqual(
                chosen, [choose(record.uuid, key, pairs)], record.uuid)
        for run in runs:
            self.assertTrue(run)

    @with_transaction()
    def test_roots(self):
        "Test each record runs one root variant and every other root"
        create_parties(60)
        scenario = create_scenario(domain='[]')
        subject_a = create_activity(
            scenario, name="A", variant_weight=1, **email_values())
        subject_b = create_activity(
            scenario, name="B", variant_weight=1, **email_values())
        everyone = create_activity(scenario, name="Everyone")
        zero = create_activity(scenario, name="Zero", variant_weight=0)

        records = enrol(scenario)

        self.assertEqual(len(records), 60)
        self.assertSplit(records, [subject_a, subject_b])
        ids = {r.id for r in records}
        self.assertEqual(self.runs(everyone), ids)
        self.assertEqual(self.runs(zero), ids)

    @with_transaction()
    def test_roots_later_enrolment(self):
        "Test the records enrolled later get their variant, the first keep it"
        create_parties(20, "First")
        scenario = create_scenario(domain='[]')
        subject_a = create_activity(
            scenario, name="A", variant_weight=1, **email_values())
        subject_b = create_activity(
            scenario, name="B", variant_weight=3, **email_values())
        first = enrol(scenario)
        before = self.runs(subject_a), self.runs(subject_b)

        create_parties(20, "Second")
        records = enrol(scenario)

        self.assertEqual(len(records), 40)
        self.assertSplit(records, [subject_a, subject_b])
        self.assertEqual(
            (self.runs(subject_a) & {r.id for r in first},
                self.runs(subject_b) & {r.id for r in first}), before)

    @with_transaction()
    def test_children_on_event(self):
        "Test each record runs one child variant per event"
        create_parties(60)
        scenario = create_scenario(domain='[]')
        email = create_activity(scenario, **email_values())
        opened_a = create_activity(
            email, name="Opened A", on='email_opened', variant_weight=2)
        opened_b = create_activity(
            email, name="Opened B", on='email_opened', variant_weight=1)
        opened = create_activity(email, name="Opened", on='email_opened')
        not_opened_a = create_activity(
            email, name="Not opened A", on='email_opened_not',
            delay=dt.timedelta(days=1), variant_weight=1)
        not_opened_b = create_activity(
            email, name="Not opened B", on='email_opened_not',
            delay=dt.timedelta(days=1), variant_weight=1)
        records = enrol(scenario)

        mark_sent(email)

        ids = {r.id for r in records}
        self.assertSplit(records, [opened_a, opened_b])
        self.assertSplit(records, [not_opened_a, not_opened_b])
        self.assertEqual(self.runs(opened), ids)
        # The children of a variant follow it
        child = create_activity(
            opened_a, name="After A", **email_values())
        mark_sent(opened_a)
        self.assertEqual(self.runs(child), self.runs(opened_a))

    @with_transaction()
    def test_event_makes_chosen_variant_due(self):
        "Test an open makes due the chosen variant only"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        create_parties(10)
        scenario = create_scenario(domain='[]')
        email = create_activity(scenario, **email_values())
        opened_a = create_activity(
            email, name="Opened A", on='email_opened', variant_weight=1)
        opened_b = create_activity(
            email, name="Opened B", on='email_opened', variant_weight=1)
        enrol(scenario)
        sent = mark_sent(email)

        RecordActivity.on_email_opened(sent)

        due = RecordActivity.search([
                ('activity', 'in', [opened_a.id, opened_b.id]),
                ('at', '!=', None),
                ])
        self.assertEqual(len(due), 10)
        self.assertEqual(
            sorted(ra.record.id for ra in due),
            sorted(ra.record.id for ra in sent))

    @with_transaction()
    def test_negative_weight(self):
        "Test a negative weight is refused"
        scenario = create_scenario()
        with self.assertRaises(ValidationError):
            create_activity(scenario, variant_weight=-1)

    @with_transaction()
    def test_reporting(self):
        "Test the reporting compares the variants of a group"
        pool = Pool()
        RecordActivity = pool.get('marketing.automation.record.activity')
        Reporting = pool.get('marketing.automation.reporting.variant')
        Activity = pool.get(ACTIVITY)
        create_parties(40)
        scenario = create_scenario(domain='[]')
        subject_a = create_activity(
            scenario, name="A", variant_weight=1, **email_values())
        subject_b = create_activity(
            scenario, name="B", variant_weight=3, **email_values())
        other = create_activity(scenario, name="Other", **email_values())
        enrol(scenario)
        sent_a = mark_sent(subject_a)
        sent_b = mark_sent(subject_b)
        mark_sent(other)
        RecordActivity.write(sent_a[:len(sent_a) // 2], {
                'email_opened': True})
        RecordActivity.write(sent_b[:2], {
                'email_opened': True, 'email_clicked': True})

        rows = Reporting.search([('scenario', '=', scenario.id)])

        self.assertEqual(
            [r.activity for r in rows], [subject_a, subject_b])
        row_a, row_b = rows
        self.assertEqual(row_a.variant_group, row_b.variant_group)
        self.assertEqual(row_a.variant_group, subject_a.variant_group_key)
        self.assertEqual((row_a.weight, row_b.weight), (1, 3))
        self.assertEqual((row_a.share, row_b.share), (0.25, 0.75))
        self.assertEqual(
            (row_a.email_sent, row_b.email_sent),
            (len(sent_a), len(sent_b)))
        self.assertEqual(
            (row_a.email_opened, row_b.email_opened),
            (len(sent_a) // 2, 2))
        self.assertEqual((row_a.email_clicked, row_b.email_clicked), (0, 2))
        opens = compare({
                'a': (len(sent_a) // 2, len(sent_a)),
                'b': (2, len(sent_b))})
        self.assertEqual(row_a.open_rate, round(opens['a'].rate, 4))
        self.assertEqual(row_b.open_rate, round(opens['b'].rate, 4))
        self.assertEqual(row_a.open_z, round(opens['a'].z, 2))
        self.assertEqual(row_b.open_p_value, round(opens['b'].p_value, 4))
        self.assertEqual(row_a.click_rate, 0)
        self.assertEqual(
            row_a.click_p_value,
            round(p_value(two_proportion_z(2, len(sent_b), 0, len(sent_a))),
                4))
        self.assertIn(scenario.name, row_a.group)
        # The activity form shows its group
        subject_a = Activity(subject_a.id)
        self.assertEqual(
            [r.id for r in subject_a.variant_comparison],
            [subject_a.id, subject_b.id])
        self.assertEqual(Activity(other.id).variant_comparison, ())
