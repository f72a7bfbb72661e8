"""From dated articles to the trend table, the charts and the page; the page in a real browser."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from conftest import CORPUS, sh

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def predicted(project, tmp_path_factory):
    """`stance predict` of a dozen dated corpus articles, then `stance aggregate` and `stance report`."""
    root, env = project
    out = tmp_path_factory.mktemp("trends")
    articles = [json.loads(line) for line in (CORPUS / "articles.jsonl").read_text().splitlines()[:12]]
    (out / "news.jsonl").write_text("".join(json.dumps({"id": a["article_id"], "date": a["date"], "title": a["title"], "text": a["text"]}) + "\n"
                                            for a in articles))
    sh(["stance", "predict", str(out / "news.jsonl"), "--models", "models", "--format", "jsonl", "-o", str(out / "predictions.jsonl")], root, env)
    sh(["stance", "aggregate", str(out / "predictions.jsonl"), "--period", "month", "--out", str(out / "trends.csv"), "--plots", str(out / "plots")], root, env)
    sh(["stance", "report", str(out / "predictions.jsonl"), "--period", "month", "-o", str(out / "report.html"),
        "--table", str(out / "report_table.csv")], root, env)
    return out, articles


def test_predict_carries_article_id_date_and_title(predicted):
    out, articles = predicted
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    dates = {a["article_id"]: a["date"] for a in articles}
    assert {r["article_id"] for r in records} == set(dates)
    assert all(r["date"] == dates[r["article_id"]] and r["title"] for r in records)


def test_the_table_and_the_charts(predicted):
    out, _ = predicted
    rows = list(csv.DictReader((out / "trends.csv").open()))
    assert {r["estimator"] for r in rows} == {"count", "probability"}
    for r in rows:
        if r["share"]:
            assert float(r["share_low"]) <= float(r["share"]) + 1e-9 <= float(r["share_high"]) + 2e-9
    assert (out / "plots" / "trends.png").stat().st_size > 5_000 and "<svg" in (out / "plots" / "trends.svg").read_text()


def test_report_writes_the_same_table_as_aggregate(predicted):
    out, _ = predicted
    assert (out / "report_table.csv").read_text() == (out / "trends.csv").read_text()


def test_the_page_is_self_contained_and_shows_the_tables_numbers(predicted):
    out, _ = predicted
    page = (out / "report.html").read_text()
    import re

    # Nothing to fetch: no src or href to a URL, no stylesheet link, no CSS import (XML namespaces are names, not fetches).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "url(http" not in page and "@import" not in page
    assert "<svg" in page and "<script src" not in page and "<link" not in page
    rows = [r for r in csv.DictReader((out / "trends.csv").open()) if r["estimator"] == "probability" and float(r["count"]) > 0]
    for r in rows[:5]:
        assert f"<td>{float(r['count']):.3f}</td>" in page  # the same numbers as `stance aggregate`


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium; .ci/run does)")
def test_the_page_in_a_browser(predicted):
    from playwright.sync_api import sync_playwright

    out, _ = predicted
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto((out / "report.html").as_uri())
            page.wait_for_selector(".sentence")
            assert page.locator(".sentence:visible").count() == len(records)
            box = page.locator("#charts svg").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 150  # the chart rendered
            stance = next(r["stance"] for r in records if r["stance"] != "none")
            page.select_option("#filter-stance", stance)
            visible = page.locator(".sentence:visible")
            assert visible.count() == sum(r["stance"] == stance for r in records)
            assert set(visible.evaluate_all("nodes => nodes.map(n => n.dataset.stance)")) == {stance}
            first = min(r["date"] for r in records)
            page.select_option("#filter-stance", "")
            page.fill("#filter-to", first)
            page.dispatch_event("#filter-to", "change")
            assert page.locator(".sentence:visible").count() == sum(r["date"] <= first for r in records)
            title = page.locator(".sentence").first.get_attribute("title")
            assert "actor" in title and "stance" in title and "%" in title  # the probability on hover
        finally:
            browser.close()
    assert errors == []
