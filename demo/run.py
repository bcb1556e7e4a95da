#!/usr/bin/env python3
# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""Run a shop's marketing automation end to end on an embedded database

Usage: demo/run.py [--serve]   (or: make demo, make demo SERVE=1)

Everything is written in demo/db/ and demo/outbox/, emptied at each run.
See doc/usage.rst, section "What the demo does".
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    # The demo package lives next to the module, in the repository
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from demo.main import main
    return main(sys.argv[1:])


if __name__ == '__main__':
    sys.exit(main())
