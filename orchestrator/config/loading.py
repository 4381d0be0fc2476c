"""Reading federation.toml: pydantic's errors as one line per problem (key, value, what is wrong, the fix)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.config.clients import ClientSettings
from orchestrator.config.federation import Federation
from orchestrator.config.model import SETTINGS, foreign_key
from orchestrator.config.run import RunSettings
from orchestrator.config.server import ContainerSettings, ServerSettings
from orchestrator.config.strategy import PrivacySettings
from orchestrator.config.tracking import TrackingSettings
from orchestrator.errors import BadInput


def _location(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as the TOML key a user edits: clients[2].name, model.c (no kind tag)."""
    text = ""
    for part in _untagged(loc):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def describe_errors(error: ValidationError, source: str, options: Mapping[str, str] | None = None) -> str:
    """One line per problem: the key, the bad value, what is wrong and what is expected.

    `options` maps keys to the command-line options that gave them ({"kind": "--model"}): those
    problems name the option and its value as typed (`--seed -1: ...`), not the config key.
    """
    lines = []
    options = options or {}
    for item in error.errors():
        key = _location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            lines.append(f"{source}: {key} is required")
            continue
        if item["type"] == "union_tag_invalid":  # [model] kind names no family
            where = f"{key}.kind" if item["loc"] else "kind"
            tags = item.get("ctx", {}).get("expected_tags", "")
            named = (
                f"{options['kind']} {item['ctx']['tag']}" if "kind" in options else f"{where} = {item['ctx']['tag']!r}"
            )
            lines.append(f"{source}: {named} is not a model kind; choose one of {tags}")
            continue
        if item["type"] == "extra_forbidden":
            kind = _model_kind(item["loc"])
            owners = foreign_key(kind, str(item["loc"][-1])) if kind else None
            if owners:
                lines.append(
                    f'{source}: {key} is a key of kind {owners}, not of kind "{kind}"; remove it or set kind = {owners}'
                )
            else:
                lines.append(f"{source}: unknown key {key}; remove it or check its spelling")
            continue
        if not item["loc"]:  # a check across keys: its message names the keys itself
            lines.append(f"{source}: {message}")
            continue
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) else f" = {value!r}"
        if key in options:  # as typed on the command line
            key, shown = options[key], "" if isinstance(value, dict | list) else f" {value}"
        # a whole table's own check (a model validator) says what to do; a field's description would mislead
        hint = None if isinstance(value, dict) else _field_description(item["loc"], _SECTIONS.get(error.title))
        lines.append(f"{source}: {key}{shown}: {message}" + (f" (expected {hint})" if hint else ""))
    return "; ".join(lines)


def _model_kind(loc: tuple[Any, ...]) -> str | None:
    """The model kind a location is in: its tagged-union tag ("model", "mlp", key), or None."""
    return next((str(part) for part in loc if part in SETTINGS), None)


def _untagged(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The location without the [model] union's tag (the kind), which is no key the user edits."""
    return tuple(part for part in loc if part not in SETTINGS)


def _field_description(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> str | None:
    """The description of the field at a location (from `root`, default Federation), used as the 'how to fix' hint."""
    kind = _model_kind(loc)
    model: Any = SETTINGS[kind] if kind and loc and loc[0] == kind else (root or Federation)
    description = None
    for part in _untagged(loc):
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return description
        description = info.description
        annotation = info.annotation
        if part == "model" and kind:  # the [model] union: the kind's own settings class
            model = SETTINGS[kind]
            continue
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return description


_SECTIONS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        Federation,
        RunSettings,
        ContainerSettings,
        ServerSettings,
        ClientSettings,
        TrackingSettings,
        PrivacySettings,
    )
}
T = TypeVar("T", bound=BaseModel)


def build(
    section: type[T] | Callable[..., T], source: str, *, options: Mapping[str, str] | None = None, **values: Any
) -> T:
    """Construct one config section (a class, or a builder such as model_settings) from typed values.

    Validated as a config file would be; BadInput if not, naming the command-line option of a key
    that `options` maps (see describe_errors).
    """
    try:
        return section(**values)
    except ValidationError as error:
        raise BadInput(describe_errors(error, source, options)) from None


def parse(
    data: dict[str, Any], source: str = "federation.toml", options: Mapping[str, str] | None = None
) -> Federation:
    """Validate a configuration mapping; raise BadInput describing every problem (`options`: see describe_errors)."""
    try:
        return Federation.model_validate(data)
    except ValidationError as error:
        raise BadInput(describe_errors(error, source, options)) from None


# changes a file's raw mapping before it is validated: (mapping, source) -> (mapping, source, options named)
Edit = Callable[[dict[str, Any], str], tuple[dict[str, Any], str, Mapping[str, str]]]


def load(path: Path, edit: Edit | None = None) -> Federation:
    """Read and validate a federation.toml file; relative paths are relative to the file.

    `edit` changes the file's values before they are validated (`fedsage local -c FILE --seed 1`:
    orchestrator/overrides.py), so an option can mend a bad value of the file. Raises BadInput
    (one line) for a missing, unreadable, non-UTF-8 or invalid file, or a folder.
    """
    path = Path(path)
    data, source, options = read(path), str(path), None
    if edit is not None:
        data, source, options = edit(data, source)
    federation = parse(data, source, options)
    server = federation.server
    if not server.test_data.is_absolute():
        server.test_data = path.parent / server.test_data
    if server.schema_path is not None and not server.schema_path.is_absolute():
        server.schema_path = path.parent / server.schema_path
    if server.tls is not None:
        for key in ("ca_certificate", "certificate", "private_key"):
            value = getattr(server.tls, key)
            if not value.is_absolute():
                setattr(server.tls, key, path.parent / value)
    return federation


def read(path: Path) -> dict[str, Any]:
    """A federation.toml file's tables, not validated; BadInput (one line) if it cannot be read as TOML."""
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))  # TOML is UTF-8 (toml.io, v1.0.0)
    except FileNotFoundError:
        raise BadInput(f"config file {path} not found; pass an existing federation.toml with -c") from None
    except IsADirectoryError:
        raise BadInput(f"config file {path} is a folder; pass the federation.toml file inside it with -c") from None
    except UnicodeDecodeError:
        from client_code.tabular import non_utf8  # here only: tabular imports pandas, which config never needs

        raise BadInput(f"{path} is not UTF-8 text ({non_utf8(path.read_bytes())}); save it as UTF-8") from None
    except OSError as exc:
        raise BadInput(f"cannot read config file {path} ({exc.strerror}); check the path and its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML: {exc}") from None
    return data
