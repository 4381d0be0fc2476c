"""Federated statistics -> schema (client_code/statistics.py), resampling and the prior correction, exact values."""

import json

import numpy as np
import pandas as pd
import pytest

from client_code.models.logistic import fit_local, make_model, prior_correction, set_initial_params
from client_code.resample import balance, federation_weights
from client_code.schema import encode, to_dataset
from client_code.statistics import (
    compute_statistics,
    level_hash,
    merge_statistics,
    name_levels,
    reveal_levels,
    reveal_requests,
)
from client_code.tabular import DataError, Dataset

K = 10


def _text(frame):
    """A frame as tabular.read_channel gives it: text cells."""
    return frame.astype(str)


def _owners(n=600, seed=3):
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.3, 0.2])
    frame = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(5, 1, n), 2),
            "visits": rng.integers(1, 30, n),
            "region": region,
            "label": rng.choice(["fraud", "legit"], size=n, p=[0.2, 0.8]),
        }
    )
    parts = [frame.iloc[:200], frame.iloc[200:450], frame.iloc[450:]]
    parts[0] = parts[0].sample(frac=1, random_state=1)  # another row order
    parts[1] = parts[1][list(reversed(parts[1].columns))]  # reversed columns
    parts[2] = pd.concat(
        [
            parts[2],
            pd.DataFrame({"amount": [9.0] * 12, "visits": [3] * 12, "region": ["west"] * 12, "label": ["legit"] * 12}),
        ]
    )  # a level at one client only
    parts[1] = pd.concat(
        [
            parts[1],
            pd.DataFrame({"region": ["typo"] * 3, "label": ["legit"] * 3, "visits": [1] * 3, "amount": [1.0] * 3}),
        ]
    )  # a rare level
    return {f"client-{i + 1}": _text(p) for i, p in enumerate(parts)}


def _schema(owners, salt="salt", **kwargs):
    stats = {name: compute_statistics(frame, "label", salt) for name, frame in owners.items()}
    merged = merge_statistics(stats, "label", min_level_count=K, max_levels=50, **kwargs)
    revealed = {}
    for owner, hashes in reveal_requests(merged).items():
        for column, names in reveal_levels(owners[owner], salt, hashes).items():
            revealed.setdefault(column, {}).update(names)
    return name_levels(merged, revealed), merged, stats


def test_the_federated_schema_equals_pooled_preparation_to_1e_9():
    owners = _owners()
    federated, merged, _ = _schema(owners)
    pooled_frame = pd.concat(list(owners.values()))
    pooled, _, _ = _schema({"pooled": pooled_frame}, salt="another")
    assert merged["inferred"] == ["region"]
    for mine, theirs in zip(federated["features"], pooled["features"], strict=True):
        assert mine["name"] == theirs["name"] and mine["kind"] == theirs["kind"]
        if mine["kind"] == "numeric":
            values = pooled_frame[mine["name"]].astype(float).to_numpy()
            assert mine["mean"] == pytest.approx(values.mean(), abs=1e-9, rel=0)
            assert mine["scale"] == pytest.approx(values.std(ddof=0), abs=1e-9, rel=0)
            assert mine["mean"] == pytest.approx(theirs["mean"], abs=1e-9, rel=0)
            assert mine["scale"] == pytest.approx(theirs["scale"], abs=1e-9, rel=0)
        else:
            assert mine["levels"] == theirs["levels"] == ["east", "north", "south", "west"]  # "typo": 3 < k
            assert mine["other"] is True
    assert federated["classes"] == ["fraud", "legit"]
    assert federated["positive_class"] == "fraud"  # the minority class
    counts = pooled_frame["label"].value_counts()
    assert federated["class_counts"] == {"fraud": int(counts["fraud"]), "legit": int(counts["legit"])}
    assert federated["task"] == "binary" and federated["version"] == 2 and federated["min_level_count"] == K
    # every party encodes its raw rows to the same matrix as the pooled schema does
    for frame in owners.values():
        assert np.allclose(encode(frame, federated), encode(frame, pooled), atol=1e-9)


def test_no_level_name_leaves_an_owner_unless_asked_and_rare_levels_stay_hashed():
    owners = _owners()
    _, merged, stats = _schema(owners)
    text = json.dumps(stats)
    for value in ("north", "west", "typo", "fraud_never"):
        assert value not in text
    assert stats["client-2"]["columns"]["region"]["levels"][level_hash("salt", "typo")] == 3
    asked = reveal_requests(merged)
    assert level_hash("salt", "typo") not in json.dumps(asked)
    assert asked["client-3"]["region"] == [level_hash("salt", "west")]  # the only holder of "west"
    assert reveal_levels(owners["client-2"], "salt", {"region": [level_hash("salt", "typo")]}) == {
        "region": {level_hash("salt", "typo"): "typo"}
    }  # an owner answers what it is asked for; docs/data.md says so
    region = next(f for f in merged["features"] if f["name"] == "region")
    assert region["folded_values"] == 1


def test_a_level_split_over_two_owners_is_kept_when_the_federation_sees_it_k_times():
    a = _text(pd.DataFrame({"c": ["x"] * 5 + ["y"] * 20, "label": [0, 1] * 12 + [0]}))
    b = _text(pd.DataFrame({"c": ["x"] * 5 + ["y"] * 20, "label": [1, 0] * 12 + [1]}))
    schema, _, _ = _schema({"a": a, "b": b})
    assert schema["features"][0]["levels"] == ["x", "y"]
    schema, _, _ = _schema({"a": a.iloc[1:], "b": b})
    assert schema["features"][0]["levels"] == ["y"]  # x: 4 + 5 < 10


def test_column_kinds_are_inferred_and_identifiers_refused():
    n = 60
    frame = _text(pd.DataFrame({"id": [f"p{i}" for i in range(n)], "code": ["a", "b"] * 30, "label": [0, 1] * 30}))
    stats = {"a": compute_statistics(frame, "label", "s")}
    with pytest.raises(DataError) as refused:
        merge_statistics(stats, "label", min_level_count=K, max_levels=50)
    assert str(refused.value) == (
        "column 'id' has 60 distinct text values in 60 rows: it looks like an identifier; "
        "leave it out with --drop id ([data] drop)"
    )
    stats = {"a": compute_statistics(frame, "label", "s", drop=["id"])}
    merged = merge_statistics(stats, "label", min_level_count=K, max_levels=50)
    assert merged["inferred"] == ["code"] and [f["kind"] for f in merged["features"]] == ["categorical"]
    numbers = _text(pd.DataFrame({"code": ["1", "2"] * 30, "label": [0, 1] * 30}))
    words = _text(pd.DataFrame({"code": ["1", "x"] * 30, "label": [0, 1] * 30}))
    mixed = {"a": compute_statistics(numbers, "label", "s"), "b": compute_statistics(words, "label", "s")}
    with pytest.raises(DataError, match="column 'code' holds numbers at a but text at b; fix b's values that are not"):
        merge_statistics(mixed, "label", min_level_count=K, max_levels=50)
    declared = {n: compute_statistics(f, "label", "s", categorical=["code"]) for n, f in (("a", numbers), ("b", words))}
    merged = merge_statistics(declared, "label", min_level_count=K, max_levels=50, categorical=["code"])
    assert merged["features"][0]["kind"] == "categorical" and merged["inferred"] == []


def test_missing_columns_and_empty_cells_are_named():
    a = _text(pd.DataFrame({"x": [1, 2], "label": [0, 1]}))
    b = _text(pd.DataFrame({"z": [1, 2], "label": [0, 1]}))
    stats = {"a": compute_statistics(a, "label", "s"), "b": compute_statistics(b, "label", "s")}
    with pytest.raises(DataError, match="column 'x' is in a's data but not in b's"):
        merge_statistics(stats, "label", min_level_count=K, max_levels=50)
    gap = pd.DataFrame({"x": ["1", None], "label": ["0", "1"]})
    with pytest.raises(DataError, match=r"column 'x' has an empty cell \(row 3\)"):
        compute_statistics(gap, "label", "s")


def test_positive_class_is_the_minority_or_the_one_given():
    frame = _text(pd.DataFrame({"x": range(30), "label": ["fraud"] * 5 + ["legit"] * 25}))
    stats = {"a": compute_statistics(frame, "label", "s")}
    assert merge_statistics(stats, "label", min_level_count=K, max_levels=50)["positive_class"] == "fraud"
    given = merge_statistics(stats, "label", min_level_count=K, max_levels=50, positive_class="legit")
    assert given["positive_class"] == "legit"
    with pytest.raises(DataError, match="positive class 'nope' is not one of the classes"):
        merge_statistics(stats, "label", min_level_count=K, max_levels=50, positive_class="nope")


def test_prior_correction_is_king_and_zengs_offset():
    coef, intercept = np.ones((1, 2)), np.array([0.5])
    corrected = prior_correction([coef, intercept], [0, 1], {0: 90, 1: 10}, {0: 50, 1: 50})
    assert corrected[1][0] == pytest.approx(0.5 + np.log(10 / 90))
    assert np.array_equal(corrected[0], coef) and intercept[0] == 0.5  # inputs untouched
    three = prior_correction(
        [np.ones((3, 2)), np.zeros(3)], ["a", "b", "c"], {"a": 1, "b": 2, "c": 7}, dict.fromkeys("abc", 5)
    )
    assert three[1] == pytest.approx(np.log([0.1, 0.2, 0.7]) - np.log([1 / 3] * 3))


def test_smote_then_prior_correction_gives_the_true_rate_back():
    rng = np.random.default_rng(0)
    n = 6000
    y = (rng.random(n) < 0.1).astype(int)
    X = rng.normal(size=(n, 3)) + y[:, None] * 0.8
    train = Dataset(X, y, ["a", "b", "c"])
    balanced = balance(train, [0, 1], "smote", 1.0, seed=0)
    counts = {0: int((y == 0).sum()), 1: int((y == 1).sum())}
    assert balanced.trained_counts == {0: counts[0], 1: counts[0]}
    model = set_initial_params(make_model(max_iter=200), 3, [0, 1])
    fit_local(model, balanced.data)
    skewed = model.predict_proba(X)[:, 1].mean()
    model.intercept_ = prior_correction([model.coef_, model.intercept_], [0, 1], counts, balanced.trained_counts)[1]
    assert skewed > 0.3
    assert model.predict_proba(X)[:, 1].mean() == pytest.approx(y.mean(), abs=0.02)


def test_class_weight_uses_the_federations_counts():
    assert federation_weights([0, 1], {0: 900, 1: 100}) == {0: 1000 / (2 * 900), 1: 1000 / (2 * 100)}
    train = Dataset(np.zeros((4, 1)), np.array([0, 0, 0, 1]), ["x"])
    balanced = balance(train, [0, 1], "class_weight", federation_counts={0: 900, 1: 100})
    assert balanced.class_weight == {0: 1000 / 1800, 1: 5.0}
    assert balanced.trained_counts == pytest.approx({0: 3 * 1000 / 1800, 1: 5.0})
    assert balance(train, [0, 1], "none").trained_counts == {0: 3, 1: 1}


def test_labels_outside_the_classes_are_refused_by_to_dataset():
    schema = {"label": "y", "classes": [0, 1], "features": [{"name": "x", "kind": "numeric", "mean": 0, "scale": 1}]}
    with pytest.raises(DataError, match="label value 2 is not one of the federation's classes"):
        to_dataset(pd.DataFrame({"x": ["1", "2"], "y": ["1.0", "2.0"]}), schema)
    assert to_dataset(pd.DataFrame({"x": ["1"], "y": ["1.0"]}), schema).y.tolist() == [1]


@pytest.mark.parametrize(
    ("rows", "refused"),
    [
        ({"x": ["1", "2"], "y": ["1.0", "2.0"]}, "label value 2 is not one of the federation's classes"),
        ({"x": ["1", "a"], "y": ["0", "1"]}, "column 'x' has the non-numeric value 'a'"),
        ({"x": ["1", None], "y": ["0", "1"]}, "column 'x' has an empty cell"),
        ({"c": ["u", "v"], "y": ["0", "1"]}, "column 'x' required by the feature schema is missing"),
        ({"x": ["1", "2"]}, r"label column 'y' not found \(columns: x\); add it to these files, or name the column"),
    ],
)
def test_to_dataset_refuses_a_bad_row_naming_where_the_column_and_the_fix(rows, refused):
    """What a client's schema phase answers for rows it cannot encode (client_code/client.py)."""
    schema = {"label": "y", "classes": [0, 1], "features": [{"name": "x", "kind": "numeric", "mean": 0, "scale": 1}]}
    frame = pd.DataFrame(rows, dtype=object)
    with pytest.raises(DataError, match=refused) as refusal:
        to_dataset(frame, schema, "client 'a' train data")
    assert str(refusal.value).startswith("client 'a' train data: ")


def test_statistics_without_the_label_column_name_the_columns_and_the_fix():
    frame = pd.DataFrame({"x": ["1"], "z": ["2"]}, dtype=object)
    with pytest.raises(DataError) as refused:
        compute_statistics(frame, "fraud", "salt", where="client 'a' train data")
    assert str(refused.value) == (
        "client 'a' train data: label column 'fraud' not found (columns: x, z); add it to these files, or name the "
        "column that holds the label ([data] label, --label)"
    )


def test_each_feature_column_is_parsed_once_and_its_kind_is_unchanged(monkeypatch):
    """Parsing text is most of the statistics' cost (issue 15): one pd.to_numeric per feature column."""
    frame = _text(pd.DataFrame({"x": [1.5, 2.0, 3.0], "code": ["a", "b", "a"], "label": [0, 1, 1]}))
    frame["nan_text"] = ["1", "nan", "2"]  # the word, not an empty cell: text, as before
    parsed = []
    real = pd.to_numeric
    monkeypatch.setattr(pd, "to_numeric", lambda values, **kw: parsed.append(values.name) or real(values, **kw))
    stats = compute_statistics(frame, "label", "s")
    assert sorted(name for name in parsed if name != "label") == ["code", "nan_text", "x"]
    assert {name: entry["numeric"] for name, entry in stats["columns"].items()} == {
        "x": True,
        "code": False,
        "nan_text": False,
    }
    assert stats["columns"]["x"]["mean"] == pytest.approx(6.5 / 3)
    gap = pd.DataFrame({"x": ["1", None, "inf"], "label": ["0", "1", "1"]})
    with pytest.raises(DataError, match=r"column 'x' has an empty cell \(row 3\)"):
        compute_statistics(gap, "label", "s")


def test_a_client_refusing_its_data_is_named_with_where_its_owner_keeps_the_channel():
    """A client sees only its mount; the server names the channel's source (federation/statistics.py)."""
    from orchestrator.federation.statistics import ClientRefusal
    from orchestrator.text import shown_uri

    channels = {"train": shown_uri("file:///data/a%20b/train"), "validation": shown_uri("s3://bucket/validation")}
    refusal = ClientRefusal("client-2", "validation data: column 'x' has an empty cell (v.csv line 3); fill it")
    assert str(refusal.located(channels)) == (
        "client 'client-2' validation data (s3://bucket/validation): column 'x' has an empty cell (v.csv line 3); "
        "fill it"
    )
    assert (
        str(ClientRefusal("c", "train data: bad").located(channels)) == "client 'c' train data (/data/a b/train): bad"
    )
    other = ClientRefusal("client-2", "unknown request 'x'; the server and the client code are of different versions")
    assert other.located(channels) is other
    assert (
        str(other) == "client 'client-2': unknown request 'x'; the server and the client code are of different versions"
    )


def test_a_client_without_a_class_is_told_who_holds_it_in_name_order():
    """The answers arrive in join order; the message does not depend on it (a typo shows as a tiny holder)."""
    from orchestrator.federation.statistics import _missing_class

    held = {"client-3": {0: 5, 1: 122}, "client-10": {0: 1, 1: 3}, "client-1": {0: 4, 1: 1}, "client-2": {0: 9}}
    assert _missing_class(1, held).startswith(
        "train data: no rows of class 1, held by client-1 (1 row), client-3 (122 rows), client-10 (3 rows); every "
        "client needs training rows of every class"
    )


def test_a_client_lost_in_the_statistics_phase_is_a_failed_round_naming_it_not_a_server_failure():
    """Review of issue 15: its connection closed gave "server failed: client 'a' did not answer ... (schema): "."""
    from flwr.server.superlink.fleet.grpc_bidi.grpc_bridge import GrpcBridgeClosed

    from orchestrator.federation.statistics import _ask
    from orchestrator.federation.strategy import RoundFailed
    from orchestrator.run.outcome import failure_message

    class Gone:
        def get_properties(self, ins, timeout, group_id):
            raise GrpcBridgeClosed()

    class Watcher:
        def reasons(self, clients):
            return "; ".join(f"client {c!r} job failed: killed by SIGKILL" for c in clients)

    with pytest.raises(RoundFailed) as lost:
        _ask({"a": Gone()}, "schema", {"a": {}}, timeout=1)
    assert lost.value.clients == {"a": "its connection closed"}
    assert failure_message(lost.value, None, Watcher()) == (
        "client 'a' did not answer the statistics phase (schema): its connection closed; every client takes part "
        "in it, whatever min_clients; client 'a' job failed: killed by SIGKILL"
    )


def test_a_label_named_in_another_case_is_refused_naming_the_column_it_meant():
    """Review of issue 15: the column list was cut at 8 names and hid the one meant."""
    from client_code.tabular import require_label

    frame = pd.DataFrame(columns=[f"c{i}" for i in range(12)] + ["potential_fraud"])
    with pytest.raises(DataError) as refused:
        require_label(frame, "Potential_Fraud", "client 'a' train data")
    assert str(refused.value) == (
        "client 'a' train data: label column 'Potential_Fraud' not found; did you mean 'potential_fraud'? "
        "(names are case-sensitive; [data] label, --label)"
    )
