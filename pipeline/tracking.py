"""The one place that talks to MLflow: runs, tags, metrics, models, aliases."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

CHAMPION_ALIAS = "champion"
SERVING_MODULE = Path(__file__).with_name("serving.py")
PACKAGE_DIR = Path(__file__).parent

# MLflow warns on every logged model that pip requirements were not inferred
# and on git being dirty; neither tells the user anything here.
logging.getLogger("mlflow").setLevel(logging.ERROR)


# Without this tag MLflow 3's UI opens an experiment on its GenAI (traces) view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def configure(tracking_uri: str, experiment: str) -> str:
    """Point MLflow at `tracking_uri` and select (creating if needed) `experiment`."""
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    mlflow.set_experiment_tags(EXPERIMENT_KIND)
    return experiment_id


@contextlib.contextmanager
def run(name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """Start a new run called `name`, yielding its id."""
    with mlflow.start_run(run_name=name, tags=dict(tags)) as active:
        yield active.info.run_id


def add_to_run(
    run_id: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: Mapping[str, list[Path]],
) -> None:
    """Add metrics, tags and artifacts to a finished run without reopening it.

    Reopening would move the run's end time, so its duration would include
    everything done after training.
    """
    from mlflow.entities import Metric, RunTag

    client = MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )
    for artifact_path, paths in artifacts.items():
        for path in paths:
            if Path(path).exists():
                client.log_artifact(run_id, str(path), artifact_path)


def log_params(params: Mapping[str, Any]) -> None:
    """Log flat params; lists become readable strings."""
    mlflow.log_params({k: ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log numeric metrics (names must be the same for every model)."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_sklearn_model(estimator: Any, trusted_types: list[str], input_example: Any) -> str:
    """Log a scikit-learn estimator, serialised with skops (no pickle)."""
    import mlflow.sklearn

    info = mlflow.sklearn.log_model(
        estimator,
        name="sklearn_model",
        serialization_format="skops",
        skops_trusted_types=trusted_types,
        input_example=input_example,
        pip_requirements=["scikit-learn", "skops"],
    )
    return info.model_uri


def log_pyfunc_model(artifacts: Mapping[str, Path], input_example: Any, pip_requirements: list[str]) -> str:
    """Log a saved model directory (and its configs) as a pyfunc served by pipeline/serving.py.

    The model is logged "from code" (no cloudpickle): MLflow stores serving.py and
    the `pipeline` package, and the weights stay in their own safe formats.
    """
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(SERVING_MODULE),
        artifacts={k: str(v) for k, v in artifacts.items()},
        code_paths=[str(PACKAGE_DIR)],
        input_example=input_example,
        pip_requirements=pip_requirements,
    )
    return info.model_uri


def register(model_uri: str, name: str, tags: Mapping[str, str]) -> str:
    """Register `model_uri` as a new version of `name`; returns the version."""
    version = mlflow.register_model(model_uri, name, tags=dict(tags))
    return str(version.version)


def alias_version(name: str, alias: str) -> Any | None:
    """The model version that `alias` of registered model `name` points to, if any."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    """Point `alias` of registered model `name` at `version`."""
    MlflowClient().set_registered_model_alias(name, alias, version)


def find_run(experiment_id: str, tags: Mapping[str, str]) -> str | None:
    """The id of a run in `experiment_id` with all of `tags`, if one exists."""
    query = " and ".join(f"tags.{k} = '{v}'" for k, v in tags.items())
    runs = MlflowClient().search_runs([experiment_id], filter_string=query, max_results=1)
    return runs[0].info.run_id if runs else None


def served_predictor(model_uri: str) -> Any:
    """The Predictor inside the pyfunc model at `model_uri` (e.g. models:/stance@champion)."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().predictor


def registered_name_version(model_uri: str) -> str | None:
    """"name:version" of a `models:/name@alias` or `models:/name/version` URI; None for other URIs."""
    if not model_uri.startswith("models:/"):
        return None
    reference = model_uri[len("models:/") :]
    if "@" in reference:
        name, alias = reference.split("@", 1)
        version = alias_version(name, alias)
        if version is None:
            raise MlflowException(f"{model_uri}: registered model {name!r} has no alias {alias!r}")
        return f"{name}:{version.version}"
    name, _, version = reference.partition("/")
    return f"{name}:{version}" if version else None


def configure_uri(tracking_uri: str) -> None:
    """Point MLflow at `tracking_uri` without selecting an experiment (a scoring worker)."""
    mlflow.set_tracking_uri(tracking_uri)


def spark_udf(spark: Any, model_uri: str, result_type: str, params: Mapping[str, Any]) -> Any:
    """mlflow.pyfunc.spark_udf over the served model, in this environment."""
    return mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local", params=dict(params))
