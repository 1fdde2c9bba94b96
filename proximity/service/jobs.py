"""Long-running requests as jobs: ``202`` with a job id now, ``GET /v1/jobs/{id}`` for progress.

A job runs in a worker thread of this process and its status lives in this process' memory:
ask the process that answered the ``202`` (behind a load balancer, route by the ``Location``
returned, or use the synchronous form of the request). A restart forgets the jobs (the work a
job had committed stays committed: an import is applied in one transaction at its end or not
at all). The last :data:`KEEP` finished jobs are kept.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proximity.service.errors import NotFound, describe

__all__ = ["Job", "Jobs", "KEEP"]

logger = logging.getLogger("proximity.service")

#: finished jobs kept for their status (oldest forgotten first)
KEEP = 100


@dataclass
class Job:
    """One job's status: ``queued`` -> ``running`` -> ``done`` (``result``) or ``failed`` (``error``)."""

    id: str
    kind: str
    status: str = "queued"
    records_parsed: int = 0
    total: int | None = None
    result: Any = None
    error: dict | None = None
    error_status: int | None = None
    created_ts: float = field(default_factory=time.time)
    finished_ts: float | None = None

    def progress(self, n: int) -> None:
        """Records parsed so far (called from the job's thread)."""
        self.records_parsed = n

    def to_dict(self) -> dict:
        out = {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "records_parsed": self.records_parsed,
            "total": self.total,
            "created_ts": self.created_ts,
            "finished_ts": self.finished_ts,
        }
        if self.status == "done":
            out["result"] = self.result
        if self.status == "failed":
            out["error"] = self.error
            out["error_status"] = self.error_status
        return out


class Jobs:
    """The jobs of this process (in memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def start(self, kind: str, work: Callable[[Job], Any], cleanup: Callable[[], object] | None = None) -> Job:
        """Run ``work(job)`` in a new thread; its return value is the job's result, an exception
        its error body (as the HTTP answer would have been)."""
        job = Job(uuid.uuid4().hex, kind)
        with self._lock:
            self._jobs[job.id] = job
            self._trim()

        def run():
            job.status = "running"
            try:
                job.result = work(job)
                job.status = "done"
            except Exception as exc:
                status, body, _ = describe(exc)
                if status >= 500:
                    logger.exception("job %s (%s) failed", job.id, kind)
                job.error, job.error_status, job.status = body, status, "failed"
            finally:
                job.finished_ts = time.time()
                if cleanup is not None:
                    cleanup()

        threading.Thread(target=run, name=f"job-{kind}-{job.id[:8]}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound("job", job_id)
        return job

    def _trim(self) -> None:
        done = [j.id for j in self._jobs.values() if j.status in ("done", "failed")]
        for jid in done[: max(0, len(done) - KEEP)]:
            del self._jobs[jid]
