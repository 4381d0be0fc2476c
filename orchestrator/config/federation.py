"""The whole federation.toml: run settings, model, container, server and clients, checked together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import Field, model_validator

from orchestrator import defaults
from orchestrator.config.base import _NOT_READY, Purpose, _Section
from orchestrator.config.clients import ClientSettings
from orchestrator.config.data import DataSettings
from orchestrator.config.local import LocalSettings
from orchestrator.config.model import ModelSettings, default_model, default_rounds
from orchestrator.config.run import RunSettings
from orchestrator.config.server import ContainerSettings, ServerSettings
from orchestrator.config.strategy import PrivacySettings, check, strategy_parameters
from orchestrator.config.tracking import TrackingSettings
from orchestrator.errors import BadInput


class Federation(_Section):
    """A whole federation: run settings, model, server and clients."""

    federation: RunSettings = RunSettings()
    strategy: Annotated[
        dict[str, Any], Field(description="the parameters of [federation] strategy, by Flower's names")
    ] = {}
    privacy: PrivacySettings = PrivacySettings()
    model: ModelSettings = Field(default_factory=default_model)
    data: DataSettings = DataSettings()
    container: ContainerSettings = ContainerSettings()
    local: LocalSettings = LocalSettings()
    server: ServerSettings
    clients: Annotated[list[ClientSettings], Field(min_length=1, description="at least one [[clients]] table")]
    tracking: TrackingSettings = TrackingSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Federation:
        if len(self.clients) < defaults.MIN_CLIENTS:
            raise ValueError(
                defaults.too_few_clients(f"{len(self.clients)} [[clients]] table", "add a [[clients]] table")
            )
        names = [c.name for c in self.clients]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"client name {duplicates[0]!r} is used twice; give every client its own name")
        same_name = _shared(self.clients, lambda c: c.name.lower())
        if same_name:
            raise ValueError(
                f"clients {same_name[0]!r} and {same_name[1]!r} differ only in case; SageMaker lowercases job ARNs "
                "and a case-insensitive disk merges their folders: rename one"
            )
        same_account = _shared(self.clients, lambda c: c.account_id)
        if same_account:
            raise ValueError(
                f"clients {same_account[0]!r} and {same_account[1]!r} are in the same account; each client is one "
                "data owner's account, with its own kickoff role, bucket and network"
            )
        server_account = next((c.name for c in self.clients if c.account_id == self.server.account_id), None)
        if self.server.account_id and server_account:
            raise ValueError(
                f"server.account_id {self.server.account_id} is also the account of client {server_account!r}; "
                "the server runs in its own account, apart from every data owner's"
            )
        _check_model(self.model, self.data.task)
        _check_strategy(self.model, self.federation, self.privacy)
        if "rounds" not in self.federation.model_fields_set:  # the kind's default (the resolved file shows it)
            self.federation.rounds = default_rounds(self.model.family.name)
        if self.federation.min_clients and self.federation.min_clients > len(self.clients):
            raise ValueError(
                f"federation.min_clients = {self.federation.min_clients} is more than the "
                f"{len(self.clients)} clients configured; lower it or add clients"
            )
        run = self.federation
        check(run.strategy, self.strategy_parameters(), self.privacy, len(self.clients), run.min_clients)
        return self

    def strategy_parameters(self) -> _Section:
        """The [strategy] table as the typed parameters of [federation] strategy (ValueError if it does not fit)."""
        return strategy_parameters(self.federation.strategy, self.strategy)

    def require_ready(self, purpose: Purpose, also: list[str] | None = None) -> None:
        """Raise BadInput listing every key `fedsage launch` or `fedsage infra` needs that the config lacks.

        `also`: further problems of the caller's own (infra: the templates' constraints), in the same line.
        """
        problems = [f"server: set {', '.join(missing)}"] if (missing := self.server.missing_for(purpose)) else []
        problems += [
            f"clients[{i}] ({client.name}): set {', '.join(missing)}"
            for i, client in enumerate(self.clients)
            if (missing := client.missing_for(purpose))
        ]
        problems += also or []
        if problems:
            command, hint = _NOT_READY[purpose]
            raise BadInput(f"federation.toml is not ready for {command}: " + "; ".join(problems) + hint)

    def require_launchable(self) -> None:
        """Raise BadInput listing every key `fedsage launch` needs that the config lacks."""
        self.require_ready("launch")

    def check_task(self, schema: dict[str, Any]) -> None:
        """BadInput when [model] cannot train on the schema's task (the kind's tasks, balancing a regression label).

        Also when [data] label (--label) names another column than the schema's label: the schema
        decides what is learned, so a different label would be silently ignored.
        """
        label = self.data.label
        if label and schema.get("label") and label != schema["label"]:
            raise BadInput(
                f"[data] label (--label) is {label!r} but the feature schema's label is {schema['label']!r}; drop "
                f"it, or prepare the data again with --label {label}"
            )
        try:
            _check_model(self.model, schema.get("task"), "the schema's task")
        except ValueError as exc:
            raise BadInput(str(exc)) from None

    def min_clients(self) -> int:
        """Clients every round needs: the configured minimum, or all of them."""
        return self.federation.min_clients or len(self.clients)

    def to_toml(self, folder: Path | None = None) -> str:
        """The resolved configuration as TOML (defaults filled in), to be saved in `folder`.

        Every file path (test set, schema, TLS files) is written relative to `folder` when it lies
        inside it and absolute otherwise, so `config.load` (which resolves relative paths against the
        file's folder) finds the same files wherever the saved file is read from; file:// channel
        URIs are absolute already. Without `folder`, paths are written as they are.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["strategy"] = self.strategy_parameters().model_dump()  # every parameter, defaults filled in
        if not data["strategy"]:
            data.pop("strategy")
        if not data.get("tracking"):  # no [tracking] table for a run that is not tracked
            data.pop("tracking", None)
        if folder is not None:
            server = data["server"]
            for key in ("test_data", "schema"):
                if key in server:
                    server[key] = _saved_path(server[key], folder)
            for key, value in server.get("tls", {}).items():
                server["tls"][key] = _saved_path(value, folder)
        return tomli_w.dumps(data)


def _saved_path(value: str, folder: Path) -> str:
    """`value` relative to `folder` when inside it (POSIX separators), else absolute."""
    path, base = Path(value).resolve(), Path(folder).resolve()
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)


def _check_model(model: ModelSettings, task: str | None, source: str = "data.task") -> None:
    """The model family against a task (declared, or the schema's), and balancing against a regression label.

    Raises ValueError naming the keys and the fix.
    """
    family = model.family
    if task is not None and task not in family.tasks:
        raise ValueError(
            f'model.kind = "{family.name}" learns {", ".join(sorted(family.tasks))} labels, but {source} = '
            f'"{task}"; choose another kind or task'
        )
    if task == "regression" and "balance" in model.model_fields_set and model.balance != "none":
        raise ValueError(
            f'model.balance = "{model.balance}" balances classes, and a regression label has none; remove it '
            'or set balance = "none"'
        )


def _check_strategy(model: ModelSettings, run: RunSettings, privacy: PrivacySettings) -> None:
    """A family that needs its own aggregation gets it by default; any other strategy for it is refused.

    FedProx needs a family whose local solver has the proximal term; differential privacy clips
    and noises weight updates, which a family with its own aggregation (trees) does not send.
    Raises ValueError naming the keys and the fix.
    """
    required = model.family.required_strategy
    if required is not None and "strategy" not in run.model_fields_set:
        run.strategy = required  # the default for this kind (the resolved federation.toml shows it)
    elif required is not None and run.strategy != required:
        raise ValueError(
            f'model.kind = "{model.family.name}" is aggregated by federation.strategy = "{required}", not '
            f'"{run.strategy}"; remove federation.strategy or set it to "{required}"'
        )
    elif required is None and run.strategy == "fedxgb_bagging":
        raise ValueError(
            f'federation.strategy = "fedxgb_bagging" aggregates boosted trees; model.kind = "{model.family.name}" '
            'needs an array strategy such as "fedavg"'
        )
    if run.strategy == "fedprox" and not model.family.proximal:
        raise ValueError(
            f'federation.strategy = "fedprox" adds a proximal term to the local objective; model.kind = '
            f'"{model.family.name}" has none: use model.kind = "logistic" or another strategy'
        )
    if privacy.enabled and required is not None:
        raise ValueError(
            f'privacy.mode = "{privacy.mode}" clips and noises weight updates; model.kind = "{model.family.name}" '
            "sends trees: remove [privacy] or choose an array model kind"
        )


def _shared(clients: list[ClientSettings], key: Callable[[ClientSettings], str | None]) -> tuple[str, str] | None:
    """The names of the first two clients with the same (set) `key`, or None."""
    seen: dict[str, str] = {}
    for client in clients:
        value = key(client)
        if value is not None and value in seen:
            return seen[value], client.name
        if value is not None:
            seen[value] = client.name
    return None
