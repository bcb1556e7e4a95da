# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Run the benchmark at a small size as a check of its counts

No timing is asserted: the benchmark itself checks, phase after phase, that
nobody is enrolled twice, that no e-mail is sent twice, that every event
reaches exactly the expected records and that blocked records get nothing,
and exits with a non-zero status on the first mismatch."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'bench', 'run.py')
URI = os.environ.get('TRYTOND_DATABASE_URI') or 'sqlite://'
POSTGRESQL = URI.startswith('postgresql')
# The size CI checks the counts at; the failure tests only need a few
N = 2000
SMALL_N = 400
TIMEOUT = 1200

PHASES = [
    'enrolment', 'root e-mails', 'pixel hits', 'clicks', 'unsubscribes',
    'children', 'second enrolment', 'second execution', 'conversions',
    'second conversions', 'funnel query']


def expected_items(n):
    "Return the items of each phase implied by the workload"
    numbers = range(1, n + 1)
    pixel = {i for i in numbers if i % 2 == 0}
    click = {i for i in numbers if i % 4 == 1}
    blocked = {i for i in numbers if i % 20 == 0}
    opened = pixel | click
    children = (len(opened - blocked) + len(click - blocked)
        + len(set(numbers) - click - blocked))
    return {
        'enrolment': n + n // 10,
        'root e-mails': n,
        'pixel hits': len(pixel),
        'clicks': len(click),
        'unsubscribes': len(blocked),
        'children': children,
        'second enrolment': 0,
        'second execution': 0,
        'conversions': n // 10,
        'second conversions': 0,
        'funnel query': 1,
        }


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    "The directory of the benchmark's databases, shared by the tests"
    # The template database is built once for all the tests
    return tmp_path_factory.mktemp('bench-results')


def run_bench(results, tmp_path, name, *args, n=N):
    output = tmp_path / 'bench.json'
    env = dict(os.environ, TRYTOND_DATABASE_URI=URI)
    database = 'bench_test_%s_%s' % (name, os.getpid())
    return subprocess.run(
        [sys.executable, BENCH, '-n', str(n), '--small', '-q', '--drop',
            '--results', str(results), '--database', database,
            '--json', str(output), *args],
        env=env, capture_output=True, text=True, timeout=TIMEOUT), output


def check_run(result, output, n=N):
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(output.read_text())
    assert data['counts_checked']
    assert data['backend'] == ('postgresql' if POSTGRESQL else 'sqlite')
    phases = {p['phase']: p for p in data['phases']}
    assert list(phases) == PHASES
    for phase, items in expected_items(n).items():
        assert phases[phase]['items'] == items, phase
    return data


def test_bench(results, tmp_path):
    "The benchmark runs in one process and finds the expected counts"
    result, output = run_bench(results, tmp_path, 'main')
    data = check_run(result, output)
    assert data['workers'] == 0
    assert 'in-process' in data['smtp']
    assert {'render', 'commit', 'empty hits'} <= set(data['limits'])
    assert "N=%s" % N in result.stdout


@pytest.mark.skipif(
    not POSTGRESQL, reason="trytond-worker and concurrent crons need "
    "PostgreSQL")
def test_bench_workers_and_crons(results, tmp_path):
    "Two trytond-cron and two trytond-worker processes: no duplicate"
    result, output = run_bench(
        results, tmp_path, 'workers', '--workers', '2', '--crons', '2')
    data = check_run(result, output)
    assert data['workers'] == 2
    assert data['crons'] == 2
    assert 'loopback' in data['smtp']


@pytest.mark.parametrize('fault', ['duplicate-email', 'lost-hit'])
def test_bench_fails_loudly(results, tmp_path, fault):
    "A duplicate e-mail or a lost event makes the benchmark fail"
    result, output = run_bench(
        results, tmp_path, 'fault', '--fault', fault, n=SMALL_N)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'MISMATCH' in result.stderr
    assert not output.exists()
