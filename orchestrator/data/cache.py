"""A cache of prepared built-in data sets, so `fedsage local` generates and splits each one once.

Preparing the default built-in set (75,000 rows split over 3 clients and written as CSV) takes
about 1.4 s; copying a cached copy takes a few milliseconds. An entry is keyed by the data set's
name, its generation seed and row count, and every option `prepare` received (the number of
clients, the split fractions, ...), so any change to them is a different entry. Every file of an
entry is checksummed (SHA-256); an entry whose files are missing or differ is removed and
prepared again. The cache is only a speed-up: if it cannot be written, the run goes on without it.

Where it lives: under fedsage's cache folder (imagebuild/daemon.py `cache_dir`: $FEDSAGE_CACHE_DIR,
else $XDG_CACHE_HOME/fedsage, else ~/.cache/fedsage), in `builtin/<key>/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from orchestrator.data import layout
from orchestrator.data.datasets import BuiltinDataset
from orchestrator.data.options import PartSummary, PrepareOptions, PrepareSummary
from orchestrator.imagebuild.daemon import cache_dir

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout of a prepared folder or of an entry changes: old entries are then never hit
CHECKSUMS = "checksums.json"
DATA = "data"


def entry_key(dataset: BuiltinDataset, options: PrepareOptions) -> str:
    """The cache key (64 hex digits) of `dataset` prepared with `options`: (name, seed, rows) and every option."""
    payload = {"format": FORMAT, "dataset": dataset.name, "rows": dataset.rows, "options": asdict(options)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root`, by path relative to it (POSIX separators)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _intact(entry: Path) -> bool:
    """Whether an entry holds its checksum list and exactly the files it names, unchanged."""
    try:
        expected = json.loads((entry / CHECKSUMS).read_text())
        return isinstance(expected, dict) and bool(expected) and _checksums(entry / DATA) == expected
    except (OSError, ValueError):
        return False


def _store(entry: Path, prepared: Path) -> None:
    """Copy a prepared folder into the cache as `entry`, whole or not at all; a failure is logged, not raised."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
        try:
            shutil.copytree(prepared, staging / DATA)
            (staging / CHECKSUMS).write_text(json.dumps(_checksums(staging / DATA), indent=1))
            shutil.rmtree(entry, ignore_errors=True)
            staging.rename(entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        log.warning("could not cache the prepared data set in %s (%s); the next run prepares it again", entry, exc)


def _summary(out: Path) -> PrepareSummary:
    """The summary of a prepared folder copied from the cache, rebuilt from its manifest and schema.

    The test set is not read here (`test` is None): its one reader is the run's input check, which
    reads it while the jobs start (run/startup.py).
    """
    manifest = json.loads((out / layout.MANIFEST).read_text())
    return PrepareSummary(
        out=out,
        label=manifest["label"],
        classes=manifest["classes"],
        schema=json.loads((out / layout.SCHEMA).read_text()),
        test=None,
        parts=[PartSummary(**part) for part in manifest["parts"]],
        partition=manifest["partition"],
        inferred=manifest["inferred_categorical"],
        warnings=manifest["warnings"],
    )


def prepared_builtin(dataset: BuiltinDataset, options: PrepareOptions, out: Path) -> PrepareSummary:
    """Write `dataset` generated with `options.seed` and prepared with `options` to `out`, from the cache if it can.

    `out` must not exist or be empty (as for `prepare`). Returns what was written; the summary
    of a cache hit has no test set in memory (`test` is None: read it from `out` as a prepared
    folder is read). Raises what `prepare` raises (BadInput for bad options), with nothing cached.
    """
    entry = cache_dir() / "builtin" / entry_key(dataset, options)
    if entry.is_dir():
        if _intact(entry):
            layout_parent = Path(out).parent
            layout_parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(entry / DATA, out, dirs_exist_ok=True)
            log.debug("built-in data set %s from the cache entry %s", dataset.name, entry)
            return _summary(Path(out))
        log.warning("cache entry %s is damaged; preparing the data set again", entry)
        shutil.rmtree(entry, ignore_errors=True)
    from orchestrator.data.prepare import prepare  # pandas: a cache hit reaches the run's launch without it

    summary = prepare(dataset.load(options.seed), options, out, source=f"built-in:{dataset.name}")
    _store(entry, Path(out))
    return summary
