"""How much a transformer that reads article titles loses when it gets none.

predict() is mostly given bare text, so a model trained with `context: title` is
scored here on the validation and test splits twice: with each sentence's title,
and with the titles blanked. (A model that reads no title scores the same both
ways.) Prints a table and writes reports/title_ablation.json.

    python bench/title_ablation.py [--models models] [--data data/prepared] [--out reports/title_ablation.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.atomic import write_json
from pipeline.corpus import load_splits
from pipeline.labels import decode
from pipeline.metrics import macro_f1
from pipeline.models import load_model, read_meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="models")
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--out", default="reports/title_ablation.json")
    args = parser.parse_args()
    directory = Path(args.models) / "transformer"
    model = load_model("transformer", directory)
    results: dict[str, dict[str, float]] = {}
    for split, data in load_splits(args.data).items():
        if split == "train":
            continue
        columns = {k: list(data[k]) for k in ("text", "prev_text", "title", "actor", "stance")}
        for name, titles in (("with_titles", columns["title"]), ("titles_blanked", [""] * len(columns["text"]))):
            proba = model.predict_proba({**columns, "title": titles})
            actors, stances = decode(proba.actor, proba.stance)
            results[f"{split}_{name}"] = {
                "stance_macro_f1": macro_f1(columns["stance"], stances, "stance"),
                "actor_macro_f1": macro_f1(columns["actor"], actors, "actor"),
            }
    report = {"model_context": read_meta(directory)["context"], "results": results}
    write_json(args.out, report)
    print(f"model context: {report['model_context']}")
    print(f"{'split / titles':<28} {'stance F1':>9} {'actor F1':>9}")
    for name, scores in results.items():
        print(f"{name:<28} {scores['stance_macro_f1']:>9.4f} {scores['actor_macro_f1']:>9.4f}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
