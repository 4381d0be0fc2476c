"""Names both sides of the federation must agree on; no imports, so the orchestrator's CLI can read them cheaply."""

SCHEMA_FILE = "schema.json"  # the feature schema beside a channel's CSV files and the server's test set
CHECKSUM_SUFFIX = ".sha256"  # model.joblib -> model.joblib.sha256, written by save_model, checked by inspect
PENALTIES = ("l2", "l1", "elasticnet", "none")  # LogisticRegression regularisation, as config and train.py name it
BALANCES = ("smote", "class_weight", "none")  # class balancing of a training split in its job (resample.py)
# bytes (512 MB) a gRPC message may hold, each way, on both sides: flwr.common.GRPC_MAX_MESSAGE_LENGTH
MAX_MESSAGE_LENGTH = 536_870_912
MAX_ITER = 10  # local solver iterations (or epochs) per round of the iterative families

# The sagemaker_program: a top-level script beside the client_code package in /opt/ml/code, so the
# package's modules import each other as a package (never as top-level names such as `schema`).
ENTRY_POINT = "fedsage_client.py"
# The job's pip installs the archive's wheels into PIP_TARGET (the request's Environment), apart from
# the image's own packages; the entry script puts that folder right after its own for this process
# only, so the training toolkit that started it keeps importing its own versions.
ENTRY_SOURCE = '''"""SageMaker entry point (sagemaker_program): runs client_code.train, the package beside this file."""

import os
import sys

_dependencies = os.environ.get("PIP_TARGET")
if _dependencies and os.path.isdir(_dependencies):
    sys.path.insert(1, _dependencies)

from client_code.train import exit_now, main  # noqa: E402

exit_now(main())
'''

SKOPS_SUFFIX = ".skops"  # model.joblib -> model.skops: the same Pipeline in skops.io's format (no pickled code)
PHASE_KEY = "fedsage"  # the key of every statistics-phase message (Flower get_properties config), see client.py
# The client token travels in the training job's Environment (CreateTrainingJob's Environment map): the
# toolkit turns hyperparameters into process arguments (readable by any local user in /proc/<pid>/cmdline)
# and writes them to hyperparameters.json, but passes environment variables through untouched.
TOKEN_ENVIRONMENT = "FEDSAGE_CLIENT_TOKEN"
