"""[tracking]: where runs are logged for experiment tracking (MLflow; optional, see orchestrator/tracking.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from orchestrator.config.base import _Section


class TrackingSettings(_Section):
    """[tracking]: log every run to MLflow (needs `pip install 'fedsage[mlflow]'`)."""

    mlflow_uri: Annotated[
        str | None,
        Field(
            min_length=1,
            description="an MLflow tracking URI: http(s)://host:5000, databricks, file:///path/mlruns or sqlite:///mlflow.db",
        ),
    ] = None
    experiment: Annotated[
        str | None, Field(min_length=1, description="the MLflow experiment; default the [federation] name")
    ] = None
