"""The self-contained HTML report: trend charts, the trend table, and every article's
sentences coloured by stance and underlined by actor, with filters.

One file, no network: CSS, JavaScript and the charts (SVG) are inlined; the
templates live in templates/ beside this module. The table is the rows of
`pipeline.trends.aggregate`, so the page shows the same numbers as `stance aggregate`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

from pipeline.labels import ACTORS, STANCES, joint_probabilities
from pipeline.report.trends import STANCE_COLOURS, svg_text
from pipeline.trends import PredictionTable

TEMPLATES = Path(__file__).with_name("templates")


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def table_html(rows: Sequence[dict[str, Any]], estimator: str) -> str:
    """The trend table of one estimator as an HTML table (the numbers of `stance aggregate`)."""
    shown = [r for r in rows if r["estimator"] == estimator and r["count"] > 0]
    header = ["period", "actor", "stance", "sentences", "articles", "count", "share", "share low", "share high"]
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r[k])}</td>" for k in ("period", "actor", "stance", "sentences", "articles", "count", "share", "share_low", "share_high")) + "</tr>"
        for r in shown
    )
    return (f'<div class="table-scroll"><table data-estimator="{html.escape(estimator)}"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in header) + f"</tr></thead><tbody>{body}</tbody></table></div>")


def articles_data(table: PredictionTable) -> list[dict[str, Any]]:
    """Articles in date order, each with its sentences and their labels and probabilities."""
    actor_p, stance_p = joint_probabilities(table.actor_p, table.stance_p)
    articles: dict[str, dict[str, Any]] = {}
    for i, article_id in enumerate(table.article_id):
        entry = articles.setdefault(article_id, {"article_id": article_id, "date": table.date[i], "title": table.title[i], "sentences": []})
        entry["sentences"].append({
            "sentence": table.sentence[i], "actor": table.actor[i], "stance": table.stance[i],
            "actor_probability": round(float(actor_p[i, ACTORS.index(table.actor[i])]), 4),
            "stance_probability": round(float(stance_p[i, STANCES.index(table.stance[i])]), 4),
        })
    return sorted(articles.values(), key=lambda a: (a["date"], a["article_id"]))


def render(
    rows: Sequence[dict[str, Any]], table: PredictionTable, estimator: str, period: str, confidence: float, title: str = "Stance report",
) -> str:
    """The whole page as one HTML string."""
    articles = articles_data(table)
    dates = sorted(table.date)
    data = {"sentences": len(table), "articles": articles, "estimator": estimator, "period": period}
    legend = "".join(f'<span class="stance-{s}" style="border:1px solid {STANCE_COLOURS[s]}">{s}</span>' for s in STANCES) + (
        " underlined by actor: " + ", ".join(f'<span class="actor-{a}">{a}</span>' for a in ACTORS[1:]))
    summary = (f"{len(table)} sentences from {len(articles)} articles, {dates[0] if dates else '–'} to {dates[-1] if dates else '–'}. "
               f"Counts are {'predicted labels, counted' if estimator == 'count' else 'expected counts (sums of calibrated probabilities)'}.")
    return _fill(_template("page.html"), {
        "title": html.escape(title),
        "summary": html.escape(summary),
        "chart_note": html.escape(f"Per {period}; the bands are {confidence:.0%} bootstrap intervals over articles."),
        "charts": f'<figure class="chart" data-estimator="{html.escape(estimator)}">{svg_text(rows, estimator)}</figure>',
        "table": table_html(rows, estimator),
        "period": html.escape(period),
        "confidence": f"{confidence:.0%}",
        "actor_options": "".join(f'<option value="{a}">{a}</option>' for a in ACTORS),
        "stance_options": "".join(f'<option value="{s}">{s}</option>' for s in STANCES),
        "date_min": dates[0] if dates else "",
        "date_max": dates[-1] if dates else "",
        "legend": legend,
        # "</" could close the script element early; JSON allows "<\/".
        "data": json.dumps(data, ensure_ascii=False).replace("</", "<\\/"),
        "css": _template("page.css"),
        "js": _template("page.js"),
    })
