"""What goes into the SageMaker container stays self-contained and consistent with the package."""

import ast
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def test_client_code_never_imports_the_orchestrator():
    for path in (ROOT / "client_code").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "orchestrator" for n in names), f"{path.name} imports {names}"


def test_container_requirements_are_exact_pins_inside_the_package_ranges():
    ranges = {
        Requirement(r).name: Requirement(r).specifier
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    lines = (ROOT / "client_code" / "requirements.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert {p.name for p in pins} >= {"flwr", "scikit-learn", "pandas", "numpy"}
    for pin in pins:
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{pin} is not an exact pin"
        if pin.name in ranges:
            assert ranges[pin.name].contains(spec.version), f"{pin} is outside pyproject's {ranges[pin.name]}"
