"""Reading channels as real exports write them (client_code/tabular.py), with the failing inputs of ../shared/cases."""

import numpy as np
import pandas as pd
import pytest
from conftest import CASES, needs_cases

from client_code.tabular import (
    DataError,
    canonical_class,
    canonical_labels,
    channel_head,
    read_channel,
    read_csv_folder,
)


def _labels(*values):
    return canonical_labels(pd.Series(values, dtype=object)).tolist()


def test_labels_are_canonical_whatever_the_export_wrote():
    assert _labels("0.0", "1.0", "0.0") == [0, 1, 0]  # case 02
    assert _labels("-1", "+1", " 1") == [-1, 1, 1]  # case 03
    assert _labels(" <=50K", " >50K") == ["<=50K", ">50K"]  # case 01
    assert _labels("None", "Phantom", "NA") == ["None", "Phantom", "NA"]  # case 04: words, not missing
    assert _labels("1", "1.5") == ["1", "1.5"]  # not every label is integral: text
    assert canonical_class("1", [0, 1]) == 1 and canonical_class("1", ["1", "x"]) == "1"
    assert canonical_labels(pd.Series(["0", "1"]), [0, 1]).dtype == np.int64
    with pytest.raises(DataError, match="empty value"):
        canonical_labels(pd.Series(["0", None], dtype=object))


def test_only_truly_empty_cells_are_missing_and_spaces_after_commas_are_dropped(tmp_path):
    (tmp_path / "a.csv").write_text("continent, amount, label\nNA, 1.5, None\nnull, , None\n EU,2, x\n")
    frame, info = read_channel(tmp_path)
    assert list(frame.columns) == ["continent", "amount", "label"]
    assert frame["continent"].tolist() == ["NA", "null", "EU"]
    assert frame["label"].tolist() == ["None", "None", "x"]
    assert frame["amount"].isna().tolist() == [False, True, False]
    assert info.files == [("a.csv", 3)] and info.locate(1) == "a.csv line 3"


def test_a_channel_is_every_csv_below_it_in_any_column_order(tmp_path):
    (tmp_path / "top.csv").write_text("a,y\n1,0\n")
    (tmp_path / "month=2024-02").mkdir()
    (tmp_path / "month=2024-02" / "part-00001.csv").write_text("y,a\n1,2\n1,3\n")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-00001.csv.crc").write_text("junk")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "x.csv").write_text("junk,junk\n")
    frame, info = read_channel(tmp_path)
    assert frame.to_dict("list") == {"a": ["2", "3", "1"], "y": ["1", "1", "0"]}
    assert info.files == [("month=2024-02/part-00001.csv", 2), ("top.csv", 1)]
    assert info.describe() == "2 files, 3 rows"


def test_files_with_other_columns_are_refused_by_name(tmp_path):
    (tmp_path / "1.csv").write_text("a,y\n1,0\n")
    (tmp_path / "2.csv").write_text("b,y\n1,0\n")
    with pytest.raises(DataError, match=r"2.csv has different columns .* \(missing a; extra b\); align the files"):
        read_channel(tmp_path)


def test_empty_or_missing_channel(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_csv_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no .csv files"):
        read_csv_folder(tmp_path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_csv_folder(tmp_path)


@needs_cases
def test_case_08_a_nested_channel_is_read_whole():
    frame, info = read_channel(CASES / "08-nested-channel-folders" / "prepared" / "clients" / "client-1" / "train")
    assert len(frame) == 246  # 60 at the top, 186 in month=2024-02/
    assert info.files == [("month=2024-02/part-00001.csv", 186), ("train.csv", 60)]


@needs_cases
def test_case_01_spaced_header_names_are_stripped():
    frame, _ = read_channel(CASES / "01-adult-leading-spaces" / "adult_like_spacedheader.csv")
    assert list(frame.columns) == ["age", "hours_per_week", "education_num", "workclass", "income"]
    assert sorted(frame["income"].unique()) == ["<=50K", ">50K"]
    assert sorted(frame["workclass"].unique()) == ["Private", "Self-emp", "State-gov"]


def test_channel_head_reads_each_files_header_and_first_row_with_read_channels_checks(tmp_path):
    """What run/inputs.py reads of a local channel: enough for its columns, never a row past the first."""
    (tmp_path / "a.csv").write_text("x,y\n1,0\nnot read,1\n")
    (tmp_path / "b.csv").write_text("y, x\n1,3\n")
    assert channel_head(tmp_path).to_dict("list") == {"x": ["1", "3"], "y": ["0", "1"]}
    (tmp_path / "c.csv").write_text("x,z\n1,0\n")
    with pytest.raises(DataError, match=r"c.csv has different columns from .*a.csv \(missing y; extra z\)"):
        channel_head(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "d.csv").write_text("x,y\n")
    with pytest.raises(DataError, match="has a header but no data rows"):
        channel_head(tmp_path / "empty")


def test_a_first_data_row_longer_than_the_header_is_named_not_read_as_an_index(tmp_path):
    """pandas would take the first column as the index and shift every other (review: 'empty label on line 3')."""
    (tmp_path / "a.csv").write_text("x,y\n1,0,oops\n2,1\n")
    with pytest.raises(DataError, match=r"a.csv line 2 has more fields than its header's 2; give every line"):
        read_channel(tmp_path)
