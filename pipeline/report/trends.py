"""Trend charts: per actor, the share of each stance over time with its interval band,
and the counts below (matplotlib; PNG and SVG from the same figure)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any, Sequence

from pipeline.labels import STANCES

# One colour per stance, the same on every chart and on the HTML page.
STANCE_COLOURS = {"conciliatory": "#2a9d8f", "deterrent": "#e76f51", "steadfast": "#264653", "none": "#b0b0b0"}


def actors_with_stances(rows: Sequence[dict[str, Any]], estimator: str) -> list[str]:
    """Actors that hold any stance in the rows of `estimator`, in order of their total count."""
    totals: dict[str, float] = {}
    for r in rows:
        if r["estimator"] == estimator:
            totals[r["actor"]] = totals.get(r["actor"], 0.0) + r["count"]
    return [a for a, t in sorted(totals.items(), key=lambda kv: -kv[1]) if t > 0]


def figure(rows: Sequence[dict[str, Any]], estimator: str, actors: Sequence[str] | None = None, title: str = "") -> Any:
    """The trend figure: a column per actor, share with its interval band above, counts below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actors = list(actors or actors_with_stances(rows, estimator)) or ["(no stance found)"]
    fig, axes = plt.subplots(2, len(actors), figsize=(max(4.2 * len(actors), 6), 6.2), sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": [2, 1]})
    for col, actor in enumerate(actors):
        share_ax, count_ax = axes[0][col], axes[1][col]
        mine = [r for r in rows if r["estimator"] == estimator and r["actor"] == actor]
        starts = sorted({r["period_start"] for r in mine})
        x = [dt.date.fromisoformat(s) for s in starts]
        bottom = [0.0] * len(starts)
        width = max(1, min((b - a).days for a, b in zip(x, x[1:])) * 0.8) if len(x) > 1 else 20
        for stance in STANCES[1:]:
            series = {r["period_start"]: r for r in mine if r["stance"] == stance}
            share = [series[s]["share"] if s in series and series[s]["share"] is not None else float("nan") for s in starts]
            low = [series[s]["share_low"] if s in series and series[s]["share_low"] is not None else float("nan") for s in starts]
            high = [series[s]["share_high"] if s in series and series[s]["share_high"] is not None else float("nan") for s in starts]
            colour = STANCE_COLOURS[stance]
            share_ax.plot(x, share, marker="o", markersize=3, color=colour, label=stance)
            share_ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
            counts = [series[s]["count"] if s in series else 0.0 for s in starts]
            count_ax.bar(x, counts, bottom=bottom, width=width, color=colour, label=stance)
            bottom = [b + c for b, c in zip(bottom, counts)]
        share_ax.set_ylim(-0.02, 1.02)
        share_ax.set_title(actor)
        share_ax.grid(alpha=0.3)
        count_ax.grid(alpha=0.3)
        if col == 0:
            share_ax.set_ylabel("share of the actor's stances")
            count_ax.set_ylabel("sentences" if estimator == "count" else "expected sentences")
        count_ax.tick_params(axis="x", rotation=30)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title or f"Stance over time ({estimator} estimator; bands: bootstrap over articles)")
    fig.tight_layout()
    return fig


def save_figures(rows: Sequence[dict[str, Any]], directory: str | Path, estimator: str, stem: str = "trends", title: str = "") -> list[Path]:
    """Write `stem`.png and `stem`.svg into `directory`; returns their paths."""
    import matplotlib.pyplot as plt

    from pipeline import atomic

    directory = Path(directory)
    fig = figure(rows, estimator, title=title)
    paths = []
    for suffix, dpi in ((".png", 110), (".svg", None)):
        path = directory / f"{stem}{suffix}"
        with atomic.atomic_path(path) as tmp:
            # No creation date in the file: the same rows give the same bytes.
            fig.savefig(tmp, format=suffix[1:], dpi=dpi, metadata={"Date": None} if suffix == ".svg" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def svg_text(rows: Sequence[dict[str, Any]], estimator: str, title: str = "") -> str:
    """The trend figure as an SVG document (for the self-contained HTML page)."""
    import matplotlib.pyplot as plt

    fig = figure(rows, estimator, title=title)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]
