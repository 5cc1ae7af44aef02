"""The tune step's trials report: every trial of the Katib search with its parameters and its
objective, the best one marked, as the KFP UI shows an HTML artifact (self-contained, in a
sandboxed iframe; components/common/report.py).

Read from Katib's Trials (kubeflow.org/v1beta1, labelled katib.kubeflow.org/experiment=<name>):
`spec.parameterAssignments` and `status.observation.metrics`. A trial's objective is taken as
Katib takes it, by the metric's strategy (`latest`: the last epoch's value), so the marked best
is the Experiment's own `currentOptimalTrial`. Every value from the cluster is escaped.
"""

from __future__ import annotations

import math

from components.common.report import esc, page

UNAVAILABLE = "unavailable"  # Katib's value of a metric a trial never reported
STATES = ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable", "Running")
STYLE = (
    "<style>#trials tr.best td { background: #dafbe1; font-weight: 600; }"
    " #trials td.num { text-align: right; font-variant-numeric: tabular-nums; }"
    " #trials td:first-child { white-space: nowrap; }</style>"
)


def trials_report(experiment: dict, trials: list[dict], problem: str = "") -> str:
    """The HTML page of the ended `experiment` and its `trials`; `problem` says why the trials
    could not be listed (then the best trial alone is shown)."""
    spec, status = experiment.get("spec") or {}, experiment.get("status") or {}
    objective = spec.get("objective") or {}
    metrics = [objective.get("objectiveMetricName", "")]
    metrics += objective.get("additionalMetricNames") or []
    optimal = status.get("currentOptimalTrial") or {}
    best = optimal.get("bestTrialName", "")
    if not trials and optimal.get("parameterAssignments"):
        trials = [_optimal_as_trial(best, optimal)]
    names = [p.get("name", "") for p in spec.get("parameters") or []]
    rows = sorted(
        (_row(trial, objective, metrics, names, best) for trial in trials),
        key=lambda row: _order(row, objective.get("type")),
    )
    header = ["", "trial", "status", *names, *(f"{m} ({_strategy(objective, m)})" for m in metrics)]
    body = "".join(_tr(row) for row in rows)
    table = (
        '<table id="trials"><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in header)
        + f"</tr>{body}</table>"
    )
    note = f'<p class="bad">The trials could not be listed: {esc(problem)}</p>' if problem else ""
    return page(
        _title(rows, metrics[0]),
        _subtitle(experiment, trials, metrics[0], _strategy(objective, metrics[0])),
        [STYLE, note, "<h2>Trials</h2>", table],
    )


def objective_value(trial: dict, objective: dict, metric: str) -> str | None:
    """`metric` of `trial` as Katib reads it for the Experiment (getObjectiveMetricValue): by
    the trial's strategy for it, falling back to `latest` when min or max is unavailable."""
    strategy = _strategy((trial.get("spec") or {}).get("objective") or objective, metric)
    observed = ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []
    for m in observed:
        if m.get("name") == metric:
            value = m.get(strategy)
            if value in (None, UNAVAILABLE):
                value = m.get("latest")
            return None if value in (None, "", UNAVAILABLE) else str(value)
    return None


def _strategy(objective: dict, metric: str) -> str:
    """The metric's strategy: the objective's metricStrategies, else Katib's default."""
    for s in objective.get("metricStrategies") or []:
        if s.get("name") == metric:
            return str(s.get("value"))
    return {"maximize": "max", "minimize": "min"}.get(objective.get("type"), "latest")


def _row(trial: dict, objective: dict, metrics: list[str], names: list[str], best: str) -> dict:
    assigned = {
        a.get("name"): a.get("value")
        for a in (trial.get("spec") or {}).get("parameterAssignments") or []
    }
    name = (trial.get("metadata") or {}).get("name", "")
    return {
        "name": name,
        "best": bool(best) and name == best,
        "state": _state(trial),
        "parameters": [assigned.get(n, "") for n in names],
        "metrics": [objective_value(trial, objective, m) for m in metrics],
    }


def _state(trial: dict) -> str:
    """The trial's last condition that holds (Katib's Trial conditions)."""
    held = {
        c.get("type")
        for c in (trial.get("status") or {}).get("conditions") or []
        if str(c.get("status")) == "True"
    }
    return next((s for s in STATES if s in held), "Created" if held else "Pending")


def _order(row: dict, kind: str | None) -> tuple:
    """The best first, then by objective (the better first), trials with none last."""
    value = _number(row["metrics"][0])
    score = 0.0 if value is None else (value if kind == "minimize" else -value)
    return (not row["best"], value is None, score, row["name"])


def _number(text: str | None) -> float | None:
    """`text` as a number to order by; None when there is none, when it is not a number, or
    when it is not finite (a diverged trial's nan loss), so it sorts with those that have none."""
    try:
        value = float(text)  # None: TypeError
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _tr(row: dict) -> str:
    mark = "&#9733; best" if row["best"] else ""
    cells = [f"<td>{mark}</td>", f"<td>{esc(row['name'])}</td>", f"<td>{esc(row['state'])}</td>"]
    cells += [f'<td class="num">{esc(v)}</td>' for v in row["parameters"]]
    cells += [f'<td class="num">{esc("—" if v is None else v)}</td>' for v in row["metrics"]]
    attributes = ' class="best"' if row["best"] else ""
    return f"<tr{attributes}>{''.join(cells)}</tr>"


def _title(rows: list[dict], metric: str) -> str:
    best = next((row for row in rows if row["best"]), None)
    if best is None or best["metrics"][0] is None:
        return f"Katib search: no trial reported {metric}"
    return f"Katib search: best {metric} {best['metrics'][0]} ({best['name']})"


def _subtitle(experiment: dict, trials: list[dict], metric: str, strategy: str) -> str:
    meta, spec = experiment.get("metadata") or {}, experiment.get("spec") or {}
    algorithm = (spec.get("algorithm") or {}).get("algorithmName", "")
    states: dict[str, int] = {}
    for trial in trials:
        states[_state(trial)] = states.get(_state(trial), 0) + 1
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
    last = " (its last epoch's)" if strategy == "latest" else ""
    return (
        f"Experiment {meta.get('namespace', '')}/{meta.get('name', '')}, algorithm {algorithm}; "
        f"{len(trials)} trials ({counts or 'none'}); each trial's {metric} is its {strategy} "
        f"reported value{last}."
    )


def _optimal_as_trial(name: str, optimal: dict) -> dict:
    """The Experiment's best trial `name`, shaped as a Trial, for a report whose trials are
    missing. It carries no objective: it is read by the Experiment's."""
    return {
        "metadata": {"name": name},
        "spec": {"parameterAssignments": optimal["parameterAssignments"]},
        "status": {"observation": optimal.get("observation"),
                   "conditions": [{"type": "Succeeded", "status": "True"}]},
    }  # fmt: skip
