"""fedsage orchestrator: the server-account side of a cross-account federation.

Importing the package turns Flower's telemetry off (unless the user set
FLWR_TELEMETRY_ENABLED), before any module imports flwr: a federation over regulated data
should not call home.
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

__version__ = "0.1.0"
