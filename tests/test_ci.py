"""CI runs exactly what the README tells a user to run."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_exactly_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"\*\*Run the tests\*\*:\s*```bash\n(.+?)\n```", readme, re.DOTALL)[1]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == command
    assert ".ci/provision-docker" in command  # the docker tests need a daemon; the script starts one
