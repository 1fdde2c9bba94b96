"""The optimistic load -> compute -> save loop, written once for every versioned state.

Every piece of shared state (a geofence device, a beacon-monitor device, later a campaign
counter) lives in a store that keeps a version per key. A writer loads a batch of keys with their
versions, computes new states and an output (events, positions, counts) from them, and saves
conditionally: the store writes a row only where the stored version still equals the one loaded,
and reports the others as conflicts (another process got there first). :func:`run_optimistic`
reloads and recomputes just the conflicting keys, keeps the output of everything that was
written (or needed no write), and gives up with :class:`~proximity.core.errors.StoreError` after
``max_retries`` recomputations. A batch costs one load and one save per round, whatever its size.

Pure: no I/O here; the store does the I/O behind ``load`` and ``save``.

Examples
--------
A counter per key, incremented by a batch; the store is a dict of ``key -> (version, value)``.

>>> store = {"a": (1, 10)}
>>> def load(keys):
...     return [store.get(k, (0, 0)) for k in keys]
>>> def save(before, after):
...     ok = []
...     for (k, (v, _)), (_, new) in zip(before, after):
...         ok.append(store.get(k, (0, 0))[0] == v)
...         if ok[-1]:
...             store[k] = (v + 1, new)
...     return np.array(ok, bool)
>>> def compute(keys, states):
...     rows = np.arange(len(keys))
...     before = [(k, s) for k, s in zip(keys, states)]
...     after = [(k, s[1] + 1) for k, s in zip(keys, states)]
...     return Attempt(list(keys), rows, before, after)
>>> out = run_optimistic(np.array(["a", "b"], object), load, compute, save,
...                      keep=lambda out, keys, done: list(keys[done]))
>>> out.outputs, out.retries, store
([['a', 'b']], 0, {'a': (2, 11), 'b': (1, 1)})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from proximity.core.errors import StoreError

__all__ = ["Attempt", "Outcome", "VersionedStore", "run_optimistic"]

S = TypeVar("S")  # the store's states of a batch of keys (columns), versions included
Out = TypeVar("Out")  # what one attempt produces (events, positions, counts, ...)


@runtime_checkable
class VersionedStore(Protocol[S]):
    """A store of states with a version per key, saved by compare-and-set on the version.

    :class:`~proximity.core.state.StateStore` (geofence devices) is one; the beacon monitor's
    :class:`~beacons.state.MonitorStore` has the same contract with ``save(after)`` (its states
    carry the versions loaded).
    """

    def load(self, keys: Sequence[str]) -> S:
        """Return the states of these (distinct) keys; unknown ones with version 0."""

    def save(self, before: S, after: S) -> np.ndarray:
        """Write ``after`` for every key whose stored version still equals ``before``'s; return
        the bool mask of the rows written (the others are conflicts)."""


@dataclass(frozen=True, slots=True)
class Attempt(Generic[S, Out]):
    """What ``compute`` returns for one round.

    ``rows`` are the positions, in the round's keys, of the rows to save; ``before`` and
    ``after`` are their states as loaded and as computed (same rows, same order; ``before`` may
    be None for stores whose ``save`` only needs ``after``). Keys not in ``rows`` need no write
    and count as done. ``output`` is the round's result for all its keys; on a conflict it is
    trimmed to the done keys by ``keep``.
    """

    output: Out
    rows: np.ndarray
    before: S | None
    after: S | None


@dataclass(frozen=True, slots=True)
class Outcome(Generic[Out]):
    """The kept outputs, one per round (the first round's first), and how many retries it took."""

    outputs: list[Out]
    retries: int


def run_optimistic(
    keys: np.ndarray,
    load: Callable[[np.ndarray], S],
    compute: Callable[[np.ndarray, S], Attempt[S, Out]],
    save: Callable[[S | None, S | None], np.ndarray],
    *,
    keep: Callable[[Out, np.ndarray, np.ndarray], Out],
    max_retries: int = 32,
    what: str = "key(s)",
) -> Outcome[Out]:
    """Load, compute and save ``keys`` optimistically, recomputing conflicting keys.

    Parameters
    ----------
    keys : array
        Distinct keys (e.g. device ids), an object array.
    load : keys -> states
        The store's load of a batch (one round trip).
    compute : (keys, states) -> Attempt
        Pure: the output and the new states of the rows that change. Called again with the
        conflicting keys only (a subset, in order) and their reloaded states.
    save : (before, after) -> bool mask
        The store's conditional save (one round trip); ``True`` where written.
    keep : (output, keys, done) -> output
        Trim an output to the round's ``keys[done]`` (``done`` a bool mask over them): the
        written ones and those that needed no write. Only called on rounds with conflicts.
    max_retries : int
        Recomputations allowed before :class:`StoreError`.
    what : str
        How the error message names the keys.

    Returns
    -------
    Outcome
        The outputs of every round, each trimmed to its done keys, and the retry count.
    """
    keys = np.asarray(keys, dtype=object)
    outputs: list[Out] = []
    retries = 0
    while True:
        states = load(keys)
        att = compute(keys, states)
        if len(att.rows) == 0:
            outputs.append(att.output)
            return Outcome(outputs, retries)
        ok = np.asarray(save(att.before, att.after), dtype=bool)
        if ok.all():
            outputs.append(att.output)
            return Outcome(outputs, retries)
        lost = np.sort(np.asarray(att.rows)[~ok])
        done = np.ones(len(keys), bool)
        done[lost] = False
        outputs.append(keep(att.output, keys, done))
        if retries >= max_retries:
            raise StoreError(
                f"{len(lost)} {what} kept conflicting after {retries} retries (other processes keep changing them)"
            )
        retries += 1
        keys = keys[lost]
