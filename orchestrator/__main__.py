"""`python -m orchestrator` is the same as the `fedsage` command."""

from orchestrator.entry import main

main()
