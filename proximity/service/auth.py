"""API keys: random tokens with scopes, stored hashed (SHA-256) as ``apikey`` definitions.

A key reads ``prx_<id>_<secret>``; the id finds the record, and the SHA-256 of the whole key is
compared in constant time. The admin key (record id ``admin``) may be any string of 16+
characters: ``PROXIMITY_ADMIN_KEY`` sets it at start; without it one is generated on the first
start and printed once. Scopes: ``ingest`` (pings and phone clients), ``manage`` (geofences,
webhooks, campaigns, device profiles), ``metrics`` (``/metrics``, for a Prometheus scraper),
``redeem`` (coupon redemptions at the till), ``admin`` (keys; and everything else).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from enum import Enum

from proximity.service.errors import BadRequest, Forbidden, NotFound, Unauthorized
from proximity.service.kinds import Dependents, Followers
from proximity.storage.definitions import DefinitionKind, Definitions

__all__ = ["Scope", "ApiKey", "KeyRing", "KIND"]

KIND = DefinitionKind.KEY
ADMIN_ID = "admin"


class Scope(str, Enum):
    INGEST = "ingest"
    MANAGE = "manage"
    ADMIN = "admin"
    METRICS = "metrics"
    REDEEM = "redeem"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's public record (never the key itself)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_ts: float

    def allows(self, scope: Scope | str) -> bool:
        s = scope.value if isinstance(scope, Scope) else scope
        return Scope.ADMIN.value in self.scopes or s in self.scopes

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "created_ts": self.created_ts}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _record_to_key(rec: dict) -> ApiKey:
    return ApiKey(rec["id"], rec.get("name", ""), tuple(rec.get("scopes", ())), float(rec.get("created_ts", 0)))


class KeyRing:
    """The keys of this service, cached in memory and kept in the definitions store."""

    def __init__(self, defs: Definitions):
        self._defs = defs
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {}

    # -- start and follow ----------------------------------------------------------------------
    def register(self, followers: Followers, dependents: Dependents) -> None:
        """Follow key changes (nothing depends on a key, and a key depends on nothing)."""
        followers.add(KIND, self.refresh, held=lambda: list(self._records))

    def load(self, admin_key: str | None) -> str | None:
        """Load every key; install the admin key. Return a newly generated admin key, else None."""
        generated = None
        if admin_key is not None:
            rec = self._defs.get(KIND, ADMIN_ID)
            if rec is None or not hmac.compare_digest(rec["hash"], _digest(admin_key)):
                self._defs.put(KIND, ADMIN_ID, self._new_record(ADMIN_ID, "admin", [Scope.ADMIN.value], admin_key))
        elif self._defs.get(KIND, ADMIN_ID) is None:
            key = f"prx_{ADMIN_ID}_{secrets.token_urlsafe(24)}"
            if self._defs.create(KIND, ADMIN_ID, self._new_record(ADMIN_ID, "admin", [Scope.ADMIN.value], key)):
                generated = key  # another process may have won the race; then it prints its own
        with self._lock:
            self._records = self._defs.all(KIND)
        return generated

    def refresh(self, key_id: str) -> None:
        """Re-read one key after a change notification (from this or another process)."""
        rec = self._defs.get(KIND, key_id)
        with self._lock:
            if rec is None:
                self._records.pop(key_id, None)
            else:
                self._records[key_id] = rec

    # -- checking --------------------------------------------------------------------------------
    def authenticate(self, key: str | None) -> ApiKey:
        """Return the key's record, or raise :class:`Unauthorized`."""
        if not key:
            raise Unauthorized("missing API key: send Authorization: Bearer <key>")
        parts = key.split("_", 2)
        key_id = parts[1] if len(parts) == 3 and parts[0] == "prx" else ADMIN_ID
        rec = self._records.get(key_id)
        if rec is None and key_id != ADMIN_ID:
            key_id, rec = ADMIN_ID, self._records.get(ADMIN_ID)  # an admin key may look like anything
        if rec is None or not hmac.compare_digest(rec["hash"], _digest(key)):
            raise Unauthorized("invalid API key")
        return _record_to_key(rec)

    @staticmethod
    def authorize(key: ApiKey, scope: Scope) -> ApiKey:
        if not key.allows(scope):
            raise Forbidden(scope.value)
        return key

    # -- managing ------------------------------------------------------------------------------
    def create(self, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
        """Create a key; return its record and the key (shown once, never stored)."""
        valid = {s.value for s in Scope}
        for i, s in enumerate(scopes):
            if s not in valid:
                raise BadRequest(f"scopes[{i}]", f"unknown scope {s!r}; valid: {', '.join(sorted(valid))}", s)
        if not scopes:
            raise BadRequest("scopes", "give at least one scope")
        key_id = secrets.token_hex(6)
        key = f"prx_{key_id}_{secrets.token_urlsafe(24)}"
        rec = self._new_record(key_id, name, list(dict.fromkeys(scopes)), key)
        self._defs.create(KIND, key_id, rec)
        with self._lock:
            self._records[key_id] = rec
        return _record_to_key(rec), key

    def list(self) -> list[ApiKey]:
        with self._lock:
            recs = sorted(self._records.values(), key=lambda r: (r.get("created_ts", 0), r["id"]))
        return [_record_to_key(r) for r in recs]

    def get(self, key_id: str) -> ApiKey:
        rec = self._records.get(key_id)
        if rec is None:
            raise NotFound("key", key_id)
        return _record_to_key(rec)

    def delete(self, key_id: str) -> None:
        if key_id == ADMIN_ID:
            raise BadRequest("id", "the admin key cannot be deleted; set PROXIMITY_ADMIN_KEY to rotate it", key_id)
        if not self._defs.delete(KIND, key_id):
            raise NotFound("key", key_id)
        with self._lock:
            self._records.pop(key_id, None)

    @staticmethod
    def _new_record(key_id: str, name: str, scopes: list[str], key: str) -> dict:
        return {"id": key_id, "name": name, "scopes": scopes, "hash": _digest(key), "created_ts": time.time()}
