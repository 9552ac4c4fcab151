"""``POST /api/computations/executions``: kernels and dashboards report computation runs.

The engine counts them in ``computation_executions_total{computation,status}`` and
``computation_execution_latency_seconds{computation}``; see
:mod:`workbench.analytics.reporting` for the sending side.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from workbench.metrics.engine import EngineMetrics


class ExecutionReport(BaseModel):
    """One computation run as its client saw it."""

    name: str = Field(min_length=1, max_length=200)
    seconds: float = Field(ge=0)
    status: Literal["success", "failed"]


def build_computation_router(metrics: EngineMetrics) -> APIRouter:
    """The route, counting into this engine's metrics."""
    router = APIRouter(prefix="/api/computations")

    @router.post("/executions", status_code=204, response_class=Response)
    def executed(report: ExecutionReport) -> Response:
        metrics.computation_executed(report.name, report.seconds, report.status)
        return Response(status_code=204)

    return router
