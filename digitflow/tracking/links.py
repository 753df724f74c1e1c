"""Addresses in MLflow's UI that open on its Model-training pages, and the saved views they open.

What decides the page, read from MLflow 3.17's own UI (the JavaScript under ``mlflow/server/js/build``):

- "GenAI" or "Model training" is each browser's choice, not the experiment's: the UI keeps it in
  ``localStorage`` (``mlflow.workflowType``, GenAI until the user switches) and the address's
  ``workflowType=machine_learning`` overrides it. The experiment tag ``mlflow.experimentKind`` is no longer
  read for it (the UI derives the kind from the workflow type) and the server has no setting for it, so
  every address we print carries the parameter.
- The runs table's columns and charts are browser state too, but an experiment can hold named *views*:
  the tag ``mlflow.sharedViewState.<id>`` holding ``{"name", "createdAt", "updatedAt", "state"}``, where
  ``state`` is the page's filter, sort, columns and charts as JSON. It is what the UI's "Views" > "Save
  view" writes; every visitor finds the view in that list, and ``runs?viewStateShareKey=<id>`` opens it
  (with ``compareRunsMode=CHART``, on its charts): the link the UI's own "copy link" gives.
- An address with any search parameter (``searchFilter``, ``orderByKey``, ...) does not load a view, so a
  view's filter and sort live in its state; the search parameters alone (sort and filter, the browser's
  own columns) are the fallback where the view cannot be saved (a read-only account on a server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

WORKFLOW = {"workflowType": "machine_learning"}
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "viewStateShareKey"
CHARTS = {"compareRunsMode": "CHART"}
# What tells the two models apart, in the order the table shows it: test first, then validation.
COMPARED_METRICS = ("test_accuracy", "test_log_loss", "val_accuracy", "val_log_loss")
STUDY_TAG = "digitflow.sweep.study"
MODEL_TAG = "digitflow.model"


def column(kind: str, key: str) -> str:
    """The UI's name of a column and sort key: ``metrics.`test_accuracy```."""
    return f"{kind}.`{key}`"


@dataclass(frozen=True)
class RunsView:
    """A saved view of an experiment's runs: which runs (an MLflow search filter), sorted by which metric,
    with which metric and param columns. Its charts: a bar chart per metric and, with params (a sweep's),
    their parallel coordinates against the sort metric."""

    id: str
    name: str
    order_by: str
    ascending: bool = False
    metrics: tuple[str, ...] = COMPARED_METRICS
    params: tuple[str, ...] = ()
    search_filter: str = ""

    @property
    def tag(self) -> str:
        return VIEW_TAG_PREFIX + self.id

    def state(self) -> dict[str, Any]:
        """The page state the view restores; the UI fills in its defaults for everything left out."""
        section = f"{self.id}-charts"
        charts = [
            _chart(f"{self.id}-{metric}", "BAR", section, metricKey=metric, displayName=metric)
            for metric in self.metrics
        ]
        if self.params:
            parallel = _chart(
                f"{self.id}-parallel", "PARALLEL", section, selectedParams=list(self.params),
                selectedMetrics=[self.order_by], showAllRuns=True, runsCountToCompare=100,
            )  # fmt: skip
            charts.insert(0, parallel)
        return {
            "searchFilter": self.search_filter,
            "orderByKey": column("metrics", self.order_by),
            "orderByAsc": self.ascending,
            "selectedColumns": [column("metrics", m) for m in self.metrics]
            + [column("params", p) for p in self.params],
            "compareRunCharts": charts,
            "compareRunSections": [
                dict(uuid=section, name=self.name, display=True, isReordered=False, deleted=False, isGenerated=False)
            ],
        }

    def tag_value(self, created_ms: int | None = None) -> str:
        now = int(time.time() * 1000)
        return json.dumps(
            {"name": self.name, "createdAt": created_ms or now, "updatedAt": now, "state": json.dumps(self.state())}
        )

    @classmethod
    def from_tag(cls, key: str, value: str) -> RunsView:
        """What ``digitflow ui`` needs of a stored view (its address, and the table's filter, sort and columns)."""
        envelope = json.loads(value)
        state = json.loads(envelope["state"])
        columns = state.get("selectedColumns", [])
        return cls(
            id=key.removeprefix(VIEW_TAG_PREFIX),
            name=envelope["name"],
            order_by=state["orderByKey"].removeprefix("metrics.").strip("`"),
            ascending=bool(state.get("orderByAsc")),
            metrics=tuple(c.removeprefix("metrics.").strip("`") for c in columns if c.startswith("metrics.")),
            params=tuple(c.removeprefix("params.").strip("`") for c in columns if c.startswith("params.")),
            search_filter=state.get("searchFilter", ""),
        )


def _chart(uuid: str, kind: str, section: str, **settings: Any) -> dict[str, Any]:
    """One chart card as the UI stores it (its own, not generated: the UI leaves it as it is)."""
    card = dict(uuid=uuid, type=kind, metricSectionId=section, runsCountToCompare=10, deleted=False, isGenerated=False)
    return {**card, **settings}


COMPARISON = RunsView(
    id="digitflow-comparison", name="digitflow: both models by test accuracy", order_by="test_accuracy"
)


def study_view(
    study: str, model: str | None = None, metric: str = "val_log_loss", ascending: bool = True,
    params: tuple[str, ...] = (),
) -> RunsView:  # fmt: skip
    """A sweep's trials: the study's runs of the model whose validation ``metric`` it optimised (all its runs
    without ``model``), best first, with the metric's test twin (reported, not used to choose), the other
    compared metrics and the model's searched ``params``."""
    twin = "test_" + metric.removeprefix("val_")
    search = f"tags.`{STUDY_TAG}` = '{study}'" + (f" and tags.`{MODEL_TAG}` = '{model}'" if model else "")
    return RunsView(
        id=f"digitflow-sweep-{study}",
        name=f"digitflow: sweep {study}, {model + ' runs' if model else 'runs'} by {metric}",
        order_by=metric,
        ascending=ascending,
        metrics=tuple(dict.fromkeys([metric, twin, *COMPARED_METRICS])),
        params=params,
        search_filter=search,
    )


def view_is_current(view: RunsView, tags: Mapping[str, str]) -> bool:
    """Whether the experiment's tags already hold this view, as this version of the project writes it."""
    try:
        return json.loads(json.loads(tags[view.tag])["state"]) == view.state()
    except (KeyError, ValueError, TypeError):
        return False


def save_view(client: Any, experiment_id: str, view: RunsView, tags: Mapping[str, str]) -> None:
    """Write the view into the experiment (``tags``: its current tags), unless it is already there as is."""
    if view_is_current(view, tags):
        return
    try:
        created = json.loads(tags[view.tag]).get("createdAt")
    except (KeyError, ValueError, AttributeError):
        created = None
    client.set_experiment_tag(experiment_id, view.tag, view.tag_value(created))


def _base(server: str) -> str:
    return server.rstrip("/")


def runs_url(server: str, experiment_id: str, view: RunsView, saved: bool = True, charts: bool = False) -> str:
    """The experiment's Model-training runs page with ``view`` open (on its charts with ``charts``); when the
    view could not be ``saved``, the same filter and sort as search parameters."""
    query: dict[str, str] = dict(WORKFLOW)
    if saved:
        query[VIEW_KEY] = view.id
    else:
        query.update(orderByKey=column("metrics", view.order_by), orderByAsc=str(view.ascending).lower())
        if view.search_filter:
            query["searchFilter"] = view.search_filter
    if charts:
        query.update(CHARTS)
    return f"{_base(server)}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def run_url(server: str, experiment_id: str, run_id: str) -> str:
    """One run's page, with the Model-training sidebar (Runs, Models, Model registry), not the GenAI one."""
    return f"{_base(server)}/#/experiments/{experiment_id}/runs/{run_id}?{urlencode(WORKFLOW)}"
