"""Dependencies every inference service's routes share: the loaded model, the settings, the metrics.

Each service aliases them with its own types, e.g.
``ModelDep = Annotated[TextModel, Depends(get_model)]``, so routes stay typed while the
"model or 503" rule is written once. They are ``async def`` because FastAPI runs a plain
``def`` dependency in the thread pool: a thread hop per request for an attribute read.
"""

from typing import Annotated, Any

from fastapi import Depends, Request

from shared.errors import MODEL_NOT_LOADED, ModelNotReady
from shared.observability import Metrics
from shared.service import redact_paths


def loaded_model(request: Request) -> Any:
    """The loaded model, or 503 with the reason it is not there (plain function: for other dependencies)."""
    state = request.app.state
    model = getattr(state, "model", None)
    if model is None:
        title = getattr(state, "model_title", "The")
        raise ModelNotReady(MODEL_NOT_LOADED.format(model=title, reason=redact_paths(str(state.not_ready_reason))))
    return model


async def get_model(request: Request) -> Any:
    """The loaded model, or 503 with the reason it is not there."""
    return loaded_model(request)


async def get_settings(request: Request) -> Any:
    """The settings the app was built with (``create_service_app`` stores them)."""
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    """The app's Prometheus collectors (for :func:`shared.service.run_inference`)."""
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]
