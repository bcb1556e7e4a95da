# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""The package is installed where the official module's package lives

Modules written for the official module import from
``trytond.modules.marketing_automation`` and trytond loads the module
through the ``trytond.modules`` entry point: both must reach the files of
this repository (an editable install, as the Makefile makes), and nothing
may be importable as a top-level ``marketing_automation`` any more.
"""
import importlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = 'trytond.modules.marketing_automation'


def test_package_is_this_repository():
    "trytond.modules.marketing_automation is the repository's directory"
    package = importlib.import_module(PACKAGE)
    assert Path(package.__file__).resolve().parent == (
        ROOT / 'marketing_automation'), (
        "%s comes from %s, not from this repository: "
        "install it with pip install -e" % (PACKAGE, package.__file__))
    assert (Path(package.__file__).parent / 'tryton.cfg').is_file()


def test_entry_point_loads_package():
    "The trytond.modules entry point loads the package"
    eps = entry_points(group='trytond.modules', name='marketing_automation')
    assert len(eps) == 1, eps
    ep, = eps
    assert ep.value == PACKAGE
    assert ep.load() is importlib.import_module(PACKAGE)


def test_official_imports():
    "The imports of modules written for the official module work"
    from trytond.modules.marketing_automation import exceptions
    from trytond.modules.marketing_automation.mixin import (
        MarketingAutomationMixin)
    assert MarketingAutomationMixin.__module__ == PACKAGE + '.mixin'
    assert exceptions.__name__ == PACKAGE + '.exceptions'


def test_no_top_level_package(tmp_path):
    "Nothing imports, nor can import, a top-level marketing_automation"
    # Every test module is imported at collection, before this test runs
    stale = sorted(name for name in sys.modules
        if name.split('.')[0] == 'marketing_automation')
    assert not stale, stale
    # Away from the repository's root, which would be on sys.path
    process = subprocess.run(
        [sys.executable, '-c', 'import marketing_automation'],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert process.returncode != 0, (
        "a top-level marketing_automation is still installed")
    assert 'ModuleNotFoundError' in process.stderr, process.stderr
