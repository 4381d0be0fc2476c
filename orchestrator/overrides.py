"""`fedsage local -c FILE`: a federation.toml (a run's saved one, to repeat it) with options that override it.

A run folder's federation.toml describes the whole run: its clients' channels, the server's test
set and schema, every setting and the seed. `fedsage local -c runs/<id>/federation.toml` runs that
federation again; options given on the command line replace the file's values (the banner says
which). The clients' channels must be local (file://): the local backends read them from this
machine (backends/container.py check_local_channels). Options that choose the data (--data-dir,
--dataset, --clients) cannot be combined with -c: the file names the data.
"""

from __future__ import annotations

from typing import Any

# LocalOptions field -> (federation.toml table, key)
TARGETS: dict[str, tuple[str, str]] = {
    "rounds": ("federation", "rounds"),
    "min_clients": ("federation", "min_clients"),
    "join_timeout": ("federation", "join_timeout"),
    "round_timeout": ("federation", "round_timeout"),
    "seed": ("federation", "seed"),
    "model": ("model", "kind"),
    "max_iter": ("model", "max_iter"),
    "balance": ("model", "balance"),
    "smote_ratio": ("model", "smote_ratio"),
    "positive_class": ("data", "positive_class"),
    "label": ("data", "label"),
    "task": ("data", "task"),
    "backend": ("local", "backend"),
    "image": ("local", "image"),
    "cpus": ("local", "cpus"),
    "memory": ("local", "memory"),
    "dependency_cache": ("local", "dependency_cache"),
    "network": ("local", "network"),
    "bind_address": ("local", "bind_address"),
    "mlflow": ("tracking", "mlflow_uri"),
    "strategy": ("federation", "strategy"),
    "update_norm_factor": ("federation", "update_norm_factor"),
}
# options that replace a whole table's keys they name: --strategy-param into [strategy], --dp... into [privacy]
TABLES: dict[str, str] = {"strategy_parameters": "strategy", "privacy": "privacy"}
# options that choose the data: the config file names it
DATA_OPTIONS = ("clients", "data_dir", "dataset")


def option_name(field: str) -> str:
    """The command-line spelling of a LocalOptions field: min_clients -> --min-clients, privacy -> --dp."""
    return {"strategy_parameters": "--strategy-param", "privacy": "--dp"}.get(field, "--" + field.replace("_", "-"))


def apply(data: dict[str, Any], overrides: dict[str, Any], source: str) -> tuple[dict[str, Any], str, dict[str, str]]:
    """A federation.toml's raw tables `data` with `overrides` (LocalOptions field -> value) in place of its values.

    For config.load's `edit`: the options change the file's values before they are validated, so
    `-c FILE --seed 1` runs a file whose seed is -1. A different model kind starts its [model]
    table afresh (the old kind's keys may not apply), a different strategy its [strategy] table;
    --bind-address also moves [server] bind_address. Returns the mapping, the source to name in
    errors (`FILE with --seed`) and the config keys the options set, by the option's name, so a
    bad value names the option as typed (config.describe_errors). Raises BadInput (one line) for
    an option that chooses the data.
    """
    from orchestrator.errors import BadInput

    data_option = next((name for name in DATA_OPTIONS if name in overrides), None)
    if data_option is not None:
        raise BadInput(
            f"{option_name(data_option)} cannot be combined with -c: {source} names the clients and their data; "
            "drop the option or edit the file"
        )
    data = {table: dict(values) if isinstance(values, dict) else values for table, values in data.items()}
    kind = overrides.get("model")
    if kind is not None and kind != data.get("model", {}).get("kind"):
        data["model"] = {"kind": kind}
    if "strategy" in overrides and overrides["strategy"] != data.get("federation", {}).get("strategy"):
        data.pop("strategy", None)  # the old strategy's parameters may not apply to the new one
    options: dict[str, str] = {}
    for field, value in overrides.items():
        if field in TABLES:
            data.setdefault(TABLES[field], {}).update(value or {})
            continue
        table, key = TARGETS[field]
        data.setdefault(table, {})[key] = value
        options[f"{table}.{key}"] = option_name(field)
    if "model" in overrides:
        options["kind"] = "--model"
    if overrides.get("bind_address"):
        data.setdefault("server", {})["bind_address"] = overrides["bind_address"]
    given = ", ".join(option_name(f) for f in overrides)
    return data, f"{source} with {given}" if given else source, options
