"""SageMaker entry point (`sagemaker_program`): one client of a fedsage federation.

Runs inside the client account's training job, as the SageMaker scikit-learn container runs a
script-mode program:

* hyperparameters arrive as `--key value` arguments;
* the training data is in `SM_CHANNEL_TRAIN` (and optionally `SM_CHANNEL_VALIDATION`), as CSV
  files, with the federation's `schema.json` beside them when the data was prepared by fedsage;
* the final global model is written to `SM_MODEL_DIR/model.joblib`, which SageMaker uploads
  as model.tar.gz to the job's output path in this account;
* on any error a one-line reason goes to `SM_OUTPUT_DIR/failure` (`/opt/ml/output/failure`),
  which SageMaker shows as the job's FailureReason, and the process exits non-zero
  (2 for bad hyperparameters or data, 1 for anything else).

The job exits 0 by itself once the server ends the federation.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # no calls home from a data owner's account

from . import client as client_module
from . import transport
from .constants import PENALTIES, SCHEMA_FILE
from .metrics import peak_memory_mb
from .model import make_model, set_initial_params
from .persist import save_model
from .schema import load_data, load_schema
from .tabular import DataError, Dataset, parse_classes

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the hyperparameters the orchestrator put into the training job request."""
    parser = _Parser(prog="train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--server-address", required=True, help="HOST:PORT of the Flower server")
    parser.add_argument("--client-name", required=True, help="this client's name in the federation")
    parser.add_argument("--client-token", required=True, help="per-run token the server admits")
    parser.add_argument("--root-certificate", required=True, help="base64 PEM of the run's TLS root certificate")
    parser.add_argument("--label-column", required=True)
    parser.add_argument("--classes", required=True, help="comma-separated class labels")
    parser.add_argument("--penalty", default="l2", choices=PENALTIES)
    parser.add_argument("--inverse-regularization", type=_positive(float), default=1.0, help="C: smaller is stronger")
    parser.add_argument("--l1-ratio", type=float, default=0.5, help="for penalty=elasticnet")
    parser.add_argument("--max-iter", type=_positive(int), default=10, help="local solver iterations per round")
    parser.add_argument("--connect-timeout", type=_positive(float), default=300.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.root_certificate = base64.b64decode(args.root_certificate, validate=True)
    except (binascii.Error, ValueError):
        raise BadHyperparameter("bad hyperparameters: --root-certificate is not base64") from None
    args.classes = parse_classes(args.classes)
    if len(args.classes) < 2:
        raise BadHyperparameter("bad hyperparameters: --classes needs at least two classes")
    return args


def _channel(name: str) -> Path | None:
    """The folder of an input channel, from SM_CHANNEL_<NAME>, or None if the job has none."""
    value = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    default = Path("/opt/ml/input/data") / name
    if value:
        return Path(value)
    return default if default.exists() else None


def _load_channel(folder: Path, args: argparse.Namespace) -> Dataset:
    """Load one channel with the federation's schema when the channel carries it."""
    schema_path = folder / SCHEMA_FILE
    schema = load_schema(schema_path) if schema_path.exists() else None
    return load_data(folder, args.label_column, args.classes, schema)


def write_failure(reason: str) -> None:
    """Record a one-line failure reason where SageMaker looks for it."""
    output = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    line = " ".join(reason.split())[:1000]
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(line + "\n")
    except OSError as exc:  # still report on stderr, which reaches CloudWatch
        log.error("could not write the failure file in %s: %s", output, exc)


def run(args: argparse.Namespace) -> Path:
    """Join the federation, train until the server ends it, save the final global model."""
    train_dir = _channel("train")
    if train_dir is None:
        raise DataError("the job has no train channel (SM_CHANNEL_TRAIN is not set)")
    train = _load_channel(train_dir, args)
    validation_dir = _channel("validation")
    validation = _load_channel(validation_dir, args) if validation_dir else None
    log.info(
        "client %s: %d training rows, %s validation rows, %d features",
        args.client_name,
        len(train),
        len(validation) if validation else "no",
        len(train.feature_names),
    )

    model = make_model(args.penalty, args.inverse_regularization, args.l1_ratio, args.max_iter, args.seed)
    set_initial_params(model, len(train.feature_names), args.classes)
    client = client_module.LogisticRegressionClient(model, train, validation)
    transport.run_client(
        client,
        server_address=args.server_address,
        token=args.client_token,
        root_certificate=args.root_certificate,
        connect_timeout=args.connect_timeout,
        has_joined=lambda: client.instructions_received > 0,
    )
    if client.rounds_trained == 0 or client.global_parameters is None:
        raise RuntimeError("the server ended the federation before this client trained a round")

    model_path = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")) / "model.joblib"
    provenance = {
        "client_name": args.client_name,
        "rounds_trained": client.rounds_trained,
        "train_rows": len(train),
        "feature_names": train.feature_names,
        "classes": args.classes,
    }
    save_model(client.global_model(), model_path, provenance)
    log.info(
        "federation finished after %d rounds; model saved to %s; peak memory %.0f MB",
        client.rounds_trained,
        model_path,
        peak_memory_mb(),
    )
    return model_path


def _quiet_flower(record: logging.LogRecord) -> bool:
    """Drop Flower's start_client() deprecation notice (ADR-1 keeps that transport) and its blank lines."""
    message = record.getMessage()
    return bool(message.strip()) and not message.startswith("DEPRECATED FEATURE")


def main(argv: list[str] | None = None) -> int:
    """Run the client; return the process exit code (0 ok, 1 runtime failure, 2 bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    flower = logging.getLogger("flwr")
    for handler in list(flower.handlers):  # Flower's own coloured console handler: one log format
        flower.removeHandler(handler)
    flower.addFilter(_quiet_flower)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # flwr's database layer announces its plugins at INFO
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


if __name__ == "__main__":
    sys.exit(main())
