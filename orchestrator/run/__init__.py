"""One federation run: its lifecycle, job watching, events, input checks, run folder and report.

Modules, in the order a run uses them:

* `inputs.py`: the server's schema and test set, and checks of the client channels (bad input,
  exit 2, before anything is written);
* `folder.py`: the run folder `runs/<run-id>/`, its typed summary (run.json) and atomic writes;
* `lifecycle.py`: `FederationRun`, which binds the server, plans and launches the jobs, watches
  them and writes the run folder;
* `watcher.py`: polls a backend's jobs and calls back on changes;
* `events.py`: every event a run emits, for the console view and tests;
* `interrupts.py`: Ctrl-C and SIGTERM stop a run the same way, and stopping is never cut short;
* `logs.py`: server.log, where Flower's, gRPC's and fedsage's log records go during a run;
* `report.py`: metrics.json/.csv/.png and report.md from the history and the summary.

Import the submodules directly; this package module imports nothing, so the federation
package can use `run.events` without an import loop.
"""
