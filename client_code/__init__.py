"""Code that runs inside each client account's SageMaker training job.

Packaged into source.tar.gz by `fedsage package`, beside a three-line entry script
(`fedsage_client.py`, written from constants.ENTRY_SOURCE) that SageMaker runs as the
`sagemaker_program` and that calls `client_code.train.main`.
It is self-contained: it never imports the orchestrator, so a data owner can read and rebuild
exactly what touches their data.
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
