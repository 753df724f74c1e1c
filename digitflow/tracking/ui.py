"""``digitflow ui``: MLflow's UI on the comparison of the two models (or of a sweep's trials), in one command.

    digitflow ui [--port N] [--no-browser] [--study NAME]

With the project's store (``mlflow.db``, or an ``MLFLOW_TRACKING_URI`` that is not a server) it runs
``mlflow ui`` on 127.0.0.1, unless one already serves that store on the port, and keeps it in the foreground
until Ctrl-C, then stops it. With a server in ``MLFLOW_TRACKING_URI`` it only prints (and opens) addresses.
Either way it saves the view those addresses open (``tracking.links``) and prints the same
comparison as a table, from ``mlflow.search_runs``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import webbrowser
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digitflow.core.errors import DigitflowError
from digitflow.core.ports import HOST, free_port, port_is_free
from digitflow.tracking.faults import store_errors
from digitflow.tracking.links import COMPARISON, RunsView, runs_url, save_view, study_view

log = logging.getLogger(__name__)

DEFAULT_PORT = 5000  # `mlflow ui`'s own default, taken when free
LOG_FILE = ".mlflow-ui.log"
START_TIMEOUT_S = 120.0
TABLE_ROWS = 20
STOP_TIMEOUT_S = 20.0


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def open_experiment(uri: str, name: str) -> Any:
    """The experiment, or the message that says to run the pipeline first (an empty store is not created)."""
    import mlflow

    store_file = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if store_file is not None and not Path(store_file).is_file():
        raise DigitflowError(f"there is no MLflow store {store_file} yet: run `dvc repro` first")
    with store_errors(uri, f"reading the experiment {name!r}", name):
        experiment = mlflow.MlflowClient(uri).get_experiment_by_name(name)
    if experiment is None:
        raise DigitflowError(f"the MLflow store {uri} has no experiment {name!r} yet: run `dvc repro` first")
    return experiment


def try_save_view(uri: str, experiment: Any, view: RunsView) -> bool:
    """Save the view; False (with a warning) where the store refuses it, e.g. a read-only account."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        save_view(mlflow.MlflowClient(uri), experiment.experiment_id, view, experiment.tags)
    except MlflowException as exc:
        log.warning(
            "could not save the view %r in the experiment (%s); the addresses below filter and sort, with "
            "your browser's own columns",
            view.name,
            exc.message,
        )
        return False
    return True


def _number(value: Any) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"  # NaN: the run has no such metric


def _param(value: Any) -> str:
    """A param as logged, real numbers to 4 significant digits (a sweep's lr 0.010642226760112145: 0.01064)."""
    if not isinstance(value, str):
        return "-"  # the run has no such param
    try:
        number = float(value)
    except ValueError:
        return value
    return value if value.lstrip("-").isdigit() else f"{number:.4g}"


def runs_table(experiment_id: str, view: RunsView, rows: int = TABLE_ROWS) -> str:
    """The view's runs as the UI sorts them: run, model, dataset, then its metric and param columns."""
    import mlflow

    order = "ASC" if view.ascending else "DESC"
    runs = mlflow.search_runs(
        [experiment_id],
        filter_string=view.search_filter,
        order_by=[f"metrics.`{view.order_by}` {order}", "attributes.start_time DESC"],
        max_results=rows + 1,
    )
    if runs.empty:
        return f"no runs match {view.search_filter}" if view.search_filter else "the experiment has no runs yet"
    shown = runs.head(rows)
    table = shown.reindex(columns=["tags.mlflow.runName", "tags.digitflow.model", "tags.digitflow.dataset"])
    table.columns = ["run", "model", "dataset"]
    for metric in view.metrics:
        table[metric] = shown.reindex(columns=[f"metrics.{metric}"]).iloc[:, 0].map(_number)
    for param in view.params:
        table[param] = shown.reindex(columns=[f"params.{param}"]).iloc[:, 0].map(_param)
    table = table.fillna("-").astype(str)
    widths = {name: max(len(name), table[name].str.len().max()) for name in table.columns}
    flush_left = {name: lambda text, width=width: text.ljust(width) for name, width in widths.items()}
    text = "\n".join(
        line.rstrip() for line in table.to_string(index=False, justify="left", formatters=flush_left).splitlines()
    )
    return text + (f"\n(the first {rows} runs; the UI lists them all)" if len(runs) > rows else "")


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def serves_store(port: int, experiment: Any) -> bool | None:
    """Whether an MLflow UI on ``port`` serves this experiment (same id, name and creation time); None when
    nothing answers there, False when something else does."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=5):
            pass
    except OSError:
        return None
    answer = _get_json(
        f"http://{HOST}:{port}/ajax-api/2.0/mlflow/experiments/get?experiment_id={experiment.experiment_id}"
    )
    found = (answer or {}).get("experiment", {})
    return found.get("name") == experiment.name and int(found.get("creation_time", -1)) == experiment.creation_time


def start_server(uri: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """``mlflow ui`` on 127.0.0.1 in its own process group (so it and its worker stop together), logging to
    ``log_path``: its request log would bury the addresses."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # GenAI job workers: not needed here
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", HOST,
               "--port", str(port), "--workers", "1"]  # fmt: skip
    with log_path.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_serving(process: subprocess.Popen[bytes], port: int, experiment: Any, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not serves_store(port, experiment):
        if process.poll() is not None:
            raise DigitflowError(
                f"mlflow ui exited with {process.returncode}; the end of {log_path}:\n{_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise DigitflowError(f"mlflow ui did not answer in {START_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.5)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM its process group; SIGKILL what is left after STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def browser_available(environ: Mapping[str, str] | None = None, platform: str = sys.platform) -> bool:
    """A graphical browser can open: macOS and Windows have one; elsewhere only with a display (without
    one, ``webbrowser`` would start a text browser in this terminal)."""
    environ = os.environ if environ is None else environ
    return platform in ("darwin", "win32") or bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def show(server: str, experiment: Any, view: RunsView, saved: bool, browser: bool) -> None:
    """Print the two addresses and the table; open the first in the browser."""
    table_url = runs_url(server, experiment.experiment_id, view, saved)
    charts_url = runs_url(server, experiment.experiment_id, view, saved, charts=True)
    runs = f"runs, {'lowest' if view.ascending else 'highest'} {view.order_by} first:"
    print(f"MLflow UI, experiment {experiment.name!r} (Model training), view {view.name!r}:")
    print(f"  {runs} {table_url}")
    print(f"  {'their charts:'.ljust(len(runs))} {charts_url}")
    print()
    print(runs_table(experiment.experiment_id, view))
    sys.stdout.flush()
    if browser and browser_available():
        webbrowser.open(table_url, new=2)


def study_runs_link(study: str, model: str, metric: str, ascending: bool, params: tuple[str, ...]) -> str:
    """Where to compare a sweep's trials, for its summary: saves the study's view, then gives its address on
    a server, or the ``digitflow ui --study`` command that serves a local store and opens it."""
    from digitflow.core.params import load_params
    from digitflow.tracking.store import tracking_uri

    uri = tracking_uri()
    experiment = open_experiment(uri, load_params().tracking.experiment)
    view = study_view(study, model, metric, ascending, params)
    saved = try_save_view(uri, experiment, view)
    return runs_url(uri, experiment.experiment_id, view, saved) if is_server(uri) else f"digitflow ui --study {study}"


def open_ui(study: str | None, wanted_port: int | None, browser: bool) -> None:
    """``digitflow ui``: see the module's docstring."""
    import mlflow

    from digitflow.core.params import load_params
    from digitflow.tracking.store import tracking_uri

    uri = tracking_uri()
    experiment = open_experiment(uri, load_params().tracking.experiment)
    view = COMPARISON if study is None else study_view(study)
    stored = experiment.tags.get(view.tag) if study else None
    if stored:  # as the sweep saved it, with its metric and params
        view, saved = RunsView.from_tag(view.tag, stored), True
    else:
        saved = try_save_view(uri, experiment, view)
    mlflow.set_tracking_uri(uri)
    if is_server(uri):
        show(uri, experiment, view, saved, browser)
        return
    port = wanted_port or DEFAULT_PORT
    running = serves_store(port, experiment)
    if running:
        log.info("mlflow ui already serves this store on port %d", port)
        show(f"http://{HOST}:{port}", experiment, view, saved, browser)
        return
    if not port_is_free(port):
        if wanted_port is not None:
            raise DigitflowError(f"port {port} is taken by another program: choose another with --port")
        port = free_port()
    log_path = Path.cwd() / LOG_FILE
    log.info("starting mlflow ui for %s on http://%s:%d (its log: %s)", uri, HOST, port, log_path)
    # Ctrl-C is how the server is stopped: a shell that started this command in the background (or a CI
    # runner) may have it ignore SIGINT, which Python then leaves ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = start_server(uri, port, log_path)
    try:
        wait_until_serving(process, port, experiment, log_path)
        show(f"http://{HOST}:{port}", experiment, view, saved, browser)
        print(f"\nserving mlflow ui on http://{HOST}:{port}; press Ctrl-C to stop it", flush=True)
        try:
            process.wait()
        except KeyboardInterrupt:
            log.info("stopping mlflow ui")
            return
        raise DigitflowError(f"mlflow ui exited with {process.returncode}; the end of {log_path}:\n{_tail(log_path)}")
    finally:
        stop_server(process)
