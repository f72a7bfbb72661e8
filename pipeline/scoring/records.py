"""The output rows of `stance score`: one per sentence, the same for every engine."""

from __future__ import annotations

from typing import Any, Sequence

from pipeline.labels import ACTORS, STANCES

# The columns every output row has, in order; input columns other than these (and
# `text`, `title`) are carried through after them.
SENTENCE_COLUMNS = (
    "article_id", "date", "sentence_index", "sentence", "actor", "stance", "actor_probability", "stance_probability",
    *(f"p_actor_{a}" for a in ACTORS), *(f"p_stance_{s}" for s in STANCES), "model", "model_version",
)
# What the output's "date" and "article_id" come from.
INPUT_ID, INPUT_TEXT, INPUT_TITLE, INPUT_DATE = "id", "text", "title", "date"
NOT_CARRIED = (INPUT_ID, INPUT_TEXT, INPUT_TITLE, INPUT_DATE)


def spark_schema(carried: Sequence[tuple[str, str]] = ()) -> str:
    """The output schema as a Spark DDL string; `carried` are (name, Spark type) of passed-through columns."""
    types = {"sentence_index": "int", **{c: "double" for c in SENTENCE_COLUMNS if c.endswith("probability") or c.startswith("p_")}}
    columns = [f"`{c}` {types.get(c, 'string')}" for c in SENTENCE_COLUMNS]
    return ", ".join([*columns, *(f"`{name}` {kind}" for name, kind in carried)])


def score_rows(predictor: Any, articles: Sequence[dict[str, Any]], model: str, model_version: str | None, carried: Sequence[str]) -> list[dict[str, Any]]:
    """One output row per sentence of `articles` (dicts with id, text, optional title and date)."""
    items = [{"text": a[INPUT_TEXT], "title": a.get(INPUT_TITLE)} for a in articles]
    rows = []
    for r in predictor.predict_iter(items):
        article = articles[r.item]
        row = {
            "article_id": str(article[INPUT_ID]), "date": None if article.get(INPUT_DATE) is None else str(article[INPUT_DATE])[:10],
            "sentence_index": r.sentence_index, "sentence": r.sentence, "actor": r.actor, "stance": r.stance,
            "actor_probability": r.actor_probability, "stance_probability": r.stance_probability,
            **{f"p_actor_{k}": v for k, v in r.actor_probabilities.items()},
            **{f"p_stance_{k}": v for k, v in r.stance_probabilities.items()},
            "model": model, "model_version": model_version,
        }
        row.update({c: article.get(c) for c in carried})
        rows.append(row)
    return rows
