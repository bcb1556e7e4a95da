# This file is part of Tryton.  The COPYRIGHT file at the top level of
# this repository contains the full copyright notices and license terms.
"""A/B split: which variant a record runs, and how the variants compare

Pure functions, with no access to the database: the engine and the
reporting call them with plain values."""
import hashlib
import math
from collections import namedtuple

Comparison = namedtuple('Comparison', ['rate', 'z', 'p_value'])
Comparison.__doc__ = (
    "A variant's rate and its two-proportion z-test against the group's "
    "leader (against the runner-up for the leader itself)")


def group_key(parent, event, negative):
    """Return the key of the variant group of the activities under parent
    (a 'model,id' reference) that run on the event (or its absence if
    negative); as the reporting computes it in SQL"""
    return '%s|%s%s' % (parent, event or '', '_not' if event and negative
        else '')


def choose(token, key, weights):
    """Return the variant of weights for the record of token in the group
    of key

    weights is a sequence of (variant, weight) pairs, in an order that does
    not change (the engine orders them by activity id); the variants with
    no weight are never chosen.  The first 64 bits of the SHA-256 of the
    key and the token give a point in [0, total weight), the variant is the
    one whose cumulative weight first passes that point: the same token
    always gets the same variant, in any process, as long as the weights
    do not change; each variant gets its share of the tokens."""
    weights = [(v, w) for v, w in weights if w and w > 0]
    if not weights:
        return None
    total = sum(w for _, w in weights)
    digest = hashlib.sha256(
        ('%s\x00%s' % (key, token)).encode('utf-8')).digest()
    point = (int.from_bytes(digest[:8], 'big') * total) >> 64
    cumulative = 0
    for variant, weight in weights:
        cumulative += weight
        if point < cumulative:
            return variant
    return weights[-1][0]


def two_proportion_z(successes_a, trials_a, successes_b, trials_b):
    """Return the z statistic of the rate of a minus the rate of b (pooled
    two-proportion z-test), or None when a sample is empty"""
    if not trials_a or not trials_b:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    difference = successes_a / trials_a - successes_b / trials_b
    if variance <= 0:
        # Every trial of both samples failed, or every one succeeded
        return 0.
    return difference / math.sqrt(variance)


def p_value(z):
    """Return the two-sided p-value of the z statistic of a normal
    distribution, None for None"""
    if z is None:
        return None
    return math.erfc(abs(z) / math.sqrt(2))


def compare(samples):
    """Return a Comparison per variant of samples, a dict of variant:
    (successes, trials) in the group's order

    The leader is the variant with the highest rate (the first one on a
    tie); each other variant is tested against it, so z is >= 0 and tells
    how far behind it is; the leader is tested against the runner-up, its
    closest challenger.  Variants without trials get no test."""
    rates = {
        v: (s / t if t else None) for v, (s, t) in samples.items()}
    ranked = sorted(
        (v for v, r in rates.items() if r is not None),
        key=lambda v: -rates[v])
    result = {}
    for variant, (successes, trials) in samples.items():
        z = None
        if len(ranked) > 1 and rates[variant] is not None:
            other = ranked[1] if variant == ranked[0] else ranked[0]
            if variant == ranked[0]:
                z = two_proportion_z(successes, trials, *samples[other])
            else:
                z = two_proportion_z(*samples[other], successes, trials)
        result[variant] = Comparison(rates[variant], z, p_value(z))
    return result
