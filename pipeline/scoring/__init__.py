"""Batch scoring of news archives: articles in, one row per sentence out.

    records   the output row shape, built by the same code for every engine
    inputs    reading and checking the input (Parquet or JSONL of articles)
    local     the streaming engine: bounded memory, resumable, all or nothing
    spark     the Spark engine: mapInPandas, the model loaded once per Python worker

Both engines call the same `Predictor` as `predict()`, so their answers cannot drift.
"""
