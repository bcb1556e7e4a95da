# Developer and CI entry points.  Each target creates the virtual
# environment in $(VENV) when it is missing and installs what it needs.
#
#   make demo                 run the demo on an embedded SQLite database
#   make demo SERVE=1         ... and keep the server running
#   make test                 the whole test suite on SQLite
#   make test TRYTOND_DATABASE_URI=postgresql://postgres@127.0.0.1:5432/
#   make lint                 flake8 and isort with Tryton's settings
#   make bench                the benchmark (see doc/design.rst)
#   make clean                remove caches and build files (distclean: + venvs)

PYTHON ?= python3
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python

# Database used by the tests and the benchmark
TRYTOND_DATABASE_URI ?= sqlite://
BACKEND := $(firstword $(subst :, ,$(TRYTOND_DATABASE_URI)))

ifeq ($(BACKEND),postgresql)
EXTRAS := test,postgresql
DB_NAME ?= test
# Activated databases are cached as template databases "test-<hash>" on
# the server; they are dropped before each run (PG_DROP_TEST_DATABASES).
DB_CACHE ?= postgresql://
else ifeq ($(BACKEND),sqlite)
EXTRAS := test
DB_NAME ?= :memory:
# Activated databases are cached as files in a directory named after the
# content of the sources and of the installed packages, so a change of
# either never restores a stale database.
DB_CACHE_ROOT := $(CURDIR)/.cache/db
DB_CACHE ?= $(DB_CACHE_ROOT)/$(SOURCE_HASH)
else
$(error Unsupported TRYTOND_DATABASE_URI "$(TRYTOND_DATABASE_URI)": use sqlite:// or postgresql://...)
endif

# Stamp of an installation with the given extras; it holds `pip freeze`.
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

SOURCE_HASH = $(shell cat setup.py tryton.cfg $(STAMP) \
	$$(find marketing_automation tests -type f ! -name '*.py[co]' \
		! -path '*/__pycache__/*' 2>/dev/null | LC_ALL=C sort) \
	2>/dev/null | sha1sum | cut -c1-16)

PYTEST_ARGS ?=
BENCH_ARGS ?=
LINT_PATHS := $(wildcard setup.py marketing_automation tests bench demo doc/*.py)

.PHONY: all test lint demo bench clean distclean

all: test

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --upgrade pip

$(STAMP): setup.py tryton.cfg | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install -e '.[$(EXTRAS)]'
	$(VENV_PYTHON) -m pip freeze --exclude-editable > $@

# pytest exits with 5 when it collected no test: say so, and fail.
test: $(STAMP)
	@echo "=== marketing_automation tests on $(BACKEND): $(TRYTOND_DATABASE_URI) (DB_NAME=$(DB_NAME), DB_CACHE=$(DB_CACHE)) ==="
ifeq ($(BACKEND),postgresql)
	TRYTOND_DATABASE_URI='$(TRYTOND_DATABASE_URI)' DB_NAME='$(DB_NAME)' \
		$(VENV_PYTHON) -c "$$PG_DROP_TEST_DATABASES"
else
	@if [ '$(DB_CACHE)' = '$(DB_CACHE_ROOT)/$(SOURCE_HASH)' ] \
			&& [ -d '$(DB_CACHE_ROOT)' ]; then \
		find '$(DB_CACHE_ROOT)' -mindepth 1 -maxdepth 1 \
			! -name '$(SOURCE_HASH)' -exec rm -rf {} +; \
	fi
endif
	TRYTOND_DATABASE_URI='$(TRYTOND_DATABASE_URI)' DB_NAME='$(DB_NAME)' \
	DB_CACHE='$(DB_CACHE)' \
		$(VENV_PYTHON) -m pytest $(PYTEST_ARGS) tests \
		|| { status=$$?; \
			if [ $$status -eq 5 ]; then \
				echo "make test: pytest collected no test" >&2; \
			fi; \
			exit $$status; }

lint: $(STAMP)
	$(VENV)/bin/flake8 $(LINT_PATHS)
	$(VENV)/bin/isort --check-only --diff $(LINT_PATHS)

demo: $(STAMP)
	$(VENV_PYTHON) demo/run.py $(if $(SERVE),--serve)

bench: $(STAMP)
	TRYTOND_DATABASE_URI='$(TRYTOND_DATABASE_URI)' \
		$(VENV_PYTHON) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .cache .pytest_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d \
		-exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .venv-client

# Drop, before a run on PostgreSQL, the test database DB_NAME and the
# template databases that earlier runs left on the server as DB_CACHE:
# - trytond's tests only drop DB_NAME when it is already a Tryton database,
#   so an empty one (as a fresh server may have) makes every test fail;
# - the name of a template only depends on the activated modules, so after
#   a change of the module it would restore an outdated schema.
define PG_DROP_TEST_DATABASES
import os
import re
from urllib.parse import unquote, urlsplit

import psycopg

uri = urlsplit(os.environ['TRYTOND_DATABASE_URI'])
params = {'dbname': 'postgres', 'autocommit': True, 'connect_timeout': 10}
for key, value in [
        ('host', uri.hostname), ('port', uri.port),
        ('user', uri.username), ('password', uri.password)]:
    if value:
        params[key] = unquote(str(value))
with psycopg.connect(**params) as conn:
    force = ' WITH (FORCE)' if conn.info.server_version >= 130000 else ''
    names = [n for n, in conn.execute('SELECT datname FROM pg_database')
        if n == os.environ['DB_NAME']
        or re.fullmatch(r'test-[0-9a-f]{40}', n)]
    for name in names:
        conn.execute('DROP DATABASE IF EXISTS "%s"%s' % (name, force))
    print('dropped test databases: %s' % (', '.join(names) or 'none'))
endef
export PG_DROP_TEST_DATABASES
