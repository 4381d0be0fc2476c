"""What the user sees while a run goes on: one line per event, a spinner while waiting, a summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table

from orchestrator.backends import COMPLETED, FAILED, STOPPED, JobStatus
from orchestrator.run.events import (
    ClientJoined,
    ClientLeft,
    ClientRefused,
    DataPrepared,
    JobChanged,
    JobLog,
    PrivacySpent,
    RoundFinished,
    RunEvent,
    RunWarning,
    ServerListening,
    StatisticsDone,
    Stopping,
    UpdateRejected,
)
from orchestrator.run.lifecycle import RunOutcome
from orchestrator.text import fmt, privacy

if TYPE_CHECKING:
    from orchestrator.data.prepare import PrepareSummary

STYLES = {COMPLETED: "green", FAILED: "red", STOPPED: "yellow"}
OUTCOME_FILES = ("metrics.json", "metrics.csv", "metrics.png", "test_curves.png", "report.md")  # listed after the model


def _server_metrics(task: str | None) -> tuple[str, ...]:
    """run/report.py `server_metrics`, imported on first use: the console exists before the run launches its jobs."""
    from orchestrator.run.report import server_metrics

    return server_metrics(task)


def data_table(summary: PrepareSummary, title: str) -> Table:
    """Rows and class balance per client split and for the test set."""
    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for cls in summary.classes:
        table.add_column(f"class {cls}", justify="right")
    for part in summary.parts:
        table.add_row(part.name, part.split, f"{part.rows:,}", *(f"{n:,}" for n in part.class_counts.values()))
    return table


class RunView:
    """Renders run events on a Rich console.

    Rounds and notable events are printed as lines; below them a live area shows every job's
    state (with SageMaker's secondary status) and whether its client is connected, and what the
    run is waiting for.
    """

    def __init__(self, console: Console, banner: str | Callable[[], str] | None = None) -> None:
        """`banner`: the command's first line (or what makes it), printed with the first event (input checks passed)."""
        self.console = console
        self.banner = banner
        self.jobs: dict[str, JobStatus] = {}
        self.connected: set[str] = set()
        self.waiting = "starting"
        self.task: str | None = None  # the schema's, from the statistics phase: which metrics a round shows
        self.live: Live | None = None
        self._finished = False
        self._spent: list[PrivacySpent] = []  # printed after the line of the round they belong to

    def __enter__(self) -> RunView:
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()
        self._print_spent(None)  # a round released but never evaluated (the run stopped): its privacy is spent

    def _print_spent(self, up_to: int | None) -> None:
        """The privacy lines of the rounds up to `up_to` (every one if None), after those rounds' lines."""
        while self._spent and (up_to is None or self._spent[0].round <= up_to):
            self.console.print(f"  [dim]privacy spent: {privacy(self._spent.pop(0).budget)}[/]")

    def _render(self) -> RenderableType:
        spinner = Spinner("dots", text=self.waiting)
        if not self.jobs:
            return spinner
        table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
        for column in ("client", "job", "connected"):
            table.add_column(column)
        for client, job in self.jobs.items():
            style = STYLES.get(job.status, "")
            table.add_row(
                client,
                f"[{style}]{job.status} ({job.secondary_status})[/]"
                if style
                else f"{job.status} ({job.secondary_status})",
                "yes" if client in self.connected else "",
            )
        return Group(table, spinner)

    def _refresh(self, waiting: str | None = None) -> None:
        if waiting is not None:
            self.waiting = waiting
        if self.live is not None:
            self.live.update(self._render())

    def __call__(self, event: RunEvent | object) -> None:
        """Show one event."""
        c = self.console
        if self.banner is not None:  # bad input ends the command before any event: its one line stands alone
            c.print(self.banner() if callable(self.banner) else self.banner)
            self.banner = None
        waiting = None
        if isinstance(event, DataPrepared):
            title = f"data: built-in '{event.dataset}' (label {event.summary.label}) prepared in {event.summary.out}"
            c.print(data_table(event.summary, title))
            waiting = "starting the server"
        elif isinstance(event, ServerListening) and event.virtual:
            c.print(f"[green]✓[/] server ready for {event.clients} virtual clients in this process (no port, no TLS)")
            waiting = f"waiting for clients to join (0/{event.clients})"
        elif isinstance(event, ServerListening):
            c.print(f"[green]✓[/] server listening on [bold]{event.address}[/] (TLS; only this run's clients admitted)")
            waiting = f"waiting for clients to join (0/{event.clients})"
        elif isinstance(event, JobChanged):
            self.jobs[event.client] = event.status
            if event.status.terminal:
                s = event.status
                style = STYLES.get(s.status, "yellow")
                reason = f": {s.failure_reason}" if s.failure_reason and s.status != COMPLETED else ""
                c.print(f"  [{style}]job {event.client}: {s.status}{reason}[/]")
        elif isinstance(event, JobLog):
            c.print(f"  [dim]last lines of {event.client}'s log:[/]")
            for line in event.lines:
                c.print(f"  [dim]| {escape(line)}[/]")
        elif isinstance(event, ClientJoined):
            self.connected.add(event.name)
            c.print(f"  client {event.name} joined ({event.connected}/{event.expected})")
            waiting = (
                "round 1: training"
                if event.connected >= event.expected
                else f"waiting for clients to join ({event.connected}/{event.expected})"
            )
        elif isinstance(event, ClientLeft):
            self.connected.discard(event.name)
            if not self._finished:
                why = f": {escape(event.reason)}" if event.reason else ""
                c.print(f"  [yellow]client {event.name} disconnected{why}[/]")
        elif isinstance(event, PrivacySpent):  # the strategy spends it when it aggregates, before the round's line
            self._spent.append(event)
        elif isinstance(event, ClientRefused):
            claimed = f" claiming to be {event.claimed_name}" if event.claimed_name else ""
            c.print(f"  [red]refused a connection from {escape(event.peer)}{claimed}: {escape(event.reason)}[/]")
        elif isinstance(event, StatisticsDone):
            self.task = event.task or None
            inferred = f"; inferred categorical: {', '.join(event.inferred)}" if event.inferred else ""
            positive = f"; positive class: {event.positive_class}" if event.positive_class is not None else ""
            c.print(
                f"[green]✓[/] statistics phase ({event.seconds:.2f} s): schema from the {event.source}, "
                f"{event.features} model inputs{inferred}{positive}"
            )
            if event.task_note:
                c.print(f"  {escape(event.task_note)}")
            waiting = "round 1: training"
        elif isinstance(event, RunWarning):
            c.print(f"  [yellow]warning: {escape(event.message)}[/]")
        elif isinstance(event, UpdateRejected):
            c.print(f"  [red]round {event.round}: update of {event.name} left out: {event.reason}[/]")
        elif isinstance(event, RoundFinished):
            r = event.record
            metrics = "  ".join(f"{m} {fmt(r.server.get(m))}" for m in _server_metrics(self.task))
            timing = f"  [dim]{r.seconds:.2f} s[/]" if r.round else ""
            c.print(f"round {r.round}/{event.rounds}  {metrics}{timing}")
            self._print_spent(r.round)
            if r.round >= event.rounds:
                self._finished = True
                waiting = "waiting for the jobs to save their models and exit"
            else:
                waiting = f"round {r.round + 1}: training"
        elif isinstance(event, Stopping):
            c.print(f"[yellow]stopping {len(event.jobs)} job(s) ({', '.join(event.jobs)}): {event.reason}[/]")
        self._refresh(waiting)


def print_outcome(console: Console, outcome: RunOutcome, started: float | None = None) -> None:
    """The final metrics against round 0, the clients, and where everything was written.

    `started` (time.monotonic()) is when the command started: "finished in" counts the whole
    command from there (start-up, data generation, the run, the reports); without it, the run's own time.
    """
    first, final = outcome.history.rounds[0], outcome.history.final()
    positive = f" (positive class: {outcome.positive_class})" if outcome.positive_class is not None else ""
    table = Table(title=f"run {outcome.run_id}: test-set metrics{positive}", title_justify="left")
    table.add_column("metric")
    table.add_column("round 0", justify="right")
    table.add_column(f"round {final.round}", justify="right")
    for metric in _server_metrics(outcome.task):
        table.add_row(metric, fmt(first.server.get(metric)), fmt(final.server.get(metric)))
    console.print(table)
    gains = outcome.history.client_gains(outcome.task)
    if gains:
        gain_table = Table(
            title="what each client gains (its own validation data; gain > 0: the federated model is better)",
            title_justify="left",
        )
        gain_table.add_column("client")
        metrics = list(next(iter(gains.values())))
        for metric in metrics:
            gain_table.add_column(f"{metric}: local -> federated (gain)", justify="right")
        for name, scores in gains.items():
            cells = [
                f"{fmt(scores[m]['local'])} -> {fmt(scores[m]['federated'])} ({fmt(scores[m]['gain'])})"
                for m in metrics
            ]
            gain_table.add_row(name, *cells)
        console.print(gain_table)
    for name, job in outcome.jobs.items():
        console.print(
            f"  client {name}: {job.status}" + (f", model {job.model_artifact}" if job.model_artifact else "")
        )
    cal = outcome.calibration
    if "positive_class" in cal:
        console.print(
            f"  calibration: mean predicted probability of {cal['positive_class']} {fmt(cal['mean_predicted'])}, "
            f"observed rate {fmt(cal['observed'])} (calibration.png)"
        )
    if outcome.privacy:
        console.print(f"  differential privacy, {privacy(outcome.privacy)}")
    for warning in outcome.warnings:
        console.print(f"[yellow]warning: {warning}[/]")
    seconds = time.monotonic() - started if started is not None else outcome.seconds
    console.print(f"[green]✓[/] finished in {seconds:.1f} s; run folder [bold]{outcome.run_dir}[/]")
    files = {"model": outcome.model_path}
    files |= {name: outcome.run_dir / name for name in OUTCOME_FILES if (outcome.run_dir / name).exists()}
    width = max(map(len, files))
    for name, path in files.items():
        console.print(f"  {name:<{width}}  {path}", highlight=False)
