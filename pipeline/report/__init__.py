"""Readable reports: Markdown tables and confusion-matrix pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.labels import ACTORS, STANCES


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats shown with 3 decimals."""

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def data_markdown(report: dict[str, Any]) -> str:
    """The data report as Markdown: label counts per split and segmenter agreement."""
    splits = list(report["splits"])
    out = ["# Data report\n\n"]
    out.append(
        markdown_table(
            ["", *splits, "total"],
            [
                ["articles", *(report["splits"][s]["articles"] for s in splits), report["total"]["articles"]],
                ["sentences", *(report["splits"][s]["sentences"] for s in splits), report["total"]["sentences"]],
            ],
        )
    )
    for field, labels in (("stance", STANCES), ("actor", ACTORS)):
        out.append(f"\n## {field}\n\n")
        out.append(
            markdown_table(
                [field, *splits, "total"],
                [
                    [label, *(report["splits"][s]["labels"][field][label] for s in splits), report["total"]["labels"][field][label]]
                    for label in labels
                ],
            )
        )
    out.append(f"\nData version {report.get('data_version', report.get('corpus_version'))}: the bundled corpus {report.get('corpus_version')}")
    batches = report.get("batches") or {}
    if batches:
        out.append(" plus the accepted user batches below.\n\n")
        out.append(markdown_table(["batch", "articles", "sentences", "split", "version"],
                                  [[n, b["articles"], b["sentences"], b["split"], b["version"]] for n, b in batches.items()]))
    else:
        out.append(", no user batches.\n")
    seg = report["segmenter"]
    out.append(
        f"\n## Sentence segmenter\n\nThe segmenter reproduces {seg['boundary_agreement']:.4f} of the corpus's "
        f"sentences exactly ({seg['sentences_not_reproduced']} not reproduced). Training and evaluation use the "
        "corpus's own sentences, to which the labels belong; the segmenter serves new text in `predict`.\n\n"
    )
    for example in seg["examples"]:
        out.append(f"- `{example['id']}`: {example['text']}\n")
    return "".join(out)


def confusion_png(matrix: np.ndarray, labels: Sequence[str], title: str, path: Path) -> None:
    """Save a confusion matrix (rows gold, columns predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.0 * len(labels) + 1.8))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    top = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color="white" if matrix[i, j] > top / 2 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def trend_check_png(checks: dict[str, Any], path: Path) -> None:
    """Predicted against gold stance shares on the test split, a panel per model, a colour per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(checks), figsize=(4.6 * len(checks), 4.4), squeeze=False)
    for ax, (model, check) in zip(axes[0], checks.items()):
        for estimator, marker in (("count", "o"), ("probability", "^")):
            rows = [r for r in check["rows"] if r["estimator"] == estimator]
            mae = check["estimators"][estimator]["share_mae"]
            ax.scatter([r["gold_share"] for r in rows], [r["predicted_share"] for r in rows], marker=marker, alpha=0.6, label=f"{estimator} (MAE {mae:.3f})")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"gold share (per {check['period']}, actor, stance)")
        ax.set_ylabel("predicted share")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
