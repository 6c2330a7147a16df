"""The comparison's files: runs.csv, and report.html, one self-contained HTML file: plotly.js is inlined, so
it opens from a file:// URL with no network and no CDN. Sections: runs, seed groups, learning curves, F1
against each varied parameter, the Optuna study, significance of the best run's lead, per-question
breakdowns, notes."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import optuna
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from qa_lab.analysis.breakdown import DIMENSIONS
from qa_lab.analysis.compare import PRINTED, Comparison
from qa_lab.core.artifacts import write_text

PALETTE = plotly.colors.qualitative.Dark24
MAX_BREAKDOWN_RUNS = 8  # bars per bucket in the breakdown charts: the best runs only
STATUS_LINE = {"complete": "solid", "pruned": "dash", "failed": "dot"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.significant { color: #0a7d20; font-weight: bold; }
.noise { color: #888; }
.pruned { color: #b36b00; }
.failed { color: #c0392b; }
.note { color: #555; font-size: 0.9em; }
"""


def write_outputs(comparison: Comparison, out: Path) -> tuple[Path, Path]:
    """runs.csv and report.html in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / "runs.csv", out / "report.html"
    write_text(csv_path, comparison.runs.table.to_csv())
    write_text(html_path, render(comparison))
    return csv_path, html_path


def render(comparison: Comparison) -> str:
    runs = comparison.runs
    sections = [
        _section("runs", "Runs (best F1 first)", _table(runs.table[[c for c in [*PRINTED, "note"] if c in runs.table and runs.table[c].notna().any()]], status_classes=True)),
    ]
    if not comparison.groups.empty:
        sections.append(_section("seeds", "Same config, different seeds (mean ± std)", _table(comparison.groups.set_index("runs"))))
    sections.append(_section("curves", "Learning curves", _figure(_curves(comparison), "curves-figure")))
    if comparison.varied:
        figures = "".join(_figure(_against(comparison, key), f"param-{i}") for i, key in enumerate(comparison.varied))
        sections.append(_section("parameters", "Best F1 against each varied parameter", figures))
    if comparison.study is not None:
        sections.append(_section("study", f"Optuna study {html.escape(comparison.study.study_name)}", _study_views(comparison.study)))
    sections.append(_section("significance", "Is the best run's lead real?", _significance(comparison)))
    if any(not table.empty for table in comparison.breakdowns.values()):
        sections.append(_section("breakdown", "Per-question breakdown (F1)", _breakdowns(comparison)))
    if comparison.notes:
        items = "".join(f"<li>{html.escape(note)}</li>" for note in comparison.notes)
        sections.append(_section("notes", "Notes", f"<ul class='note'>{items}</ul>"))
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>qa-lab compare</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>qa-lab compare</h1><p class='note'>{len(runs.table)} runs, generated {created}</p>"
        + "".join(sections)
        + "</body></html>"
    )


def _section(anchor: str, title: str, content: str) -> str:
    return f"<section id='{anchor}'><h2>{title}</h2>{content}</section>"


def _table(frame: pd.DataFrame, status_classes: bool = False) -> str:
    text = frame.to_html(float_format=lambda v: f"{v:.4g}", na_rep="", escape=True, border=0)
    if status_classes:  # colour pruned and failed rows' status cells
        for status in ("pruned", "failed"):
            text = text.replace(f"<td>{status}</td>", f"<td class='{status}'>{status}</td>")
    return text


def _figure(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def _curves(comparison: Comparison) -> go.Figure:
    """EM and F1 per epoch for every run; a pruned run's line is dashed and ends with an x."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Exact match", "F1"))
    epochs, table = comparison.runs.epochs, comparison.runs.table
    for number, run in enumerate(table.index):
        color = PALETTE[number % len(PALETTE)]  # one colour per run in both panels
        curve = epochs[epochs["run"] == run].sort_values("epoch") if not epochs.empty else epochs
        if curve.empty:
            continue
        status = table.loc[run, "status"]
        symbols = ["circle"] * (len(curve) - 1) + ["x" if status == "pruned" else "circle"]
        for column, metric in ((1, "exact_match"), (2, "f1")):
            figure.add_trace(
                go.Scatter(
                    x=curve["epoch"], y=curve[metric], mode="lines+markers", name=f"{run} ({status})",
                    legendgroup=run, showlegend=column == 1, line={"dash": STATUS_LINE.get(status, "solid"), "color": color},
                    marker={"symbol": symbols, "size": 9},
                ),
                row=1, col=column,
            )
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_layout(height=420, margin={"t": 40})
    return figure


def _against(comparison: Comparison, key: str) -> go.Figure:
    table = comparison.runs.table.dropna(subset=["f1"])  # runs that reached an evaluation
    values = pd.Series({run: comparison.runs.parameters[run].get(key) for run in table.index})
    numeric = pd.to_numeric(values, errors="coerce")
    x = numeric if numeric.notna().all() else values.astype(str)
    figure = go.Figure(go.Scatter(x=x, y=table["f1"], mode="markers", text=list(table.index), marker={"size": 10}))
    log_axis = numeric.notna().all() and (numeric > 0).all() and numeric.max() / numeric.min() >= 100
    figure.update_xaxes(title_text=key, type="log" if log_axis else None)
    figure.update_yaxes(title_text="best F1")
    figure.update_layout(height=320, width=520, margin={"t": 20})
    return figure


def _study_views(study: optuna.Study) -> str:
    views = (
        ("history", "Optimisation history", optuna.visualization.plot_optimization_history),
        ("intermediate", "Intermediate values (per epoch)", optuna.visualization.plot_intermediate_values),
        ("importances", "Parameter importances", optuna.visualization.plot_param_importances),
    )
    parts = []
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no complete trials" is said in the report instead
    for name, title, plot in views:
        try:
            parts.append(f"<h3>{title}</h3>" + _figure(plot(study), f"study-{name}"))
        except (ValueError, RuntimeError, ZeroDivisionError) as error:  # e.g. too few complete trials
            parts.append(f"<h3>{title}</h3><p class='note' id='study-{name}-missing'>not shown: {html.escape(str(error))}</p>")
    return "".join(parts)


def _significance(comparison: Comparison) -> str:
    tests = comparison.tests
    if comparison.best_run is None:
        return "<p class='note'>No run has per-question scores (see the notes).</p>"
    if tests.empty:
        return f"<p class='note'>No other run was scored on the same questions as {html.escape(comparison.best_run)}.</p>"
    explanation = (
        f"<p class='note'>Paired bootstrap over the validation questions both runs answered: the per-question F1 of "
        f"<b>{html.escape(comparison.best_run)}</b> minus the other run's, resampled with replacement; "
        "the interval is the percentile interval of the mean difference (F1 points), the p-value is two-sided for "
        "\"no difference\"; a difference with p >= 1 - confidence (0.05 by default) is labelled noise. Testing the best "
        "run against many others, expect about one \"significant\" in twenty among equally good runs.</p>"
    )
    table = _table(tests.set_index("run"))
    for verdict in ("significant", "noise"):
        table = table.replace(f"<td>{verdict}</td>", f"<td class='{verdict}'>{verdict}</td>")
    return explanation + table


def _breakdowns(comparison: Comparison) -> str:
    shown_runs = list(comparison.runs.table.index[:MAX_BREAKDOWN_RUNS])
    parts = []
    for dimension in DIMENSIONS:
        table = comparison.breakdowns[dimension]
        if table.empty:
            continue
        table = table[table["run"].isin(shown_runs)]
        pivot = table.pivot_table(index="bucket", columns="run", values="f1", observed=True, sort=True)
        counts = table.groupby("bucket", observed=True)["questions"].max()
        pivot.insert(0, "questions", counts)
        order = list(comparison.runs.table.index)
        figure = go.Figure(
            [go.Bar(name=run, x=pivot.index.astype(str), y=pivot[run], marker_color=PALETTE[order.index(run) % len(PALETTE)]) for run in pivot.columns[1:]]
        )
        figure.update_layout(barmode="group", height=340, margin={"t": 20}, yaxis_title="F1", xaxis_title=dimension.replace("_", " "))
        parts.append(f"<h3>By {dimension.replace('_', ' ')}</h3>" + _table(pivot) + _figure(figure, f"breakdown-{dimension}"))
    return "".join(parts)
