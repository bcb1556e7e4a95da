# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The public routes as recipients use them: a real trytond server, a real
e-mail sent by the engine through SMTP, a plain HTTP client and a headless
browser.

The database is an SQLite file; on another backend the test is skipped."""
import os
import shutil
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from trytond.modules.marketing_automation.testing import SMTPSink

from .builders import MessageLinks
from .servers import query, trytond_server, wait

DATABASE = 'routes_server'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
SHOP_URL = 'https://shop.example/offer?a=1&b=é#top'
TEMPLATE = (
    '<html><body><p>Hello ${record.name}</p>'
    '<a href="https://shop.example/offer?a=1&amp;b=é#top">Offer</a> '
    '<a href="unsubscribe">Unsubscribe</a></body></html>')
TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    not os.environ.get('TRYTOND_DATABASE_URI', 'sqlite://').startswith(
        'sqlite'),
    reason="the real server test runs on an SQLite database file only")

# Run by Server.script, after its SCRIPT_HEAD (the pool and the builders)
SETUP = '''
with Transaction().start(database, 0):
    for name in ['Ann', 'Bob']:
        create_party(name, '%s@example.com' % name.lower())
    scenario = create_scenario(name="Welcome", unsubscribable=True)
    email = create_activity(scenario, **email_values(
            name="Welcome e-mail", email_template=sys.argv[3]))
    create_activity(email, name="Opened", on='email_opened')
    enrol(scenario)
with Transaction().start(database, 0):
    process_due()
'''


class _NoRedirect(urllib.request.HTTPRedirectHandler):

    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    "Start SMTP, create the database and start trytond; give the setting"
    directory = tmp_path_factory.mktemp('server')
    with SMTPSink() as sink, trytond_server(
            directory, DATABASE, ['marketing_automation'],
            sink.uri, 'shop@example.com') as running:
        running.script(SETUP, TEMPLATE)
        wait(lambda: len(sink.messages) >= 2)
        yield {
            'base': running.base,
            'database': str(running.database_path),
            'messages': {str(m['To']): m for m in sink.pop()},
            }


def _state(server, address):
    "Return the flags of the e-mail sent to the address and its record"
    (opened, clicked, blocked, record, party), = query(server['database'],
        'SELECT ra.email_opened, ra.email_clicked, r.blocked, r.id, p.id '
        'FROM marketing_automation_record_activity AS ra '
        'JOIN marketing_automation_record AS r ON ra.record = r.id '
        'JOIN party_contact_mechanism AS c '
        "ON r.record = 'party.party,' || c.party "
        'JOIN party_party AS p ON p.id = c.party '
        'JOIN marketing_automation_activity AS a ON ra.activity = a.id '
        "WHERE c.value = ? AND a.action = 'send_email'", address)
    unsubscribed = query(server['database'],
        'SELECT COUNT(*) FROM '
        '"party_party-unsubscribed-marketing_automation_scenario" '
        'WHERE party = ?', party)[0][0]
    return {
        'opened': bool(opened), 'clicked': bool(clicked),
        'blocked': bool(blocked), 'unsubscribed': bool(unsubscribed),
        }


def _message(server, address):
    for to, message in server['messages'].items():
        if address in to:
            return message
    raise AssertionError("no message to %s in %s" % (
            address, list(server['messages'])))


def test_emailMessageLinks(server):
    "Test the pixel, a tracked link and one-click unsubscribe of a real mail"
    address = 'ann@example.com'
    message = _message(server, address)
    links = MessageLinks(message)
    base = server['base']
    pixel, = [s for s in links.images if s.startswith(base)]
    click, = [h for h in links.hrefs if '/c/' in h]
    unsubscribe = message['List-Unsubscribe'].strip('<>')
    assert message['List-Unsubscribe-Post'] == 'List-Unsubscribe=One-Click'
    assert urlsplit(unsubscribe).path.endswith('/unsubscribe')
    assert _state(server, address) == {
        'opened': False, 'clicked': False, 'blocked': False,
        'unsubscribed': False}

    with urllib.request.urlopen(pixel, timeout=10) as response:
        assert response.status == 200
        assert response.headers['Content-Type'] == 'image/gif'
        assert response.headers['Cache-Control'] == 'no-store'
        assert response.read().startswith(b'GIF89a')
    assert _state(server, address)['opened']
    assert not _state(server, address)['clicked']

    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(click, timeout=10)
    assert info.value.code == 302
    location = info.value.headers['Location']
    assert location == 'https://shop.example/offer?a=1&b=%C3%A9#top'
    assert _state(server, address)['clicked']

    request = urllib.request.Request(
        unsubscribe, data=b'List-Unsubscribe=One-Click', method='POST',
        headers={'Content-Type': 'application/x-www-form-urlencoded'})
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
        assert 'Location' not in response.headers
    assert _state(server, address) == {
        'opened': True, 'clicked': True, 'blocked': True,
        'unsubscribed': True}

    # A tampered link is not found
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(click.replace('offer', 'offers'), timeout=10)
    assert info.value.code == 404


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromium-driver are not installed "
    "(apt-get install chromium chromium-driver)")
def test_unsubscribe_browser(server, tmp_path, monkeypatch):
    "Test a recipient unsubscribes in a real browser"
    # The browser and its driver are given: selenium needs no download
    monkeypatch.setenv('SE_OFFLINE', 'true')
    webdriver = pytest.importorskip('selenium.webdriver')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    address = 'bob@example.com'
    unsubscribe, = [h for h in MessageLinks(_message(server, address)).hrefs
        if '/unsubscribe' in h]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
            '--headless', '--no-sandbox', '--disable-gpu',
            '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--user-data-dir=%s' % (tmp_path / 'profile'),
            ]:
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(TIMEOUT)
        driver.get(unsubscribe)
        assert driver.title == "Unsubscribe"
        assert not _state(server, address)['blocked']

        driver.find_element(By.ID, 'confirm').click()

        try:
            WebDriverWait(driver, TIMEOUT).until(
                expected_conditions.text_to_be_present_in_element(
                    (By.ID, 'title'), "Unsubscribed"))
        except Exception:
            raise AssertionError("no confirmation at %s:\n%s" % (
                    driver.current_url, driver.page_source))
        assert "any more" in driver.find_element(By.ID, 'text').text
        assert not driver.find_elements(By.ID, 'confirm')
    finally:
        driver.quit()
    assert _state(server, address) == {
        'opened': False, 'clicked': False, 'blocked': True,
        'unsubscribed': True}
