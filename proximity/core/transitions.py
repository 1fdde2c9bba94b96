"""Enter / exit / dwell transitions for a whole batch, as one vectorized pure function.

The per-ping rule is the table of (was inside, is inside): enter, exit, stay in, stay out. A ping
whose uncertainty straddles the boundary (state UNCERTAIN) keeps the previous state. A stay also
ends in silence when two consecutive pings of the device are further apart than the fence's
``exit_after_s`` (the exit is then dated last ping + exit_after_s), so the result never depends on
when the periodic sweep happened to run.

The batch is worked as a set of *elements*: one per (ping, fence) match, plus one virtual element
per stay the device was already in before the batch, placed just before its first ping. Sorted by
(device, fence, position), consecutive elements form runs; state is forward-filled inside runs,
and every event falls out of comparing neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from proximity.core.events import KIND_RANK, EventKind, Reason

__all__ = ["Transitions", "transitions", "silence_due"]

_I8 = np.int8


class SlotValues(Protocol):
    """Per-fence values read by slot with fancy indexing: an ndarray, or the engine's patched column."""

    def __getitem__(self, slots: np.ndarray, /) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Transitions:
    """Result of :func:`transitions`.

    Events are parallel arrays ``ev_*`` in emission order; ``ev_stay`` indexes the stays table
    ``st_*``. A stay with ``st_initial >= 0`` continues the pre-batch stay of that index; otherwise
    it began in this batch. ``open_stays`` lists the stays still open after the batch.
    """

    ev_dev: np.ndarray
    ev_slot: np.ndarray
    ev_kind: np.ndarray
    ev_ts: np.ndarray
    ev_reason: np.ndarray
    ev_stay: np.ndarray
    st_dev: np.ndarray
    st_slot: np.ndarray
    st_enter_ts: np.ndarray
    st_initial: np.ndarray
    st_dwelled: np.ndarray
    open_stays: np.ndarray


def transitions(
    dev: np.ndarray,
    ts: np.ndarray,
    dev_start: np.ndarray,
    dev_end: np.ndarray,
    prev_ts: np.ndarray,
    m_pos: np.ndarray,
    m_slot: np.ndarray,
    m_state: np.ndarray,
    s_dev: np.ndarray,
    s_slot: np.ndarray,
    s_enter_ts: np.ndarray,
    s_dwelled: np.ndarray,
    dwell_s: SlotValues,
    exit_after_s: SlotValues,
) -> Transitions:
    """Compute the batch's events and the stays left open.

    Parameters
    ----------
    dev, ts : ndarray, shape (n,)
        Accepted pings sorted by (device, ts): local device index and epoch seconds; each
        device's ts strictly increase.
    dev_start, dev_end : ndarray of int, shape (d,)
        Each device's slice ``[start, end)`` of the pings (every device has at least one ping).
    prev_ts : ndarray of float, shape (d,)
        Each device's last accepted ts before the batch (NaN if none).
    m_pos, m_slot, m_state : ndarray, shape (m,)
        Matches: ping position, fence slot, state (1 inside, 2 uncertain).
    s_dev, s_slot, s_enter_ts, s_dwelled : ndarray, shape (s,)
        Stays open before the batch: device, fence slot, enter ts, whether dwell already fired.
    dwell_s, exit_after_s : ndarray of float (or any :class:`SlotValues`), indexed by slot arrays
        Per-fence settings, ``inf`` where unset.
    """
    n_m, n_s = len(m_pos), len(s_dev)
    if n_m + n_s <= SMALL:
        return _transitions_small(
            dev, ts, dev_start, dev_end, prev_ts, m_pos, m_slot, m_state, s_dev, s_slot, s_enter_ts, s_dwelled,
            dwell_s, exit_after_s,
        )  # fmt: skip
    return _transitions_vectorized(
        dev, ts, dev_start, dev_end, prev_ts, m_pos, m_slot, m_state, s_dev, s_slot, s_enter_ts, s_dwelled,
        dwell_s, exit_after_s,
    )  # fmt: skip


#: Batches with at most this many elements (matches + open stays) take :func:`_transitions_small`.
SMALL = 48


def _transitions_vectorized(
    dev, ts, dev_start, dev_end, prev_ts, m_pos, m_slot, m_state, s_dev, s_slot, s_enter_ts, s_dwelled,
    dwell_s, exit_after_s,
) -> Transitions:  # fmt: skip
    """:func:`transitions` as array operations: the cost is a few hundred numpy calls, whatever the size."""
    n_m, n_s = len(m_pos), len(s_dev)
    e_dev = np.concatenate([dev[m_pos], s_dev]).astype(np.int64)
    e_slot = np.concatenate([m_slot, s_slot]).astype(np.int64)
    e_pos = np.concatenate([m_pos, dev_start[s_dev] - 1]).astype(np.int64)
    e_ts = np.concatenate([ts[m_pos], prev_ts[s_dev]])
    e_virtual = np.concatenate([np.zeros(n_m, bool), np.ones(n_s, bool)])
    e_inside = np.concatenate([m_state == 1, np.ones(n_s, bool)])
    e_enter0 = np.concatenate([ts[m_pos], s_enter_ts])
    e_dwelled0 = np.concatenate([np.zeros(n_m, bool), s_dwelled.astype(bool)])
    e_initial = np.concatenate([np.full(n_m, -1, np.int64), np.arange(n_s, dtype=np.int64)])

    order = np.lexsort((e_pos, e_slot, e_dev))
    e_dev, e_slot, e_pos, e_ts = e_dev[order], e_slot[order], e_pos[order], e_ts[order]
    e_virtual, e_inside, e_enter0 = e_virtual[order], e_inside[order], e_enter0[order]
    e_dwelled0, e_initial = e_dwelled0[order], e_initial[order]
    n = len(order)
    idx = np.arange(n)
    exit_after = exit_after_s[e_slot] if n else np.empty(0)

    # chain[k]: element k continues the run of element k-1 (same device and fence, next ping,
    # no silence in between).
    chain = np.zeros(n, bool)
    if n > 1:
        same = (e_dev[1:] == e_dev[:-1]) & (e_slot[1:] == e_slot[:-1]) & (e_pos[1:] == e_pos[:-1] + 1)
        quiet = (e_ts[1:] - e_ts[:-1]) > exit_after[1:]
        chain[1:] = same & ~quiet
    determined = e_inside | e_virtual | ~chain
    state = e_inside.astype(_I8)[np.maximum.accumulate(np.where(determined, idx, 0))] if n else np.empty(0, _I8)
    prev_state = np.zeros(n, _I8)
    prev_state[1:] = np.where(chain[1:], state[:-1], 0)
    inside = state == 1
    enter = ~e_virtual & inside & (prev_state == 0)

    # Stays: each begins at an enter or at a virtual element; inside elements belong to the latest.
    starts = enter | e_virtual
    stay_of = np.maximum.accumulate(np.where(starts, idx, 0)) if n else np.empty(0, np.int64)
    start_idx = np.flatnonzero(starts)
    stay_num = np.full(n, -1, np.int64)
    stay_num[start_idx] = np.arange(len(start_idx))
    el_stay = stay_num[stay_of] if n else np.empty(0, np.int64)

    enter_ts_el = e_enter0[stay_of] if n else np.empty(0)
    dwell_cand = (
        (~e_virtual & inside & ~e_dwelled0[stay_of] & (e_ts >= enter_ts_el + dwell_s[e_slot]))
        if n
        else np.zeros(0, bool)
    )
    cand = np.flatnonzero(dwell_cand)
    _, first = np.unique(el_stay[cand], return_index=True)
    dwell_el = cand[first]

    # A stay ends after element k when the next element does not continue it.
    cont_next = np.zeros(n, bool)
    cont_next[:-1] = chain[1:]
    ends = inside & ~cont_next
    last_pos = dev_end[e_dev] - 1 if n else np.empty(0, np.int64)
    closing = np.flatnonzero(ends & (e_pos != last_pos))
    still_open = np.flatnonzero(ends & (e_pos == last_pos))
    nxt = e_pos[closing] + 1
    gap = ts[nxt] - e_ts[closing]
    silent = gap > exit_after[closing]
    exit_ts = np.where(silent, e_ts[closing] + exit_after[closing], ts[nxt])

    enter_el = np.flatnonzero(enter)
    ev_el = np.concatenate([enter_el, dwell_el, closing])
    ev_kind = np.concatenate(
        [
            np.full(len(enter_el), EventKind.ENTER, _I8),
            np.full(len(dwell_el), EventKind.DWELL, _I8),
            np.full(len(closing), EventKind.EXIT, _I8),
        ]
    )
    ev_ts = np.concatenate([e_ts[enter_el], e_ts[dwell_el], exit_ts])
    ev_reason = np.concatenate(
        [np.zeros(len(enter_el) + len(dwell_el), _I8), np.where(silent, Reason.SILENCE, Reason.PING).astype(_I8)]
    )
    ev_dev = e_dev[ev_el]
    rank = KIND_RANK[ev_kind]
    eorder = np.lexsort((e_slot[ev_el], rank, ev_dev, ev_ts))

    dwelled = e_dwelled0[start_idx].copy()
    dwelled[el_stay[dwell_el]] = True
    return Transitions(
        ev_dev=ev_dev[eorder],
        ev_slot=e_slot[ev_el][eorder],
        ev_kind=ev_kind[eorder],
        ev_ts=ev_ts[eorder],
        ev_reason=ev_reason[eorder],
        ev_stay=el_stay[ev_el][eorder],
        st_dev=e_dev[start_idx],
        st_slot=e_slot[start_idx],
        st_enter_ts=e_enter0[start_idx],
        st_initial=e_initial[start_idx],
        st_dwelled=dwelled,
        open_stays=el_stay[still_open],
    )


def _transitions_small(
    dev, ts, dev_start, dev_end, prev_ts, m_pos, m_slot, m_state, s_dev, s_slot, s_enter_ts, s_dwelled,
    dwell_s, exit_after_s,
) -> Transitions:  # fmt: skip
    """:func:`transitions` as one walk over the elements in plain Python: the same result (a
    hypothesis property checks it) for the handful of elements of a phone's request, where the
    vectorized version's fixed cost is most of the engine call."""
    tsl = ts.tolist()
    start_of, end_of = dev_start.tolist(), dev_end.tolist()
    # (dev, slot, pos, ts, virtual, inside, enter ts, dwelled, initial)
    els = [
        (d, sl, p, tsl[p], False, st == 1, tsl[p], False, -1)
        for d, sl, p, st in zip(dev[m_pos].tolist(), m_slot.tolist(), m_pos.tolist(), m_state.tolist())
    ]
    prev = prev_ts.tolist()
    els += [
        (d, sl, start_of[d] - 1, prev[d], True, True, et, bool(dw), i)
        for i, (d, sl, et, dw) in enumerate(
            zip(s_dev.tolist(), s_slot.tolist(), s_enter_ts.tolist(), s_dwelled.tolist())
        )
    ]
    els.sort(key=lambda e: (e[0], e[1], e[2]))
    n = len(els)
    slots = np.array([e[1] for e in els], np.int64)
    exit_after = exit_after_s[slots].tolist() if n else []
    dwell = dwell_s[slots].tolist() if n else []
    enters: list[tuple] = []  # (ts, dev, slot, stay)
    dwells: list[tuple] = []
    exits: list[tuple] = []  # (ts, dev, slot, stay, reason)
    st_dev: list[int] = []
    st_slot: list[int] = []
    st_enter: list[float] = []
    st_initial: list[int] = []
    st_dwelled: list[bool] = []
    open_stays: list[int] = []
    state = 0  # of the previous element, when the current one continues its run
    stay = -1
    for k, (d, sl, p, t, virtual, inside, enter0, dwelled0, initial) in enumerate(els):
        if k:
            pd_, psl, pp, pt = els[k - 1][:4]
            chain = d == pd_ and sl == psl and p == pp + 1 and not (t - pt > exit_after[k])
        else:
            chain = False
        prev_state = state if chain else 0
        state = 1 if (inside or virtual) else (prev_state if chain else 0)
        if state != 1:
            continue
        if virtual or prev_state == 0:  # a stay begins: continued from before the batch, or entered
            stay = len(st_dev)
            st_dev.append(d)
            st_slot.append(sl)
            st_enter.append(enter0)
            st_initial.append(initial)
            st_dwelled.append(dwelled0)
            if not virtual:
                enters.append((t, d, sl, stay))
        if not virtual and not st_dwelled[stay] and t >= st_enter[stay] + dwell[k]:
            st_dwelled[stay] = True
            dwells.append((t, d, sl, stay))
        nxt = els[k + 1] if k + 1 < n else None
        continues = (
            nxt is not None
            and nxt[0] == d
            and nxt[1] == sl
            and nxt[2] == p + 1
            and not (nxt[3] - t > exit_after[k + 1])
        )
        if continues:
            continue
        if p == end_of[d] - 1:
            open_stays.append(stay)
        else:
            gap = tsl[p + 1] - t
            if gap > exit_after[k]:
                exits.append((t + exit_after[k], d, sl, stay, int(Reason.SILENCE)))
            else:
                exits.append((tsl[p + 1], d, sl, stay, int(Reason.PING)))
    rank = KIND_RANK.tolist()
    ev = [(e[0], e[1], rank[EventKind.ENTER], e[2], i, EventKind.ENTER, e[3], 0) for i, e in enumerate(enters)]
    base = len(ev)
    ev += [(e[0], e[1], rank[EventKind.DWELL], e[2], base + i, EventKind.DWELL, e[3], 0) for i, e in enumerate(dwells)]
    base = len(ev)
    ev += [(e[0], e[1], rank[EventKind.EXIT], e[2], base + i, EventKind.EXIT, e[3], e[4]) for i, e in enumerate(exits)]
    ev.sort(key=lambda e: e[:5])  # ts, device, kind rank, fence; then enters, dwells, exits in order
    return Transitions(
        ev_dev=np.array([e[1] for e in ev], np.int64),
        ev_slot=np.array([e[3] for e in ev], np.int64),
        ev_kind=np.array([e[5] for e in ev], _I8),
        ev_ts=np.array([e[0] for e in ev], np.float64),
        ev_reason=np.array([e[7] for e in ev], _I8),
        ev_stay=np.array([e[6] for e in ev], np.int64),
        st_dev=np.array(st_dev, np.int64),
        st_slot=np.array(st_slot, np.int64),
        st_enter_ts=np.array(st_enter, np.float64),
        st_initial=np.array(st_initial, np.int64),
        st_dwelled=np.array(st_dwelled, bool),
        open_stays=np.array(open_stays, np.int64),
    )


def silence_due(last_ts: np.ndarray, exit_after_s: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (due mask, exit ts) for stays whose device has been silent longer than ``exit_after_s``.

    >>> due, at = silence_due(np.array([100.0, 100.0]), np.array([30.0, np.inf]), now=200.0)
    >>> due.tolist(), at[due].tolist()
    ([True, False], [130.0])
    """
    deadline = last_ts + exit_after_s
    # Strict, like the ingest rule (gap > exit_after_s): silence of exactly exit_after_s is not yet an exit.
    return deadline < now, deadline
