# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The database of a run: configuration, template, copy, SQL

The activated empty database is built once by trytond-admin and kept as a
template named after a hash of the module; each run copies it. trytond's
modules are imported in the methods: trytond.backend reads the
configuration when it is imported."""
import hashlib
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from urllib.parse import unquote, urlsplit

from workload import BASE_URL, SENDER

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
MODULE_DIR = os.path.join(ROOT, 'marketing_automation')
BIN_DIR = os.path.dirname(os.path.abspath(sys.executable))
SQLITE_SUFFIXES = ['', '-wal', '-shm', '-journal']


def choose_database(args):
    """Set args.backend and args.uri when the command line left them out

    from TRYTOND_DATABASE_URI, SQLite by default"""
    uri = os.environ.get('TRYTOND_DATABASE_URI') or 'sqlite://'
    if not args.backend:
        args.backend = (
            'postgresql' if uri.startswith('postgresql') else 'sqlite')
    if not args.uri:
        if args.backend == 'postgresql':
            args.uri = (uri if uri.startswith('postgresql')
                else 'postgresql://postgres@127.0.0.1:5432/')
        else:
            args.uri = 'sqlite://'


def module_hash(backend_name):
    "Return a hash of what the schema of the bench database depends on"
    import trytond
    digest = hashlib.sha1()
    digest.update(('%s %s %s' % (
                trytond.__version__, backend_name, platform.python_version())
            ).encode())
    for path in [os.path.join(ROOT, 'tryton.cfg')] + sorted(
            os.path.join(dirpath, name)
            for dirpath, dirnames, names in os.walk(MODULE_DIR)
            if '__pycache__' not in dirpath
            for name in names if not name.endswith(('.pyc', '.pyo'))):
        digest.update(os.path.relpath(path, ROOT).encode())
        with open(path, 'rb') as fp:
            digest.update(fp.read())
    return digest.hexdigest()[:12]


def remove_sqlite_files(path, suffixes=SQLITE_SUFFIXES):
    "Remove the SQLite database file and its journals"
    for suffix in suffixes:
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


class Postgres:
    "Administration of the PostgreSQL server (create, copy, drop)"

    def __init__(self, uri):
        self.uri = urlsplit(uri)

    def connect(self):
        import psycopg
        params = {'dbname': 'postgres', 'autocommit': True}
        for key, value in [
                ('host', self.uri.hostname), ('port', self.uri.port),
                ('user', self.uri.username),
                ('password', self.uri.password)]:
            if value:
                params[key] = unquote(str(value))
        return psycopg.connect(**params)

    def databases(self):
        with self.connect() as conn:
            return [n for n, in conn.execute(
                    'SELECT datname FROM pg_database')]

    def backend_pids(self, name):
        """Return the ids of the server processes serving the clients of
        the database

        Not the autovacuum workers: when they run depends on thresholds
        in % of the tables, not on the phase."""
        with self.connect() as conn:
            return [pid for pid, in conn.execute(
                    'SELECT pid FROM pg_stat_activity '
                    "WHERE datname = %s AND backend_type = 'client backend'",
                    (name,))]

    def drop(self, name):
        with self.connect() as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def rename(self, name, new_name):
        "Rename the database unless new_name exists (built concurrently)"
        import psycopg
        with self.connect() as conn:
            try:
                conn.execute('ALTER DATABASE "%s" RENAME TO "%s"' % (
                        name, new_name))
            except psycopg.errors.DuplicateDatabase:
                pass

    def without_parallel_query(self, name):
        """Let each query of the database run in its backend alone: a
        parallel worker is a process of its own, ended with its query,
        whose CPU time the figures of a phase would miss"""
        with self.connect() as conn:
            conn.execute('ALTER DATABASE "%s" '
                'SET max_parallel_workers_per_gather = 0' % name)

    def create(self, name, template=None):
        with self.connect() as conn:
            conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
            if template:
                conn.execute('CREATE DATABASE "%s" TEMPLATE "%s"' % (
                        name, template))
            else:
                conn.execute('CREATE DATABASE "%s"' % name)


class BenchDatabase:
    "The configuration, the database and the pool of a run"

    def __init__(self, args, log):
        self.args = args
        self.name = args.database or 'bench_%s' % args.n
        self.backend = args.backend
        self.results = os.path.abspath(args.results)
        os.makedirs(self.results, exist_ok=True)
        self.config_file = os.path.join(self.results, self.name + '.conf')
        self.log = log
        self.template_name = None
        self.pool = None

    def configure(self, email_uri):
        "Write the trytond configuration of the run and load it"
        args = self.args
        lines = [
            '[database]',
            'uri = %s' % args.uri,
            'path = %s' % self.results,
            '',
            '[queue]',
            'worker = %s' % bool(args.workers),
            '',
            '[email]',
            'uri = %s' % email_uri,
            'from = %s' % SENDER,
            '',
            '[marketing]',
            'automation_base = %s' % BASE_URL,
            'email_from = %s' % SENDER,
            ]
        if (args.workers or args.crons) and not args.foreground_handoff:
            # As deployment.rst advises for the processes of a shop at scale
            lines.append('automation_handoff_background = True')
        if args.process_batch:
            lines.append('automation_process_batch = %s' % args.process_batch)
        if args.enrol_batch:
            lines.append('automation_enrol_batch = %s' % args.enrol_batch)
        os.makedirs(self.results, exist_ok=True)
        with open(self.config_file, 'w') as fp:
            fp.write('\n'.join(lines) + '\n')
        import trytond.config as config
        config.update_etc(self.config_file)

    def run_admin(self, database, *arguments):
        passfile = os.path.join(self.results, 'admin.pass')
        with open(passfile, 'w') as fp:
            fp.write('admin\n')
        env = dict(os.environ, TRYTONPASSFILE=passfile)
        log = os.path.join(self.results, self.template_name + '.log')
        with open(log, 'a') as fp:
            subprocess.run(
                [os.path.join(BIN_DIR, 'trytond-admin'),
                    '-c', self.config_file, '-d', database, *arguments],
                env=env, stdout=fp, stderr=subprocess.STDOUT, check=True)

    def activate(self, database):
        "Activate the modules of the benchmark in the empty database"
        self.run_admin(
            database, '--all', '--email', 'admin@bench.example.com',
            '-u', 'marketing_automation', 'sale', '--activate-dependencies')

    def ensure_template(self):
        """Build once the activated database that each run copies

        It is built under a name of its own then renamed, so that a
        concurrent run never copies a template being built."""
        from trytond import backend
        self.template_name = 'bench_tpl_%s' % module_hash(backend.name)
        building = '%s_build_%s' % (self.template_name, os.getpid())
        if self.backend == 'sqlite':
            self.ensure_sqlite_template(building)
        else:
            self.ensure_postgresql_template(building)

    def sqlite_path(self, name):
        return os.path.join(self.results, name + '.sqlite')

    def ensure_sqlite_template(self, building):
        path = self.sqlite_path(self.template_name)
        for name in os.listdir(self.results):
            if (name.startswith('bench_tpl_')
                    and not name.startswith(self.template_name)):
                os.remove(os.path.join(self.results, name))
        if os.path.exists(path):
            return
        self.log("build the template database %s", self.template_name)
        build_path = self.sqlite_path(building)
        open(build_path, 'w').close()
        try:
            self.activate(building)
            # Everything in the main file before it is renamed
            connection = sqlite3.connect(build_path)
            connection.execute('PRAGMA journal_mode = DELETE')
            connection.close()
            os.replace(build_path, path)
        finally:
            remove_sqlite_files(build_path)

    def ensure_postgresql_template(self, building):
        postgres = Postgres(self.args.uri)
        existing = postgres.databases()
        for name in existing:
            if (name.startswith('bench_tpl_')
                    and not name.startswith(self.template_name)):
                postgres.drop(name)
        if self.template_name in existing:
            return
        self.log("build the template database %s", self.template_name)
        postgres.create(building)
        try:
            self.activate(building)
            postgres.rename(building, self.template_name)
        finally:
            postgres.drop(building)

    def create(self):
        "Create the database of the run as a copy of the template"
        self.ensure_template()
        self.log("create %s from %s", self.name, self.template_name)
        if self.backend == 'sqlite':
            path = self.sqlite_path(self.name)
            remove_sqlite_files(path)
            shutil.copyfile(self.sqlite_path(self.template_name), path)
        else:
            postgres = Postgres(self.args.uri)
            postgres.create(self.name, template=self.template_name)
            postgres.without_parallel_query(self.name)

    def drop(self):
        "Drop the database, then the configuration and logs of the run"
        from trytond import backend
        from trytond.pool import Pool
        backend.Database(self.name).close()
        Pool.stop(self.name)
        if self.backend == 'sqlite':
            remove_sqlite_files(
                self.sqlite_path(self.name), ['', '-wal', '-shm'])
        else:
            Postgres(self.args.uri).drop(self.name)

    def backend_pids(self):
        "Return the ids of the PostgreSQL processes serving the database"
        if self.backend != 'postgresql':
            return []
        return Postgres(self.args.uri).backend_pids(self.name)

    def remove_files(self):
        "Remove the configuration and the process logs of the run"
        for name in os.listdir(self.results):
            if (name == self.name + '.conf'
                    or (name.startswith(self.name + '-')
                        and name.endswith('.log'))):
                os.remove(os.path.join(self.results, name))

    def init_pool(self):
        from trytond.pool import Pool
        from trytond.transaction import Transaction
        self.pool = Pool(self.name)
        with Transaction().start(self.name, 0, readonly=True):
            self.pool.init()

    def sql(self, query, params=(), fetch=True):
        "Run query in a transaction of its own and return the rows"
        from trytond.transaction import Transaction
        query = self.paramstyle(query)
        with Transaction().start(self.name, 0) as transaction:
            cursor = transaction.connection.cursor()
            cursor.execute(query, params)
            rows = cursor.fetchall() if fetch else None
        return rows

    def analyze(self):
        "Give PostgreSQL the statistics of the rows inserted in bulk"
        # As autovacuum does within a minute of the inserts; without them,
        # the planner takes the new tables for nearly empty
        from trytond.modules.marketing_automation import dialect
        if not dialect.is_sqlite():
            from trytond.transaction import Transaction
            with Transaction().start(self.name, 0) as transaction:
                transaction.connection.cursor().execute('ANALYZE')

    @staticmethod
    def paramstyle(query):
        "Return the query written with %s in the parameter style of the DB"
        from trytond.modules.marketing_automation import dialect
        return query.replace('%s', '?') if dialect.is_sqlite() else query

    def table(self, model):
        "Return the quoted SQL table of the model"
        return str(self.pool.get(model).__table__())
