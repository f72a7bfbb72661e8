"""Predictions + dates -> counts and shares of each actor's stances per period, with intervals.

The question behind it: "has Russia's stance moved since the call?". For each period
(day, week, month or quarter) and actor, how many sentences signal each stance, and
what share of the actor's stance-bearing sentences that is.

Two estimators of a count:
  count        classify and count: each sentence adds 1 to its predicted (actor, stance)
  probability  expected counts: each sentence adds P(actor, stance) to every cell; unbiased
               when the probabilities are calibrated (pipeline/calibration.py). The two
               heads give P(stance) and, through rule 9, P(actor); their joint is taken as
               P(stance = s) * P(actor = a | the sentence holds a stance).
Intervals: a percentile bootstrap that resamples whole articles within each period
(sentences of one article are not independent), seeded.

Input records are the JSON lines of `stance predict --format jsonl` (or the rows of
the batch scorer's Parquet) with `article_id` and `date`; see `read_predictions`.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.labels import ACTORS, NONE, STANCES, joint_probabilities

PERIODS = ("day", "week", "month", "quarter")
ESTIMATORS = ("count", "probability")
GROUPABLE = ("actor", "stance")
# The stance-bearing (actor, stance) cells; rule 9 leaves none/none as the only other one.
CELLS = [(a, s) for a in ACTORS if a != NONE for s in STANCES if s != NONE]
COLUMNS = ("period", "period_start", "actor", "stance", "estimator", "sentences", "articles", "count", "count_low", "count_high",
           "share", "share_low", "share_high")


class TrendInputError(ValueError):
    """A prediction record cannot be aggregated; the message names the file, line and field."""


@dataclass
class PredictionTable:
    """Predictions as columns: one row per sentence."""

    article_id: list[str]
    date: list[str]
    actor: list[str]
    stance: list[str]
    actor_p: np.ndarray   # (n, len(ACTORS)), rule-9 joint as predict() reports it
    stance_p: np.ndarray  # (n, len(STANCES))
    extra: dict[str, list[Any]]
    sentence: list[str] = field(default_factory=list)
    title: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.date)


def _check_date(value: Any, where: str) -> str:
    if value is None or value == "":
        raise TrendInputError(f"{where}: field 'date' is missing; predict dated articles (a .jsonl input whose lines have a 'date')")
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise TrendInputError(f"{where}: field 'date' is {value!r}, not a date (YYYY-MM-DD)") from None


def _probabilities(record: dict[str, Any], name: str, labels: Sequence[str], where: str) -> list[float]:
    nested = record.get(f"{name}_probabilities")
    if isinstance(nested, dict):
        values = [nested.get(label) for label in labels]
    else:
        values = [record.get(f"p_{name}_{label}") for label in labels]
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        raise TrendInputError(f"{where}: field '{name}_probabilities' is missing or incomplete (need {', '.join(labels)})")
    return [float(v) for v in values]


def table_from_records(records: Iterable[tuple[str, dict[str, Any]]], extra: Sequence[str] = ()) -> PredictionTable:
    """Check and collect (where, record) pairs; `extra` names further columns to keep."""
    table = PredictionTable([], [], [], [], np.zeros((0, len(ACTORS))), np.zeros((0, len(STANCES))), {c: [] for c in extra})
    actor_rows, stance_rows = [], []
    for where, record in records:
        if not isinstance(record, dict):
            raise TrendInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        table.date.append(_check_date(record.get("date"), where))
        article = record.get("article_id")
        if not isinstance(article, str) or not article:
            raise TrendInputError(f"{where}: field 'article_id' is missing; predict a .jsonl input whose lines have an 'id'")
        table.article_id.append(article)
        for name, labels, column in (("actor", ACTORS, table.actor), ("stance", STANCES, table.stance)):
            if record.get(name) not in labels:
                raise TrendInputError(f"{where}: field {name!r} is {record.get(name)!r}; allowed: {', '.join(labels)}")
            column.append(record[name])
        table.sentence.append(str(record.get("sentence") or ""))
        table.title.append(str(record.get("title") or ""))
        actor_rows.append(_probabilities(record, "actor", ACTORS, where))
        stance_rows.append(_probabilities(record, "stance", STANCES, where))
        for column in extra:
            if column not in record:
                raise TrendInputError(f"{where}: no field {column!r} to group by (the record has: {', '.join(sorted(record))})")
            table.extra[column].append(record[column])
    if actor_rows:
        table.actor_p, table.stance_p = np.array(actor_rows), np.array(stance_rows)
    return table


def read_predictions(path: str | Path, extra: Sequence[str] = ()) -> PredictionTable:
    """Read `stance predict --format jsonl` output (.jsonl) or the scorer's output (.parquet)."""
    path = Path(path)
    if not path.exists():
        raise TrendInputError(f"{path}: no such file")
    if path.suffix == ".parquet" or path.is_dir():
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return table_from_records(((f"{path}: row {k}", r) for k, r in enumerate(rows)), extra)

    def records() -> Iterable[tuple[str, dict[str, Any]]]:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as err:
                    raise TrendInputError(f"{path}:{number}: not valid JSON ({err.msg})") from None

    table = table_from_records(records(), extra)
    if not len(table):
        raise TrendInputError(f"{path}: no predictions")
    return table


def period_of(date: str, period: str) -> tuple[str, str]:
    """(label, first day) of the period that holds `date`."""
    day = dt.date.fromisoformat(date)
    if period == "day":
        return day.isoformat(), day.isoformat()
    if period == "week":
        start = day - dt.timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}", start.isoformat()
    if period == "month":
        return f"{day.year}-{day.month:02d}", dt.date(day.year, day.month, 1).isoformat()
    if period == "quarter":
        q = (day.month - 1) // 3
        return f"{day.year}-Q{q + 1}", dt.date(day.year, 3 * q + 1, 1).isoformat()
    raise ValueError(f"unknown period {period!r}; choose one of: {', '.join(PERIODS)}")


def cell_weights(table: PredictionTable, estimator: str) -> np.ndarray:
    """(n, len(CELLS)): what each sentence adds to each stance-bearing (actor, stance) cell."""
    if estimator == "count":
        index = {cell: k for k, cell in enumerate(CELLS)}
        out = np.zeros((len(table), len(CELLS)))
        for i, cell in enumerate(zip(table.actor, table.stance)):
            if cell in index:
                out[i, index[cell]] = 1.0
        return out
    if estimator == "probability":
        actor, stance = joint_probabilities(table.actor_p, table.stance_p)
        holds = np.clip(1.0 - stance[:, 0:1], 1e-12, None)
        given = actor[:, 1:] / holds  # P(actor | a stance is held), rows sum to 1
        return np.einsum("na,ns->nas", given, stance[:, 1:]).reshape(len(table), -1)
    raise ValueError(f"unknown estimator {estimator!r}; choose one of: {', '.join(ESTIMATORS)}")


def aggregate(
    table: PredictionTable, period: str, by: Sequence[str] = GROUPABLE, estimators: Sequence[str] = ESTIMATORS,
    resamples: int = 1000, confidence: float = 0.95, seed: int = 13,
) -> list[dict[str, Any]]:
    """The tidy trend table: one row per period, group, (actor, stance) cell and estimator.

    `by` holds "actor" and/or "stance" (which cells are reported apart) and any extra
    column of the table (say "source"), which splits the periods further. Counts of a
    cell left out of `by` are summed over it. Intervals: percentile bootstrap over the
    period's articles, `resamples` draws seeded by `seed`.
    """
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; choose one of: {', '.join(PERIODS)}")
    cells_by = [c for c in by if c in GROUPABLE] or list(GROUPABLE)
    extra = [c for c in by if c not in GROUPABLE]
    missing = [c for c in extra if c not in table.extra]
    if missing:
        raise TrendInputError(f"--by {','.join(by)}: unknown column(s) {', '.join(missing)}; allowed: actor, stance, {', '.join(table.extra) or '(no other column)'}")
    # Which reported cell each of the 15 stance-bearing cells falls in.
    keys = [tuple(cell[GROUPABLE.index(c)] for c in cells_by) for cell in CELLS]
    reported = sorted(set(keys), key=keys.index)
    merge = np.zeros((len(CELLS), len(reported)))
    for k, key in enumerate(keys):
        merge[k, reported.index(key)] = 1.0
    periods = [period_of(d, period) for d in table.date]
    groups: dict[tuple, list[int]] = {}
    for i, (label, start) in enumerate(periods):
        groups.setdefault((label, start, *(table.extra[c][i] for c in extra)), []).append(i)
    alpha = (1.0 - confidence) / 2.0
    rows = []
    for estimator in estimators:
        weights = cell_weights(table, estimator)
        for key in sorted(groups):
            # Each group draws from its own stream, so its interval does not depend on
            # which other periods, groups or estimators are computed alongside it.
            rng = np.random.default_rng([seed, zlib.crc32(json.dumps([estimator, *map(str, key)]).encode())])
            members = np.array(groups[key])
            articles, inverse = np.unique(np.array(table.article_id)[members], return_inverse=True)
            per_article = np.zeros((len(articles), len(CELLS)))
            np.add.at(per_article, inverse, weights[members])
            draws = rng.integers(0, len(articles), size=(resamples, len(articles)))
            multiplicity = np.zeros((resamples, len(articles)))
            np.add.at(multiplicity, (np.repeat(np.arange(resamples), len(articles)), draws.ravel()), 1.0)
            full = per_article.sum(0) @ merge
            boot = (multiplicity @ per_article) @ merge
            point_share, boot_share = _group_shares(full, cells_by), _group_shares(boot, cells_by)
            for j, cell in enumerate(reported):
                labels = dict(zip(cells_by, cell))
                rows.append({
                    "period": key[0], "period_start": key[1], **{c: key[2 + n] for n, c in enumerate(extra)},
                    "actor": labels.get("actor", "all"), "stance": labels.get("stance", "all"), "estimator": estimator,
                    "sentences": int(len(members)), "articles": int(len(articles)),
                    "count": float(full[j]), "count_low": float(np.quantile(boot[:, j], alpha)), "count_high": float(np.quantile(boot[:, j], 1 - alpha)),
                    "share": _finite(point_share[j]), "share_low": _finite(np.nanquantile(boot_share[:, j], alpha) if np.isfinite(boot_share[:, j]).any() else np.nan),
                    "share_high": _finite(np.nanquantile(boot_share[:, j], 1 - alpha) if np.isfinite(boot_share[:, j]).any() else np.nan),
                })
    return rows


def _group_shares(counts: np.ndarray, cells_by: Sequence[str]) -> np.ndarray:
    """Each reported cell's share: of its actor's stance-bearing sentences when both actor
    and stance are reported, else of all stance-bearing sentences. counts: (..., cells)."""
    if list(cells_by) == list(GROUPABLE):
        shaped = counts.reshape(*counts.shape[:-1], len(ACTORS) - 1, len(STANCES) - 1)
        total = np.broadcast_to(shaped.sum(-1, keepdims=True), shaped.shape).reshape(counts.shape)
    else:
        total = np.broadcast_to(counts.sum(-1, keepdims=True), counts.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1), np.nan)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def write_table(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write the trend table as .csv or .parquet (atomically)."""
    import pandas as pd

    from pipeline import atomic

    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: the table is written as .csv or .parquet")
    frame = pd.DataFrame(list(rows))
    with atomic.atomic_path(path) as tmp:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def gold_check(gold_actor: Sequence[str], gold_stance: Sequence[str], table: PredictionTable, period: str) -> dict[str, Any]:
    """Predicted shares per actor and period next to the gold ones, and each estimator's
    mean absolute error over the (period, actor, stance) cells where the gold actor holds
    any stance (the test split: the same sentences, labelled by people)."""
    gold = PredictionTable(table.article_id, table.date, list(gold_actor), list(gold_stance), table.actor_p, table.stance_p, {})
    if len(gold.actor) != len(table):
        raise ValueError(f"{len(gold.actor)} gold labels for {len(table)} predictions")
    truth = {(r["period"], r["actor"], r["stance"]): r for r in aggregate(gold, period, estimators=["count"], resamples=1)}
    out: dict[str, Any] = {"period": period, "estimators": {}, "rows": []}
    for estimator in ESTIMATORS:
        predicted = aggregate(table, period, estimators=[estimator], resamples=1)
        errors = []
        for r in predicted:
            g = truth[(r["period"], r["actor"], r["stance"])]
            if g["share"] is not None and r["share"] is not None:
                errors.append(abs(r["share"] - g["share"]))
                out["rows"].append({"period": r["period"], "period_start": r["period_start"], "actor": r["actor"], "stance": r["stance"],
                                    "estimator": estimator, "predicted_share": r["share"], "gold_share": g["share"],
                                    "predicted_count": r["count"], "gold_count": g["count"]})
        out["estimators"][estimator] = {"share_mae": float(np.mean(errors)) if errors else float("nan"), "cells": len(errors)}
    return out
