"""`triage eval`: measure triage quality on labelled cases (docs/evaluation.md).

Exit codes: 0 done; 1 accuracy under `--fail-under`; 2 usage, setting or dataset error (nothing
was sent); 3 the API failed in a way that stops the run (a batch could not be created or read);
130 interrupted (Ctrl-C: the cases finished so far are reported).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from common.errors import ConfigError, TriageError
from common.logging import configure_logging
from common.runoptions import (
    EXIT_INTERRUPTED,
    ApiFailure,
    UsageFailure,
    decision_options,
    option_overrides,
)
from common.settings import Settings, load_settings
from evaluation import compare as comparing
from evaluation import metrics, report
from evaluation.case_run import CaseRun, Setup
from evaluation.csv_import import import_csv, parse_label_map, parse_map
from evaluation.dataset import Case, DatasetError, dataset_files, load_cases, read_lines
from evaluation.progress import Progress
from evaluation.runner import Retry, run_batch, run_live
from worker.decide.claude import BatchClient, ClaudeClient, make_client
from worker.decide.prompt import load_template, prompt_version

EXIT_BELOW = 1


def threshold(value: float) -> float:
    """`--fail-under 0.7` and `--fail-under 70` both mean 70%."""
    return value / 100 if value > 1 else value


def _settings(model: str | None, taxonomy: Path | None, prompt_file: Path | None) -> Settings:
    try:
        return load_settings(**option_overrides(taxonomy, model, prompt_file))
    except ConfigError as exc:
        raise UsageFailure(str(exc)) from None


def _cases(
    settings: Settings,
    datasets: tuple[Path, ...],
    csv_file: Path | None,
    column_map: str | None,
    label_map: str | None,
) -> tuple[list[Case], list[dict[str, Any]]]:
    """The cases to run, and the imported CSV cases as dataset lines (for --write-dataset)."""
    items: list[tuple[str, dict[str, Any] | str]] = []
    for path in dataset_files(datasets):
        if not path.is_file():
            raise UsageFailure(f"{path}: no such dataset file")
        items.extend(read_lines(path))
    imported: list[dict[str, Any]] = []
    if csv_file is not None:
        if not column_map:
            raise click.UsageError("--import-csv needs --map (e.g. subject=Subject,body=Body,...)")
        try:
            rows, empty = import_csv(
                csv_file,
                parse_map(column_map),
                parse_label_map(label_map),
                settings.category_names,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        except DatasetError as exc:
            raise UsageFailure(str(exc)) from None
        if empty:
            click.echo(f"{csv_file}: {empty} rows without subject or body left out", err=True)
        imported = [case for _, case in rows]
        items.extend(rows)
    elif column_map or label_map:
        raise click.UsageError("--map and --label-map go with --import-csv")
    try:
        return load_cases(items, settings), imported
    except DatasetError as exc:
        raise UsageFailure(f"the dataset has problems; nothing was sent:\n{exc}") from None


@contextmanager
def backend(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """The API to measure: Claude with ANTHROPIC_API_KEY, else a private offline emulator."""
    if settings.anthropic_api_key is not None:
        yield settings, "api"
        return
    from emulator.config import EmulatorConfig
    from emulator.server import EmulatorThread

    server = EmulatorThread(EmulatorConfig(max_recorded=0))  # it need not keep the requests
    url = server.start()
    click.echo(
        "no ANTHROPIC_API_KEY: evaluating against the offline emulator; its figures measure "
        "the harness, not a model",
        err=True,
    )
    try:
        offline = {"anthropic_api_key": SecretStr("emulator"), "anthropic_base_url": url}
        yield settings.model_copy(update=offline), "emulator"
    finally:
        server.stop()


def evaluate(
    settings: Settings,
    cases: list[Case],
    via: str,
    concurrency: int,
    poll_seconds: float,
) -> tuple[list[dict[str, Any]], bool, float]:
    """Run the cases; (records of the finished cases in dataset order, interrupted, seconds)."""
    setup = Setup(settings, load_template(settings), batch=via == "batch")
    runs = [CaseRun(case, setup) for case in cases]
    order = {id(run): index for index, run in enumerate(runs)}
    finished: list[CaseRun] = []
    progress = Progress(len(runs))
    announced: set[str] = set()

    def on_finish(run: CaseRun) -> None:
        finished.append(run)
        progress.case_done(run.cost_micro_usd / 1_000_000)

    def on_wait(batch_id: str, counts: dict[str, int]) -> None:
        total = sum(counts.values())
        if batch_id not in announced:
            announced.add(batch_id)
            progress.message(f"batch {batch_id}: {total} requests submitted")
        done = total - counts.get("processing", 0)
        progress.note(f"batch {batch_id[-8:]} {done}/{total}")

    started = time.monotonic()
    sdk = make_client(settings)
    try:
        if via == "batch":
            interrupted = run_batch(runs, BatchClient(sdk), poll_seconds, on_finish, on_wait)
        else:
            claude = ClaudeClient(sdk)
            retry = Retry.from_settings(settings)
            interrupted = run_live(runs, claude.call, retry, concurrency, on_finish)
    except TriageError as exc:
        raise ApiFailure(f"the API failed, the run stopped: {exc}") from None
    finally:
        progress.close()
        sdk.close()
    finished.sort(key=lambda run: order[id(run)])
    return [run.record() for run in finished], interrupted, time.monotonic() - started


def run_description(
    settings: Settings,
    datasets: list[str],
    *,
    backend_name: str,
    via: str,
    concurrency: int,
    total: int,
    finished: int,
    interrupted: bool,
    seconds: float,
) -> dict[str, Any]:
    template = load_template(settings)
    return {
        "datasets": datasets,
        "model": settings.model,
        "prompt_version": prompt_version(settings, template),
        "backend": backend_name,
        "via": via,
        "concurrency": concurrency if via == "live" else None,
        "taxonomy": settings.category_names,
        "taxonomy_file": str(settings.taxonomy_file) if settings.taxonomy_file else None,
        "system_prompt_file": (
            str(settings.system_prompt_file) if settings.system_prompt_file else None
        ),
        "confidence_high": settings.confidence_high,
        "confidence_low": settings.confidence_low,
        "review_below": settings.review_below,
        "max_clarifications": settings.max_clarifications,
        "cases_total": total,
        "cases_finished": finished,
        "interrupted": interrupted,
        "elapsed_seconds": round(seconds, 2),
    }


def review_thresholds_set(settings: Settings) -> bool:
    return settings.review_below > 0 or any(c.review_below for c in settings.categories)


@click.command("eval")
@click.argument("datasets", nargs=-1, type=click.Path(path_type=Path))
@decision_options
@click.option(
    "--via",
    type=click.Choice(["live", "batch"]),
    default="live",
    show_default=True,
    help="live: Messages API calls; batch: the Message Batches API at half price.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    default=8,
    show_default=True,
    help="Cases in flight at once (live).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N cases.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.md, report.json and the PNG plots into this directory.",
)
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit 1 when accuracy is under this (0.7 or 70 both mean 70%).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (report.json).")
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="A.json B.json",
    help="Compare two report.json files (McNemar, flips).",
)
@click.option(
    "--import-csv",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cases from a CSV export (with --map and --label-map).",
)
@click.option(
    "--map",
    "column_map",
    metavar="subject=COL,body=COL,label=COL[,...]",
    help="CSV columns: subject, body, label, and optional priority, language, id, from.",
)
@click.option(
    "--label-map",
    metavar="OLD=NEW,...",
    help="Rename CSV labels to categories; *=OTHER maps every other label.",
)
@click.option(
    "--write-dataset",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --import-csv: write the imported cases as a JSONL dataset and stop.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.05),
    default=30.0,
    show_default=True,
    help="How often a batch is polled (--via batch).",
)
def eval_command(
    datasets: tuple[Path, ...],
    taxonomy: Path | None,
    model: str | None,
    system_prompt_file: Path | None,
    via: str,
    concurrency: int,
    limit: int | None,
    report_dir: Path | None,
    fail_under: float | None,
    as_json: bool,
    compare: tuple[Path, Path] | None,
    csv_file: Path | None,
    column_map: str | None,
    label_map: str | None,
    write_dataset: Path | None,
    poll_seconds: float,
) -> None:
    """Run labelled cases through the worker's decision path and measure it.

    DATASET is a JSONL file or a directory of them (see docs/evaluation.md). Nothing touches
    Redis, queues or customers. Without ANTHROPIC_API_KEY a private offline emulator answers
    (its figures measure the harness, not a model).
    """
    if compare:
        _compare(compare, as_json)
        return
    settings = _settings(model, taxonomy, system_prompt_file)
    configure_logging(settings.model_copy(update={"log_level": "ERROR"}))
    if not datasets and csv_file is None:
        raise click.UsageError("give a DATASET, --import-csv FILE or --compare A.json B.json")
    cases, imported = _cases(settings, datasets, csv_file, column_map, label_map)
    if write_dataset is not None:
        if csv_file is None:
            raise click.UsageError("--write-dataset goes with --import-csv")
        lines = [json.dumps(case, ensure_ascii=False) + "\n" for case in imported]
        write_dataset.write_text("".join(lines), encoding="utf-8")
        click.echo(f"wrote {len(lines)} cases to {write_dataset}", err=True)
        return
    if limit is not None:
        cases = cases[:limit]
    if not cases:
        raise UsageFailure("no cases to run")
    names = [str(path) for path in datasets] + ([str(csv_file)] if csv_file else [])
    try:
        with backend(settings) as (active, backend_name):
            records, interrupted, seconds = evaluate(active, cases, via, concurrency, poll_seconds)
    except KeyboardInterrupt:  # before the run started: nothing finished
        click.echo("interrupted before any case finished", err=True)
        sys.exit(EXIT_INTERRUPTED)
    figures = metrics.compute(
        records,
        settings.category_names,
        batch=via == "batch",
        review_thresholds=review_thresholds_set(settings),
    )
    run = run_description(
        settings,
        names,
        backend_name=backend_name,
        via=via,
        concurrency=concurrency,
        total=len(cases),
        finished=len(records),
        interrupted=interrupted,
        seconds=seconds,
    )
    document = report.document(run, figures, records)
    if interrupted:
        click.echo(f"interrupted: {len(records)} of {len(cases)} cases finished", err=True)
    if as_json:
        click.echo(json.dumps(document, indent=1, ensure_ascii=False))
    else:
        click.echo(report.terminal(document))
    if report_dir is not None:
        for warning in report.write_dir(document, report_dir):
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"report written to {report_dir}/", err=True)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)
    accuracy = figures["accuracy"]["value"]
    if fail_under is not None and (accuracy or 0.0) < threshold(fail_under):
        click.echo(
            f"accuracy {accuracy or 0.0:.1%} is under --fail-under {threshold(fail_under):.0%}",
            err=True,
        )
        sys.exit(EXIT_BELOW)


def _compare(paths: tuple[Path, Path], as_json: bool) -> None:
    try:
        a, b = (comparing.load_report(path) for path in paths)
    except comparing.ReportError as exc:
        raise UsageFailure(str(exc)) from None
    result = comparing.compare(a, b)
    click.echo(json.dumps(result, indent=1) if as_json else comparing.render(result))
