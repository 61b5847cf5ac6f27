"""`triage backlog`: first-turn triage of a backlog via the Message Batches API (or the queue)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import click

from common.publish import Publisher
from common.settings import Settings
from producers.enqueue import Enqueuer, IncompleteBatch, Outcome, Rejected
from producers.sources import iter_items, resolve_inputs
from triage.resources import open_redis
from worker.decide.batch import BacklogReport, BacklogRunner
from worker.decide.claude import BatchClient, ClaudeClient, make_client
from worker.runtime import build_drain_step


@dataclass
class Staged:
    """What staging did with each email: held for a batch, queued, duplicate or rejected."""

    held: list[str] = field(default_factory=list)
    queued: int = 0
    duplicates: int = 0
    rejected: int = 0

    def add(self, result: Outcome, hold: bool) -> None:
        if isinstance(result, Rejected):
            self.rejected += 1
        elif result.status == "duplicate":
            self.duplicates += 1
        elif result.scheduled and hold:
            self.held.append(result.thread_id)
        else:
            self.queued += 1  # joined a thread already queued (or --via queue)


def build_runner(settings: Settings, max_requests: int) -> BacklogRunner:
    client = open_redis(settings)
    publisher = Publisher.for_settings(settings)
    sdk = make_client(settings)
    return BacklogRunner(
        client,
        BatchClient(sdk),
        build_drain_step(settings, client, publisher, claude=ClaudeClient(sdk)),
        publisher,
        settings.visibility_timeout_seconds,
        max_requests=max_requests,
    )


def stage(settings: Settings, paths: list[str], hold: bool) -> Staged:
    """Parse, thread, dedupe and put every email into its inbox, holding new threads for a batch."""
    enqueuer = Enqueuer(settings, open_redis(settings), hold_for_batch=hold)
    staged = Staged()
    inputs = resolve_inputs(paths)
    stdin = sys.stdin.buffer if any(i.path is None for i in inputs) else None
    items = iter_items(inputs, settings.max_email_bytes, stdin)
    try:
        for _, result in enqueuer.enqueue_items(items):  # pipelined, a batch at a time
            staged.add(result, hold)
    except IncompleteBatch as exc:
        for _, result in exc.done:
            staged.add(result, hold)
        raise exc.cause from None
    return staged


def run(
    settings: Settings,
    paths: list[str],
    via: str,
    wait: bool,
    poll_seconds: float,
    max_requests: int,
) -> BacklogReport:
    report = BacklogReport()
    runner = build_runner(settings, max_requests) if via == "batch" else None
    if runner is not None and wait:
        for batch_id in runner.active():
            click.echo(f"resuming batch {batch_id}", err=True)
            _wait_and_apply(runner, batch_id, poll_seconds, report)
    if paths:
        staged = stage(settings, paths, hold=via == "batch")
        click.echo(
            f"staged {len(staged.held)} new threads for the batch, {staged.queued} to the queue, "
            f"{staged.duplicates} duplicates, {staged.rejected} rejected",
            err=True,
        )
        if runner is not None and staged.held:
            report.batches = runner.submit(staged.held)
            for batch_id in report.batches:
                click.echo(f"submitted batch {batch_id}", err=True)
                if wait:
                    _wait_and_apply(runner, batch_id, poll_seconds, report)
    return report


def _wait_and_apply(
    runner: BacklogRunner, batch_id: str, poll_seconds: float, report: BacklogReport
) -> None:
    def progress(counts: dict[str, int]) -> None:
        done = sum(v for k, v in counts.items() if k != "processing")
        click.echo(
            f"\r{batch_id}: {done}/{done + counts.get('processing', 0)} done", err=True, nl=False
        )

    runner.wait(batch_id, poll_seconds, progress)
    click.echo("", err=True)
    runner.finish(batch_id, report)
