"""How far annotators agree: Cohen's kappa, Krippendorff's alpha, per label, confusion.

Passes are {annotator: {sentence id: (actor, stance)}}, complete (the bundled corpus's
a and b) or partial (a user batch, where not everyone labels every sentence).

- Cohen's kappa for every pair of annotators, on the sentences both labelled.
- Krippendorff's alpha, nominal, over all annotators with missing ratings (the
  `krippendorff` package; its default level is interval, and its matrix is raters x
  units, so both are set explicitly here).
- Per label: alpha of "this label or not", and specific agreement, the chance that
  when one annotator picks the label another does too (2 n_both / (n_1 + n_2)).
- The confusion matrix of each pair, and each annotator against a model's predictions.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.labels import FIELDS
from pipeline.metrics import agreement as pair_agreement
from pipeline.metrics import confusion, macro_f1
from pipeline.report import markdown_table

Passes = Mapping[str, Mapping[str, tuple[str, str]]]
INDEX = {"actor": 0, "stance": 1}


def reliability_matrix(passes: Passes, field: str, units: Sequence[str]) -> np.ndarray:
    """Raters x units label codes (schema order), NaN where a rater did not label a unit."""
    codes = {label: i for i, label in enumerate(FIELDS[field])}
    matrix = np.full((len(passes), len(units)), np.nan)
    for r, name in enumerate(sorted(passes)):
        labels = passes[name]
        for u, sid in enumerate(units):
            if sid in labels:
                matrix[r, u] = codes[labels[sid][INDEX[field]]]
    return matrix


def krippendorff_alpha(matrix: np.ndarray, domain: int) -> float:
    """Nominal Krippendorff's alpha of a raters x units matrix with NaN for missing."""
    import krippendorff

    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    if pairable.sum() == 0 or len(np.unique(matrix[:, pairable][~np.isnan(matrix[:, pairable])])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal", value_domain=list(range(domain))))


def per_label(matrix: np.ndarray, field: str) -> dict[str, dict[str, float]]:
    """For each label: alpha of the label-or-not data, and specific (positive) agreement."""
    out = {}
    for code, label in enumerate(FIELDS[field]):
        binary = np.where(np.isnan(matrix), np.nan, (matrix == code).astype(float))
        both = ones = 0.0
        for i, j in combinations(range(matrix.shape[0]), 2):
            shared = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
            a, b = matrix[i, shared] == code, matrix[j, shared] == code
            both, ones = both + 2 * float(np.sum(a & b)), ones + float(np.sum(a) + np.sum(b))
        out[label] = {"alpha": krippendorff_alpha(binary, 2), "specific_agreement": both / ones if ones else float("nan"),
                      "count": int(np.nansum(matrix == code))}
    return out


def compute(passes: Passes, model: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Every agreement figure of `passes` (and of each annotator against `model`)."""
    if len(passes) < 1:
        raise ValueError("no annotator passes to compare")
    units = sorted({sid for labels in passes.values() for sid in labels})
    report: dict[str, Any] = {"annotators": sorted(passes), "sentences": len(units),
                              "labelled_per_annotator": {n: len(passes[n]) for n in sorted(passes)}, "fields": {}}
    for field in FIELDS:
        matrix = reliability_matrix(passes, field, units)
        pairs = {}
        for a, b in combinations(sorted(passes), 2):
            shared = sorted(set(passes[a]) & set(passes[b]))
            la = [passes[a][s][INDEX[field]] for s in shared]
            lb = [passes[b][s][INDEX[field]] for s in shared]
            pairs[f"{a} vs {b}"] = {"sentences": len(shared), **(pair_agreement(la, lb, field) if shared else {}),
                                    "confusion": confusion(la, lb, field).tolist() if shared else []}
        versus_model = {}
        if model is not None:
            for name in sorted(passes):
                shared = sorted(set(passes[name]) & set(model))
                gold = [passes[name][s][INDEX[field]] for s in shared]
                pred = [model[s][INDEX[field]] for s in shared]
                versus_model[name] = {"sentences": len(shared), **(pair_agreement(gold, pred, field) if shared else {}),
                                      "model_macro_f1": macro_f1(gold, pred, field) if shared else float("nan")}
        report["fields"][field] = {
            "krippendorff_alpha": krippendorff_alpha(matrix, len(FIELDS[field])),
            "pairs": pairs,
            "per_label": per_label(matrix, field),
            "versus_model": versus_model,
        }
    return report


def markdown(report: dict[str, Any], title: str) -> str:
    """The agreement report as Markdown."""
    lines = [f"# Annotator agreement: {title}\n\n",
             f"{report['sentences']} sentences, {len(report['annotators'])} annotators "
             f"({', '.join(f'{n}: {c}' for n, c in report['labelled_per_annotator'].items())} labelled).\n"]
    for field, r in report["fields"].items():
        lines.append(f"\n## {field}\n\nKrippendorff's alpha (nominal, all annotators, missing allowed): **{r['krippendorff_alpha']:.3f}**\n\n")
        if r["pairs"]:
            lines.append(markdown_table(["pair", "sentences", "Cohen's kappa", "macro-F1", "raw agreement"],
                                        [[p, v["sentences"], v.get("kappa", float("nan")), v.get("macro_f1", float("nan")), v.get("raw_agreement", float("nan"))]
                                         for p, v in r["pairs"].items()]))
        lines.append("\nPer label:\n\n")
        lines.append(markdown_table(["label", "count", "alpha (label or not)", "specific agreement"],
                                    [[label, v["count"], v["alpha"], v["specific_agreement"]] for label, v in r["per_label"].items()]))
        for pair, v in list(r["pairs"].items())[:3]:
            if v["confusion"]:
                first, second = pair.split(" vs ")
                lines.append(f"\nConfusion, {pair} (rows {first}, columns {second}):\n\n")
                lines.append(markdown_table([f"{first} \\ {second}", *FIELDS[field]], [[label, *row] for label, row in zip(FIELDS[field], v["confusion"])]))
        if r["versus_model"]:
            lines.append("\nEach annotator against the model (the annotator as gold):\n\n")
            lines.append(markdown_table(["annotator", "sentences", "kappa", "model macro-F1"],
                                        [[n, v["sentences"], v.get("kappa", float("nan")), v["model_macro_f1"]] for n, v in r["versus_model"].items()]))
    return "".join(lines)
