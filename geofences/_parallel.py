"""A big FeatureCollection's chunks read in worker processes, its fences made in the caller.

:func:`geofences.formats.read_collection` spends most of its time, all of it holding the GIL,
on work that needs nothing from the other chunks: cutting out and reading the coordinates,
orjson on the rest, the ring checks, building and validating the polygons, and the per-feature
loop over ids, names, tags and settings. Here worker processes do that for chunks from the
front of the collection (:func:`_scan_chunk`) and send back only arrays and flat lists: the
valid polygons' coordinates with their ring and part offsets, and one column per fence field.
The caller turns the coordinates into geometries with one ``shapely.from_ragged_array`` call
per kind (no second validation) and makes the :class:`~geofences.model.Geofence` objects with
the serial parser's own code (:func:`geofences._fastparse._build`). Whenever the next result
is not there yet, the caller parses a chunk from the back of the collection itself, as the
serial reader does, so its core never waits. Every feature that needs a closer look, and every
chunk not in the form read from the text, is parsed in the caller as the serial reader parses
it: the fences and errors are the serial reader's.

A worker is a fresh interpreter started with ``subprocess`` for one read and stopped after it
(``fork`` is unsafe in a server with threads; multiprocessing's spawn and forkserver would
import the caller's ``__main__`` again); a chunk travels to it as one bytes object.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Any

import msgspec
import numpy as np
import shapely

from geofences._fastparse import _NO_PROPS, _build, _scan, parse_alone, prebuild, ragged
from geofences._memory import gc_paused
from geofences._rawcoords import decode_joined
from geofences.errors import InvalidGeofence
from geofences.model import FenceKind, Geofence, Limits

#: Fewest features for which :func:`workers_for` starts workers by default. Starting one takes
#: 0.3 s of CPU and 0.5-0.9 s of wall clock (an interpreter, numpy, shapely, pyproj), and each
#: chunk costs a fifth more CPU: reads of 100k and 200k features measured slower or no faster
#: with a worker (1.6 s serial, 2.2-2.8 s; 3.0-3.3 s, 2.7-4.0 s), 500k faster (7.8-8.6 s, 6.4-7.9).
MIN_FEATURES = 500_000
_KINDS = {int(k): k for k in FenceKind}
_EMPTY = np.empty(0, np.int64)
# Chunks handed out ahead of the one the caller is making fences of, per worker: enough to keep
# every worker busy, few enough that the chunks' bytes and results in flight stay small.
_AHEAD = 3
# A worker process: a fresh interpreter running _serve.
_GONE = object()  # a worker's output ended
_PIPE_BYTES = 1 << 20
_COMMAND = [sys.executable, "-c", "from geofences._parallel import _serve; _serve()"]
#: A worker that has not answered a chunk this long is stopped and its chunks are read by the
#: caller (a run takes a worker about a second; a stuck one must not hang an import)
_RESULT_TIMEOUT_S = 120.0


def workers_for(n_features: int, workers: int | None) -> int:
    """How many worker processes read ``n_features`` features: ``workers`` when given (0: none),
    else one per CPU but the caller's for a read of at least :data:`MIN_FEATURES` features."""
    if workers is None:
        return max((os.cpu_count() or 1) - 1, 0) if n_features >= MIN_FEATURES else 0
    return max(workers, 0)


@dataclass
class _Scanned:
    """One chunk as a worker read it: everything but the Python objects of its fences.

    ``fields`` are the serial parser's meta rows as columns (index, id, name, tags, free
    properties, dwell, exit, kind, radius, lon, lat), the free properties as plain dicts and the
    kinds as ints (neither a mappingproxy nor an enum member crosses a pipe cheaply). ``shapes``
    holds, per geometry kind, the chunk positions of the features whose polygon was read and found
    valid, and that polygon's coordinates and offsets (``shapely.to_ragged_array``'s form).
    ``meta_of`` is each such feature's meta row (-1: it is parsed alone). ``slow`` lists the
    features to parse alone.
    """

    fields: list[tuple]
    shapes: list[tuple[shapely.GeometryType, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]]
    meta_of: np.ndarray
    slow: list[int]


def _scan_chunk(joined: bytes, lens: np.ndarray, limits: Limits) -> _Scanned | None:
    """In a worker: a chunk's features (``joined`` as one JSON array, ``lens`` their lengths)
    decoded, read and checked; None when the chunk is not in the form read from the text."""
    with gc_paused():  # the decoded chunk: many objects, no cycles
        fast = decode_joined(joined, lens)
        if fast is None:
            return None
        features, coords = fast
        built = prebuild(coords, limits)
        meta, slow, _, _, _, pre_feat, pre_meta = _scan(features, limits, coords, built.tolist())
        del features
        meta_of = np.full(len(lens), -1, np.int64)
        meta_of[np.asarray(pre_feat, np.int64)] = pre_meta
        # The coordinates of the polygons the fences keep, as prebuild built them.
        ring_feat = coords.poly_feat[coords.ring_poly]
        kept = (meta_of >= 0)[ring_feat]
        shapes = []
        for depth, kind in ((3, shapely.GeometryType.POLYGON), (4, shapely.GeometryType.MULTIPOLYGON)):
            keep = kept & (coords.depth[ring_feat] == depth)
            made = ragged(coords.xy, coords.ring_len, coords.ring_poly, coords.poly_feat, keep, depth == 4)
            if made is not None:
                shapes.append((kind, *made))
        for row in meta:
            row[4] = dict(row[4]) if row[4] else None
            row[7] = int(row[7])
        fields = list(zip(*meta)) if meta else [()] * 11
        return _Scanned(fields, shapes, meta_of, slow)


def _make(scanned: _Scanned, limits: Limits, whole: Callable[[int], Any]) -> tuple[list, list[InvalidGeofence]]:
    """In the caller: :func:`geofences._fastparse.parse_many` of a chunk a worker read."""
    fields = scanned.fields
    free = [_NO_PROPS if d is None else MappingProxyType(d) for d in fields[4]]
    kinds = [_KINDS[k] for k in fields[7]]
    meta = list(zip(fields[0], fields[1], fields[2], fields[3], free, fields[5], fields[6], kinds, *fields[8:]))
    rows, geoms = [], []
    for kind, at, xy, offsets in scanned.shapes:
        rows.append(scanned.meta_of[at])
        geoms.append(shapely.from_ragged_array(kind, xy, offsets))
    given = (np.concatenate(rows), np.concatenate(geoms)) if rows else None
    out: list[Geofence | None] = [None] * len(scanned.meta_of)
    bad = _build(meta, None, _EMPTY, _EMPTY, limits, out, given)
    assert not len(bad), "no rings to check: only prebuilt polygons and circles"
    return out, parse_alone(scanned.slow, out, whole, limits)


def parsed_chunks(
    features: list[msgspec.Raw],
    chunk: int,
    limits: Limits,
    workers: int,
    serial: Callable[[list[msgspec.Raw]], Any],
    whole: Callable[[list[msgspec.Raw], int], Any],
) -> Generator[Any, None, None]:
    """Each run of ``chunk`` features, in order, as :func:`geofences.geojson._parse_chunks`
    takes it: ``serial(raws)``, or a callable returning ``parse_many``'s result.

    The workers take runs from the front, the caller makes their fences as their results come;
    while the next result is not there yet, the caller parses a run from the back itself (and
    keeps its fences for their turn), so no core waits on another, and a worker slowed by other
    work on the machine leaves more of the runs to the caller. A run a worker found not in the
    form read from the text, or whose worker failed, is ``serial(raws)`` at its turn.
    """
    runs = [features[start : start + chunk] for start in range(0, len(features), chunk)]
    pool = [_Worker() for _ in range(min(workers, len(runs)))]
    sent: deque[tuple[int, _Worker]] = deque()  # runs handed to workers, in order
    here: dict[int, Callable[[], Any]] = {}  # runs from the back parsed here, until their turn
    nxt, back = 0, len(runs)  # runs[nxt:back] are neither sent nor parsed here
    try:
        for k in range(len(runs)):
            # Runs in flight: one a worker until its first result (an interpreter starting takes
            # the time of a run or two), then up to _AHEAD; and no more than the caller has left
            # to parse meanwhile, so that neither waits long for the other at the end.
            ahead = len(pool) * min(_AHEAD, 1 + k // len(pool))
            while back - nxt > len(sent) and len(sent) < ahead:
                pool[nxt % len(pool)].send(runs[nxt], limits)
                sent.append((nxt, pool[nxt % len(pool)]))
                nxt += 1
            while k not in here and not sent[0][1].ready() and nxt < back:
                back -= 1
                here[back] = _parse_here(serial, runs[back], limits)
                runs[back] = []
            if k in here:
                yield here.pop(k)
                continue
            raws, (_, worker) = runs[k], sent.popleft()
            runs[k] = []  # the caller's chunk is all that is kept of it
            scanned = worker.receive()
            if scanned is None:
                yield serial(raws)
            else:
                yield lambda s=scanned, r=raws: _make(s, limits, lambda i: whole(r, i))
            del raws, scanned
    finally:  # also when the caller stops early (an undecodable chunk, an error)
        for worker in pool:
            worker.close()


def _parse_here(serial: Callable[[list[msgspec.Raw]], Any], raws: list[msgspec.Raw], limits: Limits) -> Callable:
    """A run parsed now, in the caller: a callable returning its ``parse_many`` result (or
    raising what parsing it raised, at its turn)."""
    from geofences.geojson import _parse_part

    try:
        got = _parse_part(serial(raws), limits)
    except Exception as exc:  # noqa: BLE001 - raised at the run's turn, as the serial reader would

        def fail(exc: Exception = exc) -> Any:
            raise exc

        return fail
    return lambda: got


class _Worker:
    """A worker process (:func:`_serve`) reading the chunks sent to it, in order.

    A plain child process started with ``subprocess`` (fork and exec: safe in a process with
    threads, and the caller's ``__main__`` is not imported again, as multiprocessing's spawn and
    forkserver would), speaking pickle over its stdin and stdout. Every end of a pipe is served
    by a thread of its own: the caller's writer and reader, the worker's reader, so that the
    caller never waits for the worker to take a chunk (a pipe is drained only as fast as the
    reading process hands its thread the GIL) and neither waits for the other to read.
    """

    def __init__(self) -> None:
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where geofences is
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
        self.waiting = 0  # chunks sent whose results were not taken
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.proc: subprocess.Popen | None = None
        try:
            self.proc = subprocess.Popen(_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError:  # no process to be had: its chunks are read by the caller
            return
        for pipe in (self.proc.stdin, self.proc.stdout):
            _widen(pipe)
        self.threads = [
            threading.Thread(target=self._write, args=(self.proc.stdin,), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _write(self, stdin: IO[bytes]) -> None:
        try:
            with stdin:
                while (task := self.tasks.get()) is not None:
                    pickle.dump(task, stdin, protocol=5)
                    stdin.flush()
                    del task
        except OSError:  # it died: its output ends, and the caller reads its chunks
            pass

    def _read(self, stdout: IO[bytes]) -> None:
        with stdout:
            while True:
                try:
                    self.results.put(pickle.load(stdout))
                except Exception:  # the end of its output (it stopped or died), or garbage
                    self.results.put(_GONE)
                    return

    def send(self, raws: list[msgspec.Raw], limits: Limits) -> None:
        self.waiting += 1
        if self.proc is not None:
            self.tasks.put((b"[" + b",".join(raws) + b"]", np.fromiter(map(len, raws), np.int64, len(raws)), limits))

    def ready(self) -> bool:
        """True when :meth:`receive` would not wait."""
        return self.proc is None or not self.results.empty()

    def receive(self) -> _Scanned | None:
        """The oldest chunk's result; None when it is to be read by the caller."""
        self.waiting -= 1
        try:
            got = None if self.proc is None else self.results.get(timeout=_RESULT_TIMEOUT_S)
        except queue.Empty:  # stuck: killed, and its chunks read here
            got = _GONE
            if self.proc is not None:
                self.proc.kill()
        if got is _GONE:
            self.close()
        return got if isinstance(got, _Scanned) else None

    def close(self) -> None:
        """Stop the process: at once when results are still to come (the caller stopped early,
        or it failed), else once it has read the end of its input."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self.waiting:
            proc.kill()
        self.tasks.put(None)  # the writer closes its input
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for thread in self.threads:  # both meet the end of pipes whose other end has gone
            thread.join()


def _widen(pipe: IO[bytes] | None) -> None:
    """Make a pipe hold 1 MiB (Linux; elsewhere, or past the system's limit, it stays as it is).

    A reader takes at most what the pipe holds per call and needs the GIL back after each one;
    when its process's other thread is busy, that is up to a switch interval (5 ms) per 64 KiB
    of an 11 MB chunk.
    """
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
    except (AttributeError, OSError):
        pass


def _serve() -> None:
    """A worker's main: read (joined, lens, limits) tasks from stdin until it closes; write each
    one's :func:`_scan_chunk` (or the exception it raised) to stdout, in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the caller's to handle: it stops us
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the results
    tasks: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                tasks.put(pickle.load(inp))
            except Exception:  # the end of the input (the caller closed it, or died)
                tasks.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    while (task := tasks.get()) is not None:
        try:
            result: Any = _scan_chunk(*task)
        except Exception as exc:  # the caller reads this chunk itself and meets the error there
            result = repr(exc)
        del task
        pickle.dump(result, out, protocol=5)
        out.flush()
        del result
