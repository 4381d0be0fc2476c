"""`fedsage data profile` / `data merge`: the statistics phase by hand gives the statistics phase's schema."""

import json

import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli

from client_code.tabular import read_channel
from orchestrator.data.prepare import PrepareOptions, pooled_schema


def _owner_files(tmp_path):
    """Three owners; level 'x' is held 6 + 6 times (kept over the federation, named by no owner alone)."""
    frames = {
        "a": pd.DataFrame({"amount": range(40), "kind": ["p"] * 34 + ["x"] * 6, "y": [0, 1] * 20}),
        "b": pd.DataFrame({"amount": range(100, 130), "kind": ["q"] * 24 + ["x"] * 6, "y": [1, 0, 0] * 10}),
        "c": pd.DataFrame({"amount": range(50), "kind": ["p"] * 45 + ["rare"] * 5, "y": [0] * 40 + [1] * 10}),
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def test_profiles_merge_into_the_pooled_schema_after_a_reveal_round(capsys, tmp_path):
    files = _owner_files(tmp_path)
    profiles = []
    for owner, path in files.items():
        out = tmp_path / f"{owner}.profile.json"
        code, _, err = run_cli(
            capsys,
            "data",
            "profile",
            "--input",
            str(path),
            "--label",
            "y",
            "--owner",
            owner,
            "--salt",
            "shared-secret",
            "--out",
            str(out),
        )
        assert code == 0, err
        profiles.append(out)
        text = out.read_text()
        assert "rare" not in text and '"x"' not in text  # levels held < k times locally stay hashed
    schema = tmp_path / "schema.json"
    args = ["data", "merge", *(f"--profiles={p}" for p in profiles), "--out", str(schema)]
    code, stdout, err = run_cli(capsys, *args)
    assert code == 0, err
    request = tmp_path / "schema.reveal-request.json"
    assert request.is_file() and not schema.exists()
    asked = json.loads(request.read_text())["owners"]
    assert list(asked) in (["a"], ["b"])  # one holder of 'x' is asked, nobody is asked for 'rare'
    holder = next(iter(asked))
    names = tmp_path / f"{holder}.names.json"
    code, _, err = run_cli(
        capsys,
        "data",
        "profile",
        "--input",
        str(files[holder]),
        "--owner",
        holder,
        "--salt",
        "shared-secret",
        "--reveal",
        str(request),
        "--out",
        str(names),
    )
    assert code == 0, err
    code, stdout, err = run_cli(capsys, *args, "--names", str(names))
    assert code == 0, err
    merged = json.loads(schema.read_text())
    pooled, _ = pooled_schema(
        pd.concat([read_channel(p)[0] for p in files.values()], ignore_index=True), PrepareOptions(label="y")
    )
    assert (
        merged["features"][1]
        == pooled["features"][1]
        == {"name": "kind", "kind": "categorical", "levels": ["p", "q", "x"], "other": True}
    )
    assert merged["features"][0]["mean"] == pytest.approx(pooled["features"][0]["mean"], abs=1e-9)
    assert merged["features"][0]["scale"] == pytest.approx(pooled["features"][0]["scale"], abs=1e-9)
    assert merged["classes"] == [0, 1] and merged["class_counts"] == pooled["class_counts"]


def test_a_reveal_request_for_another_owner_is_refused(capsys, tmp_path):
    files = _owner_files(tmp_path)
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"kind": "fedsage-reveal-request", "owners": {"b": {"kind": ["00"]}}}))
    assert_bad_input(
        capsys,
        "data",
        "profile",
        "--input",
        str(files["a"]),
        "--owner",
        "a",
        "--salt",
        "s",
        "--reveal",
        str(request),
        "--out",
        str(tmp_path / "n.json"),
        message="the reveal request asks nothing of owner 'a'",
    )
