# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The import of opt-outs from a CSV file of e-mail addresses, for shops
moving from another tool"""
import csv
import io
import re

from trytond.backend import MAX_QUERY_PARAMS
from trytond.i18n import gettext
from trytond.model import ModelView, fields
from trytond.pool import Pool
from trytond.pyson import Eval
from trytond.tools import grouped_slice
from trytond.wizard import Button, StateTransition, StateView, Wizard

from . import mime
from .consent import normalize_address, parties_with_addresses
from .exceptions import AddressFileError

# The names of the address columns, once lower case and without separators
ADDRESS_HEADERS = {'email', 'mail', 'address', 'emailaddress', 'mailaddress'}
# As mail clients export them: "Name <address>"
NAME_ADDRESS = re.compile(r'<([^<>]*)>\s*$')
SNIFF_SIZE = 64 * 1024
INVALID_LINES_SHOWN = 10


def decode(data):
    "Return the text of the file: UTF-8 with or without BOM, else Windows"
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError:
        # Spreadsheets on Windows save CSV files in their code page
        return data.decode('cp1252', errors='replace')


def read_rows(text):
    "Return the non-blank rows of the CSV text, with their line numbers"
    sample = text[:SNIFF_SIZE]
    if len(text) > SNIFF_SIZE:
        # A cut line would mislead the sniffer
        sample = sample[:sample.rfind('\n') + 1] or sample
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=',;\t|')
    except csv.Error:
        # A single column has no delimiter to find
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=''), dialect)
    return [(reader.line_num, row) for row in reader
        if any(cell.strip() for cell in row)]


def read_address(cell):
    "Return the normalized e-mail address of the cell or None"
    match = NAME_ADDRESS.search(cell)
    address = normalize_address(match.group(1) if match else cell)
    try:
        # The check of the sending: what it refuses is no address
        mime.recipient(None, address)
    except ValueError:
        return None
    return address


def is_address_header(cell):
    "Tell if the cell names a column of e-mail addresses"
    name = cell.strip().lower()
    for separator in ' -_.':
        name = name.replace(separator, '')
    return name in ADDRESS_HEADERS


def address_columns(header, rows):
    """Return the indexes of the columns of addresses: those the header
    names, else those holding the most addresses

    rows are lists of the addresses of their cells, None for the others."""
    width = max((len(row) for row in rows), default=0)
    found = [0] * width
    for row in rows:
        for index, address in enumerate(row):
            found[index] += address is not None
    named = [i for i, cell in enumerate(header or [])
        if i < width and found[i] and is_address_header(cell)]
    # A named column wins: a column of referrers' addresses is no opt-out
    most = max(found, default=0)
    return named or [i for i in range(width) if most and found[i] == most]


class AddressFile:
    "The addresses of a CSV file and its lines without any"

    def __init__(self, data, filename=None):
        try:
            rows = read_rows(decode(data))
        except csv.Error as exception:
            raise AddressFileError(gettext(
                    'marketing_automation.msg_consent_import_unreadable',
                    file=filename or '', error=exception)) from exception
        addresses = [[read_address(c) for c in row] for _, row in rows]
        header = None
        if rows and not any(addresses[0]):
            (_, header), *rows = rows
            addresses = addresses[1:]
        columns = address_columns(header, addresses)
        self.addresses = set()
        self.invalid_lines = []
        for (line, row), row_addresses in zip(rows, addresses):
            found = {row_addresses[i] for i in columns
                if i < len(row_addresses)} - {None}
            if found:
                self.addresses |= found
            else:
                self.invalid_lines.append((line, row))
        if not self.addresses:
            raise AddressFileError(gettext(
                    'marketing_automation.msg_consent_import_no_address',
                    file=filename or ''))

    def describe_invalid_lines(self):
        "Return the text showing the first invalid lines"
        return '\n'.join(
            '%s: %s' % (line, ', '.join(row)[:100])
            for line, row in self.invalid_lines[:INVALID_LINES_SHOWN])


class ImportOptOutStart(ModelView):
    __name__ = 'marketing.automation.consent.import.start'
    __string__ = "Import Opt-outs"

    file = fields.Binary(
        "File", required=True, filename='filename',
        help="A CSV file with a column of e-mail addresses, such as the "
        "export of the unsubscribed contacts of another tool.")
    filename = fields.Char("File Name")
    suppress = fields.Boolean(
        "Suppress the Addresses",
        help="If checked, the addresses are added to the suppression list: "
        "no marketing e-mail goes to them, whoever has them.")
    opt_out = fields.Boolean(
        "Opt Out the Parties",
        help="If checked, the parties having one of the addresses are opted "
        "out of all marketing e-mails, as if they had asked for it.")
    note = fields.Char(
        "Note",
        help="Kept in the history of the parties and on the suppressed "
        "addresses; the name of the file when empty.")

    @classmethod
    def default_suppress(cls):
        return True

    @classmethod
    def default_opt_out(cls):
        return True


class ImportOptOutResult(ModelView):
    __name__ = 'marketing.automation.consent.import.result'
    __string__ = "Imported Opt-outs"

    addresses = fields.Integer(
        "Addresses Read", readonly=True,
        help="The distinct e-mail addresses found in the file.")
    invalid = fields.Integer(
        "Invalid Lines", readonly=True,
        help="The lines of the file without any e-mail address.")
    invalid_lines = fields.Text(
        "First Invalid Lines", readonly=True,
        states={
            'invisible': ~Eval('invalid_lines'),
            })
    parties = fields.Integer(
        "Parties Opted Out", readonly=True,
        help="The parties opted out by the import; those already opted out "
        "are not counted.")
    suppressed = fields.Integer(
        "Addresses Suppressed", readonly=True,
        help="The addresses added to the suppression list; those already "
        "suppressed are not counted.")


class ImportOptOut(Wizard):
    __name__ = 'marketing.automation.consent.import'

    start = StateView(
        'marketing.automation.consent.import.start',
        'marketing_automation.consent_import_start_view_form', [
            Button("Cancel", 'end', 'tryton-cancel'),
            Button("Import", 'import_', 'tryton-ok', default=True,
                states={
                    'readonly': ~Eval('suppress') & ~Eval('opt_out'),
                    }),
            ])
    import_ = StateTransition()
    result = StateView(
        'marketing.automation.consent.import.result',
        'marketing_automation.consent_import_result_view_form', [
            Button("Close", 'end', 'tryton-close', default=True),
            ])

    def transition_import_(self):
        address_file = AddressFile(self.start.file, self.start.filename)
        note = self.start.note or self.start.filename
        addresses = address_file.addresses
        self.result.addresses = len(addresses)
        self.result.invalid = len(address_file.invalid_lines)
        self.result.invalid_lines = address_file.describe_invalid_lines()
        self.result.parties = (
            self.opt_out_parties(addresses, note)
            if self.start.opt_out else 0)
        self.result.suppressed = (
            self.suppress_addresses(addresses, note)
            if self.start.suppress else 0)
        # No need to keep the file in the session
        self.start.file = None
        return 'result'

    def default_result(self, fields):
        return {name: getattr(self.result, name, None) for name in fields}

    @staticmethod
    def opt_out_parties(addresses, note):
        "Opt out the parties of the addresses still in; return their number"
        pool = Pool()
        Party = pool.get('party.party')
        Consent = pool.get('marketing.automation.consent')
        parties = parties_with_addresses(addresses)
        parties -= Party.marketing_opted_out(parties)
        Consent.record(parties, True, 'import', note=note)
        return len(parties)

    @staticmethod
    def suppress_addresses(addresses, note):
        "Suppress the addresses not yet suppressed; return their number"
        pool = Pool()
        Suppression = pool.get('marketing.automation.suppression')
        addresses = addresses - set(
            Suppression.suppressed_addresses(addresses))
        count = 0
        for sub_addresses in grouped_slice(
                sorted(addresses), MAX_QUERY_PARAMS):
            count += len(Suppression.suppress(
                    set(sub_addresses), 'import', report=note))
        return count

    def end(self):
        # The suppression list shows the imported addresses
        return 'reload'
