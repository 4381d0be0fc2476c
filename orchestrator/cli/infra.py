"""`fedsage infra render` and `fedsage infra deploy` (implemented in orchestrator/infra.py for now)."""

from orchestrator.infra import infra_app

__all__ = ["infra_app"]
