"""`fedsage inspect`: a real run's model is described and re-scored; anything unverified is refused."""

import hashlib
import json
import pickle
import shutil
import tarfile

import joblib
import numpy as np
import pandas as pd
import pytest
from cli_runner import assert_bad_input, run_cli

from client_code.models.logistic import fit_local, make_model, set_initial_params
from client_code.persist import save_model
from client_code.tabular import Dataset


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, prepared_dir):
    """One real federation (3 client processes, 2 rounds on loopback) shared by every slow test here."""
    from orchestrator.local import LocalOptions, run_local

    outcome = run_local(LocalOptions(data_dir=prepared_dir, out=tmp_path_factory.mktemp("runs"), rounds=2))
    return outcome.run_dir


def _assert_refused(capsys, path, message, *extra):
    return assert_bad_input(capsys, "inspect", str(path), *extra, message=message, folder=path.parent)


@pytest.mark.slow
def test_inspect_a_real_runs_model(capsys, real_run, prepared_dir):
    model = real_run / "model.joblib"
    code, stdout, err = run_cli(capsys, "inspect", str(model), "--json", "--test", str(prepared_dir / "test.csv"))
    assert code == 0, err
    report = json.loads(stdout)
    metrics = json.loads((real_run / "metrics.json").read_text())
    final = metrics["rounds"][-1]

    assert report["checksum"] == "verified"
    assert report["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert report["model"]["type"] == "Pipeline(LogisticRegression)" and report["model"]["classes"] == [0, 1]
    assert report["model"]["n_features"] == 28 and report["model"]["positive_class"] == 1
    provenance = report["provenance"]
    assert provenance["run_id"] == real_run.name and provenance["rounds"] == 2
    assert {name: c["num_examples"] for name, c in provenance["clients"].items()} == {
        name: c["num_examples"] for name, c in final["clients"].items()
    }
    assert set(provenance["versions"]) >= {"fedsage", "flwr", "scikit-learn", "numpy"}
    assert report["final_metrics"] == pytest.approx(final["server"])
    # the same test set the server evaluated on: recomputed metrics equal the recorded ones
    assert report["test"]["rows"] == 800
    assert report["test"]["metrics"] == pytest.approx(report["final_metrics"])
    # largest coefficients first, named after the schema's encoded features
    assert report["model"]["family"] == "logistic" and report["model"]["task"] == "binary"
    values = [abs(c["coefficient"]) for c in report["tables"]["top_coefficients"]["rows"]]
    assert len(values) == 10 and values == sorted(values, reverse=True)
    loaded = joblib.load(model)
    names = loaded.fedsage_provenance_["feature_names"]
    biggest = int(np.argmax(np.abs(loaded[-1].coef_[0])))
    assert report["tables"]["top_coefficients"]["rows"][0]["feature"] == names[biggest]

    code, stdout, err = run_cli(capsys, "inspect", str(model))
    assert code == 0, err
    for text in (real_run.name, "checksum verified", "client-1", "roc_auc", "largest coefficients", "flwr"):
        assert text in stdout
    # the copy each client's job saved is the same global model, with the client's own provenance
    copy = real_run / "clients" / "client-2" / "opt" / "ml" / "model" / "model.joblib"
    code, stdout, err = run_cli(capsys, "inspect", str(copy), "--json")
    assert code == 0, err
    assert json.loads(stdout)["provenance"]["saved_by"] == "client-2"
    assert json.loads(stdout)["tables"] == report["tables"]


@pytest.mark.slow
def test_a_tampered_model_is_refused_before_unpickling(capsys, real_run, tmp_path):
    tampered = tmp_path / "model.joblib"
    shutil.copy(real_run / "model.joblib", tampered)
    shutil.copy(real_run / "model.joblib.sha256", tmp_path / "model.joblib.sha256")
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    _assert_refused(capsys, tampered, "does not match its checksum in model.joblib.sha256 (it changed after the run)")
    (tmp_path / "model.joblib.sha256").unlink()
    _assert_refused(capsys, tampered, "model.joblib.sha256 is missing next to")


# ----------------------------------------------------------------------------- without a federation


def _save(obj, path):
    """Write any object the way a run writes its model: joblib, plus a matching checksum."""
    joblib.dump(obj, path)
    path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    return path


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_even_with_a_valid_checksum(capsys, tmp_path):
    marker = tmp_path / "pwned"
    path = _save(_RunsCode(marker), tmp_path / "model.joblib")
    _assert_refused(capsys, path, "is not a fedsage model: it refers to posix.system")
    assert not marker.exists()


def test_a_huge_checksum_file_is_refused_without_reading_it(capsys, tmp_path):
    """Issue 10, item 15: a multi-GB .sha256 (sparse here) is refused after reading a few KB of it."""
    import tracemalloc

    path = _save(set_initial_params(make_model(), 3, [0, 1]), tmp_path / "model.joblib")
    with open(tmp_path / "model.joblib.sha256", "r+b") as file:
        file.truncate(4 << 30)  # 4 GiB that start with the right digest; sparse, so it takes no disk
    tracemalloc.start()
    _assert_refused(capsys, path, "model.joblib.sha256 is larger than 4096 bytes, not a checksum file; refusing")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def test_other_estimators_and_plain_models_are_refused(capsys, tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier().fit(np.eye(4), [0, 1, 0, 1])
    _assert_refused(
        capsys, _save(tree, tmp_path / "tree.joblib"), "refers to sklearn.tree._classes.DecisionTreeClassifier"
    )
    plain = set_initial_params(make_model(), 3, [0, 1])
    _assert_refused(capsys, _save(plain, tmp_path / "plain.joblib"), "is not a fedsage model (no fedsage_provenance_")
    (tmp_path / "junk.joblib").write_bytes(pickle.dumps([1, 2, 3])[:5])
    _save_checksum = hashlib.sha256((tmp_path / "junk.joblib").read_bytes()).hexdigest()
    (tmp_path / "junk.joblib.sha256").write_text(_save_checksum)
    _assert_refused(capsys, tmp_path / "junk.joblib", "is not a readable fedsage model")
    (tmp_path / "bad.joblib").write_bytes(b"\x80")
    (tmp_path / "bad.joblib.sha256").write_text("not a checksum")
    _assert_refused(capsys, tmp_path / "bad.joblib", "does not hold a SHA-256 checksum")
    _assert_refused(
        capsys, tmp_path / "missing.joblib", "model file " + str(tmp_path / "missing.joblib") + " not found"
    )


@pytest.fixture
def multiclass_model(tmp_path):
    """A three-class fedsage model saved by save_model, with a schema and a scoring file."""
    rng = np.random.default_rng(0)
    schema = {
        "label": "kind",
        "classes": ["a", "b", "c"],
        "features": [{"name": f"f{i}", "kind": "numeric", "mean": 0.0, "scale": 1.0} for i in range(4)],
    }
    X = rng.normal(size=(300, 4))
    y = np.array(["a", "b", "c"])[np.argmax(X[:, :3] + 0.3 * rng.normal(size=(300, 3)), axis=1)]
    model = set_initial_params(make_model(max_iter=100), 4, ["a", "b", "c"])
    fit_local(model, Dataset(X, y, [f"f{i}" for i in range(4)]))
    provenance = {
        "run_id": "20261121-101500-a1b2",
        "rounds": 7,
        "clients": {"x": {"num_examples": 300, "last_round": 7}},
        "label": "kind",
        "classes": ["a", "b", "c"],
        "feature_names": [f"f{i}" for i in range(4)],
        "schema": schema,
        "versions": {"scikit-learn": "0.0.1"},
        "final_metrics": {"roc_auc": 0.9, "loss": float("nan")},
    }
    path = tmp_path / "model.joblib"
    save_model(model, path, provenance)
    test = tmp_path / "test.csv"
    import pandas as pd

    pd.DataFrame(X, columns=[f"f{i}" for i in range(4)]).assign(kind=y).to_csv(test, index=False)
    return path, test, model


def test_multiclass_model_json(capsys, multiclass_model):
    path, test, model = multiclass_model
    code, stdout, err = run_cli(capsys, "inspect", str(path), "--json", "--top", "4", "--test", str(test))
    assert code == 0, err
    report = json.loads(stdout)  # valid JSON: the NaN loss became null
    assert report["final_metrics"] == {"roc_auc": 0.9, "loss": None}
    ranked = sorted(
        ((abs(v), cls, f"f{j}") for (i, j), v in np.ndenumerate(model.coef_) for cls in [["a", "b", "c"][i]]),
        reverse=True,
    )[:4]
    rows = report["tables"]["top_coefficients"]["rows"]
    assert [(c["output"], c["feature"]) for c in rows] == [(cls, f) for _, cls, f in ranked]
    assert report["test"]["rows"] == 300 and report["test"]["metrics"]["accuracy"] > 0.8
    assert any("saved with scikit-learn 0.0.1" in note for note in report["notes"])


def test_a_test_file_without_the_models_columns(capsys, multiclass_model, tmp_path):
    path, test, _ = multiclass_model
    broken = tmp_path / "broken.csv"
    broken.write_text(test.read_text().replace("f2", "g2"))
    _assert_refused(capsys, path, "column 'f2' required by the feature schema is missing", "--test", str(broken))


SCHEMA = {
    "label": "y",
    "classes": ["fraud", "legit"],
    "positive_class": "fraud",
    "features": [
        {"name": "amount", "kind": "numeric", "mean": 10.0, "scale": 5.0},
        {"name": "region", "kind": "categorical", "levels": ["east", "west"], "other": True},
    ],
}


def _pipeline_model(path, skops):
    from client_code.persist import model_pipeline

    model = set_initial_params(make_model(), 4, ["fraud", "legit"])
    model.coef_ = np.array([[1.0, 0.5, -0.5, 2.0]])
    save_model(model_pipeline(SCHEMA, model), path, {"run_id": "r", "schema": SCHEMA, "positive_class": "fraud"}, skops)
    return path


@pytest.mark.parametrize("skops", [True, False])
def test_a_pipeline_loads_through_skops_or_the_allow_list(capsys, tmp_path, skops):
    path = _pipeline_model(tmp_path / "model.joblib", skops)
    assert (tmp_path / "model.skops").is_file() == skops
    code, stdout, err = run_cli(capsys, "inspect", str(path), "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["model"]["type"] == "Pipeline(LogisticRegression)" and report["model"]["positive_class"] == "fraud"
    assert report["tables"]["top_coefficients"]["rows"][0] == {
        "output": "legit",
        "feature": "region=other",
        "coefficient": 2.0,
    }


def test_a_changed_skops_file_is_refused(capsys, tmp_path):
    path = _pipeline_model(tmp_path / "model.joblib", True)
    skops_file = tmp_path / "model.skops"
    skops_file.write_bytes(skops_file.read_bytes() + b"x")
    _assert_refused(capsys, path, "model.skops does not match its checksum in model.skops.sha256")


def test_a_test_file_without_the_label_names_it_and_no_option_inspect_lacks(capsys, multiclass_model, tmp_path):
    """Issue 14, item 7: the hint named a --label-column option `inspect` does not have."""
    path, test, _ = multiclass_model
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(test).drop(columns=["kind"]).to_csv(unlabelled, index=False)
    err = _assert_refused(
        capsys,
        path,
        f"{unlabelled} has no column 'kind', the label the model was trained on",
        "--test",
        str(unlabelled),
    )
    assert "--label-column" not in err


def _archive(folder, members):
    """A model.tar.gz as SageMaker packs SM_MODEL_DIR: (name in the archive, file or None for a symlink)."""
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, source in members:
            if source is None:
                link = tarfile.TarInfo(name)
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(link)
            else:
                tar.add(source, arcname=name)
    return archive


def test_a_clients_model_tar_gz_is_verified_extracted_and_inspected(capsys, multiclass_model, tmp_path):
    """Issue 14, item 7: the docs said a client's model.tar.gz can be inspected; it was refused."""
    path, test, _ = multiclass_model
    job = tmp_path / "job"
    job.mkdir()
    archive = _archive(job, [("model.joblib", path), ("model.joblib.sha256", path.with_name("model.joblib.sha256"))])
    code, stdout, err = run_cli(capsys, "inspect", str(archive), "--json", "--test", str(test))
    assert code == 0, err
    report = json.loads(stdout)
    assert report["checksum"] == "verified" and report["path"] == str(archive)
    assert report["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report["test"]["rows"] == 300
    assert sorted(p.name for p in job.iterdir()) == ["model.tar.gz"]  # nothing extracted next to it

    from orchestrator import api

    inspected = api.inspect(archive)
    assert inspected.model.classes_.tolist() == ["a", "b", "c"] and inspected.report["checksum"] == "verified"


@pytest.mark.parametrize(
    "members, message",
    [
        ([("model.joblib", "model")], "holds no model.joblib.sha256"),
        ([("model.joblib", None), ("model.joblib.sha256", "checksum")], "holds no model.joblib (as a regular file"),
        ([("model.joblib", "tampered"), ("model.joblib.sha256", "checksum")], "does not match its checksum"),
    ],
)
def test_a_model_tar_gz_that_cannot_be_verified_is_refused(capsys, multiclass_model, tmp_path, members, message):
    path, _, _ = multiclass_model
    tampered = tmp_path / "tampered.joblib"
    tampered.write_bytes(path.read_bytes()[:-1] + b"\0")
    sources = {"model": path, "checksum": path.with_name("model.joblib.sha256"), "tampered": tampered, None: None}
    job = tmp_path / "job"
    job.mkdir()
    archive = _archive(job, [(name, sources[source]) for name, source in members])
    _assert_refused(capsys, archive, message)
