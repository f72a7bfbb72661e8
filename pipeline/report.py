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
