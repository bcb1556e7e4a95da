# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Take the screenshots of doc/images/ in the Tryton desktop client

    .venv/bin/python doc/screenshots.py

builds the demo's database (``demo/desktop.py``), serves it with trytond
and, for each language, runs the Tryton 8.2 desktop client (the Python of
``.venv-client`` or ``$TRYTON_CLIENT_PYTHON``) on an X display in memory.
The client starts as ``tryton`` does, logs in as admin, sets the user's
language in its preferences, opens the main screens of the module as a
marketer would and saves its window as ``doc/images/NAME.LANG.png``.

Run by the client's Python with ``--client``, this file is the part in the
client.
"""
import os
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Run as a script: the repository is not on the path
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from demo import desktop  # noqa: E402

IMAGES = os.path.join(HERE, 'images')
LANGUAGES = ['en', 'fr']
WIDTH, HEIGHT = 1400, 900
# Seconds the client is given to draw after each step
SETTLE = 0.3
MODULE = 'marketing_automation'
SCENARIO = 'marketing.automation.scenario'
ACTIVITY = 'marketing.automation.activity'


def main():
    # The server's part needs trytond, which the client's Python lacks
    from demo import server
    missing = desktop.client_missing()
    if missing:
        sys.exit(missing)
    start = time.monotonic()
    os.makedirs(IMAGES, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        settings = server.Settings(directory=directory)
        print("Building the demo's database…", flush=True)
        desktop.build(settings)
        trytond = server.Server(settings).start()
        try:
            with desktop.display('%sx%s' % (WIDTH, HEIGHT)) as display:
                for language in LANGUAGES:
                    print("Screenshots in %s…" % language, flush=True)
                    home = os.path.join(directory, 'home-' + language)
                    os.makedirs(home)
                    subprocess.run([
                            desktop.CLIENT_PYTHON, __file__, '--client',
                            language, '127.0.0.1:%s' % settings.web_port,
                            settings.database, settings.passfile],
                        env=desktop.client_environment(display, home),
                        check=True, timeout=120)
        finally:
            trytond.stop()
    print("Done in %.0f s: %s" % (time.monotonic() - start, IMAGES))


# The part in the client, run by its Python


def call(model, method, *args):
    from tryton.common import RPCExecute
    return RPCExecute('model', model, method, *args)


def page():
    "The screen of the current tab"
    from tryton.gui import Main
    return Main().get_page().screen


def open_action(xml_id, model=None, record_id=None):
    "Open the action in a new tab, as a relate of the record if given"
    from tryton.action import Action
    action_id = call('ir.model.data', 'get_id', MODULE, xml_id)
    data = {}
    if record_id:
        data = {'model': model, 'id': record_id, 'ids': [record_id]}
    Action.execute(action_id, data, keyword=bool(data))
    desktop.pump(SETTLE)
    return page()


def show(screen, record_id=None, view_type=None, tab=None, view=None):
    """Select the tab of the action, the record and the type of view (the
    view of the XML id if given)"""
    if tab is not None:
        screen.screen_container.notebook.set_current_page(tab)
        desktop.pump(SETTLE)
    if record_id:
        screen.current_record = screen.group.get(record_id)
    if view:
        screen.switch_view(
            view_type, call('ir.model.data', 'get_id', MODULE, view))
    elif view_type and screen.current_view.view_type != view_type:
        screen.switch_view(view_type)
    screen.display()
    desktop.pump(SETTLE)


def notebook(screen):
    "The first notebook of the form"
    from gi.repository import Gtk

    def notebooks(widget):
        if isinstance(widget, Gtk.Notebook):
            yield widget
        if isinstance(widget, Gtk.Container):
            for child in widget.get_children():
                yield from notebooks(child)
    return next(notebooks(screen.current_view.widget))


def select_page(screen, index):
    "Show the page of the first notebook of the form"
    notebook(screen).set_current_page(index)
    desktop.pump(SETTLE)


def scroll_down(screen):
    "Scroll the form and its current page to their bottom"
    from gi.repository import Gtk
    pages = notebook(screen)
    page = pages.get_nth_page(pages.get_current_page())
    for scroll in [screen.current_view.scroll, page]:
        if isinstance(scroll, Gtk.ScrolledWindow):
            adjustment = scroll.get_vadjustment()
            adjustment.set_value(
                adjustment.get_upper() - adjustment.get_page_size())
    desktop.pump(SETTLE)


def open_wizard(xml_id, model=None, record_id=None):
    "Run the wizard's action and return its dialog, once it shows a view"
    from tryton.action import Action
    from tryton.gui import Main
    from tryton.gui.window.wizard import WizardDialog
    action_id = call('ir.model.data', 'get_id', MODULE, xml_id)
    data = {}
    if record_id:
        data = {'model': model, 'id': record_id, 'ids': [record_id]}
    Action.execute(action_id, data)
    for _ in range(50):
        desktop.pump(SETTLE)
        page = Main().get_page() or Main()
        dialogs = [d for d in page.dialogs if isinstance(d, WizardDialog)]
        if dialogs and dialogs[-1].screen:
            return dialogs[-1]
    raise RuntimeError("the wizard %s did not show" % xml_id)


def wizard_go(wizard, state):
    "Click the button of the wizard's dialog leading to state"
    response, = [
        r for r, b in wizard.response2button.items()
        if b.attrs.get('state') == state]
    current = wizard.state
    wizard.response(None, response)
    for _ in range(50):
        desktop.pump(SETTLE)
        if wizard.state != current and wizard.screen:
            return
    raise RuntimeError("the wizard did not reach %s" % state)


def wizard_close(wizard):
    "Close the wizard's dialog as its end button would"
    wizard.state = wizard.end_state
    wizard.end()
    desktop.pump(SETTLE)


def shoot(name, language, screen=False):
    """Save the window of the client as doc/images/NAME.LANG.png, with the
    dialogs over it if screen"""
    from gi.repository import Gdk, Gtk
    from tryton.gui import Main
    desktop.pump(1)
    # No cursor nor selected text in the fields, of the dialogs too
    try:
        toplevels = Gtk.Window.list_toplevels()
    except TypeError:
        # A window of GTK's own (e.g. a tooltip) may have no class that
        # PyGObject can give
        toplevels = [Main().window]
    for toplevel in toplevels:
        focus = toplevel.get_focus()
        if isinstance(focus, Gtk.Editable):
            focus.select_region(0, 0)
        toplevel.set_focus(None)
    desktop.pump(SETTLE)
    if screen:
        window = Gdk.get_default_root_window()
    else:
        window = Main().window.get_window()
    pixbuf = Gdk.pixbuf_get_from_window(window, 0, 0, WIDTH, HEIGHT)
    pixbuf.savev(
        os.path.join(IMAGES, '%s.%s.png' % (name, language)), 'png',
        ['compression'], ['9'])


def tour(language):
    "Open the main screens of the module and take their screenshots"
    from tryton.gui import Main
    app = Main()
    call('res.user', 'set_preferences', {'language': language})
    app.get_preferences()
    # Without the tabs opened at the login
    while app.pages:
        app._sig_remove_book(None, app.pages[0].widget)
    # The size given excludes the header bar: fill the screen with both
    app.window.move(0, 0)
    app.window.resize(WIDTH, HEIGHT)
    desktop.pump(SETTLE)
    app.window.resize(WIDTH, 2 * HEIGHT - app.window.get_window().get_height())
    desktop.pump(SETTLE)

    # The scenario with a tree of activities, and its first e-mail; the
    # one on parties (the welcome) enrols the most records each day
    [scenario_id] = call(
        SCENARIO, 'search', [('activities.children', '!=', None)], 0, 1)
    [activity_id] = call(ACTIVITY, 'search', [
            ('parent', '=', '%s,%s' % (SCENARIO, scenario_id))], 0, 1)
    [parties_id] = call(SCENARIO, 'search', [('model', '=', 'party.party')])

    # Marketing › Scenarios in the menu, then without the menu
    menu = [
        call('ir.model.data', 'get_id', 'marketing', 'menu_marketing'),
        call('ir.model.data', 'get_id', MODULE, 'menu_scenario_form')]
    app.menu_screen.current_view.expand_nodes([menu[:1]])
    desktop.pump(SETTLE)
    app.menu_screen.current_view.select_nodes([menu])
    screen = open_action('act_scenario_form')
    show(screen, tab=-1)
    shoot('scenario_list', language)
    app.menu_toggle()
    show(screen, scenario_id, 'form')
    shoot('scenario_form', language)

    screen = open_action('act_activity_tree', SCENARIO, scenario_id)
    screen.current_view.treeview.expand_all()
    shoot('activity_tree', language)
    show(screen, activity_id, 'form')
    shoot('activity_form', language)

    screen = open_action('act_record_form', SCENARIO, scenario_id)
    shoot('record_list', language)
    screen = open_action(
        'act_record_activity_form', ACTIVITY, activity_id)
    show(screen, tab=-1)
    shoot('record_activity_list', language)

    screen = open_action('act_suppression_form')
    show(screen, tab=-1)
    shoot('suppression_list', language)

    screen = open_action(
        'act_reporting_scenario', SCENARIO, parties_id)
    # The records and the blocked ones per day, not the block rate
    show(screen, view_type='graph', view='reporting_scenario_view_graph_count')
    shoot('reporting_scenario_graph', language)

    # The welcome e-mail: the variant A of an A/B split
    [variant_id] = call(ACTIVITY, 'search', [
            ('parent', '=', '%s,%s' % (SCENARIO, parties_id)),
            ('variant_weight', '>', 0),
            ], 0, 1, [('id', 'ASC')])

    # The new features, from the scenario on parties
    screen = open_action('act_scenario_form')
    show(screen, tab=-1)
    show(screen, parties_id, 'form')
    select_page(screen, 2)
    shoot('scenario_form_goal', language)

    wizard = open_wizard('wizard_scenario_blueprint')
    shoot('blueprint_wizard', language, screen=True)
    wizard_close(wizard)

    screen = open_action('act_activity_tree', SCENARIO, parties_id)
    show(screen, variant_id, 'form')
    select_page(screen, 2)
    # Down to the comparison of the variants
    scroll_down(screen)
    shoot('activity_form_statistics', language)
    select_page(screen, 0)

    wizard = open_wizard('wizard_activity_preview', ACTIVITY, variant_id)
    shoot('preview_wizard_start', language, screen=True)
    wizard_go(wizard, 'preview')
    shoot('preview_wizard', language, screen=True)
    wizard_close(wizard)

    screen = open_action('act_reporting_link')
    shoot('reporting_link_list', language)
    screen = open_action('act_reporting_variant')
    shoot('reporting_variant_list', language)
    screen = open_action('act_reporting_funnel')
    show(screen, view_type='graph')
    shoot('reporting_funnel_graph', language)


def client(language, host, database, passfile):
    "Start the client as tryton does, logged in, then take the tour"
    import gi
    gi.require_version('Gtk', '3.0')
    gi.require_version('Gdk', '3.0')
    from gi.repository import GLib
    from tryton import client
    from tryton.common import common
    from tryton.config import CONFIG
    from tryton.gui import Main

    with open(passfile) as fp:
        password = fp.read().strip()
    # What the login dialog asks
    common.Login.get_password = classmethod(lambda cls, *a: password)

    def refuse(dialog, *args, **kwargs):
        "Fail instead of showing a dialog that would wait for a click"
        raise RuntimeError('%s: %s' % (type(dialog).__name__, args))
    common.UniqueDialog.__call__ = refuse
    CONFIG['login.login'] = 'admin'
    # The title shows the profile (the same at each run), not the port
    CONFIG['login.profile'] = 'demo'
    CONFIG['client.check_version'] = False
    failed = []

    def report(*exception):
        traceback.print_exception(*exception)
        failed.append(exception)

    def run():
        # Errors in GTK's callbacks too, not in the client's dialog
        sys.excepthook = report
        try:
            tour(language)
        except Exception:
            report(*sys.exc_info())
        Main().quit()
    GLib.idle_add(run)
    sys.argv = [
        'tryton', '--no-thread', 'tryton://%s/%s' % (host, database)]
    client.main()
    return 1 if failed else 0


if __name__ == '__main__':
    if sys.argv[1:2] == ['--client']:
        sys.exit(client(*sys.argv[2:]))
    main()
