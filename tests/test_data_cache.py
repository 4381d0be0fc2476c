"""The cache of prepared built-in data sets: keyed, checksummed, a damaged entry prepared again."""

import json

import pytest

from client_code.tabular import read_channel
from orchestrator.data import cache, datasets, layout
from orchestrator.data import prepare as prepare_module
from orchestrator.data.prepare import PrepareOptions
from orchestrator.imagebuild.daemon import cache_dir


def _options(**fields) -> PrepareOptions:
    dataset = datasets.get("breast-cancer")
    return PrepareOptions(label=dataset.label, clients=2, categorical=dataset.categorical, seed=3, **fields)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cache_dir_follows_the_override_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("FEDSAGE_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.delenv("FEDSAGE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "fedsage"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir().parts[-2:] == (".cache", "fedsage")


def test_key_changes_with_seed_rows_and_options():
    dataset = datasets.get("breast-cancer")
    base = cache.entry_key(dataset, _options())
    assert base == cache.entry_key(dataset, _options())
    assert base != cache.entry_key(dataset, PrepareOptions(label=dataset.label, clients=2, seed=4))
    assert base != cache.entry_key(dataset, _options(test_size=0.3))
    assert base != cache.entry_key(datasets.get("diabetes"), _options())


def test_a_hit_writes_the_same_folder_without_preparing(tmp_path, data_cache, monkeypatch):
    dataset = datasets.get("breast-cancer")
    first = cache.prepared_builtin(dataset, _options(), tmp_path / "one")
    assert len(list((data_cache / "builtin").iterdir())) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit must not prepare the data set again")

    monkeypatch.setattr(prepare_module, "prepare", refuse)  # what a miss imports (data/cache.py)
    second = cache.prepared_builtin(dataset, _options(), tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert second.out == tmp_path / "two"
    assert (second.label, second.classes, second.schema, second.parts) == (
        first.label,
        first.classes,
        first.schema,
        first.parts,
    )
    assert second.test is None  # not read back: the run that uses the folder reads it once
    assert len(read_channel(second.out / layout.TEST)[0]) == len(first.test)


@pytest.mark.parametrize("damage", ["change", "delete", "checksums"])
def test_a_damaged_entry_is_prepared_again(tmp_path, data_cache, damage):
    dataset = datasets.get("breast-cancer")
    cache.prepared_builtin(dataset, _options(), tmp_path / "one")
    entry = next((data_cache / "builtin").iterdir())
    test_csv = entry / cache.DATA / layout.TEST
    if damage == "change":
        test_csv.write_text(test_csv.read_text().replace("1", "7", 1))
    elif damage == "delete":
        test_csv.unlink()
    else:
        (entry / cache.CHECKSUMS).write_text("{not json")
    summary = cache.prepared_builtin(dataset, _options(), tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert summary.out == tmp_path / "two"
    assert cache._intact(entry)  # stored again, whole
    assert json.loads((entry / cache.CHECKSUMS).read_text()).keys() >= {layout.TEST, layout.SCHEMA}


def test_an_unwritable_cache_does_not_fail_the_preparation(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FEDSAGE_CACHE_DIR", str(blocker / "cache"))  # a folder under a file cannot be made
    summary = cache.prepared_builtin(datasets.get("breast-cancer"), _options(), tmp_path / "out")
    assert (summary.out / layout.SCHEMA).is_file()


def test_the_readme_states_the_size_of_a_default_runs_data_folder(tmp_path, data_cache):
    """README's "about N MB for the default synthetic-fraud" is what `fedsage local`'s data/ holds (within 25%)."""
    import re
    from pathlib import Path

    from orchestrator import defaults

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    stated = float(re.search(r"about (\d+(?:\.\d+)?) MB for the default synthetic-fraud", readme).group(1))
    dataset = datasets.get(defaults.DATASET)
    options = PrepareOptions(
        label=dataset.label, clients=defaults.CLIENTS, categorical=dataset.categorical, seed=defaults.SEED
    )
    cache.prepared_builtin(dataset, options, tmp_path / "data")  # as local.py prepares a run's data/
    size = sum(p.stat().st_size for p in (tmp_path / "data").rglob("*") if p.is_file()) / 1e6
    assert abs(size - stated) <= 0.25 * stated, f"data/ holds {size:.1f} MB; README says about {stated:g} MB"
