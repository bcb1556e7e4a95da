#!/usr/bin/env python3
"Packaging of the Tryton module marketing_automation"
import io
import os
from configparser import ConfigParser

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = 'marketing_automation'
PREFIX = 'trytond'
# Installed where trytond's own modules live, as the official package is
PACKAGE = '%s.modules.%s' % (PREFIX, MODULE)
BASE_MODULES = {'ir', 'res'}


def read(fname):
    with io.open(os.path.join(HERE, fname), encoding='utf-8') as fp:
        return fp.read()


config = ConfigParser()
config.read_file(io.StringIO(read('tryton.cfg')))
info = dict(config.items('tryton'))
for key in ('depends', 'extras_depend', 'xml'):
    info[key] = info.get(key, '').strip().splitlines()

version = info.get('version', '0.0.1')
major_version, minor_version = (int(v) for v in version.split('.', 2)[:2])


def get_require_version(name):
    "Return the requirement on a Tryton package of the same series"
    return '%s >= %s.%s, < %s.%s' % (
        name, major_version, minor_version, major_version, minor_version + 1)


requires = [get_require_version(PREFIX)]
for dep in info['depends']:
    if dep not in BASE_MODULES:
        requires.append(get_require_version('%s_%s' % (PREFIX, dep)))
requires += ['genshi', 'python-sql']

extras_require = {}
for dep in info['extras_depend']:
    extras_require[dep] = [get_require_version('%s_%s' % (PREFIX, dep))]
extras_require['test'] = [
    get_require_version('proteus'),
    *(get_require_version('%s_%s' % (PREFIX, dep))
        for dep in info['extras_depend']),
    'pytest',
    'aiosmtpd',
    # The benchmark serves trytond as in production (bench/server.py)
    'gunicorn',
    'selenium',
    'flake8',
    'isort',
    ]
extras_require['postgresql'] = ['psycopg[binary] >= 3.2', 'psycopg-pool']

setup(
    name='%s_%s' % (PREFIX, MODULE),
    version=version,
    description="Marketing automation scenarios for Tryton",
    long_description=read('README.rst'),
    long_description_content_type='text/x-rst',
    keywords='tryton marketing automation email',
    license='GPL-3.0-or-later',
    license_files=['LICENSE', 'COPYRIGHT'],
    # The repository's directory "marketing_automation" is installed as
    # the package "trytond.modules.marketing_automation" (where the
    # official package lives); trytond finds it through the entry point.
    packages=[PACKAGE],
    package_dir={PACKAGE: MODULE},
    package_data={
        PACKAGE: [
            'tryton.cfg',
            '*.xml',
            'view/*.xml',
            'locale/*.po',
            '*.html',
            'blueprints/*',
            'icons/*.svg',
            ],
        },
    include_package_data=False,
    zip_safe=False,
    python_requires='>=3.10',
    install_requires=requires,
    extras_require=extras_require,
    entry_points={
        'trytond.modules': [
            '%s = %s' % (MODULE, PACKAGE),
            ],
        },
    classifiers=[
        'Framework :: Tryton',
        'Intended Audience :: Developers',
        'Programming Language :: Python :: 3',
        'Topic :: Office/Business',
        ],
    )
