"""The annotation loop: new articles in, Label Studio tasks out, labels back, agreement.

    ingest        files (.txt/.md/.html/.jsonl) -> a batch of segmented articles
    tasks         a batch's sentences -> Label Studio tasks with the champion's pre-annotations
    imports       Label Studio exports (or the CSV) -> one pass per annotator, disagreements,
                  and once resolved, a labelled batch that `prepare` adds to the training data
    agreement     Cohen's kappa, Krippendorff's alpha, per-label agreement, confusion

A batch lives in `data/batches/<name>/` (`batches.py` has the layout). Once it holds
`sentences.jsonl` it is a corpus like the bundled one, and `prepare` reads it.
"""
