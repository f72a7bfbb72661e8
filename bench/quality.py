"""How good is each system, beyond one test number from one seed?

Trains and scores, on the prepared splits (the same test split as `dvc repro`):
  reference systems  majority class, keyword/alias rules (configs/rules.yaml), frozen
                     MiniLM embeddings + logistic regression
  our two models     TF-IDF baseline and fine-tuned transformer, over several seeds
  ideas              transformer variants (configs/benchmark.yaml `ideas`) and the
                     average of baseline and transformer probabilities; an idea is
                     "kept" only if it beats the plain transformer (or the idea it
                     builds on) on *validation*
plus a learning curve, a temporal check (train up to a date, test on later news),
calibration (ECE, reliability, abstention curve) and the largest confusions with
example sentences. Writes reports/benchmark.{md,json} and figures, and logs a run
to MLflow.

    python bench/quality.py            # the full benchmark (about 6 hours on 2 cores with MPNet; finished runs are cached)
    python bench/quality.py --quick    # one seed, a few articles, 1 epoch: tests the code path
    python bench/quality.py --only-cross-validation --cv-systems baseline transformer
                                       # just the k-fold cross-validation of these systems
    python bench/quality.py --only-systems transformer+fp32
                                       # just these rows of the seed table (and the rows an idea is judged against)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline import atomic, tracking
from pipeline.calibration import Temperatures, expected_calibration_error
from pipeline.config import (
    BaselineConfig,
    BenchmarkConfig,
    RuleConfig,
    TransformerConfig,
    load_config,
)
from pipeline.corpus import assign_folds, load_splits
from pipeline.labels import FIELDS, STANCES, decode, joint_probabilities
from pipeline.metrics import abstention_curve, calibration, fold_interval, macro_f1, paired_bootstrap, per_class, score
from pipeline.models import Probabilities, validation_scores
from pipeline.models.baseline import BaselineModel
from pipeline.models.reference import EmbeddingModel, MajorityModel, RuleModel
from pipeline.models.transformer import TransformerModel
from pipeline.report import markdown_table
from pipeline.stages import provenance_tags, start_tracking
from pipeline.stages.train import data_tags

HEADLINE = ("stance_macro_f1", "actor_macro_f1", "pair_accuracy")


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled)."""

    INTERVAL_S = 0.05

    def __enter__(self) -> "PeakRSS":
        import psutil

        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def as_columns(dataset: Any) -> dict[str, list[Any]]:
    return dataset[:] if hasattr(dataset, "column_names") else dataset


def select_articles(data: dict[str, list[Any]], keep: set[str]) -> dict[str, list[Any]]:
    rows = [i for i, a in enumerate(data["article_id"]) if a in keep]
    return {k: [v[i] for i in rows] for k, v in data.items()}


def article_subset(data: dict[str, list[Any]], fraction: float, seed: int) -> dict[str, list[Any]]:
    """A seeded random share of the articles of `data` (at least one)."""
    ids = sorted(set(data["article_id"]))
    count = max(1, round(len(ids) * fraction))
    picked = np.random.default_rng(seed).permutation(len(ids))[:count]
    return select_articles(data, {ids[i] for i in picked})


def run_key(spec: dict[str, Any], train: dict, validation: dict, test: dict) -> str:
    """Names one training run by what is trained (its config) and on which sentences.

    Like DVC's run cache it does not see code: after changing how a model trains,
    run with --no-cache (or delete reports/benchmark/cache).
    """
    payload = {"spec": spec, **{n: d["id"] for n, d in (("train", train), ("validation", validation), ("test", test))}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_system(make: Callable[[], Any], train: dict, validation: dict, test: dict, cache: Path | None = None) -> dict[str, Any]:
    """Fit one system; score it on validation and test; keep its probabilities.

    With `cache` (a path without suffix), a finished run's probabilities and costs
    are stored there and reused, so an interrupted benchmark resumes where it stopped.
    """
    stored = cache.with_suffix(".npz") if cache else None
    if stored and stored.exists():
        saved = np.load(stored)
        val_proba = Probabilities(saved["val_actor"], saved["val_stance"])
        test_proba = Probabilities(saved["test_actor"], saved["test_stance"])
        seconds, peak_mb = float(saved["train_seconds"]), float(saved["peak_rss_mb"])
    else:
        with PeakRSS() as memory:
            started = time.perf_counter()
            model = make().fit(train, validation)
            seconds = time.perf_counter() - started
        val_proba, test_proba, peak_mb = model.predict_proba(validation), model.predict_proba(test), memory.mb
        if stored:
            stored.parent.mkdir(parents=True, exist_ok=True)
            partial = stored.with_suffix(".partial.npz")
            np.savez(partial, val_actor=val_proba.actor, val_stance=val_proba.stance, test_actor=test_proba.actor,
                     test_stance=test_proba.stance, train_seconds=seconds, peak_rss_mb=peak_mb)
            partial.replace(stored)
    return {
        "validation": validation_scores(val_proba, validation),
        **scored(test_proba, test),
        "train_seconds": seconds,
        "peak_rss_mb": peak_mb,
        "_val_proba": val_proba,
        "_test_proba": test_proba,
    }


def scored(proba: Probabilities, test: dict) -> dict[str, Any]:
    actors, stances = decode(proba.actor, proba.stance)
    return {
        "scores": score(test["actor"], test["stance"], actors, stances),
        "per_class_f1": {f: {c: v["f1"] for c, v in per_class(test[f], p, f).items()} for f, p in (("actor", actors), ("stance", stances))},
        "_pred": {"actor": actors, "stance": stances},
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of the headline scores."""
    out: dict[str, Any] = {"seeds": len(runs)}
    for key in (*HEADLINE, "stance_accuracy", "actor_accuracy"):
        values = [r["scores"][key] for r in runs]
        out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    out["validation_stance_macro_f1"] = float(np.mean([r["validation"]["validation_stance_macro_f1"] for r in runs if "validation" in r] or [np.nan]))
    out["per_class_f1"] = {
        f: {c: float(np.mean([r["per_class_f1"][f][c] for r in runs])) for c in FIELDS[f]} for f in FIELDS
    }
    out["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
    out["peak_rss_mb"] = float(max(r["peak_rss_mb"] for r in runs))
    return out


def average(a: Probabilities, b: Probabilities) -> Probabilities:
    return Probabilities((a.actor + b.actor) / 2.0, (a.stance + b.stance) / 2.0)


def mark_kept(systems: dict[str, dict[str, Any]], runs: dict[str, list[dict[str, Any]]], against: dict[str, str], confidence: float) -> None:
    """An idea is kept when its validation stance macro-F1 beats its reference's,
    both averaged over the same seeds. The reference is the plain transformer, or
    for an idea that builds on another (`against`), that idea's system. The per-seed
    differences (each seed trains both on the same data and order) get a t interval,
    which says whether a gap is more than seed noise."""
    for name, system in systems.items():
        if system["kind"] == "idea":
            base = against.get(name, "transformer")
            plain = [r["validation"]["validation_stance_macro_f1"] for r in runs[base]][: len(runs[name])]
            reference = float(np.mean(plain))
            system["validation_reference"] = reference
            system["compared_with"] = base
            system["kept"] = "yes" if system["validation_stance_macro_f1"] > reference else "no"
            differences = [r["validation"]["validation_stance_macro_f1"] - p for r, p in zip(runs[name], plain)]
            system["validation_differences"] = differences
            if len(differences) > 1:
                system["validation_difference"] = fold_interval(differences, confidence)
            else:
                system["validation_difference"] = {"difference": differences[0]}


def confusions(test: dict, pred: list[str], field: str, examples: int, top: int = 5) -> list[dict[str, Any]]:
    """The largest off-diagonal confusions of `field`, with example sentences."""
    pairs = Counter((g, p) for g, p in zip(test[field], pred) if g != p)
    out = []
    for (gold, wrong), count in pairs.most_common(top):
        idx = [i for i, (g, p) in enumerate(zip(test[field], pred)) if (g, p) == (gold, wrong)][:examples]
        out.append({"gold": gold, "predicted": wrong, "count": count, "examples": [{"id": test["id"][i], "text": test["text"][i]} for i in idx]})
    return out


def plot_lines(path: Path, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, title: str, diagonal: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, points in series.items():
        xs, ys = zip(*points) if points else ((), ())
        ax.plot(xs, ys, marker="o", label=name)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(summary: dict[str, Any], key: str) -> str:
    value = summary[key]
    return f"{value['mean']:.3f} ± {value['std']:.3f}" if summary["seeds"] > 1 else f"{value['mean']:.3f}"


def kept_cell(system: dict[str, Any]) -> str:
    """The kept column: yes/no, and the reference when it is not the plain transformer."""
    kept, base = system.get("kept", ""), system.get("compared_with", "transformer")
    return kept if base == "transformer" else f"{kept} (vs {base} {system['validation_reference']:.3f})"


def cross_validate(
    config: Any, pool: dict[str, list[Any]], makers: dict[str, tuple[Any, bool]], fit: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """K-fold cross-validation over the articles of `pool`, the same folds for every system.

    `makers` maps a system's name to (its Maker, whether it trains on the fold's
    validation articles too). Each fold's training articles are split once more:
    1 in `validation_folds` validates (early stopping, C). Every article is
    predicted exactly once, by the models that never saw it; systems are compared
    pairwise by the mean per-fold difference (Student-t over folds) and by a paired
    bootstrap over articles of the pooled out-of-fold predictions.
    """
    folds = assign_folds(pool["article_id"], config.folds, config.seed)
    out: dict[str, Any] = {"folds": config.folds, "articles": len(folds), "sentences": len(pool["text"]), "systems": {}}
    predictions: dict[str, dict[str, list[str]]] = {}
    for name, (maker, on_all) in makers.items():
        per_fold, pred = [], {"actor": [""] * len(pool["text"]), "stance": [""] * len(pool["text"])}
        for k in range(config.folds):
            test_ids = {a for a, f in folds.items() if f == k}
            rest = sorted(a for a in folds if a not in test_ids)
            inner = assign_folds(rest, config.validation_folds, config.seed + 1 + k)
            val_ids = {a for a, f in inner.items() if f == 0}
            f_val, f_test = select_articles(pool, val_ids), select_articles(pool, test_ids)
            f_train = select_articles(pool, set(rest) if on_all else set(rest) - val_ids)
            print(f"[benchmark] cross-validation {name}: fold {k + 1}/{config.folds}", file=sys.stderr, flush=True)
            result = fit(maker, f_train, f_val, f_test)
            per_fold.append(result["scores"])
            rows = [i for i, a in enumerate(pool["article_id"]) if a in test_ids]
            for field in ("actor", "stance"):
                for i, label in zip(rows, result["_pred"][field]):
                    pred[field][i] = label
        predictions[name] = pred
        pooled = score(pool["actor"], pool["stance"], pred["actor"], pred["stance"])
        out["systems"][name] = {
            "per_fold": per_fold,
            **{key: {"mean": float(np.mean([f[key] for f in per_fold])), "std": float(np.std([f[key] for f in per_fold], ddof=1))} for key in HEADLINE},
            "pooled": pooled,
        }
    out["paired"] = {}
    names = list(makers)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diffs = [fa["stance_macro_f1"] - fb["stance_macro_f1"] for fa, fb in zip(out["systems"][a]["per_fold"], out["systems"][b]["per_fold"])]
            out["paired"][f"{a} - {b}"] = {
                "folds": fold_interval(diffs, config.confidence),
                "pooled_bootstrap": paired_bootstrap(
                    pool["stance"], predictions[a]["stance"], predictions[b]["stance"], pool["article_id"],
                    lambda gold, pred: macro_f1(gold, pred, "stance"), resamples=config.resamples, confidence=config.confidence, seed=config.seed,
                ),
            }
    return out


def render_cross_validation(cv: dict[str, Any]) -> str:
    """The cross-validation section of reports/benchmark.md."""
    lines = [
        f"\n## {cv['folds']}-fold cross-validation over the development articles\n\n",
        f"{cv['articles']} articles ({cv['sentences']} sentences) of train + validation, the fixed test split left out; "
        "the same folds for every system, one seed. Mean ± standard deviation over folds, and the pooled out-of-fold "
        "score (every article predicted once, by models that never saw it).\n\n",
        markdown_table(
            ["system", "stance macro-F1", "actor macro-F1", "pair accuracy", "pooled stance F1", "pooled actor F1"],
            [
                [name, *(f"{r[k]['mean']:.3f} ± {r[k]['std']:.3f}" for k in HEADLINE), r["pooled"]["stance_macro_f1"], r["pooled"]["actor_macro_f1"]]
                for name, r in cv["systems"].items()
            ],
        ),
        "\nPaired differences of stance macro-F1:\n\n",
        markdown_table(
            ["pair", "mean over folds", f"t interval over folds", "pooled difference", "bootstrap interval over articles"],
            [
                [pair, f"{d['folds']['difference']:+.3f}", f"[{d['folds']['low']:+.3f}, {d['folds']['high']:+.3f}]",
                 f"{d['pooled_bootstrap']['difference']:+.3f}", f"[{d['pooled_bootstrap']['low']:+.3f}, {d['pooled_bootstrap']['high']:+.3f}]"]
                for pair, d in cv["paired"].items()
            ],
        ),
    ]
    return "".join(lines)


def render_systems(report: dict[str, Any]) -> str:
    """The seed table: every system's test scores over seeds, and whether each idea is kept."""
    s = report["systems"]
    lines = [
        f"Test split: {report['test_sentences']} sentences from {report['test_articles']} articles, never used for a choice. "
        "Mean ± standard deviation over seeds; an idea is kept only if its mean validation stance macro-F1 beats the plain "
        "transformer's (or that of the idea it builds on, named in the kept column) over the same seeds. Peak MB is the benchmark process's resident memory while the system trained (it includes what "
        "earlier systems left loaded).\n\n",
        markdown_table(
            ["system", "kind", "seeds", "stance macro-F1", "actor macro-F1", "pair accuracy", "val stance F1", "kept", "train s", "peak MB"],
            [
                [name, r["kind"], r["seeds"], fmt(r, "stance_macro_f1"), fmt(r, "actor_macro_f1"), fmt(r, "pair_accuracy"),
                 f"{r['validation_stance_macro_f1']:.3f}", kept_cell(r), f"{r['train_seconds']:.1f}", f"{r['peak_rss_mb']:.0f}"]
                for name, r in s.items()
            ],
        ),
        "\nStance F1 per class (mean over seeds):\n\n",
        markdown_table(["system", *STANCES], [[n, *(r["per_class_f1"]["stance"][c] for c in STANCES)] for n, r in s.items()]),
    ]
    paired = {n: r for n, r in s.items() if "validation_differences" in r}
    if paired:
        lines.append("\nIdeas against their reference, paired by seed (validation stance macro-F1, idea minus reference):\n\n")
        lines.append(markdown_table(
            ["idea", "reference", "per seed", "mean", "t interval over seeds"],
            [[n, r["compared_with"], " ".join(f"{d:+.3f}" for d in r["validation_differences"]), f"{r['validation_difference']['difference']:+.3f}",
              f"[{r['validation_difference']['low']:+.3f}, {r['validation_difference']['high']:+.3f}]" if len(r["validation_differences"]) > 1 else "one seed"]
             for n, r in paired.items()],
        ))
    return "".join(lines)


def render(report: dict[str, Any]) -> str:
    """reports/benchmark.md"""
    s = report["systems"]
    lines = [
        f"# Quality benchmark{' (quick mode: tiny data, not a result)' if report['quick'] else ''}\n\n",
        render_systems(report),
        "\n## Learning curve (stance macro-F1 on the test split)\n\n![learning curve](benchmark/learning_curve.png)\n\n",
        markdown_table(
            ["share of training articles", *report["learning_curve"]],
            [[f, *(dict(report["learning_curve"][m]).get(f, float("nan")) for m in report["learning_curve"])] for f in report["learning_curve_fractions"]],
        ),
        f"\n## Temporal check: trained on articles up to {report['temporal']['cutoff']}, tested on later ones\n\n",
    ]
    temporal = report["temporal"]
    if "skipped" in temporal:
        lines.append(f"Skipped: {temporal['skipped']}\n")
    else:
        lines.append(f"{temporal['train_articles']} articles before, {temporal['test_articles']} after ({temporal['test_sentences']} sentences).\n\n")
        lines.append(
            markdown_table(
                ["system", "stance macro-F1 later news", "stance macro-F1 main test split"],
                [[m, temporal["systems"][m]["stance_macro_f1"], s[m]["stance_macro_f1"]["mean"]] for m in temporal["systems"]],
            )
        )
    fitted = {m: c for m, c in report["calibration"].items() if "ece_calibrated_by_field" in c}
    if fitted:
        lines.append("\n## Temperature scaling (fitted on validation, ECE on test)\n\n")
        lines.append(markdown_table(
            ["system", "stance T", "stance ECE", "stance ECE calibrated", "actor T", "actor ECE", "actor ECE calibrated"],
            [[m, c["temperatures"]["stance"], c["ece_by_field"]["stance"], c["ece_calibrated_by_field"]["stance"],
              c["temperatures"]["actor"], c["ece_by_field"]["actor"], c["ece_calibrated_by_field"]["actor"]] for m, c in fitted.items()],
        ))
    lines.append("\n## Calibration (stance)\n\n![reliability](benchmark/reliability.png) ![abstention](benchmark/abstention.png)\n\n")
    lines.append(
        markdown_table(
            ["system", "ECE", *(f"coverage / macro-F1 at p≥{t['threshold']:g}" for t in next(iter(report["calibration"].values()))["abstention"])],
            [
                [m, c["ece"], *(f"{t['coverage']:.2f} / {t['macro_f1']:.3f}" for t in c["abstention"])]
                for m, c in report["calibration"].items()
            ],
        )
    )
    lines.append(render_cross_validation(report["cross_validation"]))
    lines.append("\n## Largest stance confusions\n")
    for model, rows in report["errors"].items():
        lines.append(f"\n### {model}\n\n")
        for row in rows:
            lines.append(f"- gold **{row['gold']}** predicted **{row['predicted']}**: {row['count']} sentences, e.g.\n")
            for example in row["examples"]:
                lines.append(f"  - `{example['id']}` {example['text']}\n")
    lines.append(f"\n{report['notes']}\n")
    return "".join(lines)


def public(value: Any) -> Any:
    """Drop the in-memory fields (probabilities, predictions) before writing JSON."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, a few articles, 1 epoch")
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--configs", default="configs")
    parser.add_argument("--reports", default="reports", help="writes benchmark.{md,json} here, figures and the run cache under benchmark/")
    parser.add_argument("--no-cache", action="store_true", help="retrain every system instead of reusing finished runs")
    parser.add_argument("--only-cross-validation", action="store_true",
                        help="run only the cross-validation; writes cross_validation.{md,json} (benchmark.* stay as they are)")
    parser.add_argument("--cv-systems", nargs="+", metavar="SYSTEM",
                        help="cross-validate these systems instead of benchmark.yaml's cross_validation.systems")
    parser.add_argument("--only-systems", nargs="+", metavar="SYSTEM",
                        help="train and score only these systems of the seed table (plus each idea's reference); writes systems.{md,json}")
    args = parser.parse_args()
    configs, reports = Path(args.configs), Path(args.reports)
    figures = reports / "benchmark"
    cache_dir = None if args.no_cache else figures / "cache"
    bench = load_config(configs / "benchmark.yaml", BenchmarkConfig)
    baseline_config = load_config(configs / "baseline.yaml", BaselineConfig)
    transformer_config = load_config(configs / "transformer.yaml", TransformerConfig)
    rules = load_config(configs / "rules.yaml", RuleConfig)
    splits = {name: as_columns(d) for name, d in load_splits(args.data).items()}

    seeds, fractions, ideas = bench.seeds, bench.learning_curve_fractions, dict(bench.ideas)
    transformer_config = dataclasses.replace(transformer_config, **bench.transformer)
    cutoff, cv_config = bench.temporal_cutoff, bench.cross_validation
    # Applied after every system's own overrides: --quick shrinks them all alike.
    last_overrides: dict[str, Any] = {}
    if args.quick:
        q = bench.quick
        seeds, fractions = q.seeds, q.learning_curve_fractions
        ideas = {k: v for k, v in ideas.items() if k in q.ideas}
        last_overrides = dict(q.transformer)
        transformer_config = dataclasses.replace(transformer_config, **last_overrides)
        cv_config = dataclasses.replace(cv_config, folds=q.cross_validation_folds, validation_folds=2, resamples=50)
        share = {"train": 0.7, "validation": 0.15, "test": 0.15}
        splits = {n: article_subset(d, max(1, round(q.max_articles * share[n])) / len(set(d["article_id"])), 0) for n, d in splits.items()}
        dates = sorted(set(d for data in splits.values() for d in data["date"]))
        cutoff = dates[len(dates) // 2]  # the fixed cutoff may leave a tiny pool one-sided
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    # Checked before any training: a misspelt system must not surface after hours of it.
    cv_names = args.cv_systems or cv_config.systems
    known = {"baseline", "transformer", "train_on_all", *bench.encoders}
    if set(cv_names) - known:
        source = "--cv-systems" if args.cv_systems else "benchmark.yaml cross_validation.systems"
        raise ValueError(f"{source}: unknown {sorted(set(cv_names) - known)}; choices: {sorted(known)}")
    # An idea may run on fewer seeds (`seeds: N` among its overrides: the first N).
    ideas = {name: dict(overrides) for name, overrides in ideas.items()}
    idea_seeds = {name: overrides.pop("seeds") for name, overrides in ideas.items() if "seeds" in overrides}
    # `against: other_idea` compares an idea with another idea instead of the plain transformer.
    against = {f"transformer+{name}": f"transformer+{overrides.pop('against')}" for name, overrides in ideas.items() if "against" in overrides}
    unknown = sorted(set(against.values()) - {f"transformer+{name}" for name in ideas})
    if unknown:
        raise ValueError(f"benchmark.yaml: ideas compare against {unknown}, which are not ideas; choices: {sorted(ideas)}")

    Maker = tuple[dict[str, Any], Callable[[], Any]]  # (what is trained, for the cache key; how)

    def transformer(seed: int, **overrides: Any) -> Maker:
        config = dataclasses.replace(transformer_config, seed=seed, **{**overrides, **last_overrides})
        # Where the encoder cache lies changes no result, so it is not part of the key.
        spec = {"model": "transformer", **{k: v for k, v in dataclasses.asdict(config).items() if k != "encoder_cache"}}
        return spec, lambda: TransformerModel(config)

    def baseline(seed: int) -> Maker:
        config = dataclasses.replace(baseline_config, seed=seed)
        return {"model": "baseline", **dataclasses.asdict(config)}, lambda: BaselineModel(config)

    def fit(maker: Maker, t_train: dict, t_val: dict, t_test: dict) -> dict[str, Any]:
        spec, make = maker
        cache = cache_dir / run_key(spec, t_train, t_val, t_test) if cache_dir else None
        return run_system(make, t_train, t_val, t_test, cache)

    def run_cross_validation() -> dict[str, Any]:
        # The fixed test split never enters: folds are made of the development articles.
        development = {k: train[k] + validation[k] for k in train}
        cv_makers = {
            name: ((transformer(seeds[0], checkpoint="last"), True) if name == "train_on_all"
                   else (baseline(seeds[0]), False) if name == "baseline"
                   else (transformer(seeds[0], **bench.encoders.get(name, {})), False))
            for name in cv_names
        }
        return cross_validate(cv_config, development, cv_makers, fit)

    def log_benchmark(title: str, params: dict[str, Any], metrics: dict[str, float], files: list[Path]) -> None:
        _, _ = start_tracking(configs)
        tags = {"model": "benchmark", **provenance_tags("benchmark", data_tags(Path(args.data)))}
        with tracking.run(f"{title} {'quick ' if args.quick else ''}{dt.date.today().isoformat()}", tags) as run_id:
            tracking.log_params({"seeds": list(seeds), "quick": args.quick, **params})
            tracking.log_metrics(metrics)
            tracking.add_to_run(run_id, {}, {}, {"benchmark": files})

    def system_metrics(systems: dict[str, dict[str, Any]]) -> dict[str, float]:
        # MLflow metric names allow neither "+" nor spaces.
        return {f"{name.replace('+', '_plus_').replace(' ', '_')}_{key}_mean": system[key]["mean"] for name, system in systems.items() for key in HEADLINE}

    def cv_metrics(cv: dict[str, Any]) -> dict[str, float]:
        return {f"cv_{name}_{key}_mean": system[key]["mean"] for name, system in cv["systems"].items() for key in HEADLINE}

    def publish_part(stem: str, title: str, payload: dict[str, Any], render_part: Callable[[dict[str, Any]], str],
                     params: dict[str, Any], metrics: dict[str, float]) -> None:
        # One part of the benchmark run alone: its own report files, MLflow run and printout.
        payload = public({"quick": args.quick, "date": dt.date.today().isoformat(), **payload})
        text = f"# {title}{' (quick mode: tiny data, not a result)' if args.quick else ''}\n\n" + render_part(payload).lstrip("\n")
        atomic.write_json(reports / f"{stem}.json", payload)
        atomic.write_text(reports / f"{stem}.md", text)
        log_benchmark(stem.replace("_", "-"), params, metrics, [reports / f"{stem}.md", reports / f"{stem}.json"])
        print(text)

    if args.only_cross_validation:
        cv = run_cross_validation()
        publish_part("cross_validation", "Cross-validation", cv, render_cross_validation,
                     {"cv_systems": list(cv["systems"]), "folds": cv["folds"]}, cv_metrics(cv))
        return

    embedding = EmbeddingModel(transformer_config.pretrained, bench.embedding.c_grid, seeds[0], bench.embedding.max_length, bench.embedding.batch_size, transformer_config.encoder_cache)
    plan: dict[str, tuple[str, list[Maker]]] = {
        "majority": ("reference", [({"model": "majority"}, MajorityModel)]),
        "rules": ("reference", [({"model": "rules", **dataclasses.asdict(rules)}, lambda: RuleModel(rules))]),
        "frozen_embeddings_lr": ("reference", [({"model": "embedding", **dataclasses.asdict(bench.embedding), "seed": seeds[0]}, lambda: embedding)]),
        "baseline": ("model", [baseline(s) for s in seeds]),
        "transformer": ("model", [transformer(s) for s in seeds]),
        **{name: ("model", [transformer(s, **overrides) for s in seeds]) for name, overrides in bench.encoders.items()},
        **{f"transformer+{name}": ("idea", [transformer(s, **overrides) for s in seeds[: idea_seeds.get(name, len(seeds))]])
           for name, overrides in ideas.items()},
    }
    if args.only_systems:
        unknown_systems = sorted(set(args.only_systems) - set(plan))
        if unknown_systems:
            raise ValueError(f"--only-systems: unknown {unknown_systems}; choices: {sorted(plan)}")
        # An idea is judged against its reference, so the reference runs too, and so on
        # down a chain of ideas that build on one another.
        chosen, todo = set(), list(args.only_systems)
        while todo:
            name = todo.pop()
            if name not in chosen:
                chosen.add(name)
                todo += [against.get(name, "transformer")] if plan[name][0] == "idea" else []
        plan = {name: entry for name, entry in plan.items() if name in chosen}
    runs: dict[str, list[dict[str, Any]]] = {}
    systems: dict[str, dict[str, Any]] = {}
    for name, (kind, makers) in plan.items():
        print(f"[benchmark] {name}: {len(makers)} run(s)", file=sys.stderr, flush=True)
        runs[name] = [fit(maker, train, validation, test) for maker in makers]
        systems[name] = {"kind": kind, **summarise(runs[name])}

    if args.only_systems:
        mark_kept(systems, runs, against, cv_config.confidence)
        table = {"seeds": list(seeds), "test_sentences": len(test["text"]), "test_articles": len(set(test["article_id"])),
                 "systems": systems, "runs": runs}
        publish_part("systems", "Quality benchmark, chosen systems", table, render_systems, {"systems": list(systems)}, system_metrics(systems))
        return

    # The average of baseline and transformer probabilities, seed by seed.
    ensemble = []
    for b, t in zip(runs["baseline"], runs["transformer"]):
        val_proba, test_proba = average(b["_val_proba"], t["_val_proba"]), average(b["_test_proba"], t["_test_proba"])
        ensemble.append({"validation": validation_scores(val_proba, validation), **scored(test_proba, test),
                         "train_seconds": b["train_seconds"] + t["train_seconds"], "peak_rss_mb": max(b["peak_rss_mb"], t["peak_rss_mb"]),
                         "_test_proba": test_proba})
    runs["baseline+transformer average"] = ensemble
    systems["baseline+transformer average"] = {"kind": "idea", **summarise(ensemble)}
    mark_kept(systems, runs, against, cv_config.confidence)

    print("[benchmark] learning curve", file=sys.stderr, flush=True)
    curve: dict[str, list[tuple[float, float]]] = {"baseline": [], "transformer": []}
    for fraction in fractions:
        subset = article_subset(train, fraction, seeds[0]) if fraction < 1 else train
        for model, maker in (("baseline", baseline(seeds[0])), ("transformer", transformer(seeds[0]))):
            result = runs[model][0] if fraction >= 1 else fit(maker, subset, validation, test)
            curve[model].append((fraction, result["scores"]["stance_macro_f1"]))
    plot_lines(figures / "learning_curve.png", curve, "share of training articles", "test stance macro-F1", "Learning curve")

    print("[benchmark] temporal check", file=sys.stderr, flush=True)
    pool = {k: train[k] + validation[k] + test[k] for k in train}
    before = sorted({a for a, d in zip(pool["article_id"], pool["date"]) if d <= cutoff})
    after = sorted({a for a, d in zip(pool["article_id"], pool["date"]) if d > cutoff})
    temporal: dict[str, Any] = {"cutoff": cutoff}
    if len(before) < 2 or not after:
        temporal["skipped"] = f"{len(before)} articles up to {cutoff}, {len(after)} after: too few on one side"
    else:
        rng = np.random.default_rng(seeds[0])
        held = {before[i] for i in rng.permutation(len(before))[: max(1, round(len(before) * bench.temporal_validation))]}
        t_train, t_val = select_articles(pool, set(before) - held), select_articles(pool, held)
        t_test = select_articles(pool, set(after))
        temporal.update({"train_articles": len(before), "test_articles": len(after), "test_sentences": len(t_test["text"]), "systems": {}})
        for model, maker in (("baseline", baseline(seeds[0])), ("transformer", transformer(seeds[0]))):
            temporal["systems"][model] = fit(maker, t_train, t_val, t_test)["scores"]

    cross_validation = run_cross_validation()

    report_calibration: dict[str, Any] = {}
    reliability: dict[str, list[tuple[float, float]]] = {}
    coverage: dict[str, list[tuple[float, float]]] = {}
    for model in ("baseline", "transformer", *bench.encoders, "baseline+transformer average"):
        result = runs[model][0]
        _, stance_p = joint_probabilities(result["_test_proba"].actor, result["_test_proba"].stance)
        confidence = stance_p.max(axis=1)
        correct = np.asarray(result["_pred"]["stance"]) == np.asarray(test["stance"])
        cal = calibration(confidence, correct, bench.calibration_bins)
        abstain = abstention_curve(test["stance"], result["_pred"]["stance"], confidence, bench.abstention_thresholds, "stance")
        report_calibration[model] = {"ece": cal["ece"], "bins": cal["bins"], "abstention": abstain}
        if "_val_proba" in result:
            # Temperature scaling as the train stages do it: fitted on validation, judged on test.
            temperatures = Temperatures.fit(result["_val_proba"], validation)
            report_calibration[model].update(
                temperatures={"actor": temperatures.actor, "stance": temperatures.stance},
                ece_by_field=expected_calibration_error(result["_test_proba"], test, bench.calibration_bins),
                ece_calibrated_by_field=expected_calibration_error(temperatures.apply(result["_test_proba"]), test, bench.calibration_bins),
            )
        reliability[model] = [(b["confidence"], b["accuracy"]) for b in cal["bins"]]
        coverage[model] = [(a["coverage"], a["accuracy_answered"]) for a in abstain]
    plot_lines(figures / "reliability.png", reliability, "confidence (max stance probability)", "accuracy", "Reliability (test, stance)", diagonal=True)
    plot_lines(figures / "abstention.png", coverage, "coverage (share answered)", "accuracy of answered", "Abstaining below a confidence")

    report = {
        "quick": args.quick,
        "date": dt.date.today().isoformat(),
        "seeds": list(seeds),
        "test_sentences": len(test["text"]),
        "test_articles": len(set(test["article_id"])),
        "systems": systems,
        "runs": {name: [public(r) for r in rs] for name, rs in runs.items()},
        "learning_curve_fractions": list(fractions),
        "learning_curve": curve,
        "temporal": temporal,
        "calibration": report_calibration,
        "cross_validation": cross_validation,
        "errors": {m: confusions(test, runs[m][0]["_pred"]["stance"], "stance", bench.error_examples) for m in ("baseline", "transformer")},
        "notes": "context_title reads each sentence with its article's title, on validation and test too; predict() reads a "
        "title only when it is given one. train_on_all is judged by cross-validation only: it trains on the validation articles.",
    }
    atomic.write_json(reports / "benchmark.json", public(report))
    atomic.write_text(reports / "benchmark.md", render(public(report)))

    log_benchmark(
        "benchmark", {"temporal_cutoff": cutoff},
        {**system_metrics(systems), **cv_metrics(cross_validation)},
        [reports / "benchmark.md", reports / "benchmark.json", *sorted(figures.glob("*.png"))],
    )
    print(render(public(report)))


if __name__ == "__main__":
    main()
