"""Thin DVC stage entry points: read config, call library functions, write outputs."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline import tracking
from pipeline.config import TrackingConfig, load_config
from pipeline.provenance import git_commit

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def tracking_uri(config_dir: Path) -> str:
    """The MLflow store: MLFLOW_TRACKING_URI if set, else configs/tracking.yaml's."""
    return os.environ.get(TRACKING_URI_ENV) or load_config(config_dir / "tracking.yaml", TrackingConfig).tracking_uri


def start_tracking(config_dir: Path) -> tuple[TrackingConfig, str]:
    """Configure MLflow from configs/tracking.yaml; the environment's URI wins."""
    config = load_config(config_dir / "tracking.yaml", TrackingConfig)
    return config, tracking.configure(tracking_uri(config_dir), config.experiment)


def provenance_tags(stage: str, data_versions: dict[str, str]) -> dict[str, str]:
    """Tags every run carries: stage, git commit and data versions."""
    return {"stage": stage, "git_commit": git_commit(Path.cwd()), **data_versions}
