"""Probabilistic detection of the few pings of a phone's call, with the bookkeeping on Python lists.

A phone sends one ping per request and the service merges concurrent requests into engine calls
of 1 to 16 pings. :func:`~proximity.core.presence.run_presence` keeps its tracks as sorted key
arrays and finds each ping's rows with sorts and searches, two dozen array operations whose
fixed cost is most of such a call. :func:`run_presence_few` keeps the tracks in a dict per
device instead and hands the same rows, in the same order, to the same decision step
(:func:`~proximity.core.presence._step`): the same events and tracks, bit for bit (a hypothesis
property compares the engine's two paths call by call).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from proximity.core.presence import Presence, PresenceConfig, _pairs, _result, _step

__all__ = ["run_presence_few", "with_stays_few"]


def run_presence_few(
    *,
    dev: np.ndarray,
    ts: np.ndarray,
    dev_start: np.ndarray,
    prev_ts: np.ndarray,
    c_ping: np.ndarray,
    c_slot: np.ndarray,
    c_p: np.ndarray,
    c_area: np.ndarray,
    hint: np.ndarray | None = None,
    speed: np.ndarray | None = None,
    t_dev: np.ndarray,
    t_slot: np.ndarray,
    t_p: np.ndarray,
    t_mark: np.ndarray,
    t_in: np.ndarray,
    t_enter_ts: np.ndarray,
    t_dwelled: np.ndarray,
    dwell_s,
    exit_after_s,
    exclusive: Callable[[np.ndarray, np.ndarray], np.ndarray],
    cfg: PresenceConfig,
) -> Presence:
    """:func:`~proximity.core.presence.run_presence` (same parameters, same result) for a few
    pings: meant for calls of up to a few dozen pings and tracks."""
    dl, tl, starts = dev.tolist(), ts.tolist(), dev_start.tolist()
    before = prev_ts.tolist()
    rank = [i - starts[d] for i, d in enumerate(dl)]
    p_ts = np.array([before[d] if r == 0 else tl[i - 1] for i, (d, r) in enumerate(zip(dl, rank))], np.float64)
    dt = ts - p_ts  # NaN for a device's first ping ever

    # tracks: device -> slot -> [p, mark, inside, enter ts, dwelled]
    tracks: dict[int, dict[int, list]] = {}
    for d, s, p, m, i, e, w in zip(
        t_dev.tolist(),
        t_slot.tolist(),
        t_p.tolist(),
        t_mark.tolist(),
        t_in.tolist(),
        t_enter_ts.tolist(),
        t_dwelled.tolist(),
    ):
        tracks.setdefault(d, {}).setdefault(s, [float(p), float(m), bool(i), float(e), bool(w)])
    # candidates: ping -> slot -> (mass, area), the first of a repeated slot winning (as a search would)
    cands: dict[int, dict[int, tuple[float, float]]] = {}
    for i, s, p, a in zip(c_ping.tolist(), c_slot.tolist(), c_p.tolist(), c_area.tolist()):
        cands.setdefault(i, {}).setdefault(s, (p, a))

    events: list[tuple[np.ndarray, ...]] = []
    for k in range(max(rank, default=-1) + 1):
        r_dev: list[int] = []
        r_slot: list[int] = []
        r_j: list[int] = []
        r_hit: list[bool] = []
        r_mass: list[float] = []
        r_area: list[float] = []
        groups: list[tuple[int, int]] = []  # (first row, rows) of each device with rows
        for i in (i for i, r in enumerate(rank) if r == k):  # one ping per active device, in device order
            d = dl[i]
            mine = tracks.setdefault(d, {})
            got = cands.get(i, {})
            for s in got:
                if s not in mine:  # a candidate becomes a track
                    mine[s] = [0.0, math.nan, False, math.nan, False]
            first = len(r_dev)
            for s in sorted(mine):
                c = got.get(s)
                r_dev.append(d)
                r_slot.append(s)
                r_j.append(i)
                r_hit.append(c is not None)
                r_mass.append(c[0] if c is not None else 0.0)
                r_area.append(c[1] if c is not None else 0.0)
            if len(r_dev) > first:
                groups.append((first, len(r_dev) - first))
        if not r_dev:
            continue
        rows = [tracks[d][s] for d, s in zip(r_dev, r_slot)]
        r_dev_a = np.array(r_dev, np.int64)
        pairs = None
        if len(r_dev) > 16 and len(groups) < len(r_dev):  # many rows: the array path's own pairs
            pairs = _pairs(r_dev_a)
        elif len(groups) < len(r_dev):  # all ordered pairs of rows of one device, as _pairs orders them
            ga = [g + a for g, c in groups if c > 1 for a in range(c) for b in range(c) if a != b]
            gb = [g + b for g, c in groups if c > 1 for a in range(c) for b in range(c) if a != b]
            pairs = (np.array(ga, np.int64), np.array(gb, np.int64))
        p_new, mark, inside, enter_ts, dwelled, drop = _step(
            events, r_dev_a, np.array(r_slot, np.int64), np.array(r_j, np.int64), ts, p_ts, dt,
            np.array([t[0] for t in rows], np.float64), np.array([t[1] for t in rows], np.float64),
            np.array([t[2] for t in rows], bool), np.array([t[3] for t in rows], np.float64),
            np.array([t[4] for t in rows], bool), np.array(r_mass, np.float64), np.array(r_area, np.float64),
            np.array(r_hit, bool), pairs, hint, speed, dwell_s, exit_after_s, exclusive, cfg,
        )  # fmt: skip
        for t, p, m, i, e, w in zip(
            rows, p_new.tolist(), mark.tolist(), inside.tolist(), enter_ts.tolist(), dwelled.tolist()
        ):
            t[:] = [p, m, i, e, w]
        for d, s in (x for x, gone in zip(zip(r_dev, r_slot), drop.tolist()) if gone):
            del tracks[d][s]

    out = [(d, s, t) for d in sorted(tracks) for s, t in sorted(tracks[d].items())]
    T = {
        "p": np.array([t[0] for _, _, t in out], np.float64),
        "mark": np.array([t[1] for _, _, t in out], np.float64),
        "in": np.array([t[2] for _, _, t in out], bool),
        "enter": np.array([t[3] for _, _, t in out], np.float64),
        "dwelled": np.array([t[4] for _, _, t in out], bool),
    }
    return _result(events, np.array([d for d, _, _ in out], np.int64), np.array([s for _, s, _ in out], np.int64), T)


def with_stays_few(
    t_dev: np.ndarray,
    t_slot: np.ndarray,
    t_p: np.ndarray,
    t_mark: np.ndarray,
    s_dev: np.ndarray,
    s_slot: np.ndarray,
    s_enter_ts: np.ndarray,
    s_dwelled: np.ndarray,
    cfg: PresenceConfig,
) -> tuple[np.ndarray, ...]:
    """The tracks before a call, as the engine's batch path makes them, for a phone's few: the
    stored tracks, then a track (posterior ``p_enter``, no mark) for each stay without one; each
    marked inside with its stay's enter ts and dwell flag where it has a stay.

    Returns ``t_dev, t_slot, t_p, t_mark, t_in, t_enter_ts, t_dwelled``.
    """
    stays = {
        (d, s): (e, w) for d, s, e, w in zip(s_dev.tolist(), s_slot.tolist(), s_enter_ts.tolist(), s_dwelled.tolist())
    }
    keys = list(zip(t_dev.tolist(), t_slot.tolist()))
    held = set(keys)
    new = [k for k in stays if k not in held]
    keys += new
    got = [stays.get(k) for k in keys]
    return (
        np.array([d for d, _ in keys], np.int64),
        np.array([s for _, s in keys], np.int64),
        np.concatenate([t_p, np.full(len(new), cfg.p_enter)]),
        np.concatenate([t_mark, np.full(len(new), np.nan)]),
        np.array([g is not None for g in got], bool),
        np.array([math.nan if g is None else g[0] for g in got], np.float64),
        np.array([g is not None and g[1] for g in got], bool),
    )
