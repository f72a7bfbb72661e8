"""Scores: macro-F1, per-class scores, confusion matrices, paired bootstrap, agreement."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from pipeline.labels import FIELDS

# scikit-learn is imported inside the functions that use it: the served transformer imports
# this module (through calibration) and needs none of it, and sklearn's import is a large
# share of the served model's load time.


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], field: str) -> float:
    """Macro-F1 over every label of `field` that occurs in gold or prediction."""
    from sklearn.metrics import f1_score

    present = [label for label in FIELDS[field] if label in set(y_true) | set(y_pred)]
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def per_class(y_true: Sequence[str], y_pred: Sequence[str], field: str) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each label of `field`."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(FIELDS[field])
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, label in enumerate(labels)
    }


def confusion(y_true: Sequence[str], y_pred: Sequence[str], field: str) -> np.ndarray:
    """Confusion matrix of `field`, rows gold, columns predicted, in schema order."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(FIELDS[field]))


def score(
    gold_actor: Sequence[str], gold_stance: Sequence[str], pred_actor: Sequence[str], pred_stance: Sequence[str]
) -> dict[str, float]:
    """The headline scores, with the same names for every system."""
    gold_actor, gold_stance = np.asarray(gold_actor), np.asarray(gold_stance)
    pred_actor, pred_stance = np.asarray(pred_actor), np.asarray(pred_stance)
    return {
        "stance_macro_f1": macro_f1(gold_stance, pred_stance, "stance"),
        "actor_macro_f1": macro_f1(gold_actor, pred_actor, "actor"),
        "stance_accuracy": float(np.mean(gold_stance == pred_stance)) if len(gold_stance) else 0.0,
        "actor_accuracy": float(np.mean(gold_actor == pred_actor)) if len(gold_actor) else 0.0,
        "pair_accuracy": float(np.mean((gold_actor == pred_actor) & (gold_stance == pred_stance)))
        if len(gold_actor)
        else 0.0,
    }


def paired_bootstrap(
    gold: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    groups: Sequence[str],
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, float]:
    """Interval for metric(a) - metric(b), resampling whole groups with replacement.

    Sentences of one article are not independent, so resampling articles (pass
    the article ids as `groups`) gives an honest interval; pass the sentence ids
    to resample sentences. Both systems are scored on the same resample.
    """
    gold, pred_a, pred_b, groups = map(np.asarray, (gold, pred_a, pred_b, groups))
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for r in range(resamples):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))])
        diffs[r] = metric(gold[idx], pred_a[idx]) - metric(gold[idx], pred_b[idx])
    alpha = (1.0 - confidence) / 2.0
    return {
        "difference": float(metric(gold, pred_a) - metric(gold, pred_b)),
        "low": float(np.quantile(diffs, alpha)),
        "high": float(np.quantile(diffs, 1.0 - alpha)),
        "p_not_greater": float(np.mean(diffs <= 0.0)),
        "resamples": int(resamples),
        "confidence": float(confidence),
    }


def fold_interval(differences: Sequence[float], confidence: float) -> dict[str, float]:
    """Mean of per-fold differences with a Student-t interval over the folds.

    Each fold's difference is one paired observation (both systems trained and
    tested on the same articles), so the interval carries the variation that
    comes from training on other data, which a bootstrap of one test set cannot.
    """
    from scipy import stats

    values = np.asarray(differences, float)
    k = len(values)
    if k < 2:
        raise ValueError(f"an interval over folds needs at least 2 folds, got {k}")
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, k - 1)) * sd / np.sqrt(k)
    return {"difference": mean, "sd": sd, "low": mean - half, "high": mean + half, "folds": k, "confidence": float(confidence)}


def agreement(labels_a: Sequence[str], labels_b: Sequence[str], field: str) -> dict[str, float]:
    """Cohen's kappa, macro-F1 (one pass scored against the other) and raw agreement."""
    from sklearn.metrics import cohen_kappa_score

    a, b = np.asarray(labels_a), np.asarray(labels_b)
    return {
        "kappa": float(cohen_kappa_score(a, b, labels=list(FIELDS[field]))),
        "macro_f1": macro_f1(a, b, field),
        "raw_agreement": float(np.mean(a == b)),
    }


def flatten(prefix: str, nested: dict[str, Any]) -> dict[str, float]:
    """Flatten {"label": {"f1": x}} into {"prefix_label_f1": x} for metric logging."""
    out: dict[str, float] = {}
    for key, value in nested.items():
        name = f"{prefix}_{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out


def calibration(confidence: Sequence[float], correct: Sequence[bool], bins: int) -> dict[str, Any]:
    """Expected calibration error and the reliability table (equal-width bins)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        conf, acc = float(confidence[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(conf - acc)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "confidence": conf, "accuracy": acc, "count": int(members.sum())})
    return {"ece": float(ece), "bins": table}


def abstention_curve(
    gold: Sequence[str], pred: Sequence[str], confidence: Sequence[float], thresholds: Sequence[float], field: str
) -> list[dict[str, float]]:
    """Predictions below each confidence threshold abstain as `none`.

    For each threshold: coverage (share of sentences still answered), accuracy on
    those, and the macro-F1 of all sentences once abstentions count as `none`.
    """
    gold, pred, confidence = np.asarray(gold), np.asarray(pred), np.asarray(confidence, float)
    rows = []
    for t in thresholds:
        kept = confidence >= t
        answered = np.where(kept, pred, "none")
        rows.append(
            {
                "threshold": float(t),
                "coverage": float(kept.mean()),
                "accuracy_answered": float((gold[kept] == pred[kept]).mean()) if kept.any() else 0.0,
                "macro_f1": macro_f1(gold, answered, field),
            }
        )
    return rows
