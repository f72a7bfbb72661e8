"""Trend aggregation: both estimators on a case with a known answer, intervals, bad rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.labels import ACTORS, STANCES
from pipeline.trends import TrendInputError, aggregate, gold_check, period_of, read_predictions, table_from_records, write_table


def record(article: str, date: str, actor: str, stance: str, actor_p: dict | None = None, stance_p: dict | None = None, **extra) -> dict:
    """A prediction record as `stance predict --format jsonl` writes it (one-hot unless given)."""
    stance_p = stance_p or {s: float(s == stance) for s in STANCES}
    if actor_p is None:
        actor_p = {a: float(a == actor) for a in ACTORS}
    return {"article_id": article, "date": date, "sentence": "...", "actor": actor, "stance": stance,
            "actor_probabilities": actor_p, "stance_probabilities": stance_p, **extra}


def table(records):
    return table_from_records((f"r:{k + 1}", r) for k, r in enumerate(records))


KNOWN = [
    record("A", "2025-03-03", "russia", "steadfast"),
    record("A", "2025-03-04", "russia", "steadfast"),
    record("A", "2025-03-04", "russia", "conciliatory"),
    record("B", "2025-03-05", "russia", "deterrent"),
    record("B", "2025-03-05", "none", "none"),
    record("C", "2025-03-12", "ukraine", "conciliatory"),
]


def rows_for(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def test_classify_and_count_on_a_known_case():
    rows = aggregate(table(KNOWN), "week", estimators=["count"], resamples=200)
    (steadfast,) = rows_for(rows, period="2025-W10", actor="russia", stance="steadfast")
    assert steadfast["count"] == 2 and steadfast["share"] == pytest.approx(0.5) and steadfast["sentences"] == 5 and steadfast["articles"] == 2
    assert rows_for(rows, period="2025-W10", actor="russia", stance="conciliatory")[0]["share"] == pytest.approx(0.25)
    assert rows_for(rows, period="2025-W10", actor="ukraine", stance="conciliatory")[0]["share"] is None  # no ukraine stance that week
    assert rows_for(rows, period="2025-W11", actor="ukraine", stance="conciliatory")[0]["share"] == 1.0
    assert steadfast["period_start"] == "2025-03-03"


def test_expected_counts_sum_the_probabilities():
    soft = [
        # P(stance): none .2, conciliatory .2, deterrent .2, steadfast .4; P(actor | stance held): russia .75, ukraine .25
        record("A", "2025-03-03", "russia", "steadfast",
               actor_p={"none": 0.2, "russia": 0.6, "united_states": 0.0, "ukraine": 0.2, "europe": 0.0, "other": 0.0},
               stance_p={"none": 0.2, "conciliatory": 0.2, "deterrent": 0.2, "steadfast": 0.4}),
        record("B", "2025-03-04", "none", "none"),
    ]
    rows = aggregate(table(soft), "week", estimators=["probability"], resamples=50)
    get = {(r["actor"], r["stance"]): r for r in rows}
    assert get[("russia", "steadfast")]["count"] == pytest.approx(0.75 * 0.4)
    assert get[("ukraine", "conciliatory")]["count"] == pytest.approx(0.25 * 0.2)
    # russia's expected stance-bearing sentences: 0.75 * 0.8, of which steadfast 0.75 * 0.4
    assert get[("russia", "steadfast")]["share"] == pytest.approx(0.5)
    one_hot = aggregate(table(KNOWN), "week", estimators=["probability"], resamples=10)
    counted = aggregate(table(KNOWN), "week", estimators=["count"], resamples=10)
    assert [r["count"] for r in one_hot] == pytest.approx([r["count"] for r in counted])


def test_bootstrap_intervals_are_seeded_and_resample_articles():
    rng = np.random.default_rng(0)
    many = [record(f"A{a}", "2025-05-0" + str(1 + a % 5), "russia", STANCES[1 + rng.integers(3)]) for a in range(40) for _ in range(3)]
    a = aggregate(table(many), "month", estimators=["count"], resamples=300, seed=7)
    b = aggregate(table(many), "month", estimators=["count"], resamples=300, seed=7)
    c = aggregate(table(many), "month", estimators=["count"], resamples=300, seed=8)
    assert a == b and a != c
    russia = [r for r in a if r["actor"] == "russia"]
    assert len(russia) == 3 and all(r["share"] is None for r in a if r["actor"] != "russia")
    for r in russia:
        assert r["share_low"] <= r["share"] <= r["share_high"] and r["count_low"] <= r["count"] <= r["count_high"]
        assert r["share_high"] - r["share_low"] > 0.05  # 40 articles: a real interval
    # One article only: every resample is that article, so the interval collapses.
    single = aggregate(table(KNOWN[:3]), "week", estimators=["count"], resamples=100)
    steadfast = rows_for(single, actor="russia", stance="steadfast")[0]
    assert steadfast["share_low"] == steadfast["share_high"] == steadfast["share"]


def test_grouping_by_actor_only_and_by_an_extra_column():
    rows = aggregate(table([{**r, "source": "x" if i % 2 else "y"} for i, r in enumerate(KNOWN)]), "week", by=["actor"], estimators=["count"], resamples=10)
    assert {r["stance"] for r in rows} == {"all"}
    assert rows_for(rows, period="2025-W10", actor="russia")[0]["share"] == 1.0  # all of that week's stances are russia's
    with_source = table_from_records(((f"r:{k}", {**r, "source": "x" if k % 2 else "y"}) for k, r in enumerate(KNOWN)), extra=["source"])
    split = aggregate(with_source, "week", by=["actor", "stance", "source"], estimators=["count"], resamples=10)
    assert {r["source"] for r in split} == {"x", "y"}
    with pytest.raises(TrendInputError, match="unknown column\\(s\\) outlet"):
        aggregate(table(KNOWN), "week", by=["actor", "outlet"])


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("date"), r"r:2: field 'date' is missing"),
    (lambda r: r.update(date="yesterday"), r"r:2: field 'date' is 'yesterday', not a date"),
    (lambda r: r.update(stance="angry"), r"r:2: field 'stance' is 'angry'; allowed: none, conciliatory"),
    (lambda r: r.pop("article_id"), r"r:2: field 'article_id' is missing"),
    (lambda r: r.pop("stance_probabilities"), r"r:2: field 'stance_probabilities' is missing"),
])
def test_bad_rows_are_named_by_line_and_field(change, message):
    records = [dict(r) for r in KNOWN]
    change(records[1])
    with pytest.raises(TrendInputError, match=message):
        table(records)


def test_read_and_write_files(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in KNOWN) + "not json\n")
    with pytest.raises(TrendInputError, match=r"p\.jsonl:7: not valid JSON"):
        read_predictions(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in KNOWN))
    rows = aggregate(read_predictions(path), "month", resamples=20)
    assert write_table(rows, tmp_path / "t.csv").read_text().splitlines()[0].startswith("period,period_start,actor,stance,estimator")
    import pandas as pd

    assert len(pd.read_parquet(write_table(rows, tmp_path / "t.parquet"))) == len(rows)
    with pytest.raises(ValueError, match="written as .csv or .parquet"):
        write_table(rows, tmp_path / "t.xlsx")


def test_periods():
    assert period_of("2025-12-31", "week") == ("2026-W01", "2025-12-29")
    assert period_of("2025-08-15", "quarter") == ("2025-Q3", "2025-07-01")
    assert period_of("2025-08-15", "month") == ("2025-08", "2025-08-01")


def test_gold_check_is_zero_for_perfect_predictions():
    check = gold_check([r["actor"] for r in KNOWN], [r["stance"] for r in KNOWN], table(KNOWN), "week")
    assert check["estimators"]["count"]["share_mae"] == 0.0 and check["estimators"]["probability"]["share_mae"] == pytest.approx(0.0)
    wrong = [r["stance"] if r["stance"] != "steadfast" else "deterrent" for r in KNOWN]
    assert gold_check([r["actor"] for r in KNOWN], wrong, table(KNOWN), "week")["estimators"]["count"]["share_mae"] > 0


def test_the_cli_names_a_bad_row_and_exits_2(tmp_path):
    import subprocess
    import sys

    rows = [dict(r) for r in KNOWN]
    del rows[2]["date"]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "aggregate", str(path)], capture_output=True, text=True)
    assert done.returncode == 2 and "p.jsonl:3: field 'date' is missing" in done.stderr


def test_an_interval_does_not_depend_on_what_is_computed_with_it():
    both = aggregate(table(KNOWN * 3), "month", estimators=["count", "probability"], resamples=100)
    alone = aggregate(table(KNOWN * 3), "month", estimators=["probability"], resamples=100)
    assert [r for r in both if r["estimator"] == "probability"] == alone
