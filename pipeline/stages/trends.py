"""`stance aggregate` and `stance report`: prediction records -> trend table, charts, page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pipeline import atomic
from pipeline.config import TrendsConfig, load_config
from pipeline.report import page
from pipeline.report.trends import save_figures
from pipeline.trends import GROUPABLE, aggregate, read_predictions, write_table


def _settings(config_dir: Path, period: str | None, by: Sequence[str] | None) -> tuple[TrendsConfig, str, list[str]]:
    config = load_config(config_dir / "trends.yaml", TrendsConfig)
    return config, period or config.period, list(by or config.by)


def run_aggregate(
    predictions: Path, config_dir: Path, out: Path | None, plots: Path | None, period: str | None = None, by: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The trend table of `predictions` (written to `out`, .csv or .parquet) and its charts (PNG and SVG in `plots`)."""
    config, period, by = _settings(config_dir, period, by)
    table = read_predictions(predictions, [c for c in by if c not in GROUPABLE])
    rows = aggregate(table, period, by, config.estimators, config.bootstrap.resamples, config.bootstrap.confidence, config.bootstrap.seed)
    if out is not None:
        write_table(rows, out)
    if plots is not None:
        save_figures(rows, plots, config.chart_estimator)
    return rows


def run_report(
    predictions: Path, out: Path, config_dir: Path, period: str | None = None, title: str = "Stance report",
    table_out: Path | None = None, plots: Path | None = None,
) -> Path:
    """The self-contained HTML page of `predictions`; with `table_out` and `plots`, also the
    table and charts of `stance aggregate` (the same rows: the page shows their numbers)."""
    config, period, _ = _settings(config_dir, period, None)
    table = read_predictions(predictions)
    rows = aggregate(table, period, list(GROUPABLE), config.estimators, config.bootstrap.resamples,
                     config.bootstrap.confidence, config.bootstrap.seed)
    atomic.write_text(out, page.render(rows, table, config.chart_estimator, period, config.bootstrap.confidence, title))
    if table_out is not None:
        write_table(rows, table_out)
    if plots is not None:
        save_figures(rows, plots, config.chart_estimator)
    return out
