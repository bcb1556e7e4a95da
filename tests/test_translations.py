# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
import unittest

from tests import translations


class TranslationsTestCase(unittest.TestCase):
    "Test that the translations of the module are complete"

    def check_language(self, language):
        exported = translations.export(language)
        self.assertTrue(len(exported), "The export has no entry")
        report = translations.compare(exported, translations.read(language))
        lines = translations.describe(report, language)
        if lines:
            lines.append(
                "Run 'python -m tests.translations --update' and fill the "
                "empty msgstr (see README.rst, Development).")
            stale = translations.stale_cache()
            if stale:
                lines.append(
                    "The cached database %s is older than the module: "
                    "delete it if an entry above is not expected." % stale)
            self.fail('\n'.join(lines))

    def test_fr(self):
        "Every string of the module is translated in French"
        self.check_language('fr')
