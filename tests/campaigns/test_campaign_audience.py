"""The vectorized audience and consent masks agree with the one-profile rules."""

from __future__ import annotations

import numpy as np
import pytest

from campaigns.audience import audience_mask, consent_mask, has_consent, rule_matches

VALUES = ["loyal", "new", "vip", 1, 2.0, True, None, ["vip", "new"], ["lapsed"], []]
RULE_SETS = [
    (("segment", "in", ("loyal", "new")),),
    (("segment", "not_in", ("vip",)), ("country", "equals", "NO")),
    (("segment", "equals", "vip"),),
    (("tier", "in", (1, 3)),),
    (("country", "not_in", ("SE", "DK")), ("segment", "in", ("lapsed", "new"))),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_audience_mask_equals_the_rules_one_profile_at_a_time(seed):
    rng = np.random.default_rng(seed)
    profiles = []
    for _ in range(300):
        p = {}
        for attr in ("segment", "country", "tier"):
            roll = rng.random()
            if roll < 0.8:
                p[attr] = VALUES[int(rng.integers(len(VALUES)))] if attr != "country" else str(rng.choice(["NO", "SE"]))
        profiles.append(None if rng.random() < 0.1 else p)
    pair_rule = rng.integers(-1, len(RULE_SETS), 4000)
    pair_dev = rng.integers(0, len(profiles), 4000)
    got = audience_mask(RULE_SETS, pair_rule, pair_dev, profiles)
    want = [
        r < 0 or all(rule_matches(profiles[d], a, op, v) for a, op, v in RULE_SETS[r])
        for r, d in zip(pair_rule.tolist(), pair_dev.tolist())
    ]
    assert got.tolist() == want and 0 < got.sum() < len(got)


def test_consent_mask_equals_has_consent():
    profiles = [
        None,
        {},
        {"marketing_consent": True},
        {"marketing_consent": "true"},
        {"marketing_consent": True, "opted_out": True},
        {"marketing_consent": True, "opted_out": False},
        {"marketing_consent": 1},
    ]
    assert consent_mask(profiles).tolist() == [has_consent(p) for p in profiles]
