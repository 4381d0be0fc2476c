"""Code that runs inside each client account's SageMaker training job.

Packaged into source.tar.gz by `fedsage package`; `train.py` is the `sagemaker_program`.
It is self-contained: it never imports the orchestrator, so a data owner can read and rebuild
exactly what touches their data.
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
