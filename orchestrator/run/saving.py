"""The run's model file: the final global model, or - when a run stops after a round - the last good one, partial.

Either way it is the global model of the last evaluated round as a Pipeline that scores raw rows
(client_code/persist.py), prior-corrected like the test-set evaluation, with its calibration curve
and test-set scores recorded for run.json and the report, and the warnings of run/verdict.py
about it (a model that predicts a single class, rounds that repeat a closed form). A partial model
carries `partial: true` and the round in its provenance; run.json (`partial`, `rounds_completed`)
and report.md say so.
"""

from __future__ import annotations

from pathlib import Path

from client_code.metrics import calibration
from client_code.persist import model_pipeline
from orchestrator.federation.server import FederationServer
from orchestrator.run import checkpoint, verdict
from orchestrator.run.curves import TestScores
from orchestrator.run.folder import RunFolder
from orchestrator.run.inputs import ServerData
from orchestrator.run.record import RunRecord


def has_partial_model(server: FederationServer | None, record: RunRecord, folder: RunFolder) -> bool:
    """Whether a run that stopped has a global model to keep: round 1 or later recorded, with its checkpoint.

    (A checkpoint a full disk kept from being written leaves no partial model; nor does a run
    stopped as a possible impostor's: any of its rounds may hold the impostor's update.)
    """
    if server is None or server.evaluator is None or server.compromised or not record.history.rounds:
        return False
    last = record.history.final().round
    if record.model_round == last:  # saved already, from that round (the run stopped after saving it)
        return False
    return last >= 1 and checkpoint.path(folder.root, last).is_file()


def save_model(
    folder: RunFolder,
    record: RunRecord,
    server: FederationServer,
    data: ServerData,
    partial: bool = False,
    stopped: str = "",
) -> Path:
    """Write model.joblib and model.skops from the last evaluated round (see the module docstring); return its path.

    Keeps the model's calibration and test-set scores in `record`; `partial` takes the model of a
    run that stopped (`stopped`: why, one line): the parameters of the last round in `record`'s
    history, read from its checkpoint, and marks the model (and `record`) partial unless that
    round is the last one asked for (a run stopped after its last round has its whole model).
    OSError naming the file if it fails (BadInput if that checkpoint is unreadable).
    """
    assert server.evaluator is not None and data.test is not None
    last = record.history.final().round
    record.partial = partial and last < record.federation.federation.rounds
    record.stopped = stopped
    # a stopped run's server thread may be inside a round: take the last round recorded, from its checkpoint
    final = checkpoint.path(folder.root, last)
    model = server.evaluator.model(checkpoint.read(final).arrays() if partial else server.final_parameters())
    schema = data.schema
    record.calibration = calibration(model, data.test, schema.get("positive_class"), schema["classes"])
    if schema.get("task") != "regression":  # a confusion matrix and ROC/PR curves need classes
        record.scores = TestScores.of(model, data.test.X, data.test.y, list(schema["classes"]))
    record.warnings.extend(verdict.model_warnings(model, data.test, schema, record.federation, last))
    path = folder.save_model(model_pipeline(schema, model), record.provenance(data))
    record.model_round = last
    return path
