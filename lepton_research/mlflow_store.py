"""An MLflow client that survives parallel jobs on one sqlite store.

Many jobs of a sweep (joblib, submitit) start at once against the same ``mlflow.db``: the first ones race to create
the schema ("table ... already exists") and later writes meet "database is locked". The schema is created under a
file lock beside the database, and every call is retried with exponential back-off (plus jitter) while sqlite
reports a lock, so no job loses a metric.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

log = logging.getLogger(__name__)

TRANSIENT = ("database is locked", "database table is locked", "disk i/o error")
ATTEMPTS = 10  # back-off 0.1 s doubling to 25.6 s: about 50 s in all before the error is raised


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def is_transient(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error}".lower()
    return any(t in text for t in TRANSIENT)


def with_retry(fn, *args, attempts: int = ATTEMPTS, first_wait: float = 0.1, **kwargs):
    wait = first_wait
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if attempt == attempts - 1 or not is_transient(e):
                raise
            log.debug("MLflow store busy (%s); retry %d in %.2f s", e, attempt + 1, wait)
            time.sleep(wait * (1 + random.random() * 0.5))
            wait *= 2


class RetryingClient:
    """Proxy of an ``MlflowClient`` whose every method call goes through ``with_retry``."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            return with_retry(attr, *args, **kwargs)

        return call


def open_client(uri: str) -> RetryingClient:
    """A retrying MlflowClient; for a sqlite store, the schema is created (or found) under a file lock first."""
    from mlflow.tracking import MlflowClient

    path = sqlite_path(uri)
    if path is not None:
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=300):
            client = with_retry(MlflowClient, tracking_uri=uri)
            with_retry(client.search_experiments, max_results=1)  # forces the store (and its schema) into being
    else:
        client = MlflowClient(tracking_uri=uri)
    return RetryingClient(client)


def get_or_create_experiment(client, name: str) -> str:
    """The experiment's id; two jobs creating it at once both end up with the same one."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception as e:
        if "already exists" not in str(e).lower() and "unique constraint" not in str(e).lower():
            raise
        return client.get_experiment_by_name(name).experiment_id


UNREACHABLE = (
    "max retries exceeded",
    "connection refused",
    "failed to establish a new connection",
    "connectionerror",
    "remote end closed connection",
    "read timed out",
    "database is locked",  # still locked after every retry
)


def is_unreachable(error: BaseException) -> bool:
    """The store went away (server down, network, a lock that never cleared), as opposed to a bad request."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(t in text for t in UNREACHABLE)
