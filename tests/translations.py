# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Check and update the translations of the module.

The strings to translate are those trytond's own export ("Export
Translations" wizard, ``ir.translation.translation_export``) gives for the
module, in a database where the module is activated with its extras::

    python -m tests.translations            # report, exit 1 when incomplete
    python -m tests.translations --update   # merge the export into fr.po

``--update`` keeps the existing translations (matched on msgctxt and
msgid), adds the new strings with an empty msgstr, removes the obsolete ones
and sorts the file as trytond's export does: a translator only fills the
blanks.  The database is SQLite in memory unless ``TRYTOND_DATABASE_URI``
and ``DB_NAME`` say otherwise; it is a new one (about 30 seconds) unless
``--cached`` lets ``DB_CACHE`` provide it.  The labels, help texts,
selections and views are read from the code even from a cached database,
but its XML records (messages, menus, actions) are those of the time it was
cached.
"""
import argparse
import os
import re
import sys
from collections import namedtuple
from pathlib import Path

import polib

MODULE = 'marketing_automation'
EXTRAS = ['sale', 'web_shortener', 'inbound_email']
LANGUAGES = ['fr']
MODULE_DIR = Path(__file__).resolve().parent.parent / MODULE
LOCALE_DIR = MODULE_DIR / 'locale'

Report = namedtuple('Report', [
        'missing', 'untranslated', 'fuzzy', 'placeholders', 'obsolete'])
PLACEHOLDER = re.compile(r'%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]')


def key(entry):
    "The key of an entry: what trytond matches a translation on"
    return (entry.msgctxt or '', entry.msgid)


def placeholders(text):
    "The sorted %-placeholders of text"
    return sorted(PLACEHOLDER.findall(text or ''))


def label(entry):
    return '%s %r' % (entry.msgctxt, entry.msgid)


def _setup_environment():
    os.environ.setdefault('TRYTOND_DATABASE_URI', 'sqlite://')
    os.environ.setdefault('DB_NAME', ':memory:')


def _is_ours(cls):
    "Whether the module defines or extends the pool class"
    return any(
        c.__module__.startswith('trytond.modules.%s.' % MODULE)
        for c in cls.__mro__)


def _refresh(pool, module):
    """Bring the strings of the database up to date with the code

    A database restored from DB_CACHE may predate the last changes of
    labels, help texts, selections and buttons: register them again and
    remove those the code no longer has, with the checks of trytond's
    "Clean Translations" wizard.
    """
    from trytond.ir.translation import INTERNAL_LANG
    Translation = pool.get('ir.translation')
    Clean = pool.get('ir.translation.clean', type='wizard')
    for _, Model in pool.iterobject():
        if _is_ours(Model):
            Translation.register_model(Model, module)
            Translation.register_fields(Model, module)
    for _, Wizard in pool.iterobject(type='wizard'):
        if _is_ours(Wizard):
            Translation.register_wizard(Wizard, module)
    translations = Translation.search([
            ('lang', '=', INTERNAL_LANG),
            ('module', '=', module),
            ('type', 'in', ['field', 'help', 'selection', 'wizard_button']),
            ])
    Translation.delete([t for t in translations
            if getattr(Clean, '_clean_%s' % t.type)(t)])


def _synchronize(Translation, language, module):
    from sql import Literal

    from trytond.ir.translation import INTERNAL_LANG
    from trytond.transaction import Transaction
    cursor = Transaction().connection.cursor()
    translation = Translation.__table__()
    cursor.execute(*translation.delete(
            where=(translation.lang == language)
            & (translation.module == module)))
    columns = ['name', 'res_id', 'type', 'src', 'src_plural', 'module']
    cursor.execute(*translation.insert(
            [getattr(translation, c) for c in columns + [
                    'lang', 'value', 'fuzzy']],
            translation.select(
                *[getattr(translation, c) for c in columns],
                Literal(language), Literal(''), Literal(False),
                where=(translation.lang == INTERNAL_LANG)
                & (translation.module == module))))


def export(language, module=MODULE, extras=EXTRAS):
    """Return the POFile that trytond's export gives for module in language

    Its msgstr are empty: only its entries matter.  Nothing is committed.
    """
    _setup_environment()
    from trytond.pool import Pool
    from trytond.tests.test_tryton import DB_NAME, activate_module
    from trytond.transaction import Transaction

    activate_module([module] + list(extras))
    with Transaction().start(DB_NAME, 0, context={
                '_check_access': False}) as transaction:
        try:
            pool = Pool()
            Lang = pool.get('ir.lang')
            Translation = pool.get('ir.translation')
            Set = pool.get('ir.translation.set', type='wizard')

            _refresh(pool, module)
            # "Set Translations": the strings of the views and reports
            session_id, _, _ = Set.create()
            Set(session_id).transition_set_()
            # The entries of the language, as "Synchronize Translations"
            # makes them (its SQL misses the language on 8.2): a copy of
            # the strings with no translation.  Those of the module in the
            # language are removed first, so no older string lingers.
            if not Lang.search([('code', '=', language)]):
                raise ValueError("Unknown language: %s" % language)
            _synchronize(Translation, language, module)
            # "Export Translations"
            content = Translation.translation_export(language, module)
        finally:
            transaction.rollback()
    return polib.pofile((content or b'').decode('utf-8'))


def stale_cache(module=MODULE, extras=EXTRAS):
    """Return the DB_CACHE file of the modules if it is older than a file
    of the module: the XML records it holds (messages, menus, actions) may
    then be out of date."""
    from trytond import backend
    from trytond.tests import test_tryton
    cache = test_tryton.DB_CACHE
    if not cache or backend.name != 'sqlite':
        return None
    path = test_tryton._db_cache_file(cache, '-'.join([module] + list(extras)))
    if not os.path.exists(path):
        return None
    newest = max(
        p.stat().st_mtime for p in MODULE_DIR.rglob('*')
        if p.is_file() and p.suffix in {'.py', '.xml', '.cfg', '.html'})
    if os.path.getmtime(path) < newest:
        return path


def po_path(language):
    return LOCALE_DIR / ('%s.po' % language)


def read(language):
    path = po_path(language)
    if path.exists():
        return polib.pofile(str(path))
    return polib.POFile()


def compare(exported, pofile):
    """Compare the entries of the export with those of the pofile

    Return the exported entries missing from the pofile, those with an empty
    translation, those marked fuzzy, those whose translation has not the
    same %-placeholders as the source (for python-format entries), and the
    entries of the pofile the export does not have (obsolete ones included).
    """
    entries = {key(e): e for e in pofile if not e.obsolete}
    expected = {key(e) for e in exported}
    missing, untranslated, fuzzy, wrong = [], [], [], []
    for entry in exported:
        translated = entries.get(key(entry))
        if translated is None:
            missing.append(entry)
        elif 'fuzzy' in translated.flags:
            fuzzy.append(translated)
        elif not (translated.msgstr
                or any(translated.msgstr_plural.values())):
            untranslated.append(translated)
        elif 'python-format' in entry.flags and any(
                placeholders(entry.msgid) != placeholders(v)
                for v in ([translated.msgstr] if not entry.msgid_plural
                    else translated.msgstr_plural.values())):
            wrong.append(translated)
    obsolete = [e for e in pofile if e.obsolete or key(e) not in expected]
    return Report(missing, untranslated, fuzzy, wrong, obsolete)


def merge(exported, pofile):
    """Return the export with the translations of the pofile

    Existing translations (and their flags, e.g. fuzzy) are kept, new entries
    have an empty msgstr, obsolete entries are dropped; sorted as trytond's
    export sorts.
    """
    from trytond.ir.translation import TrytonPOFile
    entries = {key(e): e for e in pofile if not e.obsolete}
    result = TrytonPOFile(wrapwidth=78)
    result.metadata = {
        'Content-Type': 'text/plain; charset=utf-8',
        }
    for entry in exported:
        old = entries.get(key(entry))
        new = polib.POEntry(msgctxt=entry.msgctxt, msgid=entry.msgid)
        flags = [f for f in entry.flags if f != 'fuzzy']
        if entry.msgid_plural:
            new.msgid_plural = entry.msgid_plural
            new.msgstr_plural = (
                dict(old.msgstr_plural) if old else {0: ''})
        else:
            new.msgstr = old.msgstr if old else ''
        if old and 'fuzzy' in old.flags:
            flags.append('fuzzy')
        new.flags = flags
        result.append(new)
    result.sort()
    return result


def describe(report, language):
    "The lines that tell what the pofile of language lacks"
    lines = []
    for title, entries in [
            ("missing", report.missing),
            ("without translation", report.untranslated),
            ("fuzzy", report.fuzzy),
            ("with other placeholders than the source", report.placeholders),
            ("obsolete", report.obsolete),
            ]:
        if entries:
            lines.append("%s: %s entries %s:" % (
                    po_path(language).relative_to(MODULE_DIR.parent),
                    len(entries), title))
            lines.extend('    ' + label(e) for e in entries)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Check the translations of the module against the "
        "strings trytond exports, or update them.")
    parser.add_argument('--update', action='store_true',
        help="write the merged .po files")
    parser.add_argument('--cached', action='store_true',
        help="use the database cached in DB_CACHE (it may predate the "
        "last changes of the XML files); by default the modules are "
        "activated in a new database")
    parser.add_argument('languages', nargs='*', default=LANGUAGES,
        metavar='LANG', help="default: %(default)s")
    args = parser.parse_args(argv)
    if not args.cached:
        os.environ.pop('DB_CACHE', None)

    complete = True
    for language in args.languages:
        exported = export(language)
        pofile = read(language)
        report = compare(exported, pofile)
        if args.update:
            merged = merge(exported, pofile)
            merged.save(str(po_path(language)))
            report = compare(exported, merged)
        todo = sum(map(len, [report.missing, report.untranslated,
                    report.fuzzy, report.placeholders]))
        for line in describe(report, language):
            print(line)
        print("%s: %s entries, %s to translate, %s obsolete%s" % (
                po_path(language).relative_to(MODULE_DIR.parent),
                len(exported), todo, len(report.obsolete),
                " (updated)" if args.update else ""))
        if todo or report.obsolete:
            complete = False
    return 0 if complete else 1


if __name__ == '__main__':
    if __package__ is None or __package__ == '':
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
