"""Errors raised by the proximity engine and its stores.

::

    ProximityError
     ├── InvalidPing (ValueError)      index, field, value, reason (first of ``errors``)
     ├── InvalidInput (ValueError)     source, line, field, reason: a bad input file
     └── StoreError (RuntimeError)     the state store failed or kept conflicting
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProximityError", "InvalidPing", "InvalidInput", "StoreError"]


class ProximityError(Exception):
    """Base class of the engine's errors."""


class InvalidPing(ProximityError, ValueError):
    """One or more pings of a batch are malformed; none of the batch was applied.

    Attributes ``index``, ``field``, ``value`` and ``reason`` describe the first bad ping;
    ``errors`` lists up to 20 of them as dicts.
    """

    def __init__(self, errors: list[dict[str, Any]], total: int | None = None):
        self.errors = errors[:20]
        self.total = total if total is not None else len(errors)
        first = errors[0]
        self.index, self.field, self.value, self.reason = (
            first["index"],
            first["field"],
            first.get("value"),
            first["reason"],
        )
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        super().__init__(f"ping {self.index}: {self.field}: {self.reason}{more}")


class InvalidInput(ProximityError, ValueError):
    """A bad input file: names the file, the line (1-based, header = 1) and the reason."""

    def __init__(self, source: str, reason: str, line: int | None = None, field: str | None = None):
        self.source, self.line, self.field, self.reason = source, line, field, reason
        where = source + (f", line {line}" if line is not None else "")
        what = f"{field}: " if field else ""
        super().__init__(f"{where}: {what}{reason}")


class StoreError(ProximityError, RuntimeError):
    """The state store failed (connection, script) or a batch kept conflicting."""
