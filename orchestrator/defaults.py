"""Every default fedsage applies, in one place.

config.py's schema takes its field defaults from here, and the CLI shows them in `--help`
(this module imports nothing, so the CLI stays fast to start).
"""

CLIENTS = 3  # clients of `fedsage local` and `fedsage data prepare` when nothing decides otherwise
ROUNDS = 5
SEED = 42  # data generation, splitting, partitioning, SMOTE and model initialisation
MAX_ITER = 10  # local solver iterations per round
JOIN_TIMEOUT = 300.0  # seconds for every client to join (a SageMaker job takes minutes to provision)
ROUND_TIMEOUT = 600.0  # seconds a client may take for one round
DATASET = "synthetic-fraud"  # the built-in data set of `fedsage local`
RUNS = "runs"  # the folder that receives run folders
BACKEND = "process"  # where `fedsage local` runs the client jobs: process or docker
