"""Device profiles: marketing consent and the attributes audience rules look at.

A profile is a mapping: ``marketing_consent`` (must be ``True`` to receive anything),
``opted_out`` (``True`` = never), and free attributes (``segment``, ``country``...). Audience rules
are ANDed ``(attribute, op, value)``: ``in`` / ``not_in`` a list, ``equals`` a scalar. A list
attribute (``segments: ["loyal", "vip"]``) matches ``in`` when any element is in the list,
``not_in`` when none is, ``equals`` when it contains the value. A missing attribute fails ``in``
and ``equals`` and passes ``not_in``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Profiles", "has_consent", "consent_mask", "rule_matches", "audience_mask"]

#: Profiles by device id: a mapping, or a function from a list of ids to a list of profiles (or None).
Profiles = Mapping[str, Mapping[str, Any]] | Callable[[Sequence[str]], Sequence[Mapping[str, Any] | None]]


def lookup(profiles: Profiles | None, device_ids: Sequence[str]) -> list[Mapping[str, Any] | None]:
    if profiles is None:
        return [None] * len(device_ids)
    if callable(profiles):
        return list(profiles(list(device_ids)))
    return list(map(profiles.get, device_ids))


def has_consent(profile: Mapping[str, Any] | None) -> bool:
    """True only for an explicit ``marketing_consent: true`` without ``opted_out: true``."""
    return (
        profile is not None
        and bool(profile)
        and profile.get("marketing_consent") is True
        and profile.get("opted_out") is not True
    )


def rule_matches(profile: Mapping[str, Any] | None, attr: str, op: str, value: Any) -> bool:
    v = None if profile is None else profile.get(attr)
    if v is None:
        return op == "not_in"
    values = v if isinstance(v, (list, tuple, set, frozenset)) else (v,)
    if op == "in":
        return any(x in value for x in values)
    if op == "not_in":
        return not any(x in value for x in values)
    return value in values


def consent_mask(profiles: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
    """:func:`has_consent` of each profile, as a boolean array."""
    return np.array(
        [p is not None and p.get("marketing_consent") is True and p.get("opted_out") is not True for p in profiles],
        dtype=bool,
    )


def _column(device_profiles: Sequence[Mapping[str, Any] | None], attr: str) -> tuple[np.ndarray, list]:
    """An attribute across the devices, factorized: (codes, distinct values); -1 = missing.

    Lists become tuples (hashable), so each distinct value is tested once per rule."""
    vals = pd.Series([None if p is None else p.get(attr) for p in device_profiles], dtype=object)
    try:
        codes, uniq = pd.factorize(vals)
    except TypeError:  # a list-valued attribute
        codes, uniq = pd.factorize(vals.map(lambda v: tuple(v) if isinstance(v, list) else v))
    return codes.astype(np.int64), list(uniq)


def audience_mask(
    rule_sets: Sequence[tuple],
    pair_rule: np.ndarray,
    pair_dev: np.ndarray,
    device_profiles: Sequence[Mapping[str, Any] | None],
) -> np.ndarray:
    """True for pairs whose device satisfies its rule set (``rule_sets[pair_rule]``; -1 = everyone).

    ``pair_dev`` indexes ``device_profiles``. Vectorized: each attribute is gathered and
    factorized once per batch; a rule is tested once per distinct value (:func:`rule_matches`)
    and its answer spread to the pairs by integer indexing.
    """
    out = np.ones(len(pair_rule), dtype=bool)
    idx = np.flatnonzero(pair_rule >= 0)
    if not len(idx):
        return out
    rules = pair_rule[idx]
    order = np.argsort(rules, kind="stable")
    idx, rules = idx[order], rules[order]
    used, starts = np.unique(rules, return_index=True)
    bounds = np.append(starts, len(idx))
    columns: dict[str, tuple[np.ndarray, list]] = {}
    for k, rid in enumerate(used.tolist()):
        rows = idx[bounds[k] : bounds[k + 1]]
        dev = pair_dev[rows]
        ok = np.ones(len(rows), dtype=bool)
        for attr, op, value in rule_sets[rid]:
            if attr not in columns:
                columns[attr] = _column(device_profiles, attr)
            codes, uniq = columns[attr]
            # the last entry answers for a missing attribute (code -1)
            table = np.array([rule_matches({attr: u}, attr, op, value) for u in uniq] + [op == "not_in"], dtype=bool)
            ok &= table[codes[dev]]
        out[rows] = ok
    return out
