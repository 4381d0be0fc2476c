"""`python -m orchestrator` is the same as the `fedsage` command."""

from orchestrator.cli import main

main()
