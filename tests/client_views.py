# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Open the module's actions, relates and views in the Tryton desktop client

Run by tests/test_client.py with the Python of a virtual environment that
has the ``tryton`` package and access to GTK (``gi``), on an X display:

    client_views.py HOST:PORT DATABASE LOGIN PASSFILE

It logs in, then opens each act_window of the module as the client does
(``Action.execute`` builds the window's arguments, a ``Screen`` like the one
of a tab shows them), each ``form_relate`` action on records of its model,
and each view of the module, with records in them.  Every exception raised
by the client, every dialog it opens and every GTK critical message is
recorded.  The report is printed on stdout as one line of JSON.
"""
import glob
import json
import logging
import os
import sys
import traceback
from collections import defaultdict
from contextlib import contextmanager
from xml.etree import ElementTree

import gi

gi.require_version('Gtk', '3.0')
gi.require_version('Gdk', '3.0')

from gi.repository import GLib, Gtk  # noqa: E402
from tryton.config import CONFIG  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as a script: the repository is not on the path
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from demo.desktop import pump  # noqa: E402

MODULE = 'marketing_automation'
MODULE_DIR = os.path.join(ROOT, MODULE)
# Records shown one after the other in each form view
FORM_RECORDS = 5
GTK_DOMAINS = [
    None, 'Gtk', 'Gdk', 'GLib', 'GLib-GObject', 'GLib-GIO', 'Pango',
    'GdkPixbuf', 'PyGObject']


class Report:
    "What was opened and what went wrong, step by step"

    def __init__(self):
        self.steps = []
        self.errors = []
        self.current = None

    @contextmanager
    def step(self, kind, name, **info):
        step = dict(kind=kind, name=name, views=[], errors=[], **info)
        self.steps.append(step)
        self.current = step
        try:
            yield step
        except Exception:
            self.error(traceback.format_exc())
        finally:
            self.current = None

    def error(self, text):
        target = self.current['errors'] if self.current else self.errors
        # A broken cell fails once per row and per redraw
        if text not in target:
            target.append(text)

    def as_dict(self):
        return {'steps': self.steps, 'errors': self.errors}


REPORT = Report()


def record_dialog(self, *args, **kwargs):
    "Replace the client's dialogs, which would wait for a click"
    REPORT.error('%s: %s' % (type(self).__name__, ' | '.join(
                str(a) for a in args)))
    return Gtk.ResponseType.CANCEL


def record_exception(type_, value, tb):
    REPORT.error(''.join(traceback.format_exception(type_, value, tb)))


def record_log(domain, level, message, data):
    REPORT.error('%s-%s: %s' % (
            domain or 'default', level_name(level), message))


def level_name(level):
    if level & GLib.LogLevelFlags.LEVEL_ERROR:
        return 'ERROR'
    return 'CRITICAL'


class RecordLogging(logging.Handler):

    def emit(self, record):
        REPORT.error('%s: %s' % (record.name, self.format(record)))


def install_hooks():
    "Record instead of showing or printing what goes wrong"
    from tryton.common.common import UniqueDialog
    UniqueDialog.__call__ = record_dialog
    sys.excepthook = record_exception
    levels = (GLib.LogLevelFlags.LEVEL_CRITICAL
        | GLib.LogLevelFlags.LEVEL_ERROR
        | GLib.LogLevelFlags.FLAG_FATAL
        | GLib.LogLevelFlags.FLAG_RECURSION)
    for domain in GTK_DOMAINS:
        GLib.log_set_handler(domain, levels, record_log, None)
    handler = RecordLogging(logging.ERROR)
    logging.getLogger().addHandler(handler)


def login(host, database, user, passfile):
    from tryton import common, rpc
    CONFIG['login.host'] = host
    CONFIG['login.db'] = database
    CONFIG['login.login'] = user
    # Synchronous calls: each step is over when its function returns
    CONFIG['thread'] = False
    with open(passfile) as fp:
        password = fp.read().strip()
    rpc.login({'password': password})
    # What the main window loads after the login
    common.RPCContextReload()
    for load in [
            common.IconFactory.load_icons,
            common.MODELACCESS.load_models,
            common.MODELHISTORY.load_history,
            common.MODELNOTIFICATION.load_names,
            common.VIEW_SEARCH.load_searches]:
        load()


def execute(model, method, *args):
    "Call the server directly, failing loudly"
    from tryton import rpc
    return rpc.execute('model', model, method, *args, rpc.CONTEXT)


def module_records(model):
    "Return the ids of the records of the model defined by the module"
    return [execute('ir.model.data', 'get_id', MODULE, fs_id)
        for fs_id in XML_IDS[model]]


def xml_ids():
    "Return the ids in the module's XML files of the records per model"
    ids = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(MODULE_DIR, '*.xml'))):
        for record in ElementTree.parse(path).iter('record'):
            ids[record.get('model')].append(record.get('id'))
    return ids


XML_IDS = xml_ids()


def capture_window(action, data=None):
    "Return the arguments the client gives to the window of the action"
    from tryton.action import Action
    from tryton.gui.window import Window
    created = []

    def create(model, **attributes):
        created.append((model, attributes))

    saved = Window.create
    Window.create = staticmethod(create)
    try:
        Action.execute(action, data, keyword=bool(data))
    finally:
        Window.create = saved
    model, attributes = created.pop()
    return model, attributes


def main_window():
    "Give the client's application the window that shows the tabs"
    from tryton.gui import Main
    main = Main()
    main.window = Gtk.Window()
    main.window.set_default_size(1200, 800)
    main.window.show_all()
    return main.window


class Tab:
    "A Screen in the main window, as a tab of the client shows it"

    def __init__(self, model, **attributes):
        from tryton.gui import Main
        from tryton.gui.window.view_form.screen import Screen
        self.window = Main().window
        self.screen = Screen(
            model, breadcrumb=[attributes.get('name', model)], **attributes)
        self.window.add(self.screen.widget)
        self.window.show_all()

    def destroy(self):
        self.window.remove(self.screen.widget)
        self.screen.destroy()

    @property
    def view_type(self):
        return self.screen.current_view.view_type

    def visit(self, step, new=False):
        "Show each view of the screen with records and describe them"
        if self.view_type == 'form':
            self.show_form(step, new)
        else:
            self.show_list(step)
        for _ in range(self.screen.number_of_views - 1):
            self.screen.switch_view()
            pump()
            if self.view_type == 'form':
                self.show_form(step, new)
            else:
                self.describe(step)

    def show_list(self, step):
        self.screen.search_filter()
        pump()
        for index in self.tab_indexes():
            self.screen.screen_container.notebook.set_current_page(index)
            pump()
            if self.screen.group:
                break
        self.expand()
        self.describe(step)

    def tab_indexes(self):
        "The tabs of the action's domains, the last one (All) first"
        notebook = self.screen.screen_container.notebook
        if not notebook or self.screen.group:
            return []
        return reversed(range(notebook.get_n_pages()))

    def expand(self):
        view = self.screen.current_view
        if view.view_type == 'tree' and view.children_field:
            view.treeview.expand_all()
            pump()

    def show_form(self, step, new):
        if new:
            self.screen.new()
            pump()
            self.describe(step)
            return
        if not self.screen.group:
            self.screen.load(execute(
                    self.screen.model_name, 'search', [], 0, FORM_RECORDS,
                    None))
        if self.screen.group and not self.screen.current_record:
            self.screen.current_record = self.screen.group[0]
        self.screen.display()
        pump()
        self.describe(step)
        for _ in range(FORM_RECORDS - 1):
            if not self.screen.has_next():
                break
            self.screen.display_next()
            pump()
            step['views'][-1]['records'] += 1

    def describe(self, step):
        view = self.screen.current_view
        records = len(self.screen.group)
        if view.view_type == 'form':
            records = int(self.screen.current_record is not None)
        step['views'].append({
                'type': view.view_type,
                'view_id': view.view_id,
                'records': records,
                })


def open_tab(step, model, attributes, new=False):
    tab = Tab(model, **attributes)
    try:
        pump()
        tab.visit(step, new=new)
    finally:
        tab.destroy()
        pump(0.05)


def is_stored(model):
    "Whether the model has records to show, as a ModelSQL"
    try:
        execute(model, 'search_count', [], 0, 1)
    except Exception:
        return False
    return True


def open_wizards():
    "Open each wizard at its first view as the client does, then end it"
    for action in execute(
            'ir.action.wizard', 'read',
            module_records('ir.action.wizard'),
            ['name', 'wiz_name', 'model']):
        with REPORT.step(
                'wizard', action['name'], model=action['model'],
                action=action['id']) as step:
            open_wizard(step, action)


def open_wizard(step, action):
    from tryton import rpc
    from tryton.gui import Main
    from tryton.gui.window.wizard import Wizard
    model = action['model']
    ids = (execute(model, 'search', [], 0, FORM_RECORDS, None)
        if model and is_stored(model) else [])
    # The base class of the client's wizard tabs and dialogs: it runs the
    # wizard and builds its view without a parent window
    wizard = Wizard(name=action['name'])
    window = Main().window
    window.add(wizard.widget)
    try:
        wizard.run(action['wiz_name'], {
                'model': model,
                'id': ids[0] if ids else None,
                'ids': ids,
                'action_id': action['id'],
                }, context=rpc.CONTEXT)
        window.show_all()
        pump()
        if wizard.screen is None:
            REPORT.error("no view opened")
        else:
            step['views'].append({
                    'type': wizard.screen.current_view.view_type,
                    'view_id': wizard.screen.current_view.view_id,
                    'records': int(
                        wizard.screen.current_record is not None),
                    'buttons': sorted(wizard.states),
                    })
        wizard.end()
        pump()
    finally:
        window.remove(wizard.widget)
        pump(0.05)


def form_relates():
    "Return the source model of each relate action of the module"
    keywords = execute(
        'ir.action.keyword', 'read', module_records('ir.action.keyword'),
        ['action', 'model', 'keyword'])
    return {k['action']: k['model'].split(',')[0] for k in keywords
        if k['keyword'] == 'form_relate'}


def open_actions():
    relates = form_relates()
    for action in execute(
            'ir.action.act_window', 'read',
            module_records('ir.action.act_window'),
            ['name', 'action', 'res_model']):
        if action['action'] in relates:
            open_relate(action, relates[action['action']])
        else:
            with REPORT.step(
                    'action', action['name'], model=action['res_model'],
                    action=action['id']) as step:
                model, attributes = capture_window(action['action'])
                open_tab(step, model, attributes)


def open_relate(action, model_name):
    "Open the relate from a record of the source model that has some"
    with REPORT.step(
            'relate', action['name'], model=action['res_model'],
            source=model_name, action=action['id']) as step:
        for record_id in execute(model_name, 'search', [], 0, None, None):
            data = {'model': model_name, 'id': record_id, 'ids': [record_id]}
            model, attributes = capture_window(action['action'], data)
            domain = attributes['domain']
            if execute(model, 'search_count', domain, 0, 1):
                break
        step['source_id'] = record_id
        open_tab(step, model, attributes)


def open_views():
    for view in execute(
            'ir.ui.view', 'read', module_records('ir.ui.view'),
            ['model', 'type', 'inherit', 'name']):
        view_id = view['inherit'] or view['id']
        with REPORT.step(
                'view', view['name'], model=view['model'],
                view_type=view['type'], view=view_id) as step:
            if view['type'] is None:
                # An extension: shown in the view it extends
                view['type'] = execute(
                    'ir.ui.view', 'read', [view_id], ['type'])[0]['type']
            attributes = {'view_ids': [view_id], 'mode': [view['type']]}
            open_tab(
                step, view['model'], attributes,
                new=not is_stored(view['model']))


def main(host, database, user, passfile):
    install_hooks()
    try:
        with REPORT.step('login', user):
            main_window()
            login(host, database, user, passfile)
        if not REPORT.steps[-1]['errors']:
            open_actions()
            open_wizards()
            open_views()
    except Exception:
        REPORT.error(traceback.format_exc())
    print(json.dumps(REPORT.as_dict()))
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
