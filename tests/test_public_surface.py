# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The public surface of Tryton's own module is also ours

The published wheel of Tryton's ``marketing_automation`` 8.2 is downloaded
(never installed) and read as a zip: its XML files give the XML ids (with
the model of each record), its Python files, parsed with ``ast`` and never
imported, give the models, their fields (type, target, selection keys) and
their buttons.  Each of them must exist in our activated module with the
same meaning; the test lists every difference at once.
"""
import ast
import configparser
import glob
import os
import subprocess
import sys
import unittest
import zipfile
from xml.etree import ElementTree

from trytond.pool import Pool
from trytond.tests.test_tryton import (
    activate_module, drop_db, with_transaction)

MODULE = 'marketing_automation'
EXTRAS = ['sale', 'web_shortener', 'inbound_email']
REQUIREMENT = 'trytond_marketing_automation>=8.2,<8.3'
CACHE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    '.cache', 'official')
PREFIX = 'trytond/modules/%s/' % MODULE

# Deliberate differences only, each with its reason; the keys are
# (kind, name) as in the failure message, or ('extra selection key', field,
# key) for a selection value we add.
ALLOWED = {
    ('extra selection key', 'marketing.automation.record.activity.state',
        'failed'): (
        "Sending can fail for good (SPEC B.3): such a record activity is "
        "neither done nor cancelled, and its state says so."),
    }


def official_wheel():
    "Return the path of the official wheel, downloading it when needed"
    wheels = sorted(glob.glob(os.path.join(
                CACHE, 'trytond_marketing_automation-8.2.*.whl')))
    if wheels:
        return wheels[-1]
    os.makedirs(CACHE, exist_ok=True)
    process = subprocess.run([
            sys.executable, '-m', 'pip', 'download', '--no-deps',
            '--only-binary=:all:', '--disable-pip-version-check',
            '--dest', CACHE, REQUIREMENT],
        capture_output=True, text=True, timeout=300)
    wheels = sorted(glob.glob(os.path.join(
                CACHE, 'trytond_marketing_automation-8.2.*.whl')))
    if process.returncode or not wheels:
        raise unittest.SkipTest(
            "The package index cannot be reached: %s"
            % (process.stderr.strip().splitlines() or ['?'])[-1])
    return wheels[-1]


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _call_name(node):
    "Return 'Char' for a call of fields.Char(...)"
    if (isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == 'fields'):
        return node.func.attr


def _field(node):
    """Return the description of the field built by node (or None)

    A dictionary with its type, the models it points to and the keys of
    a literal selection; a Function field is described by its inner field.
    """
    kind = _call_name(node)
    if not kind:
        return None
    args = node.args
    if kind in {'Function', 'MultiValue'}:
        return _field(args[0]) if args else None
    description = {'type': kind.lower()}
    strings = [_literal(a) for a in args]
    if kind in {'Many2One', 'One2Many', 'One2One'} and strings:
        description['target'] = strings[0]
    elif kind == 'Many2Many' and len(strings) >= 3:
        description['target'] = (strings[0], strings[2])
    if kind in {'Selection', 'MultiSelection'} and args:
        keys = _literal(args[0])
        if isinstance(keys, list):
            description['selection'] = {k for k, _ in keys}
    return description


def _dict_keys(node):
    if isinstance(node, ast.Dict):
        return {_literal(k) for k in node.keys}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict'):
        return {k.arg for k in node.keywords}
    return set()


class _Class:
    def __init__(self, node):
        self.node = node
        self.name = None
        self.fields = {}
        self.buttons = set()
        self.extended = {}  # field -> selection keys added in __setup__
        self.bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        for statement in node.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if not isinstance(target, ast.Name):
                        continue
                    if target.id == '__name__':
                        self.name = _literal(statement.value)
                    else:
                        field = _field(statement.value)
                        if field:
                            self.fields[target.id] = field
        for sub in ast.walk(node):
            if not (isinstance(sub, ast.Call)
                    and isinstance(sub.func, ast.Attribute)):
                continue
            owner = sub.func.value
            # cls._buttons.update({...})
            if (sub.func.attr == 'update'
                    and isinstance(owner, ast.Attribute)
                    and owner.attr == '_buttons'):
                if sub.args:
                    self.buttons |= _dict_keys(sub.args[0])
                self.buttons |= {k.arg for k in sub.keywords}
            # cls.<field>.selection.extend([...]) / .append((...))
            if (sub.func.attr in {'extend', 'append'}
                    and isinstance(owner, ast.Attribute)
                    and owner.attr == 'selection'
                    and isinstance(owner.value, ast.Attribute)
                    and sub.args):
                value = _literal(sub.args[0])
                if sub.func.attr == 'append':
                    value = [value]
                if isinstance(value, list):
                    self.extended.setdefault(owner.value.attr, set()).update(
                        k for k, _ in value)


def official_surface(path):
    """Return (xml_ids, models) of the official module in the wheel

    xml_ids maps each XML id to the model of its record; models maps each
    registered name to (pool type, fields, buttons, extended selections).
    """
    with zipfile.ZipFile(path) as wheel:
        def read(name):
            return wheel.read(PREFIX + name)
        config = configparser.ConfigParser()
        config.read_string(read('tryton.cfg').decode('utf-8'))

        xml_ids = {}
        for name in config.get('tryton', 'xml').split():
            root = ElementTree.fromstring(read(name))
            for element in root.iter():
                if element.tag == 'record':
                    xml_ids[element.get('id')] = element.get('model')
                elif element.tag == 'menuitem':
                    xml_ids[element.get('id')] = 'ir.ui.menu'

        classes = {}  # (file, class name) -> _Class
        for member in wheel.namelist():
            if (not member.startswith(PREFIX) or not member.endswith('.py')
                    or '/tests/' in member):
                continue
            file = member[len(PREFIX):-len('.py')]
            tree = ast.parse(wheel.read(member))
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    classes[file, node.name] = _Class(node)

    def lookup(file, name):
        if (file, name) in classes:
            return classes[file, name]
        for (_, other), klass in classes.items():
            if other == name and not klass.name:
                return klass

    def fields(file, klass, seen=()):
        result = {}
        for base in reversed(klass.bases):
            parent = lookup(file, base)
            if parent and parent not in seen:
                result.update(fields(file, parent, seen + (klass,)))
        result.update(klass.fields)
        return result

    models = {}
    for section in config.sections():
        if section != 'register' and not section.startswith('register '):
            continue
        for type_ in ['model', 'report', 'wizard']:
            for entry in config.get(section, type_, fallback='').split():
                file, name = entry.split('.')
                klass = classes[file, name]
                models[klass.name] = (
                    type_, fields(file, klass), klass.buttons, klass.extended)
    return xml_ids, models


def _describe(Model, field):
    description = {'type': field._type}
    if field._type in {'many2one', 'one2many', 'one2one'}:
        description['target'] = field.model_name
    elif field._type == 'many2many':
        description['target'] = (field.relation_name, field.target)
    selection = getattr(field, 'selection', None)
    if isinstance(selection, str):
        try:
            selection = getattr(Model, selection)()
        except TypeError:  # an instance method: depends on the record
            selection = None
    if isinstance(selection, (list, tuple)):
        description['selection'] = {k for k, _ in selection}
    return description


def differences(xml_ids, models):
    "Return the lines describing how our activated module differs"
    pool = Pool()
    ModelData = pool.get('ir.model.data')
    ours = {d.fs_id: d.model for d in ModelData.search([
                ('module', '=', MODULE),
                ])}
    lines = []

    def report(kind, name, text):
        if (kind, name) not in ALLOWED:
            lines.append('%s %s: %s' % (kind, name, text))

    for xml_id, model in sorted(xml_ids.items()):
        if xml_id not in ours:
            report('xml id', xml_id, 'missing (a %s)' % model)
        elif ours[xml_id] != model:
            report('xml id', xml_id, 'is a %s, not a %s' % (
                    ours[xml_id], model))

    for name, (type_, fields, buttons, extended) in sorted(models.items()):
        try:
            Model = pool.get(name, type=type_)
        except KeyError:
            report(type_, name, 'missing')
            continue
        if type_ != 'model':
            continue
        for fname, official in sorted(fields.items()):
            key = '%s.%s' % (name, fname)
            if fname not in Model._fields:
                report('field', key, 'missing (a %s)' % official['type'])
                continue
            mine = _describe(Model, Model._fields[fname])
            for aspect in ['type', 'target']:
                if official.get(aspect) != mine.get(aspect):
                    report('field', key, '%s is %r, not %r' % (
                            aspect, mine.get(aspect), official.get(aspect)))
            if 'selection' in official:
                if 'selection' not in mine:
                    report('field', key, 'selection is not a static list')
                    continue
                missing = official['selection'] - mine['selection']
                if missing:
                    report('field', key, 'selection misses %s' % sorted(
                            missing, key=str))
                for extra in mine['selection'] - official['selection']:
                    if ('extra selection key', key, extra) not in ALLOWED:
                        report('field', key, 'selection has also %r' % extra)
        for fname, keys in sorted(extended.items()):
            key = '%s.%s' % (name, fname)
            mine = _describe(Model, Model._fields[fname])
            mine = mine.get('selection', set())
            if keys - mine:
                report('field', key, 'selection misses %s' % sorted(
                        keys - mine, key=str))
        for button in sorted(buttons):
            if button not in Model._buttons:
                report('button', '%s.%s' % (name, button), 'missing')
    return lines


class PublicSurfaceTestCase(unittest.TestCase):
    "Test the public surface of the official module is ours"

    @classmethod
    def setUpClass(cls):
        cls.xml_ids, cls.models = official_surface(official_wheel())
        drop_db()
        activate_module([MODULE] + EXTRAS)

    @classmethod
    def tearDownClass(cls):
        drop_db()

    def test_read_official(self):
        "The official package gives a plausible surface"
        self.assertIn('act_scenario_form', self.xml_ids)
        self.assertEqual(self.xml_ids['menu_scenario_form'], 'ir.ui.menu')
        type_, fields, buttons, _ = self.models[
            'marketing.automation.record.activity']
        self.assertEqual(type_, 'model')
        self.assertEqual(
            fields['state']['selection'], {'waiting', 'done', 'cancelled'})
        self.assertIn('on_email_opened', buttons)
        self.assertEqual(
            self.models['party.party'][1]['marketing_party']['target'],
            'party.party')

    @with_transaction()
    def test_public_surface(self):
        "Every model, field, button and XML id of the official module exists"
        lines = differences(self.xml_ids, self.models)
        if lines:
            self.fail("%d differences with the official module:\n%s" % (
                    len(lines), '\n'.join(lines)))
