"""docs/python-api.md is executed as a notebook would run it: its python blocks in order, in an empty folder."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_page_has_the_notebook_example():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    assert "api.local(" in blocks[0] and "api.compare(" in "".join(blocks) and "mlflow=" in blocks[-1]


@pytest.mark.slow
def test_the_python_api_page_runs_offline(tmp_path):
    pytest.importorskip("mlflow")
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join(python_blocks(DOC.read_text())))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^round 3/3: roc_auc 0\.9\d+$", out, flags=re.M), out
    assert "plot: runs/compare.png" in out and "refused: no run '20990101-000000-none' in runs" in out
    assert "FINISHED" in out
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    # first, second, the repeat, the stopped run and its resumption, the tracked run
    assert len(runs) == 6 and all((run / "run.json").is_file() for run in runs)
    assert "interrupted, partial model (round " in out
    assert (tmp_path / "runs" / "compare.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "mlruns").is_dir()
