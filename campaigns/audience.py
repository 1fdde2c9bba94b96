"""Device profiles: marketing consent and the attributes audience rules look at.

A profile is a mapping: ``marketing_consent`` (must be ``True`` to receive anything),
``opted_out`` (``True`` = never), and free attributes (``segment``, ``country``...). Audience rules
are ANDed ``(attribute, op, value)``: ``in`` / ``not_in`` a list, ``equals`` a scalar. A list
attribute (``segments: ["loyal", "vip"]``) matches ``in`` when any element is in the list,
``not_in`` when none is, ``equals`` when it contains the value. A missing attribute fails ``in``
and ``equals`` and passes ``not_in``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["Profiles", "has_consent", "rule_matches", "audience_mask"]

#: Profiles by device id: a mapping, or a function from a list of ids to a list of profiles (or None).
Profiles = Mapping[str, Mapping[str, Any]] | Callable[[Sequence[str]], Sequence[Mapping[str, Any] | None]]


def lookup(profiles: Profiles | None, device_ids: Sequence[str]) -> list[Mapping[str, Any] | None]:
    if profiles is None:
        return [None] * len(device_ids)
    if callable(profiles):
        return list(profiles(list(device_ids)))
    get = profiles.get
    return [get(d) for d in device_ids]


def has_consent(profile: Mapping[str, Any] | None) -> bool:
    """True only for an explicit ``marketing_consent: true`` without ``opted_out: true``."""
    return bool(profile) and profile.get("marketing_consent") is True and profile.get("opted_out") is not True


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


def audience_mask(rules: Sequence[tuple], has_rules: np.ndarray, pair_campaign: np.ndarray,
                  pair_device: np.ndarray, device_profiles: Mapping[str, Mapping[str, Any] | None]) -> np.ndarray:
    """True for pairs whose device satisfies its campaign's rules (``rules[c]``, () = everyone).

    Evaluated once per distinct (rule set, device), so a thousand campaigns sharing one rule cost
    one evaluation per device.
    """
    out = np.ones(len(pair_campaign), dtype=bool)
    idx = np.flatnonzero(has_rules[pair_campaign])
    cache: dict[tuple, bool] = {}
    for i in idx:
        r, d = rules[pair_campaign[i]], pair_device[i]
        key = (r, d)
        ok = cache.get(key)
        if ok is None:
            p = device_profiles.get(d)
            ok = cache[key] = all(rule_matches(p, a, op, v) for a, op, v in r)
        out[i] = ok
    return out
