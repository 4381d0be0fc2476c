"""`fedsage data profile` and `fedsage data merge`: the statistics phase by hand (orchestrator/data/profile.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator import defaults
from orchestrator.cli.common import console, items
from orchestrator.errors import BadInput

PROFILE_EPILOG = (
    "Examples:\n\n"
    "  fedsage data profile --input claims.csv --label potential_fraud --owner hospital-a "
    '--salt "$SHARED_SALT" --out hospital-a.profile.json\n\n'
    '  fedsage data profile --input claims.csv --owner hospital-a --salt "$SHARED_SALT" '
    "--reveal request.json --out hospital-a.names.json"
)
MERGE_EPILOG = (
    "Examples:\n\n"
    "  fedsage data merge --profiles hospital-a.profile.json --profiles hospital-b.profile.json --out schema.json\n\n"
    "  fedsage data merge --profiles a.profile.json --profiles b.profile.json --names a.names.json --out schema.json"
)


def _write_new(path: Path, document: dict) -> None:
    from orchestrator.run.folder import write_json

    if path.exists():
        raise BadInput(f"{path} already exists; choose another --out")
    if not path.parent.is_dir():
        raise BadInput(f"folder {path.parent} does not exist; create it first")
    write_json(path, document)


def profile_command(
    input_: Annotated[Path, typer.Option("--input", help="Your own CSV file (or folder of CSV files).")],
    owner: Annotated[str, typer.Option(help="Your name in the federation (the client name).")],
    salt: Annotated[str, typer.Option(help="The secret the data owners agreed on (never give it to the server).")],
    out: Annotated[Path, typer.Option(help="JSON file to write (must not exist).")],
    label: Annotated[str | None, typer.Option(help="The label column (not needed with --reveal).")] = None,
    categorical: Annotated[
        list[str] | None, typer.Option(help="Column(s) to treat as categorical even if they hold numbers.")
    ] = None,
    drop: Annotated[list[str] | None, typer.Option(help="Column(s) to leave out.")] = None,
    min_level_count: Annotated[
        int, typer.Option(help="k: name only the levels you hold at least this often.", min=1)
    ] = defaults.MIN_LEVEL_COUNT,
    reveal: Annotated[
        Path | None, typer.Option(help="A reveal request from `fedsage data merge`: name the levels it asks for.")
    ] = None,
) -> None:
    """Compute your file's aggregate statistics for the federation's schema; nothing else leaves your account.

    The profile holds counts, means, sums of squares, min/max of numeric columns and the counts of
    text values under keyed hashes (HMAC-SHA256 with the owners' shared salt); values are named only
    when you hold them at least k times, or when a reveal request asks for a level that the
    federation holds at least k times (see docs/data.md).
    """
    from orchestrator.cli.data import _read
    from orchestrator.data.profile import REQUEST_KIND, answer_reveal, make_profile, read_document

    frame = _read(input_)
    if reveal is not None:
        document = answer_reveal(frame, owner, salt, read_document(reveal, REQUEST_KIND))
        _write_new(out, document)
        named = sum(len(v) for v in document["names"].values())
        console.print(f"[green]✓[/] named {named} level(s) asked of {owner}; written to [bold]{out}[/]")
        return
    if label is None:
        raise BadInput("--label is needed to profile a file (the column to predict)")
    document = make_profile(frame, owner, label, salt, min_level_count, items(categorical), items(drop))
    _write_new(out, document)
    stats = document["statistics"]
    console.print(
        f"[green]✓[/] profile of {stats['rows']:,} rows, {len(stats['columns'])} columns; written to [bold]{out}[/]"
    )
    console.print(f"  send {out} to the federation's operator: it holds counts and keyed hashes, no rows")


def merge_command(
    profiles: Annotated[list[Path], typer.Option(help="Every owner's profile (repeat the option).")],
    out: Annotated[Path, typer.Option(help="schema.json to write (must not exist).")],
    names: Annotated[
        list[Path] | None, typer.Option(help="Answers to a reveal request (`data profile --reveal`).")
    ] = None,
    categorical: Annotated[list[str] | None, typer.Option(help="Column(s) the owners declared categorical.")] = None,
    min_level_count: Annotated[
        int, typer.Option(help="k: a level seen fewer times over the federation folds into 'other'.", min=1)
    ] = defaults.MIN_LEVEL_COUNT,
    max_levels: Annotated[
        int, typer.Option(help="Most distinct values a text column may have to be categorical.", min=1)
    ] = defaults.MAX_LEVELS,
    positive_class: Annotated[str | None, typer.Option(help="The class binary metrics score.")] = None,
) -> None:
    """Merge the owners' profiles into the federation's schema, as the statistics phase does.

    If some kept level is named by no profile, writes a reveal request beside --out instead and
    names the owners who must answer it with `fedsage data profile --reveal`.
    """
    from orchestrator.data.profile import merge_profiles

    schema, request, inferred = merge_profiles(
        list(profiles), list(names or []), min_level_count, max_levels, items(categorical), positive_class
    )
    if inferred:
        console.print(f"  inferred categorical (text with few values): {', '.join(inferred)}")
    if request is not None:
        path = out.with_name(out.stem + ".reveal-request.json")
        _write_new(path, request)
        owners = ", ".join(sorted(request["owners"]))
        console.print(
            f"[yellow]some kept levels are not named yet[/]: written [bold]{path}[/]; ask {owners} to run "
            f"`fedsage data profile --reveal {path.name} ...` and merge again with --names"
        )
        return
    _write_new(out, schema)
    console.print(
        f"[green]✓[/] schema of {len(schema['features'])} features, classes {schema['classes']}, positive class "
        f"{schema.get('positive_class')}; written to [bold]{out}[/]"
    )
