"""SageMaker entry point (`sagemaker_program`): one client of a fedsage federation.

Runs inside the client account's training job, as the SageMaker scikit-learn container runs a
script-mode program:

* hyperparameters arrive as `--key value` arguments: the run's (server, name, certificate,
  balancing, seed), `--model KIND`, and the keys of that model family (client_code/models), each
  validated by the family's own hyperparameter model;
* the client token arrives in the environment (FEDSAGE_CLIENT_TOKEN, from the request's Environment
  map), never as an argument, because any local user can read a process's arguments;
* the training data is in `SM_CHANNEL_TRAIN` (and optionally `SM_CHANNEL_VALIDATION`), as raw CSV
  files anywhere below the channel folder; the label, the classes and the feature schema come from
  the server in the statistics phase (client.py), never from a file beside the data;
* the final global model is written to `SM_MODEL_DIR/model.joblib` (a Pipeline that scores raw
  rows), which SageMaker uploads as model.tar.gz to the job's output path in this account;
* on any error a one-line reason goes to `SM_OUTPUT_DIR/failure` (`/opt/ml/output/failure`),
  which SageMaker shows as the job's FailureReason, and the process exits non-zero
  (2 for bad hyperparameters or data, 1 for anything else).

The job exits 0 by itself once the server ends the federation.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import logging
import os
import sys
from functools import partial
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # no calls home from a data owner's account

from pydantic import ValidationError

from . import client as client_module
from . import models, transport
from .constants import BALANCES, TOKEN_ENVIRONMENT
from .metrics import peak_memory_mb
from .persist import model_pipeline, save_model
from .schema import feature_names
from .tabular import DataError, read_channel

log = logging.getLogger("fedsage.client")

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2


class BadHyperparameter(ValueError):
    """A hyperparameter that is missing or has a value the client cannot use."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting, so the failure file gets written."""

    def error(self, message: str):  # noqa: D102 - argparse API
        raise BadHyperparameter(f"bad hyperparameters: {message}")


def _positive(kind):
    def convert(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return convert


def _family_arguments(kind: str, rest: list[str]) -> models.Hyperparameters:
    """The model family's hyperparameters from the `--key value` pairs the common parser left over."""
    try:
        family = models.get(kind)
    except ValueError as exc:
        raise BadHyperparameter(f"bad hyperparameters: --model: {exc}") from None
    pairs: dict[str, str] = {}
    for index in range(0, len(rest), 2):
        key = rest[index]
        if not key.startswith("--") or index + 1 >= len(rest):
            raise BadHyperparameter(f"bad hyperparameters: expected --key value pairs, got {' '.join(rest)!r}")
        pairs[key[2:]] = rest[index + 1]
    try:
        return family.hyperparameters.from_arguments(pairs)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = "-".join(str(part) for part in problem["loc"]).replace("_", "-") or kind
        raise BadHyperparameter(f"bad hyperparameters: --{where} ({kind} model): {problem['msg']}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the hyperparameters the orchestrator put into the training job request.

    The run's own arguments are declared here; whatever remains must be the `--model` family's
    keys (`args.hyperparameters`, a models.Hyperparameters). The client token is read from the
    environment (`client_token`). Raises BadHyperparameter, also when no token is in the environment.
    """
    parser = _Parser(prog="train.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--server-address", required=True, help="HOST:PORT of the Flower server")
    parser.add_argument("--client-name", required=True, help="this client's name in the federation")
    parser.add_argument("--root-certificate", required=True, help="base64 PEM of the run's TLS root certificate")
    parser.add_argument("--model", default=models.DEFAULT, help=f"model family: {', '.join(models.FAMILIES)}")
    parser.add_argument("--balance", default="smote", choices=BALANCES, help="class balancing of the training split")
    parser.add_argument("--smote-ratio", type=_positive(float), default=1.0, help="SMOTE: minority / majority rows")
    parser.add_argument(
        "--connect-timeout", type=_positive(float), default=60.0, help="seconds of retries to reach the server"
    )
    parser.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    args.hyperparameters = _family_arguments(args.model, rest)
    args.client_token = client_token()
    try:
        args.root_certificate = base64.b64decode(args.root_certificate, validate=True)
    except (binascii.Error, ValueError):
        raise BadHyperparameter("bad hyperparameters: --root-certificate is not base64") from None
    if args.smote_ratio > 1:
        raise BadHyperparameter(f"bad hyperparameters: --smote-ratio must be in (0, 1], got {args.smote_ratio}")
    return args


def client_token() -> str:
    """Read the job's client token from its environment (TOKEN_ENVIRONMENT); BadHyperparameter if it is not set.

    The variable is removed from this process's environment once read, so that nothing this
    process starts inherits it (the kernel's copy in /proc/<pid>/environ stays, readable by this
    process's user and root only).
    """
    token = os.environ.pop(TOKEN_ENVIRONMENT, "")
    if not token:
        raise BadHyperparameter(
            f"bad hyperparameters: the job's environment has no {TOKEN_ENVIRONMENT}; start the job with fedsage"
        )
    return token


def _channel(name: str) -> Path | None:
    """The folder of an input channel, from SM_CHANNEL_<NAME>, or None if the job has none."""
    value = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    default = Path("/opt/ml/input/data") / name
    if value:
        return Path(value)
    return default if default.exists() else None


def _load_channel(name: str, folder: Path) -> client_module.Channel:
    """Read one channel's raw rows (every CSV below it); say how many files and rows.

    DataError `<name> data: <what is wrong>`, files named relative to the channel (the job sees
    only its mount; the server names where the channel comes from).
    """
    try:
        frame, info = read_channel(folder)
    except DataError as exc:
        raise DataError(f"{name} data: {str(exc).replace(f'{folder}{os.sep}', '')}") from None
    log.info("%s channel %s: read %s", name, folder, info.describe())
    return client_module.Channel(name, frame, info)


def write_failure(reason: str) -> None:
    """Record a one-line failure reason where SageMaker looks for it."""
    output = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    line = " ".join(reason.split())[:1000]
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(line + "\n")
    except OSError as exc:  # still report on stderr, which reaches CloudWatch
        log.error("could not write the failure file in %s: %s", output, exc)


def federation_client(
    args: argparse.Namespace, train_dir: Path, validation_dir: Path | None
) -> client_module.FederationClient | client_module.RefusingClient:
    """The job's Flower client over its channels' raw rows (also the simulation backend's virtual client).

    `args` from parse_args. A channel that cannot be read (tabular.read_channel) gives a
    RefusingClient: it still joins, and refuses the statistics phase with the reason, so the run
    names it as bad input rather than losing a job.
    """
    try:
        train = _load_channel("train", train_dir)
        validation = _load_channel("validation", validation_dir) if validation_dir else None
    except DataError as exc:
        log.error("%s", exc)
        return client_module.RefusingClient(str(exc))
    return client_module.FederationClient(
        train, validation, args.model, args.hyperparameters, args.balance, args.smote_ratio, args.seed
    )


def run(args: argparse.Namespace) -> Path:
    """Join the federation, train until the server ends it, save the final global model."""
    train_dir = _channel("train")
    if train_dir is None:
        raise DataError("the job has no train channel (SM_CHANNEL_TRAIN is not set)")
    client = federation_client(args, train_dir, _channel("validation"))
    join = partial(
        transport.run_client,
        client,
        server_address=args.server_address,
        token=args.client_token,
        root_certificate=args.root_certificate,
        connect_timeout=args.connect_timeout,
        has_joined=lambda: client.instructions_received > 0,
    )
    if isinstance(client, client_module.RefusingClient):  # tell the server why, if it can be reached
        with contextlib.suppress(Exception):
            join()
        raise DataError(client.refusal)  # the job's failure reason, whatever the server did: its data
    join()
    if client.rounds_trained == 0 or client.global_parameters is None:
        raise RuntimeError("the server ended the federation before this client trained a round")
    train = client.channels["train"]

    model_path = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")) / "model.joblib"
    schema = client.schema
    provenance = {
        "client_name": args.client_name,
        "rounds_trained": client.rounds_trained,
        "train_rows": train.info.rows,
        "feature_names": feature_names(schema),
        "label": schema["label"],
        "classes": schema["classes"],
        "positive_class": schema.get("positive_class"),
        "task": schema.get("task"),
        "model": {"kind": args.model, **args.hyperparameters.model_dump(mode="json")},
        "schema": schema,
    }
    save_model(model_pipeline(schema, client.global_model()), model_path, provenance, skops=False)
    log.info(
        "federation finished after %d round%s; model saved to %s; peak memory %.0f MB",
        client.rounds_trained,
        "" if client.rounds_trained == 1 else "s",
        model_path,
        peak_memory_mb(),
    )
    return model_path


def main(argv: list[str] | None = None) -> int:
    """Run the client; return the process exit code (0 ok, 1 runtime failure, 2 bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    flower = logging.getLogger("flwr")
    for handler in list(flower.handlers):  # Flower's own coloured console handler: one log format
        flower.removeHandler(handler)
    try:
        run(parse_args(argv))
    except (BadHyperparameter, DataError) as exc:
        write_failure(str(exc))
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - every failure must reach the failure file
        write_failure(f"{type(exc).__name__}: {exc}")
        log.exception("client failed")
        return EXIT_RUNTIME
    return 0


def exit_now(code: int) -> None:
    """End the process with `code` at once, after flushing the log: no interpreter or Flower teardown.

    Every file the client writes (the model, the failure reason) is closed by then, so nothing
    is lost; what is skipped is the shutdown of gRPC's threads and the finalisation of every
    imported module, which took about 0.55 s per client against 0.02 s for this exit (issue 15).
    The SageMaker container contract only needs the exit code (and the files in /opt/ml). The
    entry script (constants.ENTRY_SOURCE) ends with it.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
