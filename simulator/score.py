"""Score an event table against the ground truth: matched, missing and extra events.

Events are compared as a multiset of ``(device_id, geofence_id, type, ts)``; the extra columns an
engine writes (visit ids, durations, reasons) are not part of the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from proximity.core.errors import InvalidInput
from proximity.core.events import format_ts
from proximity.core.pings import parse_ts

__all__ = ["KEY_COLUMNS", "Score", "score", "read_events"]

#: The columns that identify an event.
KEY_COLUMNS = ("device_id", "geofence_id", "type", "ts")


@dataclass(frozen=True)
class Score:
    """Result of :func:`score`; ``exact`` when nothing is missing and nothing is extra."""

    matched: int
    missing: int
    extra: int
    missing_examples: list[dict] = field(default_factory=list)
    extra_examples: list[dict] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.extra == 0

    def to_dict(self) -> dict:
        return {
            "matched": self.matched,
            "missing": self.missing,
            "extra": self.extra,
            "exact": self.exact,
            "missing_examples": self.missing_examples,
            "extra_examples": self.extra_examples,
        }


def score(events: pd.DataFrame, truth: pd.DataFrame, *, examples: int = 5) -> Score:
    """Compare two event tables (columns :data:`KEY_COLUMNS`, ts as float epoch seconds).

    Examples
    --------
    >>> t = pd.DataFrame({"device_id": ["a", "a"], "geofence_id": ["s", "s"],
    ...                   "type": ["enter", "exit"], "ts": [0.0, 60.0]})
    >>> s = score(t.head(1), t)
    >>> (s.matched, s.missing, s.extra)
    (1, 1, 0)
    """
    keys = list(KEY_COLUMNS)
    ev = events[keys].value_counts().rename("events")
    tr = truth[keys].value_counts().rename("truth")
    both = pd.concat([ev, tr], axis=1).fillna(0).astype("int64")
    over = (both["events"] - both["truth"]).clip(lower=0)
    under = (both["truth"] - both["events"]).clip(lower=0)
    return Score(
        int(both.min(axis=1).sum()),
        int(under.sum()),
        int(over.sum()),
        _examples(under, examples),
        _examples(over, examples),
    )


def _examples(counts: pd.Series, n: int) -> list[dict]:
    rows = counts[counts > 0].sort_index(level="ts").head(n)
    return [{"device_id": d, "geofence_id": f, "type": t, "ts": format_ts(ts)} for d, f, t, ts in rows.index]


def read_events(path: str | Path) -> pd.DataFrame:
    """Read an events or truth CSV (header with at least :data:`KEY_COLUMNS`); ts as float.

    Raises
    ------
    InvalidInput
        For a missing file, missing columns or a bad ts.
    """
    source = str(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InvalidInput(source, "no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidInput(source, f"not a readable CSV ({str(exc).strip()})") from None
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise InvalidInput(
            source, f"bad header: missing column(s) {', '.join(missing)}; expected {','.join(KEY_COLUMNS)}", line=1
        )
    df = df[list(KEY_COLUMNS)].astype(object)
    ts = pd.to_numeric(df["ts"], errors="coerce")
    for i in ts.index[ts.isna()]:
        try:
            ts[i] = parse_ts(df["ts"][i])
        except ValueError as exc:
            raise InvalidInput(source, str(exc), line=int(i) + 2, field="ts") from None
    df["ts"] = ts.astype("float64")
    return df
