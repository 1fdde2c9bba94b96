"""Per definition kind: who follows its changes, and what depends on its definitions.

:class:`~proximity.storage.definitions.DefinitionKind` (declared once, in the storage layer)
names the kinds. Two small registries, filled by the services when the runtime is built:

- :class:`Followers`: one ``apply_change(id)`` per kind, called for every change read from the
  definitions' change feed (other processes' writes, Redis mode). The follow loop dispatches
  through it; a kind without a follower is a mistake the runtime refuses at start
  (:meth:`Followers.missing`).
- :class:`Dependents`: "which definitions depend on this one", declared by the dependent side
  (the beacon service declares that beacons depend on geofences through their ``store_id``) and
  asked by the side that deletes (the geofence service, before deleting a fence: 409 ``in_use``).

Adding a kind (campaigns, say): one :class:`DefinitionKind` member; its service calls
``followers.add(DefinitionKind.CAMPAIGN, self.apply_change)`` in its ``register`` (and
``dependents.declare(...)`` for what it depends on), and the runtime calls that ``register``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

from proximity.storage.definitions import Change, DefinitionKind, Definitions

__all__ = ["DefinitionKind", "Followers", "Dependents", "Dependent"]

logger = logging.getLogger("proximity.service")


class Followers:
    """One follower per definition kind: ``apply_change(id)`` brings this process in line."""

    def __init__(self) -> None:
        self._by_kind: dict[DefinitionKind, Callable[[str], object]] = {}
        self._held: dict[DefinitionKind, Callable[[], Iterable[str]]] = {}
        self._many: dict[DefinitionKind, Callable[[list[str]], object]] = {}

    def add(
        self,
        kind: DefinitionKind,
        apply_change: Callable[[str], object],
        held: Callable[[], Iterable[str]] | None = None,
        apply_many: Callable[[list[str]], object] | None = None,
    ) -> None:
        """Make ``apply_change`` the follower of ``kind`` (one per kind: a second one is an error);
        ``held`` lists the ids this process holds of that kind (for :meth:`resync`);
        ``apply_many`` applies many ids at once (for :meth:`apply_all`: bulk imports)."""
        kind = DefinitionKind(kind)
        if kind in self._by_kind:
            raise ValueError(f"definition kind {kind.value!r} already has a follower")
        self._by_kind[kind] = apply_change
        if held is not None:
            self._held[kind] = held
        if apply_many is not None:
            self._many[kind] = apply_many

    def apply_all(self, changes: Iterable[Change]) -> None:
        """Apply changes in order; a run of consecutive changes of one kind with an ``apply_many``
        follower goes to it in one call (a 100,000-fence import elsewhere is a few index changes
        here, not 100,000)."""
        run: list[str] = []
        run_kind: DefinitionKind | None = None

        def flush() -> None:
            if run_kind is not None and run:
                self._many[run_kind](list(run))
            run.clear()

        for ch in changes:
            if ch.kind in self._many:
                if ch.kind != run_kind:
                    flush()
                    run_kind = ch.kind
                run.append(ch.id)
            else:
                flush()
                run_kind = None
                self.apply(ch)
        flush()

    def resync(self, defs: Definitions) -> int:
        """Bring this process in line with ``defs`` as a whole, not change by change: every id
        stored or held, of every kind the process holds (those added with ``held``), goes through
        its follower once: what is held but no longer stored is dropped. Used when the store lost
        changes (Redis came back empty); returns how many ids were applied."""
        n = 0
        for kind, held in self._held.items():
            follower = self._by_kind[kind]
            ids = dict.fromkeys([*defs.all(kind), *held()])
            for id in ids:
                follower(id)
            n += len(ids)
        return n

    def apply(self, change: Change) -> None:
        """Call the follower of the change's kind (a kind nobody follows is logged and skipped)."""
        follower = self._by_kind.get(change.kind)
        if follower is None:
            logger.warning("no follower for definition kind %r; change of %r skipped", change.kind, change.id)
            return
        follower(change.id)

    def missing(self) -> list[DefinitionKind]:
        """The kinds without a follower (the runtime wants none)."""
        return [k for k in DefinitionKind if k not in self._by_kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_kind


class Dependent(NamedTuple):
    """Definitions of ``kind`` (``ids``) that are in ``relation`` to one definition (its ``store``)."""

    kind: DefinitionKind
    relation: str
    ids: list[str]


class Dependents:
    """Declared "what depends on this definition" queries, asked before a delete."""

    def __init__(self) -> None:
        self._queries: dict[DefinitionKind, list[tuple[DefinitionKind, str, Callable[[str], Iterable[str]]]]] = {}

    def declare(
        self, of: DefinitionKind, kind: DefinitionKind, query: Callable[[str], Iterable[str]], relation: str
    ) -> None:
        """Definitions of ``kind`` depend on definitions of ``of``: ``query(id)`` returns the ids of
        those that depend on ``id``, for which ``id`` is their ``relation`` (e.g. ``store``)."""
        self._queries.setdefault(DefinitionKind(of), []).append((DefinitionKind(kind), relation, query))

    def __call__(self, of: DefinitionKind, id: str) -> list[Dependent]:
        """Every non-empty group of definitions depending on definition ``id`` of kind ``of``."""
        out = []
        for kind, relation, query in self._queries.get(DefinitionKind(of), ()):
            ids = sorted(query(id))
            if ids:
                out.append(Dependent(kind, relation, ids))
        return out
