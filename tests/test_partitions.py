"""Partition schemes: rows add up, no row in two places, the test set is untouched, skews are real."""

import numpy as np
import pandas as pd
import pytest

from orchestrator.data import layout, partition
from orchestrator.data.partition import Partition, parse_partition
from orchestrator.data.prepare import PrepareOptions, prepare
from orchestrator.data.synth import LABEL
from orchestrator.errors import BadInput


@pytest.fixture(scope="module")
def fraud_rows(fraud_frame):
    """The fraud data with a row id, so every written row can be traced to its input row."""
    return fraud_frame.assign(row_id=np.arange(len(fraud_frame)))


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's bundled handwritten digits (1,797 rows, 10 classes), as a frame."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    return frame.assign(row_id=np.arange(len(frame)))


def _deal(scheme, frame, clients, seed=0, min_class_rows=5):
    classes = sorted(frame[LABEL].unique().tolist())
    return partition.deal(
        parse_partition(scheme), frame, LABEL, classes, clients, np.random.default_rng(seed), min_class_rows
    )


def _assert_disjoint_cover(parts, rows):
    everything = np.concatenate(parts)
    assert len(everything) == len(set(everything.tolist())), "a row was dealt twice"
    assert set(everything.tolist()) == set(range(rows)), "a row was dealt to nobody"


def _shares(frame, parts):
    return np.array([frame[LABEL].iloc[p].mean() for p in parts])


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iid", Partition("iid")),
        ("dirichlet:0.3", Partition("dirichlet", alpha=0.3)),
        (" Quantity:2 ", Partition("quantity", alpha=2.0)),
        ("column:region", Partition("column", column="region")),
        ("classes:1,2/3", Partition("classes", class_lists=(("1", "2"), ("3",)))),
    ],
)
def test_partition_text_parses(text, expected):
    assert parse_partition(text) == expected
    if expected.kind != "classes":  # its text form also shows the fractions
        assert parse_partition(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("random", "unknown partition 'random'; use one of: iid, dirichlet:ALPHA"),
        ("dirichlet:0", "ALPHA must be a positive number, e.g. dirichlet:0.5"),
        ("quantity:x", "ALPHA must be a positive number, e.g. quantity:0.5"),
        ("column:", "names no column; use column:NAME"),
        ("iid:3", "partition 'iid' takes no argument"),
        ("classes:1,2//3", "give one non-empty comma-separated list per client"),
    ],
)
def test_bad_partition_text_is_bad_input(text, message):
    with pytest.raises(BadInput, match=message):
        parse_partition(text)


# ----------------------------------------------------------------------------- schemes, row level


def test_iid_deals_every_row_once_with_the_same_class_balance(fraud_rows):
    parts = _deal("iid", fraud_rows, 4)
    _assert_disjoint_cover(parts, len(fraud_rows))
    assert max(map(len, parts)) - min(map(len, parts)) <= 2
    assert np.allclose(_shares(fraud_rows, parts), fraud_rows[LABEL].mean(), atol=0.005)


def test_dirichlet_skews_labels_and_keeps_every_class_everywhere(fraud_rows):
    parts = _deal("dirichlet:0.3", fraud_rows, 10)
    _assert_disjoint_cover(parts, len(fraud_rows))
    shares = _shares(fraud_rows, parts)
    iid_shares = _shares(fraud_rows, _deal("iid", fraud_rows, 10))
    assert shares.std() > 10 * iid_shares.std()  # label skew, not noise
    for index in parts:  # the reserve: every client has at least 5 rows of each class
        assert fraud_rows[LABEL].iloc[index].value_counts().min() >= 5
        assert fraud_rows[LABEL].iloc[index].nunique() == 2


def test_dirichlet_is_seeded(fraud_rows):
    same = [_deal("dirichlet:0.3", fraud_rows, 5, seed=3) for _ in range(2)]
    other = _deal("dirichlet:0.3", fraud_rows, 5, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(*same, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(same[0], other, strict=True))


def test_quantity_skews_sizes_but_not_labels(fraud_rows):
    parts = _deal("quantity:0.5", fraud_rows, 5)
    _assert_disjoint_cover(parts, len(fraud_rows))
    sizes = np.array(list(map(len, parts)))
    assert sizes.max() > 4 * sizes.min()
    big = [p for p in parts if len(p) > 500]
    assert big and np.allclose(_shares(fraud_rows, big), fraud_rows[LABEL].mean(), atol=0.03)


def test_reserve_that_cannot_be_met_is_bad_input(fraud_rows):
    small = fraud_rows.groupby(LABEL).head(30)
    with pytest.raises(
        BadInput, match=r"class 0 has 30 rows outside the test set, too few to give each of 10 clients 5"
    ):
        _deal("dirichlet:0.3", small, 10)


def test_column_gives_one_client_per_value_named_after_it(fraud_rows):
    frame = fraud_rows.assign(region=fraud_rows["region"].map(lambda r: f"{r.title()} Region"))
    scheme = parse_partition("column:region")
    names = partition.client_names(scheme, frame, LABEL, None, (), 3)
    assert names == ["Central-Region", "East-Region", "North-Region", "South-Region", "West-Region"]
    parts = _deal("column:region", frame, len(names))
    _assert_disjoint_cover(parts, len(frame))
    for name, index in zip(names, parts, strict=True):
        assert set(frame["region"].iloc[index]) == {name.replace("-", " ")}


@pytest.mark.parametrize(
    ("values", "clients", "message"),
    [
        (["a", "b"], 3, "--clients 3 does not match: column 'group' has 2 values; drop --clients"),
        (["x y", "x-y"], None, "values 'x y' and 'x-y' of column 'group' both give client name 'x-y'"),
        (["ok", "%%"], None, "value '%%' gives no usable client name"),
        ([str(i) for i in range(65)], None, "has 65 distinct values, one client each"),
    ],
)
def test_column_names_problems_are_bad_input(values, clients, message):
    frame = pd.DataFrame({"group": values * 4, LABEL: [0, 1] * (2 * len(values))})
    with pytest.raises(BadInput, match=message):
        partition.client_names(parse_partition("column:group"), frame, LABEL, clients, (), 3)


def test_long_values_are_cut_to_24_characters():
    assert partition.safe_client_name("Provider group: north-east coast (large)") == "Provider-group-north-eas"


def test_class_lists_keep_own_classes_and_a_fraction_of_the_others(digits):
    frame = digits.rename(columns={"target": LABEL})
    classes = list(range(10))
    scheme = parse_partition("classes:1,2,3/4,5,6/7,8,9,0", selected_fraction=1.0, other_fraction=0.05)
    parts = partition.deal(scheme, frame, LABEL, classes, 3, np.random.default_rng(0), 1)
    everything = np.concatenate(parts)
    assert len(everything) == len(set(everything.tolist()))
    counts = frame[LABEL].value_counts()
    lists = [{1, 2, 3}, {4, 5, 6}, {7, 8, 9, 0}]
    for own, index in zip(lists, parts, strict=True):
        held = frame[LABEL].iloc[index].value_counts()
        for cls in classes:
            if cls in own:  # everything the two other clients did not take
                assert held[cls] == counts[cls] - 2 * round(0.05 * counts[cls])
            else:
                assert held[cls] == round(0.05 * counts[cls])
    # with selected_fraction 1.0 every row is dealt
    assert set(everything.tolist()) == set(range(len(frame)))


def test_a_class_in_two_lists_is_shared_not_copied(digits):
    frame = digits.rename(columns={"target": LABEL})
    scheme = parse_partition("classes:" + "/".join(["0,1,2,3,4,5,6,7,8,9"] * 2))
    parts = partition.deal(scheme, frame, LABEL, list(range(10)), 2, np.random.default_rng(0), 1)
    _assert_disjoint_cover(parts, len(frame))
    assert abs(len(parts[0]) - len(parts[1])) <= 10


@pytest.mark.parametrize(
    ("lists", "other", "message"),
    [
        ("1,2,3/4,5,6/7,8,9", 0.05, "class '0' is in no client's list"),
        ("1,2,3/4,5,6/7,8,9,0,11", 0.05, "class '11' in --classes is not a value of label"),
        ("1,2,3/4,5,6/7,8,9,0", 0.5, "--other-fraction 0.5 for each of the 2 clients that do not list class"),
    ],
)
def test_class_list_problems_are_bad_input(digits, lists, other, message):
    frame = digits.rename(columns={"target": LABEL})
    scheme = parse_partition(f"classes:{lists}", other_fraction=other)
    with pytest.raises(BadInput, match=message):
        partition.deal(scheme, frame, LABEL, list(range(10)), 3, np.random.default_rng(0), 1)


# ----------------------------------------------------------------------------- through prepare


def _written_rows(out):
    """Input row ids of every written part: test, each client's training rows, validation."""
    data = layout.open_prepared(out)
    found = {"test": pd.read_csv(data.test)}
    for client in data.clients:
        found[f"{client.name}/train"] = pd.read_csv(client.train / "train.csv")
        if client.validation is not None:
            found[f"{client.name}/validation"] = pd.read_csv(client.validation / "validation.csv")
    return found


@pytest.mark.parametrize("scheme", ["iid", "dirichlet:0.3", "quantity:0.5", "column:region"])
def test_every_scheme_writes_each_input_row_once_and_the_same_test_set(tmp_path, fraud_rows, scheme):
    clients = None if scheme.startswith("column") else 4
    options = PrepareOptions(label=LABEL, clients=clients, categorical=("region",), partition=scheme, seed=5)
    summary = prepare(fraud_rows, options, tmp_path / "out")
    parts = _written_rows(tmp_path / "out")
    ids = [i for frame in parts.values() for i in frame["row_id"].tolist()]
    assert len(ids) == len(set(ids)) == len(fraud_rows)  # rows add up, none in two places
    # every written original row is exactly its input row
    for frame in parts.values():
        original = fraud_rows.set_index("row_id").loc[frame["row_id"]].reset_index()
        pd.testing.assert_frame_equal(frame[original.columns], original, check_dtype=False)
    # the test set is held out first: the same rows whatever the scheme, natural class balance
    iid = prepare(fraud_rows, PrepareOptions(label=LABEL, categorical=("region",), seed=5), tmp_path / "iid")
    assert (tmp_path / "out/test.csv").read_bytes() == (tmp_path / "iid/test.csv").read_bytes()
    assert summary.parts[0].class_counts == iid.parts[0].class_counts
    # nothing is resampled (ADR 0004): the parts hold exactly the input's rows of each class
    for cls in ("0", "1"):
        assert sum(part.class_counts[cls] for part in summary.parts) == int(
            (fraud_rows[LABEL].astype(str) == cls).sum()
        )


def test_class_lists_through_prepare_report_unassigned_rows(tmp_path, digits):
    options = PrepareOptions(
        label="target",
        partition="classes:1,2,3/4,5,6/7,8,9,0",
        selected_fraction=0.5,
        other_fraction=0.05,
        client_names=("low", "middle", "high"),
        min_class_rows=1,
    )
    summary = prepare(digits, options, tmp_path / "out")
    parts = _written_rows(tmp_path / "out")
    unassigned = next(p for p in summary.parts if p.name == "unassigned")
    written = sum(len(frame) for frame in parts.values())
    assert written + unassigned.rows == len(digits)
    assert [c.name for c in layout.open_prepared(tmp_path / "out").clients] == ["high", "low", "middle"]
    low = pd.concat([parts["low/train"], parts["low/validation"]])
    own = low["target"].isin([1, 2, 3]).mean()
    assert own > 0.7  # mostly its own classes, a few rows of every other class
    assert set(low["target"]) == set(range(10))


def test_class_lists_without_other_rows_say_which_client_lacks_which_class(tmp_path, digits):
    options = PrepareOptions(label="target", partition="classes:1,2,3/4,5,6/7,8,9,0")
    with pytest.raises(
        BadInput, match=r"client 'client-1' gets 0 rows of class 0 and needs at least 5 .*--other-fraction"
    ):
        prepare(digits, options, tmp_path / "out")
    assert not list(tmp_path.iterdir())


def test_a_client_without_rows_is_bad_input(tmp_path, digits):
    scheme = "classes:0,1,2,3,4,5,6,7,8/9"  # 0.3% of 140-odd rows of class 9 rounds to none
    options = PrepareOptions(label="target", partition=scheme, selected_fraction=0.003, min_class_rows=1)
    with pytest.raises(BadInput, match="the partition left client 'client-1' with no rows"):
        prepare(digits, options, tmp_path / "out")
    assert not list(tmp_path.iterdir())


def test_a_class_the_validation_split_would_take_stays_in_training():
    from orchestrator.data.split import split_client

    part = pd.DataFrame({"x": range(40), LABEL: [0] * 39 + [1]})
    train, validation = split_client(part, LABEL, 0.5, seed=0)
    assert set(train[LABEL]) == {0, 1}
    assert len(train) + len(validation) == 40
    assert not set(train.index) & set(validation.index)
