"""[model]: what every client trains: the model family (`kind`), its own keys, and class balancing.

`kind` picks a family of client_code/models (logistic by default, sgd, mlp, linear); the rest of
the table is that family's hyperparameters, declared once, by the family (its pydantic model), and
validated here with the same one-line errors as every other key. A key of another family is an
error naming both ("model.hidden_layer_sizes is a key of kind "mlp", not of kind "logistic"").
`ModelSettings` is the tagged union of one settings class per family (pydantic's discriminated
union on `kind`, which defaults to logistic); `model_settings(**values)` builds one from values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, create_model

from client_code import models
from client_code.constants import BALANCES
from orchestrator import defaults
from orchestrator.config.base import _Section


class _ModelCommon(_Section):
    """The [model] keys every family shares: class balancing inside each job (classification only)."""

    balance: Annotated[
        Literal[BALANCES],
        Field(description="class balancing of each training split in its job: smote, class_weight or none"),
    ] = defaults.BALANCE
    smote_ratio: Annotated[
        float, Field(gt=0, le=1, description="SMOTE: minority rows as a share of the majority class, in (0, 1]")
    ] = defaults.SMOTE_RATIO

    @property
    def family(self) -> models.ModelFamily:
        """The model family this table configures."""
        return models.get(self.kind)  # type: ignore[attr-defined] - every concrete class has `kind`

    def hyperparameters(self) -> models.Hyperparameters:
        """The family's hyperparameters (its own pydantic model), as the training job receives them."""
        fields = self.family.hyperparameters.model_fields
        return self.family.hyperparameters.model_validate({name: getattr(self, name) for name in fields})

    def arguments(self) -> dict[str, Any]:
        """What the training job request carries for the model: {"model": kind, "<family key>": value, ...}."""
        return {"model": self.family.name, **self.hyperparameters().arguments()}


def _settings_class(family: models.ModelFamily) -> type[_ModelCommon]:
    """[model] for one family: the shared keys (balance defaults to the family's), `kind`, and the family's keys."""
    balance = _ModelCommon.model_fields["balance"]
    return create_model(  # type: ignore[call-overload]
        f"{family.name.capitalize()}ModelSettings",
        __base__=(_ModelCommon, family.hyperparameters),
        __config__=None,
        __doc__=f"[model] with kind = {family.name!r}.",
        kind=(Literal[family.name], Field(family.name, description=f"the model family: {', '.join(models.FAMILIES)}")),
        balance=(
            balance.annotation,
            Field(family.default_balance or defaults.BALANCE, description=balance.description),
        ),
    )


def default_rounds(kind: str) -> int:
    """[federation] rounds when neither the config nor --rounds sets it: the family's own, else defaults.ROUNDS.

    linear: 1 (its closed form is exact after one round); xgboost: 20 (trees are small steps).
    An unknown kind gets defaults.ROUNDS (the config refuses the kind with its own message).
    """
    family = models.FAMILIES.get(kind)
    return (family.default_rounds if family else None) or defaults.ROUNDS


def _kind(value: Any) -> str:
    """The discriminator: the table's kind, logistic when the table does not say."""
    if isinstance(value, dict):
        return str(value.get("kind", models.DEFAULT))
    return str(getattr(value, "kind", models.DEFAULT))


SETTINGS = {name: _settings_class(family) for name, family in models.FAMILIES.items()}
for _cls in SETTINGS.values():  # the families' hyperparameter models are frozen; a config section is not
    _cls.model_config["frozen"] = False
    _cls.model_rebuild(force=True)

ModelSettings = Annotated[
    Union[tuple(Annotated[cls, Tag(name)] for name, cls in SETTINGS.items())],  # noqa: UP007 - built at run time
    Discriminator(_kind),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ModelSettings)


def model_settings(**values: Any) -> _ModelCommon:
    """A [model] table from keyword values (kind defaults to logistic); pydantic's ValidationError if bad."""
    return _ADAPTER.validate_python(values)


def default_model() -> _ModelCommon:
    """The [model] table of a config that has none: logistic with every default."""
    return model_settings()


def foreign_key(kind: str, key: str) -> str | None:
    """For a key the kind does not take: the kinds that do take it, as text ("mlp"), or None."""
    owners = [
        name
        for name, family in models.FAMILIES.items()
        if name != kind
        and any(key in (field, info.alias) for field, info in family.hyperparameters.model_fields.items())
    ]
    return " or ".join(f'"{name}"' for name in owners) or None
