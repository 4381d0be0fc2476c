"""A run's figures: plain data (run/figures.py) drawn here or in the plotter's helper process (run/plotter.py)."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import psutil
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from orchestrator.run.curves import TestScores
from orchestrator.run.figures import Figure, Line, Panel, render
from orchestrator.run.plotter import Plotter

PNG = b"\x89PNG\r\n\x1a\n"


def _scores(classes: int, rows: int = 400, seed: int = 0) -> TestScores:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    logits = rng.normal(size=(rows, classes)) + 2.0 * np.eye(classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return TestScores(y, proba, list(range(classes)))


def _figure(title: str = "a figure") -> Figure:
    return Figure(
        [Panel("loss", "round", lines=[Line([0, 1, 2], [0.3, None, 0.2], "server")], legend="best")], (5, 4), title
    )


def test_binary_curves_are_computed_as_scikit_learn_computes_them():
    scores = _scores(2)
    figure = scores.figure("run x")
    matrix, roc, pr = figure.panels
    assert matrix.matrix.cells == confusion_matrix(scores.y, scores.predicted(), labels=[0, 1]).tolist()
    assert matrix.matrix.labels == ["0", "1"]
    auc = roc_auc_score(scores.y, scores.proba[:, 1])
    assert [line.label for line in roc.lines] == [f"class 1 (AUC = {auc:.2f})", "Chance level (AUC = 0.5)"]
    average = average_precision_score(scores.y, scores.proba[:, 1])
    rate = scores.y.mean()
    assert [line.label for line in pr.lines] == [f"class 1 (AP = {average:.2f})", f"Chance level (AP = {rate:.2f})"]
    assert pr.lines[0].drawstyle == "steps-post" and roc.xlabel == "False Positive Rate (Positive label: 1)"
    assert render(figure).startswith(PNG)


def test_multiclass_curves_show_every_class_against_the_rest():
    scores = _scores(3)
    _, roc, pr = scores.figure("run x").panels
    assert [line.label.split(" (")[0] for line in roc.lines] == ["class 0", "class 1", "class 2", "Chance level"]
    assert [line.label.split(" (")[0] for line in pr.lines] == [
        "class 0",
        "class 1",
        "class 2",
    ]  # no single chance level
    assert roc.xlabel == "False Positive Rate"


def test_the_helper_draws_the_same_png_as_this_process():
    plotter = Plotter()
    plotter.start()
    try:
        figure = _figure()
        plotter.submit("a.png", figure)
        plotter.submit("a.png", figure)  # the same figure again: sent once
        drawn = plotter.png("a.png", figure)
    finally:
        plotter.close()
    assert drawn.startswith(PNG)
    assert drawn == render(figure)


def test_a_figure_that_changed_since_it_was_submitted_is_drawn_as_it_is_now():
    plotter = Plotter()
    plotter.start()
    try:
        plotter.submit("a.png", _figure("before"))
        now = _figure("after")
        assert plotter.png("a.png", now) == render(now)
    finally:
        plotter.close()


def test_without_the_helper_figures_are_drawn_here():
    plotter = Plotter()  # never started
    plotter.submit("a.png", _figure())
    assert plotter.png("a.png", _figure()) == render(_figure())


def test_a_helper_that_died_leaves_the_figure_to_this_process():
    plotter = Plotter()
    plotter.start()
    try:
        assert plotter._process is not None
        plotter._process.kill()
        plotter._process.wait()
        plotter.submit("a.png", _figure())
        assert plotter.png("a.png", _figure()) == render(_figure())
    finally:
        plotter.close()


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_the_helper_never_outlives_the_process_that_started_it(how):
    program = textwrap.dedent(
        f"""
        import os, signal, sys
        from orchestrator.run.plotter import Plotter
        plotter = Plotter()
        plotter.start()
        print(plotter._process.pid, flush=True)
        sys.stdin.readline()
        if {how!r} == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(0)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    helper = psutil.Process(int(parent.stdout.readline()))
    assert helper.is_running()
    parent.stdin.write("\n")
    parent.stdin.flush()
    parent.wait(timeout=60)
    assert parent.returncode == (-signal.SIGKILL if how == "sigkill" else 0)
    helper.wait(timeout=60)  # ended on its own: its stdin closed with the parent
    assert not psutil.pid_exists(helper.pid) or helper.status() == psutil.STATUS_ZOMBIE
    assert os.getpid() != helper.pid
