"""The model interface every family implements, and the base of every family's hyperparameters.

A family (one module of client_code/models, one module-level instance of a ModelFamily subclass)
is everything the client, the strategy, the schema and the report need to know about a model:

* `name`, `tasks` (a subset of TASKS), `hyperparameters` (a pydantic model: the `[model]` keys of
  the family, validated in config and again in the job, where they arrive as `--key value`);
* `build(hp, schema, seed, class_weight)`: an unfitted scikit-learn compatible estimator that
  already carries initial parameters of the right shapes, so round 0 can be evaluated;
* `parameter_shapes`, `parameter_names`, `initial_parameters`: what travels, for the server's
  update validation, the checkpoints and the first global model (the same on every party);
* `get_parameters` / `set_parameters`: the estimator <-> the list of arrays on the wire;
* `fit_round(estimator, data, config)`: one local round from the current parameters (config
  carries the round number and strategy extras such as `proximal_mu`);
* `update_from(estimator)`: what a client sends after a round (its parameters, except for a
  family that sends only what is new);
* `prior_correction`: the trained model's probabilities moved to the true class prior (King & Zeng
  2001); identity for a family without probabilities or for regression;
* `rounds_needed(hp)`: rounds after which more change nothing (None: every round helps);
* `default_rounds`, `default_balance`: the family's `[federation] rounds` and `[model] balance` when
  the config does not set them (None: the shared defaults of orchestrator/defaults.py);
* `required_strategy`: the aggregation a family needs (None: any strategy over arrays, FedAvg by
  default); `proximal`: whether fit_round honours FedProx's `proximal_mu`;
* `estimator_classes`: the (module, class) of the estimator(s) the family saves, by which a loaded
  model's family is recognised (models.family_of); `saved_globals`: every other (module, name) a
  saved estimator of the family refers to in its pickle (listed from real pickles with
  skops.io.get_untrusted_types and an unpickler's find_class), beyond the Pipeline's own
  (persist.PIPELINE_GLOBALS). Together they are the family's allow-list (orchestrator/model_file.py);
* `outputs(estimator, schema)`: the classes in the order of the estimator's probability columns;
* `describe(estimator, names, outputs, label, top)`: what `fedsage inspect` shows of the trained
  estimator (coefficients by default; layers for mlp, trees for xgboost); `shown_params`: the
  estimator parameters the default description names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

if TYPE_CHECKING:  # tabular (pandas) is imported where a data error is raised: the registry stays cheap
    from ..tabular import Dataset

TASKS = ("binary", "multiclass", "regression")
NDArrays = list[np.ndarray]


class Hyperparameters(BaseModel):
    """A family's hyperparameters: unknown keys are errors, numbers are finite and never booleans.

    A field travels to the job as `--field-name` (underscores as hyphens). A config key of one
    letter is an alias of a longer field name (logistic's `c` is `inverse_regularization`), because
    the container would pass a one-letter key as `-c`, which argparse reads as a short option.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation is not bool:
                raise ValueError("true/false is not a valid value here")
        return value

    def arguments(self) -> dict[str, Any]:
        """The values as the training job's hyperparameters: {"inverse-regularization": 1.0, ...}.

        Tuples travel as comma-separated text ("64,32"), so the container passes one plain value;
        unset (None) values do not travel: the job takes the same default.
        """
        return {
            name.replace("_", "-"): ",".join(map(str, value)) if isinstance(value, tuple | list) else value
            for name, value in self.model_dump(exclude_none=True).items()
        }

    @classmethod
    def from_arguments(cls, arguments: dict[str, str]) -> Hyperparameters:
        """Parse `--key value` pairs (as `arguments` wrote them) back; pydantic's ValidationError if one is bad."""
        return cls.model_validate({key.replace("-", "_"): value for key, value in arguments.items()})


# the elastic-net mixing each penalty trains with: scikit-learn's LogisticRegression and SGDClassifier docs
# ("l1_ratio=0 corresponds to L2 penalty, l1_ratio=1 to L1", "only used if penalty is 'elasticnet'"), and
# sklearn/linear_model/_sgd_fast.pyx.tp `_plain_sgd`, which sets l1_ratio to 0 for L2 and 1 for L1
PENALTY_L1_RATIO = {"l2": 0.0, "l1": 1.0, "none": 0.0}


def l1_ratio_of_penalty(values: Any, default_penalty: str = "l2") -> Any:
    """Hyperparameter values with `l1_ratio` set to the one their penalty trains with (a before-validator's input).

    `penalty = "elasticnet"` keeps the given l1_ratio; l2 (and none) train with 0, l1 with 1, whatever
    l1_ratio says, so the config, report.md and federation.toml show what the estimator uses
    (`fedsage inspect`). Values that are not a dict (a model instance) pass through unchanged.
    """
    if isinstance(values, dict):
        penalty = values.get("penalty", default_penalty)
        if isinstance(penalty, str) and penalty in PENALTY_L1_RATIO:
            return {**values, "l1_ratio": PENALTY_L1_RATIO[penalty]}
    return values


def n_inputs(schema: dict[str, Any]) -> int:
    """The number of model inputs the schema encodes (client_code.schema.feature_names)."""
    from ..schema import feature_names

    return len(feature_names(schema))


def task_of(schema: dict[str, Any]) -> str:
    """The schema's task: binary, multiclass or regression."""
    return schema.get("task") or ("binary" if len(schema.get("classes", [])) == 2 else "multiclass")


def check_every_class(estimator: Any, data: Dataset, classes: list[Any] | None = None) -> None:
    """Refuse training data without rows of some class (default the estimator's classes_).

    The parameters' shapes, or the trees' outputs, depend on every class being there.
    """
    present = set(np.unique(data.y).tolist())
    missing = [c for c in (classes if classes is not None else estimator.classes_.tolist()) if c not in present]
    if missing:
        from ..tabular import DataError

        raise DataError(
            f"training data has no rows of class {', '.join(map(str, missing))}; every client "
            "needs examples of every class: repartition the data (e.g. a larger Dirichlet alpha)"
        )


def sample_weights(data: Dataset, class_weight: dict[Any, float] | None) -> np.ndarray | None:
    """Per-row weights from class weights ({class: weight}), or None for unweighted rows."""
    if not class_weight:
        return None
    return np.array([class_weight[v] for v in data.y.tolist()], dtype=np.float64)


def no_proximal_term(family: str, config: dict[str, Any]) -> None:
    """Refuse FedProx's proximal_mu > 0 for a family whose local solver has no proximal term."""
    mu = float(config.get("proximal_mu", 0) or 0)
    if mu > 0:
        from ..tabular import DataError

        raise DataError(
            f"the {family} family has no proximal term (FedProx proximal_mu = {mu:g}); use the logistic family "
            "or another strategy"
        )


def intercept_offset(classes: list[Any], true_counts: dict[Any, float], trained_counts: dict[Any, float]):
    """King & Zeng's prior-correction offsets log(pi_k / pi~_k) per class, or None when a count is missing.

    King & Zeng 2001, "Logistic Regression in Rare Events Data", prior correction. For a binary
    model with one output (the second class's logit) the offset is offset[1] - offset[0].
    """
    true = np.array([float(true_counts.get(c, 0)) for c in classes])
    trained = np.array([float(trained_counts.get(c, 0)) for c in classes])
    if len(classes) < 2 or np.any(true <= 0) or np.any(trained <= 0):
        return None
    offset = np.log(true / true.sum()) - np.log(trained / trained.sum())
    return np.array([offset[1] - offset[0]]) if len(classes) == 2 else offset


class ModelFamily:
    """One model family behind the interface of the module docstring; subclasses override what differs."""

    name: ClassVar[str]
    tasks: ClassVar[frozenset[str]]
    hyperparameters: ClassVar[type[Hyperparameters]]
    required_strategy: ClassVar[str | None] = None
    proximal: ClassVar[bool] = False
    estimator_classes: ClassVar[tuple[tuple[str, str], ...]] = ()
    saved_globals: ClassVar[tuple[tuple[str, str], ...]] = ()
    shown_params: ClassVar[tuple[str, ...]] = ()
    default_rounds: ClassVar[int | None] = None
    default_balance: ClassVar[str | None] = None

    def build(
        self, hp: Hyperparameters, schema: dict[str, Any], seed: int = 0, class_weight: dict[Any, float] | None = None
    ) -> Any:
        """An unfitted estimator carrying initial parameters, ready to predict and to train a round."""
        raise NotImplementedError

    def parameter_shapes(self, hp: Hyperparameters, schema: dict[str, Any]) -> list[tuple[int, ...]]:
        """The shapes of the arrays on the wire, in order (-1: any length)."""
        raise NotImplementedError

    def parameter_names(self, hp: Hyperparameters, schema: dict[str, Any]) -> list[str]:
        """A name per array, in order (the checkpoint's keys)."""
        return [f"p{i}" for i in range(len(self.parameter_shapes(hp, schema)))]

    def initial_parameters(self, hp: Hyperparameters, schema: dict[str, Any], seed: int = 0) -> NDArrays:
        """The first global model, the same on every party: the parameters `build` starts with."""
        return self.get_parameters(self.build(hp, schema, seed))

    def get_parameters(self, estimator: Any) -> NDArrays:
        """The estimator's parameters as the arrays on the wire."""
        raise NotImplementedError

    def set_parameters(self, estimator: Any, parameters: NDArrays) -> Any:
        """Load arrays from the wire into the estimator (in place); ValueError if they do not fit it."""
        raise NotImplementedError

    def fit_round(self, estimator: Any, data: Dataset, config: dict[str, Any]) -> Any:
        """One local round on `data` from the estimator's current parameters."""
        raise NotImplementedError

    def update_from(self, estimator: Any) -> NDArrays:
        """What a client sends after a round: by default its parameters."""
        return self.get_parameters(estimator)

    def prior_correction(
        self,
        hp: Hyperparameters,
        parameters: NDArrays,
        schema: dict[str, Any],
        true_counts: dict[Any, float],
        trained_counts: dict[Any, float],
    ) -> NDArrays:
        """Parameters whose probabilities refer to the true class prior; by default unchanged."""
        return [np.array(p, copy=True) for p in parameters]

    def rounds_needed(self, hp: Hyperparameters) -> int | None:
        """Rounds after which further rounds change nothing (None: every round trains)."""
        return None

    def check_task(self, schema: dict[str, Any]) -> None:
        """DataError when this family cannot learn the schema's task (one line naming both)."""
        task = task_of(schema)
        if task not in self.tasks:
            from ..tabular import DataError

            raise DataError(
                f"the {self.name} model family does not learn {task} labels ({schema.get('label')!r}); "
                f"choose a family for {task} tasks ([model] kind, --model) or set the task ([data] task)"
            )

    def outputs(self, estimator: Any, schema: dict[str, Any]) -> list[Any]:
        """The classes in the order of the estimator's probability columns ([] for a regressor)."""
        return estimator.classes_.tolist() if hasattr(estimator, "classes_") else []

    def describe(self, estimator: Any, names: list[str], outputs: list[Any], label: str, top: int) -> dict[str, Any]:
        """What `fedsage inspect` shows of a trained [coef, intercept] estimator (models of other shapes override it).

        `names`: one per encoded input; `outputs`: the classes ([] for regression); `label`: the
        label column. Returns {"model": {parameter: value}, "tables": {name: {"title", "rows"}}}:
        the `shown_params`, the intercept, and the `top` coefficients of largest magnitude.
        """
        params = estimator.get_params()
        rows = [label] if not outputs else [outputs[1]] if len(outputs) == 2 else outputs
        return {
            "model": {
                **{name: params.get(name) for name in self.shown_params},
                "intercept": np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64)).tolist(),
            },
            "tables": {"top_coefficients": coefficient_table(estimator.coef_, rows, names, top)},
        }


def coefficient_table(coef: Any, rows: list[Any], names: list[str], top: int) -> dict[str, Any]:
    """The `top` coefficients of largest magnitude: {"title", "rows": [{"output", "feature", "coefficient"}]}.

    `coef`: (outputs, inputs), or (inputs,) for one output; `rows` names each output (the class a
    row of coefficients raises, or the regression's label), `names` each input.
    """
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    ranked = sorted(np.ndenumerate(coef), key=lambda item: -abs(item[1]))[: max(top, 0)]
    return {
        "title": "largest coefficients (features as the schema encodes them)",
        "rows": [{"output": rows[r], "feature": names[c], "coefficient": float(v)} for (r, c), v in ranked],
    }
