"""Lift: the difference of visit rates, treated minus holdout, with a 95% confidence interval.

The interval is Newcombe's hybrid score interval (Newcombe 1998, method 10): Wilson score
intervals for each proportion, combined by the square-and-add rule. Unlike the Wald interval it
stays inside [-1, 1] and keeps close to nominal coverage for small groups and rates near 0 or 1.
All functions are vectorized over arrays of counts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["wilson", "newcombe_diff", "Z95"]

Z95 = 1.959963984540054


def wilson(x, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lo, hi) of x successes out of n (NaN where n == 0)."""
    x, n = np.asarray(x, np.float64), np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        z2 = z * z
        denom = 1 + z2 / n
        center = (p + z2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return center - half, center + half


def newcombe_diff(x1, n1, x2, n2, z: float = Z95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p1 - p2, lo, hi): difference of two independent proportions with its hybrid score interval."""
    x1, n1, x2, n2 = (np.asarray(a, np.float64) for a in (x1, n1, x2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, lo, hi
