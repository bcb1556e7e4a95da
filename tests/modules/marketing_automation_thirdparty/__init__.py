# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""A module written for Tryton's own marketing_automation, for the tests

It uses only what Tryton's own module offers to other modules: a model
with the marketing mixin giving get_marketing_party and
search_marketing_party, and an action added to the activities with its
execute_<action> method."""
