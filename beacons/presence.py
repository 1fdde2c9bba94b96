"""Beacon enter / exit per (device, region, store), for a whole batch, as one pure function.

The rule, per unit (device, region, store), over its sightings in ts order:

* a unit that is not inside enters at its first *qualifying* sighting (one whose zone is close
  enough, see :class:`beacons.monitor.MonitorConfig`);
* once inside, every sighting of any beacon of the region keeps it inside;
* it exits when nothing was heard for more than ``exit_after_s``: the exit is dated
  ``last heard + exit_after_s``. The periodic sweep applies the same rule to units that went
  quiet, so the events never depend on when the sweep happened to run.

Like :func:`proximity.core.transitions.transitions`, the batch is cut into *segments* (runs of a
unit's sightings without a silence longer than ``exit_after_s``); the first segment of a unit
already inside continues its stay, and every event falls out of comparing neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PresenceTransitions", "presence_transitions"]


@dataclass(frozen=True, slots=True)
class PresenceTransitions:
    """Result of :func:`presence_transitions`.

    Stays are numbered ``0..U-1`` for the stays open before the batch (stay ``u`` is unit
    ``u``'s, valid where it was inside) and ``U + k`` for the stay begun by ``enter_el[k]``.
    """

    enter_el: np.ndarray  # element index of each enter
    exit_unit: np.ndarray  # unit of each exit
    exit_ts: np.ndarray  # float64
    exit_stay: np.ndarray  # stay closed by each exit
    end_inside: np.ndarray  # bool per unit, inside after the batch
    end_last_heard: np.ndarray  # float64 per unit (NaN where not inside)
    end_stay: np.ndarray  # int64 per unit, the open stay (-1 where not inside)


def presence_transitions(
    unit: np.ndarray, ts: np.ndarray, qualifies: np.ndarray, prior_last_heard: np.ndarray, exit_after_s: float
) -> PresenceTransitions:
    """Compute enters, exits and the stays left open.

    Parameters
    ----------
    unit : ndarray of int64, shape (n,)
        Unit of each element, in ``0..U-1``; elements sorted by (unit, ts).
    ts : ndarray of float64, shape (n,)
        Sighting ts, epoch seconds.
    qualifies : ndarray of bool, shape (n,)
        Whether the sighting may start a stay (its zone is close enough).
    prior_last_heard : ndarray of float64, shape (U,)
        Last heard ts of each unit that is inside before the batch, NaN where not inside.
    exit_after_s : float
        Silence that ends a stay, seconds.

    Examples
    --------
    >>> t = presence_transitions(np.array([0, 0, 0]), np.array([0.0, 10.0, 100.0]),
    ...                          np.array([True, True, True]), np.array([np.nan]), 30.0)
    >>> t.enter_el.tolist(), t.exit_ts.tolist(), t.end_last_heard.tolist()
    ([0, 2], [40.0], [100.0])
    """
    n_units = len(prior_last_heard)
    n = len(ts)
    idx = np.arange(n)
    first = np.ones(n, bool)
    first[1:] = unit[1:] != unit[:-1]
    prior = prior_last_heard[unit] if n else np.empty(0)
    prev_ts = np.empty(n)
    prev_ts[0:1] = prior[0:1]
    if n > 1:
        prev_ts[1:] = np.where(first[1:], prior[1:], np.fmax(ts[:-1], prior[1:]))
    silent = (ts - prev_ts) > exit_after_s
    brk = np.isnan(prev_ts) | silent
    seg_start = brk | first
    starts = np.flatnonzero(seg_start)
    ends = np.append(starts[1:] - 1, n - 1) if n else np.empty(0, np.int64)
    seg_unit = unit[starts]
    cont = ~brk[starts]  # continues the unit's stay from before the batch
    q = np.where(qualifies, idx, n)
    first_q = np.minimum.reduceat(q, starts) if n else np.empty(0, np.int64)
    enters = ~cont & (first_q < n)
    inside = cont | enters
    enter_el = first_q[enters]
    seg_stay = np.full(len(starts), -1, np.int64)
    seg_stay[cont] = seg_unit[cont]
    seg_stay[enters] = n_units + np.arange(len(enter_el))
    seg_heard = np.fmax(ts[ends], prior[ends]) if n else np.empty(0)

    # Exits: the stay open before the batch, broken by the unit's first sighting; and every
    # inside segment followed by another segment of the same unit.
    broken = first & silent & ~np.isnan(prior)
    last_seg = np.ones(len(starts), bool)
    last_seg[:-1] = seg_unit[1:] != seg_unit[:-1]
    closing = inside & ~last_seg
    exit_unit = np.concatenate([unit[broken], seg_unit[closing]])
    exit_ts = np.concatenate([prior[broken] + exit_after_s, seg_heard[closing] + exit_after_s])
    exit_stay = np.concatenate([unit[broken], seg_stay[closing]])

    end_inside = np.zeros(n_units, bool)
    end_heard = np.full(n_units, np.nan)
    end_stay = np.full(n_units, -1, np.int64)
    open_ = last_seg & inside
    end_inside[seg_unit[open_]] = True
    end_heard[seg_unit[open_]] = seg_heard[open_]
    end_stay[seg_unit[open_]] = seg_stay[open_]
    # Units inside before the batch but without elements in it stay as they were.
    untouched = np.ones(n_units, bool)
    untouched[unit] = False
    keep = untouched & ~np.isnan(prior_last_heard)
    end_inside[keep] = True
    end_heard[keep] = prior_last_heard[keep]
    end_stay[keep] = np.flatnonzero(keep)
    return PresenceTransitions(enter_el, exit_unit, exit_ts, exit_stay, end_inside, end_heard, end_stay)
