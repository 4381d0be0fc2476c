"""`fedsage predict`: raw rows in, predictions out, with the model verified first."""

import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli
from test_inspect import _pipeline_model


@pytest.fixture
def model(tmp_path):
    return _pipeline_model(tmp_path / "run" / "model.joblib", True)


def test_predict_scores_raw_rows_in_input_order(capsys, tmp_path, model):
    raw = tmp_path / "raw.csv"
    # columns in another order, an extra column, spaces after commas, a level the model never saw
    raw.write_text("id, region, amount\n7, west, 15\n8, NA, 10\n9, east, 5\n")
    out = tmp_path / "predictions.csv"
    code, stdout, err = run_cli(capsys, "predict", str(model), "--input", str(raw), "--out", str(out))
    assert code == 0, err
    assert "scored 3 rows" in stdout and "positive class fraud" in stdout
    scored = pd.read_csv(out, keep_default_na=False)
    assert list(scored.columns) == ["prediction", "probability_fraud", "probability_legit"]
    logit = np.array([1.0 - 0.5, 0.0 + 2.0, -1.0 + 0.5])  # amount scaled, west / other (NA) / east
    assert scored["probability_legit"].to_numpy() == pytest.approx(1 / (1 + np.exp(-logit)))
    assert scored["prediction"].tolist() == ["legit", "legit", "fraud"]


def _refused(capsys, model, raw, out, message):
    assert_bad_input(capsys, "predict", str(model), "--input", str(raw), "--out", str(out), message=message)


def test_predict_refuses_missing_columns_and_existing_output(capsys, tmp_path, model):
    raw = tmp_path / "raw.csv"
    raw.write_text("id,amount\n1,2\n")
    out = tmp_path / "p.csv"
    _refused(capsys, model, raw, out, "lacks the column(s) region that the model needs")
    assert not out.exists()
    out.write_text("keep me")
    _refused(capsys, model, raw, out, "already exists")
    assert out.read_text() == "keep me"


def test_predict_refuses_a_changed_model(capsys, tmp_path, model):
    model.write_bytes(model.read_bytes() + b"\0")
    raw = tmp_path / "raw.csv"
    raw.write_text("region,amount\neast,1\n")
    _refused(capsys, model, raw, tmp_path / "p.csv", "does not match its checksum")
