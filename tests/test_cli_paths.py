"""Every command's path arguments, wrong in each way a user gets them wrong: one line, exit 2, nothing written.

A missing path, a folder where a file is expected, a file where a folder is expected. (Unreadable
files are not tried: the tests may run as root, who reads every file whatever its mode.)
"""

import pytest
from cli_runner import assert_bad_input


@pytest.fixture
def paths(tmp_path):
    """{name: path}: an existing file, a folder with a file in it, a path that does not exist."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "file.csv").write_text("a,b\n1,2\n")
    return {"file": tmp_path / "file.csv", "folder": tmp_path / "folder", "missing": tmp_path / "missing" / "x"}


CASES = {
    "package --out FOLDER": (
        lambda p: ["package", "--no-wheels", "--out", p["folder"]],
        lambda p: f"--out {p['folder']} is a folder; give a file name, e.g. --out {p['folder'] / 'source.tar.gz'}",
    ),
    "package --out under a FILE": (
        lambda p: ["package", "--no-wheels", "--out", p["file"] / "source.tar.gz"],
        lambda p: f"{p['file']} is a file, not a folder; choose another --out",
    ),
    "runs compare --plot FOLDER": (
        lambda p: ["runs", "compare", "a", "b", "--out", p["folder"], "--plot", p["folder"]],
        lambda p: f"--plot {p['folder']} is a folder; give a file name, e.g. --plot {p['folder'] / 'compare.png'}",
    ),
    "data prepare --out FILE": (
        lambda p: ["data", "prepare", "--out", p["file"]],
        lambda p: f"--out {p['file']} is a file; choose a new folder",
    ),
    "data prepare --schema MISSING": (
        lambda p: ["data", "prepare", "--schema", p["missing"], "--input", p["file"], "--out", p["missing"].parent],
        lambda p: f"feature schema {p['missing']} does not exist; give a schema.json",
    ),
    "data prepare --schema FOLDER": (
        lambda p: ["data", "prepare", "--schema", p["folder"], "--input", p["file"], "--out", p["missing"].parent],
        lambda p: f"feature schema {p['folder']} is a folder; give a schema.json",
    ),
    "data merge --profiles MISSING": (
        lambda p: ["data", "merge", "--profiles", p["missing"], "--profiles", p["file"], "--out", p["missing"]],
        lambda p: f"{p['missing']} does not exist; give the path of a fedsage-profile file (JSON)",
    ),
    "data merge --profiles FOLDER": (
        lambda p: ["data", "merge", "--profiles", p["folder"], "--profiles", p["file"], "--out", p["missing"]],
        lambda p: f"{p['folder']} is a folder; give the path of a fedsage-profile file (JSON)",
    ),
    "predict --input MISSING": (
        lambda p: ["predict", p["file"], "--input", p["missing"], "--out", p["folder"] / "predictions.csv"],
        lambda p: f"--input {p['missing']} does not exist; give a CSV file (or a folder of CSV files) of raw rows",
    ),
    "local --out FILE": (
        lambda p: ["local", "--out", p["file"]],
        lambda p: f"--out {p['file']} is a file; choose a folder",
    ),
    "local --data-dir MISSING": (
        lambda p: ["local", "--data-dir", p["missing"], "--out", p["folder"]],
        lambda p: f"data folder {p['missing']} does not exist; create it with `fedsage data prepare --out DIR`",
    ),
    "local -c FOLDER": (
        lambda p: ["local", "-c", p["folder"], "--out", p["folder"]],
        lambda p: f"config file {p['folder']} is a folder; pass the federation.toml file inside it with -c",
    ),
    "inspect FOLDER": (lambda p: ["inspect", p["folder"]], lambda p: f"model file {p['folder']} not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_path_is_one_line_naming_it_and_the_fix(capsys, tmp_path, paths, case):
    args, message = CASES[case]
    assert_bad_input(capsys, *map(str, args(paths)), message=message(paths), folder=tmp_path)
