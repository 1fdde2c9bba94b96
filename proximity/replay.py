"""Batch replay: a fences GeoJSON and a pings CSV in, an events CSV out, streamed in chunks.

The pings file is read ``chunk_size`` rows at a time and each chunk is one :meth:`Engine.ingest`
call, so memory stays bounded whatever the file size and events are written as they come.
Streaming has the engine's semantics: a ping older than its device's last accepted ping is
dropped as stale, so a file sorted by ts (any mix of devices) reproduces the events of feeding
each device's pings in order, while pings of one device that go back in time across chunks
are counted as ``stale``.

Bad input raises :class:`~proximity.core.errors.InvalidInput` naming the file, the line (1-based,
the header is line 1) or the feature, and the reason. The events file is written to a temporary
file next to the target and renamed at the end, so a failed replay leaves no partial output.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import pandas as pd

from geofences import Geofence, InvalidCollection
from proximity.core.engine import Engine
from proximity.core.errors import InvalidInput, InvalidPing
from proximity.core.events import EventBatch, kinds_of
from proximity.core.pings import PingBatch
from proximity.core.pipeline import Pipeline
from proximity.core.wire import EVENT_COLUMNS, csv_rows

__all__ = [
    "PING_COLUMNS",
    "OPTIONAL_PING_COLUMNS",
    "EVENT_COLUMNS",
    "ReplayStats",
    "load_fences",
    "SEQ_SUFFIXES",
    "read_pings",
    "write_events",
    "CsvSink",
    "StatsSink",
    "replay",
]

#: Required columns of a pings CSV, and the optional one.
PING_COLUMNS = ("device_id", "ts", "lon", "lat")
OPTIONAL_PING_COLUMNS = ("accuracy_m",)

_NUMERIC = ("lon", "lat", "accuracy_m")
_GEOFENCE_KINDS = tuple(str(k) for k in kinds_of("geofence"))


@dataclass
class ReplayStats:
    """Counts of one replay; :meth:`to_dict` is the JSON summary line."""

    pings: int = 0
    accepted: int = 0
    stale: int = 0
    duplicates: int = 0
    inaccurate: int = 0
    retries: int = 0
    events_by_type: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_GEOFENCE_KINDS, 0))
    seconds: float = 0.0
    last_ts: float = float("-inf")

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    def add_events(self, events: EventBatch) -> None:
        for kind, n in events.counts().items():
            self.events_by_type[kind] = self.events_by_type.get(kind, 0) + n

    def to_dict(self) -> dict:
        return {
            "pings": self.pings,
            "accepted": self.accepted,
            "events": self.events,
            "events_by_type": dict(self.events_by_type),
            "stale": self.stale,
            "duplicates": self.duplicates,
            "inaccurate": self.inaccurate,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "pings_per_s": round(self.pings / self.seconds) if self.seconds > 0 else None,
        }


#: fence files read by :func:`load_fences` other than a GeoJSON FeatureCollection, by suffix
SEQ_SUFFIXES = (".geojsonseq", ".geojsonl", ".geojsons", ".ndjson", ".jsonl")
#: show a progress bar while loading fence files larger than this (bytes)
PROGRESS_BYTES = 32 * 1024 * 1024


def load_fences(path: str | Path, *, progress: bool | None = None) -> list[Geofence]:
    """Read and validate a file of fences, all or nothing: a GeoJSON FeatureCollection (decoded
    with orjson, validated in bulk), a GeoJSON text sequence (suffixes :data:`SEQ_SUFFIXES`) or
    a CSV file (``.csv``, :data:`geofences.formats.CSV_COLUMNS`).

    ``progress``: a tqdm bar of features parsed on stderr (default: for files over
    :data:`PROGRESS_BYTES`).

    Raises
    ------
    InvalidInput
        Naming the file and every bad feature (index or line, id, field, reason).
    """
    from tqdm import tqdm

    from geofences.formats import read_collection, read_csv, read_geojsonseq

    source = str(path)
    suffix = Path(path).suffix.lower()
    try:
        size = os.path.getsize(path)
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InvalidInput(source, "no such file") from None
    except OSError as exc:
        raise InvalidInput(source, f"cannot read: {exc.strerror or exc}") from None
    show = size > PROGRESS_BYTES if progress is None else progress
    with (
        fh,
        tqdm(unit=" fences", unit_scale=True, desc="fences", disable=not show, mininterval=0.5, leave=False) as bar,
    ):

        def advance(n: int) -> None:
            bar.update(n - bar.n)

        def size_bar(n: int) -> None:
            bar.total = n

        try:
            if suffix == ".csv":
                with io.TextIOWrapper(fh, encoding="utf-8", newline="") as text:
                    return read_csv(text, source=source, progress=advance)
            if suffix in SEQ_SUFFIXES:
                return read_geojsonseq(fh, source=source, progress=advance)
            try:
                return read_collection(fh.read(), source=source, progress=advance, total=size_bar)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(source, f"invalid JSON ({exc})", line=getattr(exc, "lineno", None)) from None
        except UnicodeDecodeError as exc:
            raise InvalidInput(source, f"not UTF-8 text ({exc.reason})") from None
        except InvalidCollection as exc:
            first = exc.errors[0]
            reason = f"{len(exc.errors)} invalid feature(s): " + "; ".join(str(e) for e in exc.errors[:20])
            if len(exc.errors) > 20:
                reason += f" (+{len(exc.errors) - 20} more)"
            raise InvalidInput(source, reason, field=None if first.index is not None else first.field) from exc


def read_pings(path: str | Path, chunk_size: int = 100_000, *, on_progress=None) -> Iterator[PingBatch]:
    """Yield validated :class:`PingBatch` chunks of a pings CSV.

    The header names the columns (any order): ``device_id,ts,lon,lat`` and optionally
    ``accuracy_m``. ``ts`` is epoch seconds or ISO 8601 with an offset, as in the file's first
    row (one format per file). ``on_progress(bytes_read)`` is called after each chunk.

    Raises
    ------
    InvalidInput
        For a missing file, a bad header or the first bad row (its line, field and reason).
    """
    source = str(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InvalidInput(source, "no such file") from None
    except OSError as exc:
        raise InvalidInput(source, f"cannot read: {exc.strerror or exc}") from None
    with fh:
        columns, first_row = _read_header(fh, source)
        if first_row is None:
            return
        ts_numeric = _is_number(first_row[columns.index("ts")]) if len(first_row) == len(columns) else True
        fh.seek(0)
        dtype = {"device_id": object, "ts": "float64" if ts_numeric else object}
        dtype.update({c: "float64" for c in _NUMERIC if c in columns})
        na = {c: [""] for c in ("ts",) + _NUMERIC if c in columns and (c != "ts" or ts_numeric)}
        reader = pd.read_csv(
            fh,
            dtype=dtype,
            chunksize=chunk_size,
            keep_default_na=False,
            na_values=na,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
        line = 2
        while True:
            try:
                df = next(reader)
            except StopIteration:
                break
            except pd.errors.ParserError as exc:
                raise _parser_error(source, exc) from None
            except UnicodeDecodeError:
                raise InvalidInput(source, "not UTF-8 text") from None
            except ValueError:
                raise _find_bad_value(path, source, columns, line, ts_numeric) from None
            acc = df["accuracy_m"].to_numpy() if "accuracy_m" in df else None
            try:
                batch = PingBatch.from_columns(
                    df["device_id"].to_numpy(object),
                    df["ts"].to_numpy(),
                    df["lon"].to_numpy(),
                    df["lat"].to_numpy(),
                    acc,
                    first_index=line,
                )
            except InvalidPing as exc:
                shown = "" if exc.value in (None, "") or repr(exc.value) in exc.reason else f" (got {exc.value!r})"
                raise InvalidInput(source, exc.reason + shown, line=exc.index, field=exc.field) from None
            line += len(df)
            if on_progress is not None:
                on_progress(fh.tell())
            yield batch


def _read_header(fh: IO[bytes], source: str) -> tuple[list[str], list[str] | None]:
    """Return the header's columns and the first data row (None when there is none)."""
    try:
        head = [fh.readline().decode("utf-8-sig"), fh.readline().decode("utf-8")]
    except UnicodeDecodeError:
        raise InvalidInput(source, "not UTF-8 text", line=1) from None
    rows = list(csv.reader(io.StringIO("".join(head))))
    expected = ",".join(PING_COLUMNS) + "[," + ",".join(OPTIONAL_PING_COLUMNS) + "]"
    if not rows or not rows[0]:
        raise InvalidInput(source, f"empty file: expected a header line {expected}", line=1)
    columns = [c.strip() for c in rows[0]]
    missing = [c for c in PING_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in PING_COLUMNS + OPTIONAL_PING_COLUMNS]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or dup:
        what = "; ".join(
            filter(
                None,
                [
                    missing and f"missing column(s) {', '.join(missing)}",
                    unknown and f"unknown column(s) {', '.join(unknown)}",
                    dup and f"repeated column(s) {', '.join(dup)}",
                ],
            )
        )
        raise InvalidInput(source, f"bad header: {what}; expected columns {expected}", line=1)
    if columns != rows[0]:
        raise InvalidInput(source, f"bad header: spaces around column names; expected {expected}", line=1)
    return columns, (rows[1] if len(rows) > 1 else None)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parser_error(source: str, exc: Exception) -> InvalidInput:
    text = str(exc)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return InvalidInput(source, f"expected {m[1]} fields, saw {m[3]}", line=int(m[2]))
    m = re.search(r"line (\d+)", text)
    reason = text.split("C error: ")[-1].strip().rstrip(".")
    return InvalidInput(source, f"malformed CSV ({reason})", line=int(m[1]) if m else None)


def _find_bad_value(path, source: str, columns: list[str], line: int, ts_numeric: bool) -> InvalidInput:
    """Scan from ``line`` for the value pandas could not convert, and describe it."""
    checked = [c for c in columns if c in _NUMERIC or (c == "ts" and ts_numeric)]
    with open(path, newline="", encoding="utf-8-sig") as f:
        for no, row in enumerate(csv.reader(f), start=1):
            if no < line:
                continue
            for c in checked:
                i = columns.index(c)
                value = row[i].strip() if i < len(row) else ""
                if value and not _is_number(value):
                    if c == "ts":
                        hint = "expected epoch seconds like the file's first row (use one ts format per file)"
                    else:
                        hint = "expected a number"
                    return InvalidInput(source, f"{hint}, got {value!r}", line=no, field=c)
    return InvalidInput(source, "a value could not be read as a number", line=line)


def write_events(events: EventBatch, writer) -> None:
    """Write events as CSV rows (:data:`EVENT_COLUMNS`) with a ``csv.writer``."""
    writer.writerows(csv_rows(events))


class CsvSink:
    """An event sink writing each batch as CSV rows with a ``csv.writer``."""

    def __init__(self, writer):
        self.writer = writer

    def consume(self, batch: EventBatch) -> None:
        write_events(batch, self.writer)


class StatsSink:
    """An event sink counting events per kind into a :class:`ReplayStats`."""

    def __init__(self, stats: ReplayStats):
        self.stats = stats

    def consume(self, batch: EventBatch) -> None:
        self.stats.add_events(batch)


def replay(
    engine: Engine,
    pings_path: str | Path,
    out_path: str | Path,
    *,
    chunk_size: int = 100_000,
    progress: bool = True,
    sweep_at_end: bool = False,
    stages=(),
    sinks=(),
) -> ReplayStats:
    """Stream a pings CSV through ``engine`` and write every event to ``out_path``.

    Parameters
    ----------
    engine : Engine
        Holds the fences and the state store (device state carries over between chunks).
    pings_path, out_path : path
        Pings CSV in, events CSV out (written whole or not at all).
    chunk_size : int
        Rows per :meth:`Engine.ingest` call; memory grows with it, not with the file.
    progress : bool
        Show a progress bar (bytes read) on stderr.
    sweep_at_end : bool
        After the last ping, close stays silent for their fence's ``exit_after_s`` as of the
        latest ts seen (:meth:`Engine.sweep`). Off by default: a replay invents no exits.
    stages, sinks : sequence
        Extra :class:`~proximity.core.pipeline.EventStage` s and
        :class:`~proximity.core.pipeline.EventSink` s of the replay's pipeline (whose sinks are the
        counters and the CSV writer, then these).
    """
    from tqdm import tqdm

    out = Path(out_path)
    if not out.parent.is_dir():
        raise InvalidInput(str(out), f"directory {str(out.parent)!r} does not exist")
    if chunk_size < 1:
        raise InvalidInput("--chunk-size", f"must be >= 1, got {chunk_size}")
    size = os.path.getsize(pings_path) if os.path.isfile(pings_path) else None
    stats = ReplayStats()
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    started = time.perf_counter()
    try:
        with (
            os.fdopen(fd, "w", newline="", encoding="utf-8") as f,
            tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="replay",
                disable=not progress,
                file=None,
                mininterval=0.5,
                leave=False,
            ) as bar,
        ):
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(EVENT_COLUMNS)
            pipeline = Pipeline([StatsSink(stats), CsvSink(writer), *sinks], stages)

            def advance(pos: int) -> None:
                bar.update(pos - bar.n)

            for batch in read_pings(pings_path, chunk_size, on_progress=advance):
                result = engine.ingest(batch)
                stats.pings += len(batch)
                stats.accepted += result.accepted
                stats.stale += result.stale
                stats.duplicates += result.duplicates
                stats.inaccurate += result.inaccurate
                stats.retries += result.retries
                stats.last_ts = max(stats.last_ts, float(batch.ts.max()))
                pipeline.emit(result.events)
            if sweep_at_end and stats.pings:
                pipeline.emit(engine.sweep(stats.last_ts))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    stats.seconds = time.perf_counter() - started
    return stats
