# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"Run the narrative scenarios: pytest ignores load_tests"
import glob
import os
import unittest

import pytest

from trytond.tests.test_tryton import load_doc_tests

SCENARIOS = sorted(
    os.path.basename(p) for p in glob.glob(
        os.path.join(os.path.dirname(__file__), 'scenario_*.rst')))


@pytest.mark.parametrize('filename', SCENARIOS)
def test_scenario(filename):
    loader = unittest.TestLoader()
    loader.testNamePatterns = [filename]
    suite = load_doc_tests(
        __name__, __file__, loader, unittest.TestSuite(), None)
    assert suite.countTestCases() == 1, filename
    result = unittest.TestResult()
    suite.run(result)
    problems = result.failures + result.errors
    assert not problems, '\n'.join(text for _, text in problems)
