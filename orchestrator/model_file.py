"""Open a saved model file without trusting it blindly: verify its checksum, load only what a fedsage model holds.

Unpickling runs code, so a model file is opened in three guarded steps:

1. its bytes are read once and checked against the `<file>.sha256` the run wrote next to it
   (a missing or different checksum is refused), and the same bytes are what gets loaded;
2. when `model.skops` lies beside it (runs since issue 9 write one), that file is checked the
   same way and loaded with skops.io, which rebuilds only the types it trusts and runs no pickled
   code: beyond skops' defaults, it may trust only the types one model family lists (its
   `estimator_classes` and `saved_globals`, client_code/models), such as the mlp family's
   AdamOptimizer or xgboost's Booster; otherwise the joblib file is unpickled with an allow-list
   that resolves only the Pipeline's own references (client_code.persist.PIPELINE_GLOBALS), one
   family's estimator class, and from then on only that family's `saved_globals`; any other
   reference, such as `os.system` or another family's types, is refused before it is imported;
3. the result must be a Pipeline (or, from older runs, a bare estimator) whose estimator is one
   of a model family's `estimator_classes`, trained, carrying `fedsage_provenance_` whose model
   kind (when it names one) is that family.

The checksum catches a file changed or damaged after the run; it does not authenticate who
wrote the run folder, which is what the allow-lists are for.

A client's model.tar.gz (what SageMaker uploads from the job's SM_MODEL_DIR) holds model.joblib
and its checksum: `opened` extracts just those two regular files into a temporary folder (the
tarfile "data" filter: no links, no paths outside it) and the same three steps follow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from client_code import models
from client_code.constants import CHECKSUM_SUFFIX, SKOPS_SUFFIX
from client_code.persist import PIPELINE_GLOBALS
from orchestrator.errors import BadInput
from orchestrator.text import indefinite

MAX_MODEL_BYTES = 1 << 30
# A checksum file is one `sha256sum` line: 64 hex digits, two spaces, the file name (at most 255 bytes).
MAX_CHECKSUM_BYTES = 4096


def read_verified(path: Path) -> tuple[bytes, str]:
    """The model file's bytes and SHA-256, after checking them against `<path>.sha256`.

    Reads at most MAX_CHECKSUM_BYTES of the checksum file and MAX_MODEL_BYTES of the model;
    raises BadInput for a missing, oversized or mismatching file.
    """
    path = Path(path)
    checksum = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not path.is_file():
        raise BadInput(f"model file {path} not found; give the model.joblib of a run folder")
    if not checksum.is_file():
        raise BadInput(
            f"{checksum.name} is missing next to {path}; refusing to unpickle an unverified file "
            "(inspect the model.joblib of a run folder, which has its checksum)"
        )
    with open(checksum, "rb") as file:  # read a bounded head: the file may be anything, of any size
        head = file.read(MAX_CHECKSUM_BYTES + 1)
    if len(head) > MAX_CHECKSUM_BYTES:
        raise BadInput(
            f"{checksum} is larger than {MAX_CHECKSUM_BYTES} bytes, not a checksum file; "
            f"refusing to unpickle {path.name}"
        )
    match = re.match(r"\s*([0-9a-fA-F]{64})\b", head.decode(errors="replace"))
    if match is None:
        raise BadInput(f"{checksum} does not hold a SHA-256 checksum; refusing to unpickle {path.name}")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise BadInput(f"{path} is larger than 1 GiB, far more than a fedsage model; refusing to read it")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != match.group(1).lower():
        raise BadInput(
            f"{path} does not match its checksum in {checksum.name} (it changed after the run); refusing to unpickle it"
        )
    return data, digest


def estimator_of(model: Any) -> Any:
    """The trained estimator: a Pipeline's last step, or the model itself (older runs saved a bare estimator)."""
    from sklearn.pipeline import Pipeline

    return model[-1] if isinstance(model, Pipeline) else model


def family_globals(family: models.ModelFamily) -> set[tuple[str, str]]:
    """The (module, name) references a saved estimator of `family` may make: its classes and saved globals."""
    return {*family.estimator_classes, *family.saved_globals}


def _unpickle(path: Path, data: bytes) -> Any:
    """Unpickle joblib bytes through the allow-list of the module docstring; BadInput naming anything else."""
    import warnings

    from joblib.numpy_pickle import NumpyUnpickler

    estimators = {pair: family for family in models.FAMILIES.values() for pair in family.estimator_classes}
    chosen: list[models.ModelFamily] = []  # the family of the first estimator class the file refers to

    class _AllowListUnpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            pair = (module, name)
            family = estimators.get(pair)
            if family is not None and not chosen:
                chosen.append(family)
            elif pair not in PIPELINE_GLOBALS and not (chosen and pair in family_globals(chosen[0])):
                which = f"a fedsage {chosen[0].name} model" if chosen else "a fedsage model"
                raise BadInput(
                    f"{path} is not a fedsage model: it refers to {module}.{name}, which {which} never contains; "
                    "refusing to load it"
                )
            return super().find_class(module, name)

    if not data.startswith(b"\x80"):
        raise BadInput(f"{path} is not a fedsage model file (not an uncompressed joblib pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version differences are reported from the provenance
            return _AllowListUnpickler(str(path), io.BytesIO(data), ensure_native_byte_order=True).load()
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means: not a readable model
        raise BadInput(f"{path} is not a readable fedsage model ({type(exc).__name__}: {exc})") from None


def _type_names(family: models.ModelFamily) -> set[str]:
    """A family's allow-list as skops names its types ("module.Name")."""
    return {f"{module}.{name}" for module, name in family_globals(family)}


def _load_skops(path: Path, data: bytes) -> tuple[Any, set[str]]:
    """Load skops.io bytes trusting, beyond skops' defaults, only types one family lists; and those types.

    BadInput naming the types no single family's allow-list holds.
    """
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(data=data))
        if not any(untrusted <= _type_names(family) for family in models.FAMILIES.values()):
            known = set().union(*(_type_names(family) for family in models.FAMILIES.values()))
            strange = sorted(untrusted - known) or sorted(untrusted)
            raise BadInput(
                f"{path} holds types no fedsage model family contains ({', '.join(strange[:3])}); refusing to load it"
            )
        return sio.loads(data, trusted=sorted(untrusted)), untrusted
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to load means: not a readable model
        raise BadInput(f"{path} is not a readable fedsage model ({type(exc).__name__}: {exc})") from None


def load_model(path: Path) -> tuple[Any, str]:
    """Load a fedsage model after the checks in the module docstring; return it and the given file's SHA-256.

    Raises BadInput (one line) for an unverified file, a reference or type outside the allow-lists,
    an estimator no model family trains, an untrained estimator or one without provenance.
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    path = Path(path)
    data, digest = read_verified(path)
    sibling = path.with_suffix(SKOPS_SUFFIX)
    trusted: set[str] = set()
    if path.suffix == SKOPS_SUFFIX:
        model, trusted = _load_skops(path, data)
    elif sibling.is_file():
        model, trusted = _load_skops(sibling, read_verified(sibling)[0])
    else:
        model = _unpickle(path, data)
    estimator = estimator_of(model)
    family = models.family_of(estimator)
    if family is None:
        raise BadInput(
            f"{path} holds a {type(estimator).__name__}, which no fedsage model family trains "
            f"({', '.join(models.FAMILIES)}); refusing it"
        )
    if trusted - _type_names(family):
        raise BadInput(
            f"{path} holds types {indefinite(family.name)} model never contains ({', '.join(sorted(trusted))})"
        )
    provenance = getattr(model, "fedsage_provenance_", None)
    if (isinstance(model, Pipeline) and len(model.steps) != 2) or not isinstance(provenance, dict):
        raise BadInput(
            f"{path} is not a fedsage model (no fedsage_provenance_, or not a Pipeline of preprocessing and estimator)"
        )
    kind = (provenance.get("model") or {}).get("kind")
    if kind is not None and kind != family.name:
        raise BadInput(
            f"{path} holds {indefinite(family.name)} estimator but its provenance says kind {kind!r}; refusing it"
        )
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise BadInput(
            f"{path} holds a {type(estimator).__name__} without parameters; it is not a trained fedsage model"
        ) from None
    return model, digest


@contextlib.contextmanager
def opened(path: Path) -> Iterator[Path]:
    """The model file to verify and load: `path` itself, or the model.joblib inside a model.tar.gz.

    From an archive, only model.joblib and model.joblib.sha256 are extracted (regular files of at
    most MAX_MODEL_BYTES, through tarfile's "data" filter), into a temporary folder removed on
    exit. BadInput for an unreadable archive or one without them.
    """
    path = Path(path)
    if not path.name.endswith((".tar.gz", ".tgz")):
        yield path
        return
    if not path.is_file():
        raise BadInput(f"model archive {path} not found; give a client job's model.tar.gz or a run's model.joblib")
    names = ("model.joblib", "model.joblib" + CHECKSUM_SUFFIX)
    with tempfile.TemporaryDirectory(prefix="fedsage-inspect-") as folder:
        try:
            with tarfile.open(path, "r:gz") as archive:
                members = {member.name.removeprefix("./"): member for member in archive.getmembers()}
                for name in names:
                    member = members.get(name)
                    if member is None or not member.isfile() or member.size > MAX_MODEL_BYTES:
                        raise BadInput(
                            f"{path} holds no {name} (as a regular file under 1 GiB); give the model.tar.gz of a "
                            "fedsage client's training job"
                        )
                    archive.extract(member, folder, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BadInput(f"{path} is not a readable model.tar.gz ({exc})") from None
        yield Path(folder) / names[0]
