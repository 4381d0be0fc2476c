"""Every default fedsage applies, in one place.

config.py's schema takes its field defaults from here, and the CLI shows them in `--help`
(this module imports only client_code/constants.py, which imports nothing, so the CLI stays fast
to start). The model families' own keys and defaults live with each family (client_code/models/).
"""

from client_code.constants import MAX_ITER  # noqa: F401 - local solver iterations per round

CLIENTS = 3  # clients of `fedsage local` and `fedsage data prepare` when nothing decides otherwise
MIN_CLIENTS = 2  # the fewest clients of a federation (federation.toml, `fedsage local`, `fedsage data prepare`)


def too_few_clients(what: str, fix: str) -> str:
    """The one line refusing a federation of fewer than MIN_CLIENTS clients: `what` was given, `fix` is how to mend it.

    One client's update is the global model itself: no average hides it, so aggregation, the
    k-anonymity of the statistics phase and secure aggregation protect nothing.
    """
    return (
        f"{what}: a federation needs at least {MIN_CLIENTS} clients (one client's update would be the model "
        f"itself, with no average to protect its data); {fix}"
    )


ROUNDS = 5
SEED = 42  # data generation, splitting, partitioning, SMOTE and model initialisation
JOIN_TIMEOUT = 300.0  # seconds for every client to join (a SageMaker job takes minutes to provision)
ROUND_TIMEOUT = 600.0  # seconds a client may take for one round
# seconds a client keeps retrying to reach the server before it gives up: the server listens before any
# job is created, so retries only bridge a network hiccup; a client whose server died stops after this
# (independent of JOIN_TIMEOUT: a job does not bill minutes waiting for a server that is gone)
CONNECT_TIMEOUT = 60.0
# an update farther from the global model than this many times the median of the other clients' distances
# is rejected (federation/validation.py); 0 turns the check off
UPDATE_NORM_FACTOR = 10.0
DATASET = "synthetic-fraud"  # the built-in data set of `fedsage local`
RUNS = "runs"  # the folder that receives run folders
MIN_LEVEL_COUNT = 10  # k: a categorical level seen fewer times over the federation folds into "other"
MAX_LEVELS = 50  # a text column with more distinct values is an identifier, not a categorical feature
BALANCE = "smote"  # class balancing of each client's training split, inside its job (ADR 0004)
SMOTE_RATIO = 1.0  # SMOTE: minority rows as a share of the majority class
BACKEND = "process"  # where `fedsage local` runs the client jobs: process or docker
