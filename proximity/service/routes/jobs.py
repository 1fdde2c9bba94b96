"""Jobs of this process: the progress and result of long requests (scope ``manage``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from proximity.service.deps import ManageKey, RuntimeDep
from proximity.service.routes._common import ERRORS, json_response
from proximity.service.schemas import JobPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERRORS)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    responses={404: {"description": "unknown job (jobs live in the memory of the process that started them)"}},
)
async def get_job(rt: RuntimeDep, _key: ManageKey, job_id: Annotated[str, Path(min_length=1, max_length=64)]):
    """A job's status (``queued``, ``running``, ``done``, ``failed``), records parsed so far, and its
    result or error body once finished."""
    return json_response(rt.jobs.get(job_id).to_dict())
