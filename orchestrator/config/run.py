"""[federation]: how the federation runs ([model], what every client trains, is in model.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from orchestrator import defaults
from orchestrator.config.base import PREFIX_PATTERN, _Section
from orchestrator.config.strategy import STRATEGIES


class RunSettings(_Section):
    """[federation]: how the federation runs."""

    name: Annotated[
        str,
        Field(
            pattern=PREFIX_PATTERN,
            max_length=16,
            description=(
                "job name prefix: up to 16 lowercase letters, digits and single hyphens (SageMaker lowercases "
                "training job ARNs, so the kickoff role's name condition only matches a lowercase prefix)"
            ),
        ),
    ] = "fedsage"
    rounds: Annotated[
        int, Field(ge=1, description="number of federated rounds, at least 1 (default: the model kind's, else 5)")
    ] = defaults.ROUNDS
    min_clients: Annotated[
        int | None,
        Field(ge=1, description="clients that must take part in every round; leave unset to require all"),
    ] = None
    join_timeout: Annotated[
        float, Field(gt=0, description="seconds every client has to join, from the last job's start")
    ] = defaults.JOIN_TIMEOUT
    round_timeout: Annotated[float, Field(gt=0, description="seconds a client may take for one round")] = (
        defaults.ROUND_TIMEOUT
    )
    # numpy's RandomState, which scikit-learn's random_state uses, takes seeds from 0 to 2**32 - 1
    seed: Annotated[
        int, Field(ge=0, le=2**32 - 1, description="seed for data preparation and model initialisation, 0 to 2**32-1")
    ] = defaults.SEED
    strategy: Annotated[
        Literal[STRATEGIES],
        Field(
            description=f"aggregation strategy, one of {', '.join(STRATEGIES)} (fedxgb_bagging: for model kind "
            "xgboost, its default); its parameters go in [strategy]"
        ),
    ] = "fedavg"
    update_norm_factor: Annotated[
        float,
        Field(
            ge=0,
            description="reject an update whose distance from the global model is more than this many times the "
            "median of the other clients' (0 turns the check off; otherwise at least 2)",
        ),
    ] = defaults.UPDATE_NORM_FACTOR

    @field_validator("update_norm_factor")
    @classmethod
    def _a_useful_factor(cls, value: float) -> float:
        if 0 < value < 2:
            raise ValueError("below 2 it would reject honest clients (half of all updates lie above the median)")
        return value
