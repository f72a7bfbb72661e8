"""evaluate: both models on the same test split, against the human reference."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any


from pipeline import atomic, tracking
from pipeline.calibration import Temperatures, expected_calibration_error
from pipeline.config import CalibrationConfig, EvaluateConfig, TrendsConfig, load_config
from pipeline.corpus import SPLITS, load_splits
from pipeline.labels import FIELDS, decode, joint_probabilities
from pipeline.metrics import agreement, confusion, flatten, macro_f1, paired_bootstrap, per_class, score
from pipeline.models import MODEL_NAMES, load_model
from pipeline.predictor import CHAMPION_FILE
from pipeline.report import confusion_png, markdown_table, trend_check_png
from pipeline.trends import ESTIMATORS, PredictionTable, gold_check
from pipeline.stages import provenance_tags, start_tracking
from pipeline.stages.train import RUN_FILE, data_tags

HUMAN = "human"


def evaluate_model(name: str, model_dir: Path, test: Any, batch_size: int, ece_bins: int) -> dict[str, Any]:
    """Predictions, scores and calibration of one saved model on the test split."""
    model = load_model(name, model_dir)
    proba = model.predict_proba(test, batch_size=batch_size)
    actors, stances = decode(proba.actor, proba.stance)
    temperatures = Temperatures.load(model_dir)
    ece = {"raw": expected_calibration_error(proba, test, ece_bins)}
    if temperatures is not None:
        ece["calibrated"] = expected_calibration_error(temperatures.apply(proba), test, ece_bins)
    return {
        "predictions": {"actor": actors, "stance": stances},
        "scores": score(test["actor"], test["stance"], actors, stances),
        "per_class": {f: per_class(test[f], p, f) for f, p in (("actor", actors), ("stance", stances))},
        "ece": ece,
        # What predict() reports: the calibrated probabilities, where the model has them.
        "served_proba": temperatures.apply(proba) if temperatures is not None else proba,
    }


def trend_check(test: Any, result: dict[str, Any], period: str) -> dict[str, Any]:
    """Predicted vs gold shares per period and actor on the test split, both estimators."""
    actor_p, stance_p = joint_probabilities(result["served_proba"].actor, result["served_proba"].stance)
    table = PredictionTable(list(test["article_id"]), list(test["date"]), result["predictions"]["actor"], result["predictions"]["stance"],
                            actor_p, stance_p, {})
    return gold_check(test["actor"], test["stance"], table, period)


def trend_check_markdown(checks: dict[str, dict[str, Any]]) -> str:
    """reports/trends_check.md: each estimator's error, then the shares side by side."""
    period = next(iter(checks.values()))["period"]
    lines = [f"# Stance shares per {period} on the test split: predicted vs gold\n\n",
             "Mean absolute error of the share of each actor's stance-bearing sentences, over the (period, actor, stance) "
             "cells where the gold actor holds a stance:\n\n",
             markdown_table(["model", *(f"{e} MAE" for e in ESTIMATORS), "cells"],
                            [[m, *(c["estimators"][e]["share_mae"] for e in ESTIMATORS), c["estimators"]["count"]["cells"]] for m, c in checks.items()])]
    for model, check in checks.items():
        lines.append(f"\n## {model}\n\n")
        by_cell: dict[tuple, dict[str, Any]] = {}
        for r in check["rows"]:
            entry = by_cell.setdefault((r["period"], r["actor"], r["stance"]), {"gold": r["gold_share"]})
            entry[r["estimator"]] = r["predicted_share"]
        lines.append(markdown_table(["period", "actor", "stance", "gold share", *(f"{e} share" for e in ESTIMATORS)],
                                    [[*k, v["gold"], *(v.get(e, float("nan")) for e in ESTIMATORS)] for k, v in sorted(by_cell.items())]))
    return "".join(lines)


def human_reference(splits: Any) -> dict[str, Any]:
    """Agreement of the two annotation passes, on the test split and on all sentences."""
    out: dict[str, Any] = {}
    for scope, data in (("test", splits["test"]), ("all", _concat(splits))):
        # Sentences of user batches labelled by one annotator have no second pass ("").
        keep = [i for i, (a, b) in enumerate(zip(data["actor_a"], data["actor_b"])) if a and b]
        rows = {f"{f}_{x}": [data[f"{f}_{x}"][i] for i in keep] for f in FIELDS for x in "ab"}
        out[scope] = {f: agreement(rows[f"{f}_a"], rows[f"{f}_b"], f) for f in FIELDS}
        out[scope]["scores"] = score(rows["actor_a"], rows["stance_a"], rows["actor_b"], rows["stance_b"])
    return out


def _concat(splits: Any) -> dict[str, list[Any]]:
    return {column: [v for name in SPLITS for v in splits[name][column]] for column in splits["test"].column_names}


def _predictions_csv(test: Any, predictions: dict[str, list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "gold_actor", "predicted_actor", "gold_stance", "predicted_stance"])
    for row in zip(test["id"], test["actor"], predictions["actor"], test["stance"], predictions["stance"]):
        writer.writerow(row)
    return buffer.getvalue()


def comparison_markdown(results: dict[str, Any], human: dict[str, Any], bootstrap: dict[str, float], champion: str, n_test: int) -> str:
    """The readable comparison table (reports/comparison.md)."""
    keys = ["stance_macro_f1", "actor_macro_f1", "pair_accuracy", "stance_accuracy", "actor_accuracy"]
    rows = [[name, *(results[name]["scores"][k] for k in keys)] for name in results]
    rows.append(["human (annotator A vs B)", *(human["test"]["scores"][k] for k in keys)])
    lines = [
        "# Model comparison (test split)\n\n",
        f"{n_test} test sentences, articles never seen in training. Champion: **{champion}**.\n\n",
        markdown_table(["system", *keys], rows),
        "\nStance F1 per class:\n\n",
        markdown_table(
            ["system", *FIELDS["stance"]],
            [[name, *(results[name]["per_class"]["stance"][c]["f1"] for c in FIELDS["stance"])] for name in results],
        ),
        "\nActor F1 per class:\n\n",
        markdown_table(
            ["system", *FIELDS["actor"]],
            [[name, *(results[name]["per_class"]["actor"][c]["f1"] for c in FIELDS["actor"])] for name in results],
        ),
        "\nExpected calibration error of the decoded labels' probabilities (raw / with the temperatures fitted on validation):\n\n",
        markdown_table(
            ["system", "stance ECE", "stance ECE calibrated", "actor ECE", "actor ECE calibrated"],
            [[name, r["ece"]["raw"]["stance"], r["ece"].get("calibrated", {}).get("stance", "-"),
              r["ece"]["raw"]["actor"], r["ece"].get("calibrated", {}).get("actor", "-")] for name, r in results.items()],
        ),
        f"\nTransformer minus baseline, stance macro-F1: {bootstrap['difference']:+.3f} "
        f"({bootstrap['confidence']:.0%} paired bootstrap interval over {bootstrap['unit']}s: "
        f"[{bootstrap['low']:+.3f}, {bootstrap['high']:+.3f}], {bootstrap['resamples']} resamples).\n",
        "\nHuman reference (annotation passes A vs B): "
        + ", ".join(
            f"{f} kappa {human[scope][f]['kappa']:.3f} / macro-F1 {human[scope][f]['macro_f1']:.3f} ({scope})"
            for scope in ("test", "all")
            for f in FIELDS
        )
        + ".\n",
    ]
    return "".join(lines)


def run(data_dir: Path, models_dir: Path, reports_dir: Path, config_dir: Path) -> dict[str, Any]:
    """Score both models on the test split, pick the champion, write and track reports."""
    config = load_config(config_dir / "evaluate.yaml", EvaluateConfig)
    bins = load_config(config_dir / "calibration.yaml", CalibrationConfig).ece_bins
    splits = load_splits(data_dir)
    test = splits["test"]
    results = {name: evaluate_model(name, models_dir / name, test, config.predict_batch_size, bins) for name in MODEL_NAMES}
    human = human_reference(splits)
    unit_column = {"article": "article_id", "sentence": "id"}[config.bootstrap.unit]
    bootstrap = {
        **paired_bootstrap(
            test["stance"],
            results["transformer"]["predictions"]["stance"],
            results["baseline"]["predictions"]["stance"],
            test[unit_column],
            lambda gold, pred: macro_f1(gold, pred, "stance"),
            resamples=config.bootstrap.resamples,
            confidence=config.bootstrap.confidence,
            seed=config.bootstrap.seed,
        ),
        "unit": config.bootstrap.unit,
    }
    champion = max(MODEL_NAMES, key=lambda n: results[n]["scores"][config.champion_metric])

    period = load_config(config_dir / "trends.yaml", TrendsConfig).check_period
    checks = {name: trend_check(test, result, period) for name, result in results.items()}
    figures, plots = reports_dir / "figures", reports_dir / "plots"
    trend_check_png(checks, figures / "trends_check.png")
    atomic.write_json(reports_dir / "trends_check.json", checks)
    atomic.write_text(reports_dir / "trends_check.md", trend_check_markdown(checks))
    for name, result in results.items():
        atomic.write_text(plots / f"predictions_{name}.csv", _predictions_csv(test, result["predictions"]))
        for field, labels in FIELDS.items():
            matrix = confusion(test[field], result["predictions"][field], field)
            confusion_png(matrix, labels, f"{name}: {field} (test)", figures / f"confusion_{name}_{field}.png")
    # metrics.json holds the headline numbers (what `dvc metrics show` and
    # `dvc exp show` print); details.json holds per-class scores and the rest.
    metrics = {
        **{name: r["scores"] for name, r in results.items()},
        HUMAN: {
            **human["test"]["scores"],
            **{f"{f}_kappa": human["test"][f]["kappa"] for f in FIELDS},
        },
        "transformer_minus_baseline": {k: bootstrap[k] for k in ("difference", "low", "high")},
        "trend_share_mae": {name: {e: c["estimators"][e]["share_mae"] for e in ESTIMATORS} for name, c in checks.items()},
        "champion": champion,
    }
    details = {
        "per_class": {name: r["per_class"] for name, r in results.items()},
        "expected_calibration_error": {name: r["ece"] for name, r in results.items()},
        HUMAN: human,
        "bootstrap_stance_macro_f1": bootstrap,
        "test_sentences": len(test),
    }
    atomic.write_json(reports_dir / "metrics.json", metrics)
    atomic.write_json(reports_dir / "details.json", details)
    atomic.write_text(reports_dir / "comparison.md", comparison_markdown(results, human, bootstrap, champion, len(test)))
    versions = _track(results, human, champion, data_dir, models_dir, reports_dir, config_dir)
    # The registered version of the champion's own weights (what predictions are stamped
    # with); the registry's `champion` alias moves only when it beats the current one.
    champion_record = {"model": champion, config.champion_metric: results[champion]["scores"][config.champion_metric], **versions[champion],
                       "registered": versions}
    atomic.write_json(models_dir / CHAMPION_FILE, champion_record)
    return metrics


def _track(
    results: dict[str, Any], human: dict[str, Any], champion: str, data_dir: Path, models_dir: Path, reports_dir: Path, config_dir: Path
) -> dict[str, dict[str, str]]:
    """Add test scores to each model's training run; register models; track humans.

    Returns each model's registered name and version."""
    registered: dict[str, dict[str, str]] = {}
    tracking_config, experiment_id = start_tracking(config_dir)
    versions = data_tags(data_dir)
    shared = [reports_dir / name for name in ("comparison.md", "metrics.json", "details.json", "data.md", "data.json", "trends_check.md")]
    for name, result in results.items():
        record = json.loads((models_dir / name / RUN_FILE).read_text(encoding="utf-8"))
        figures = [*sorted((reports_dir / "figures").glob(f"confusion_{name}_*.png")), reports_dir / "figures" / "trends_check.png"]
        per_class_f1 = {f: {f"{c}_f1": v["f1"] for c, v in pc.items()} for f, pc in result["per_class"].items()}
        ece = {f"{field}_ece{'' if kind == 'raw' else '_calibrated'}": v for kind, values in result["ece"].items() for field, v in values.items()}
        tracking.add_to_run(
            record["run_id"],
            metrics={**flatten("test", result["scores"]), **flatten("test", per_class_f1), **flatten("test", ece)},
            tags={"evaluated": "true", "champion": str(name == champion).lower()},
            artifacts={"figures": figures, "reports": shared},
        )
        score_tag = {"test_stance_macro_f1": f"{result['scores']['stance_macro_f1']:.6f}", "model": name, **versions}
        version = tracking.register(record["model_uri"], record["registered_model"], score_tag)
        tracking.set_alias(record["registered_model"], "latest_evaluated", version)
        registered[name] = {"registered_model": record["registered_model"], "version": version}
        if name == champion:
            _gate_champion(record["model_uri"], tracking_config.registered_models["champion"], result["scores"]["stance_macro_f1"], score_tag)

    human_tags = {"model": HUMAN, **provenance_tags("evaluate", versions)}
    if tracking.find_run(experiment_id, {"model": HUMAN, "prepared_data_version": versions["prepared_data_version"]}) is None:
        with tracking.run("human agreement (annotator A vs B)", human_tags):
            tracking.log_metrics(flatten("test", human["test"]["scores"]))
            tracking.log_metrics({f"test_{f}_kappa": human["test"][f]["kappa"] for f in FIELDS})
            tracking.log_metrics({f"all_{f}_kappa": human["all"][f]["kappa"] for f in FIELDS})
    return registered


def _gate_champion(model_uri: str, registered: str, stance_f1: float, tags: dict[str, str]) -> None:
    """Move the `champion` alias only when the new model beats the current one."""
    current = tracking.alias_version(registered, tracking.CHAMPION_ALIAS)
    if current is not None:
        held = float(current.tags.get("test_stance_macro_f1", "-1"))
        if stance_f1 <= held:
            return
    version = tracking.register(model_uri, registered, tags)
    tracking.set_alias(registered, tracking.CHAMPION_ALIAS, version)
