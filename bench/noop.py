"""A Celery app with our worker's exact configuration and one task that does nothing.

Run by `bench.suite` as `celery -A bench.noop worker` to measure what Celery itself costs per task
(consumer loop, BRPOP, acks_late bookkeeping, dispatch to the pool) on this machine: part of the
floor any Celery worker sits on, next to the SDK-call floor.
"""

from __future__ import annotations

from celery import Celery

from common.celery_config import celery_config
from common.settings import load_settings

QUEUE = "noop"

app = Celery("noop", set_as_current=False)
app.conf.update(celery_config(load_settings()))


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> None:
    """Nothing: the cost measured is Celery's."""
