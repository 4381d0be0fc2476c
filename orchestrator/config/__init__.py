"""federation.toml: the schema of a federation, validated by pydantic; the home of its defaults.

Every error names the key, the bad value and what to put there instead; `load` turns pydantic's
errors into one BadInput line per problem. `fedsage local` builds the same `Federation` object in
memory from its options (`build`), and writes the resolved configuration into the run folder.

Modules: base.py (what sections share), run.py ([federation]), model.py ([model]: the family, its
keys), strategy.py ([strategy], [privacy]), data.py ([data]), server.py ([server], [server.tls],
[container]), clients.py ([[clients]]), local.py ([local]), tracking.py ([tracking]), federation.py
(the whole file, checked together), loading.py (reading and error messages). Field defaults come
from orchestrator/defaults.py.
"""

from orchestrator.config.base import NAME_PATTERN, Purpose, name_order
from orchestrator.config.clients import ClientSettings
from orchestrator.config.data import DataSettings
from orchestrator.config.federation import Federation
from orchestrator.config.loading import Edit, build, describe_errors, load, parse
from orchestrator.config.local import LocalSettings
from orchestrator.config.model import ModelSettings, default_rounds, model_settings
from orchestrator.config.run import RunSettings
from orchestrator.config.server import ContainerSettings, ServerSettings, TlsSettings, host_port
from orchestrator.config.strategy import PrivacySettings
from orchestrator.config.tracking import TrackingSettings

__all__ = [
    "NAME_PATTERN",
    "ClientSettings",
    "ContainerSettings",
    "DataSettings",
    "Edit",
    "Federation",
    "LocalSettings",
    "ModelSettings",
    "PrivacySettings",
    "Purpose",
    "RunSettings",
    "ServerSettings",
    "TlsSettings",
    "TrackingSettings",
    "build",
    "default_rounds",
    "describe_errors",
    "host_port",
    "load",
    "model_settings",
    "name_order",
    "parse",
]
