"""`fedsage data`: prepare a data set for a federation, generate the built-in one, upload it.

Only Typer is imported at module level: pandas, scikit-learn and boto3 load inside the commands,
so `fedsage --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator import defaults
from orchestrator.cli.common import config_option, console, items
from orchestrator.errors import BadInput

data_app = typer.Typer(
    name="data",
    help="Prepare tabular data for a federation, generate the built-in data set, upload client folders to S3.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


PREPARE_EXAMPLES = (
    "Examples:\n\n"
    "  fedsage data prepare --out prepared/                       # built-in synthetic-fraud, 3 clients, iid\n\n"
    "  fedsage data prepare --input claims.csv --label potential_fraud --categorical region "
    "--partition column:region --out prepared/\n\n"
    "  fedsage data prepare --dataset breast-cancer --clients 10 --partition dirichlet:0.3 --out bc/\n\n"
    "  fedsage data prepare --input digits.csv --label target --classes 1,2,3/4,5,6/7,8,9,0 "
    "--other-fraction 0.05 --out digits/\n\n"
    "  fedsage data prepare --schema shared.json --input own.csv --out mine/   # one owner, own file\n\n"
    "Partitions: iid | dirichlet:ALPHA (label skew) | quantity:ALPHA (size skew) | column:NAME "
    "(one client per value) | --classes LISTS (see docs/data.md)."
)


@data_app.command("prepare", epilog=PREPARE_EXAMPLES)
def prepare_command(
    out: Annotated[Path, typer.Option(help="New folder to write (schema.json, test.csv, clients/<name>/...).")],
    input_: Annotated[
        Path | None, typer.Option("--input", help="A CSV file (or a folder of CSV files with the same columns).")
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option(help="A shared schema.json: prepare one owner's own --input alone (train/validation only)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="A built-in data set instead of --input: synthetic-fraud, breast-cancer or diabetes."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="The label column (built-in data sets know theirs).")] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="binary, multiclass or regression (default: inferred; a number with more than 20 distinct values, "
            "or any fraction, is a regression label)."
        ),
    ] = None,
    clients: Annotated[
        int | None,
        typer.Option(help="Number of clients (default 3; column: and --classes partitions decide it).", min=1),
    ] = None,
    names: Annotated[
        str | None, typer.Option(help="Client names, comma-separated, e.g. the names in federation.toml.")
    ] = None,
    partition: Annotated[str, typer.Option(help="iid, dirichlet:ALPHA, quantity:ALPHA or column:NAME.")] = "iid",
    classes: Annotated[
        str | None,
        typer.Option(help="Explicit class lists, one per client separated by '/', e.g. 1,2,3/4,5,6/7,8,9,0."),
    ] = None,
    selected_fraction: Annotated[
        float | None, typer.Option(help="With --classes: share of its classes' rows a client keeps (default 1.0).")
    ] = None,
    other_fraction: Annotated[
        float | None,
        typer.Option(help="With --classes: share of every other class's rows each client gets (default 0)."),
    ] = None,
    min_class_rows: Annotated[
        int, typer.Option(help="Fewest rows of every class each client must get (see docs/data.md).", min=1)
    ] = 5,
    test_size: Annotated[float, typer.Option(help="Share of rows held out as the server's test set.")] = 0.2,
    validation_size: Annotated[float, typer.Option(help="Share of each client's rows kept for validation.")] = 0.2,
    positive_class: Annotated[
        str | None, typer.Option(help="The class binary metrics score (default: the minority class).")
    ] = None,
    min_level_count: Annotated[
        int, typer.Option(help="k: a categorical level seen fewer times folds into 'other'.", min=1)
    ] = defaults.MIN_LEVEL_COUNT,
    max_levels: Annotated[
        int, typer.Option(help="Most distinct values a text column may have to be inferred categorical.", min=1)
    ] = defaults.MAX_LEVELS,
    categorical: Annotated[
        list[str] | None,
        typer.Option(help="Column(s) to one-hot encode even if they hold numbers (text columns are inferred)."),
    ] = None,
    drop: Annotated[list[str] | None, typer.Option(help="Column(s) to leave out (repeat, or comma-separate).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for generation, splitting, partitioning and SMOTE.")] = 42,
) -> None:
    """Split a data set the way separate accounts hold it, and prepare every part the same way.

    Holds out the server's test set first (stratified), partitions the rest over the clients,
    splits each client's rows into train and validation, and computes one feature schema with the
    statistics phase's code (text columns with few values are inferred categorical). Nothing is
    resampled: class balancing happens in each training job. With --schema, one owner prepares its
    own file alone: checked against the shared schema, split into train and validation, nothing pooled.
    """
    from client_code.schema import feature_names
    from orchestrator.cli.progress import data_table
    from orchestrator.data.prepare import PrepareOptions, prepare

    if schema is not None:
        _prepare_own(schema, input_, out, validation_size, seed)
        return
    if classes is not None and partition != "iid":
        raise BadInput(f"--classes and --partition {partition} are two partitions; give one of them")
    if classes is None and (selected_fraction is not None or other_fraction is not None):
        raise BadInput("--selected-fraction and --other-fraction only apply with --classes")
    with console.status("reading the data", spinner="dots"):
        frame, source, spec = _load_input(input_, dataset, label, seed)
    options = PrepareOptions(
        label=spec[0],
        clients=clients,
        test_size=test_size,
        validation_size=validation_size,
        seed=seed,
        categorical=tuple(dict.fromkeys((*spec[1], *items(categorical)))),
        drop=items(drop),
        client_names=items([names] if names else []),
        partition=f"classes:{classes}" if classes is not None else partition,
        selected_fraction=1.0 if selected_fraction is None else selected_fraction,
        other_fraction=0.0 if other_fraction is None else other_fraction,
        min_class_rows=min_class_rows,
        positive_class=positive_class,
        min_level_count=min_level_count,
        max_levels=max_levels,
        task=_task(task) or spec[2],
    )
    with console.status("preparing", spinner="dots") as status:
        summary = prepare(frame, options, out, source=source, progress=status.update)
    console.print(data_table(summary, f"{source}: label {summary.label}, partition {summary.partition}"))
    clients_made = len({p.name for p in summary.parts if p.split == "train"})
    inputs = len(feature_names(summary.schema))
    if summary.inferred:
        console.print(f"  inferred categorical (text with few values): {', '.join(summary.inferred)}")
    if options.task is None:
        console.print(f"  task: {summary.task}, inferred from the label (--task to override)")
    positive = summary.schema.get("positive_class")
    console.print(
        f"[green]✓[/] {clients_made} clients; schema: {summary.features} feature columns, {inputs} model inputs"
        + (f"; positive class {positive}" if positive is not None else "")
        + f"; written to [bold]{out}[/]"
    )
    for warning in summary.warnings:
        console.print(f"[yellow]warning: {warning}[/]")
    console.print(f"  run it locally:  fedsage local --data-dir {out}")
    console.print(f"  or upload it:    fedsage data upload --dir {out} -c federation.toml")


def _task(task: str | None) -> str | None:
    """--task, checked against the tasks there are (BadInput naming them)."""
    from client_code.models import TASKS

    if task is not None and task not in TASKS:
        raise BadInput(f"--task {task!r} is not a task; choose one of {', '.join(TASKS)}")
    return task


def _prepare_own(schema_path: Path, input_: Path | None, out: Path, validation_size: float, seed: int) -> None:
    """`data prepare --schema`: one owner's own file, checked against the shared schema and split, nothing pooled."""
    from client_code.schema import load_schema
    from client_code.tabular import DataError
    from orchestrator.data.own import prepare_own

    if input_ is None:
        raise BadInput("--schema prepares one owner's own file: give it with --input")
    try:
        shared = load_schema(schema_path)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    frame = _read(input_)
    parts = prepare_own(frame, shared, out, validation_size, seed)
    for part in parts:
        counts = ", ".join(f"class {c}: {n:,}" for c, n in part.class_counts.items())
        console.print(f"  {part.split:<10} {part.rows:>8,} rows ({counts})")
    console.print(f"[green]✓[/] {input_} checked against {schema_path} and split into [bold]{out}[/]")
    console.print(f"  upload {out}/train/ (and validation/) to your client's train_uri (and validation_uri)")


def _read(input_: Path):
    """A CSV file or folder as text cells (client_code.tabular.read_channel); BadInput if unreadable."""
    from client_code.tabular import DataError, read_channel

    if not input_.exists():
        raise BadInput(f"input {input_} does not exist; give a CSV file with a header row")
    try:
        return read_channel(input_)[0]
    except DataError as exc:
        raise BadInput(str(exc)) from None


def _load_input(input_: Path | None, dataset: str | None, label: str | None, seed: int):
    """The frame to prepare, where it came from, and (label, categorical columns, task or None) it implies."""
    from orchestrator.data import datasets

    if input_ is not None and dataset is not None:
        raise BadInput("give either --input or --dataset, not both")
    if input_ is None:
        builtin = datasets.get(dataset or datasets.DEFAULT)
        if label is not None and label != builtin.label:
            raise BadInput(f"data set {builtin.name!r} has the label {builtin.label!r}; drop --label {label}")
        return builtin.load(seed), f"built-in:{builtin.name}", (builtin.label, builtin.categorical, builtin.task)
    if label is None:
        raise BadInput("--input needs --label, the column to predict")
    return _read(input_), str(input_), (label, (), None)


@data_app.command(
    "synth",
    epilog="Examples:\n\n  fedsage data synth --out claims.csv\n\n"
    "  fedsage data synth --rows 200000 --fraud-rate 0.05 --seed 7 --out claims.csv",
)
def synth_command(
    out: Annotated[Path, typer.Option(help="CSV file to write (must not exist).")],
    rows: Annotated[int, typer.Option(help="Number of providers (rows).", min=1)] = 75_000,
    fraud_rate: Annotated[float, typer.Option(help="Share of fraudulent providers, between 0 and 1.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Same seed, same rows.")] = 42,
) -> None:
    """Generate the built-in fraud-like data set: one row of claim aggregates per healthcare provider.

    The generative story (which columns carry signal, and how much) is in docs/data.md.
    """
    from orchestrator.data import synth

    if not 0 < fraud_rate < 1:
        raise BadInput(f"--fraud-rate must be between 0 and 1 (exclusive), got {fraud_rate}")
    if out.exists():
        raise BadInput(f"{out} already exists; choose another --out or remove it")
    if not out.parent.is_dir():
        raise BadInput(f"folder {out.parent} does not exist; create it first")
    with console.status(f"generating {rows:,} providers", spinner="dots"):
        frame = synth.generate_fraud(rows=rows, fraud_rate=fraud_rate, seed=seed)
        partial = out.with_name(f".{out.name}.partial")
        try:
            frame.to_csv(partial, index=False)
            partial.rename(out)
        finally:
            partial.unlink(missing_ok=True)
    console.print(
        f"[green]✓[/] {len(frame):,} providers, {frame[synth.LABEL].mean():.1%} fraudulent "
        f"(label {synth.LABEL}), {frame.shape[1] - 1} feature columns; written to [bold]{out}[/]"
    )
    console.print(f"  prepare it:  fedsage data prepare --input {out} --label {synth.LABEL} --out prepared/")


@data_app.command(
    "upload",
    epilog="Examples:\n\n  fedsage data upload --dir prepared/ -c federation.toml --dry-run\n\n"
    "  fedsage data upload --dir prepared/ -c federation.toml --client hospital-a   # one data owner",
)
def upload_command(
    dir_: Annotated[Path, typer.Option("--dir", help="Prepared-data folder (from `fedsage data prepare`).")],
    config_path: Annotated[Path, config_option("naming the clients, their S3 URIs and profiles")],
    client: Annotated[
        list[str] | None, typer.Option(help="Upload only these clients (repeat); default: every client.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Check everything and list what would go where; upload nothing.")] = (
        False
    ),
) -> None:
    """Upload each client's train/validation folders to that client's S3 URIs, with the data owner's profile.

    Clients in the config are matched to DIR/clients/<name>/ by name. Every client's profile,
    account, bucket and prefixes are checked before the first file is uploaded.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from orchestrator import config
    from orchestrator.aws.sessions import data_owner_session
    from orchestrator.data import upload

    federation = config.load(config_path)
    plans = upload.plan_upload(dir_, federation, items(client))
    if dry_run:
        for plan in plans:
            for item in plan.files:
                console.print(f"  {item.client:<16} {item.path} -> {item.target.uri}")
        console.print(f"[green]✓[/] dry run: {sum(len(p.files) for p in plans)} files checked; nothing uploaded")
        return
    with console.status("checking each data owner's credentials and buckets", spinner="dots"):
        s3_clients = upload.open_sessions(plans, data_owner_session)
    total = sum(plan.size for plan in plans)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("uploading", total=total)

        def on_file(item: upload.UploadFile):
            progress.update(task, description=f"{item.client} {item.channel}/{item.path.name}")
            return lambda sent: progress.advance(task, sent)

        done = upload.upload(plans, s3_clients, on_file)
    for plan in plans:
        for channel, location in plan.prefixes.items():
            count = sum(1 for f in done if f.client == plan.client.name and f.channel == channel)
            console.print(f"  {plan.client.name:<16} {channel:<10} {count} file(s) -> {location.uri}")
    console.print(f"[green]✓[/] uploaded {len(done)} files for {len(plans)} client(s), each with its own credentials")
