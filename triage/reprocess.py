"""`triage reprocess`: named, side-effect-free triage runs, their diff, and promoting them.

    triage reprocess --run NAME [PATH...] [--taxonomy F] [--model M] [filters] [--via ...]
    triage reprocess diff NAME [--against live|OTHER_RUN] [--json] [--report DIR]
    triage reprocess apply NAME [--only FROM->TO ...] [--dry-run]
    triage reprocess list | show NAME | delete NAME

Exit codes: 0 done; 1 declined (nothing spent) or an apply left nothing to do when asked to;
2 usage or setting error; 3 the API failed in a way that stops the run; 130 interrupted
(`--resume` continues). docs/reprocessing.md is the reference.

One module, though long: the subcommands share how a run is named, read and described, and most
of the length is option declarations and the messages people read.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from common import keys
from common.contract import THREAD_STATUSES
from common.errors import ConfigError, TriageError
from common.logging import configure_logging
from common.runconfig import RunConfigError, load_run_config, parse_override
from common.runoptions import (
    EXIT_INTERRUPTED,
    ApiFailure,
    UsageFailure,
    decision_options,
    option_overrides,
)
from common.settings import Settings
from evaluation.progress import Progress
from evaluation.report import money
from evaluation.runner import Retry
from reprocess.apply import parse_pair, promote
from reprocess.diff import LIVE, Differ, Summary
from reprocess.estimate import default_via, estimate
from reprocess.execute import DEFAULT_BATCH_REQUESTS, Executor
from reprocess.plan import Planner, Selection, Totals
from reprocess.report import terminal, write_dir, write_json
from triage.resources import BadSetting, open_redis, settings_or_exit
from triage.stats import parse_since
from worker.decide.claude import BatchClient, ClaudeClient, make_client
from worker.decide.rerun import RunSpec, derive_spec, stored_spec
from worker.events import RunDecision
from worker.runtime import rate_limiter
from worker.state.reclassify import Reclassifier
from worker.state.runs import (
    LEDGER_REPROCESS,
    RUN_DONE,
    RUN_INTERRUPTED,
    RUN_PLANNED,
    RUN_PLANNING,
    RUN_RUNNING,
    SHADOW,
    RunError,
    RunStore,
    check_name,
)
from worker.state.store import ThreadStore

EXIT_DECLINED = 1


class DefaultGroup(click.Group):
    """`triage reprocess --run NAME ...` means `triage reprocess start --run NAME ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in ("-h", "--help"):
            return super().parse_args(ctx, args)
        if not args or args[0] not in self.commands:
            args = ["start", *args]
        return super().parse_args(ctx, args)


def _parts(settings: Settings) -> tuple[Any, RunStore, ThreadStore]:
    client = open_redis(settings)
    runs = RunStore(client, settings.reprocess_retention_days)
    threads = ThreadStore(client, settings.thread_ttl_seconds, settings.events_maxlen)
    return client, runs, threads


def _settings() -> Settings:
    """The settings; this process logs warnings only (the run's progress is on stderr)."""
    settings = settings_or_exit()
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    return settings


def _meta_json(meta: dict[str, str], field: str) -> Any:
    try:
        return json.loads(meta.get(field) or "null")
    except json.JSONDecodeError:
        return None


def describe_run(name: str, meta: dict[str, str]) -> dict[str, Any]:
    """A run as `list`, `show` and the diff's header see it."""
    counters = {
        key: int(value)
        for key, value in meta.items()
        if key in ("calls", "decisions", "items_decided", "emails_decided", "changed")
        or key.startswith("outcome:")
        or key.endswith("_tokens")
    }
    return {
        "name": name,
        "kind": meta.get("kind", "reprocess"),
        "status": meta.get("status"),
        "via": meta.get("via"),
        "created_at": float(meta.get("created_at") or 0),
        "updated_at": float(meta.get("updated_at") or 0),
        "config": _meta_json(meta, "config") or {},
        "source": _meta_json(meta, "source") or {},
        "plan": _meta_json(meta, "plan") or {},
        "counters": counters,
        "cost_usd": int(meta.get("cost_micro_usd") or 0) / 1_000_000,
    }


# --- the group -------------------------------------------------------------------------------


@click.group("reprocess", cls=DefaultGroup)
def reprocess() -> None:
    """Re-triage stored threads or a backlog under another configuration, without acting.

    A run's decisions go to its own records, never to live threads, the reply queue or a
    customer. `triage reprocess --run NAME ...` starts one (see `start --help`); `diff` shows
    what it changed, `apply` promotes it. See docs/reprocessing.md.
    """


# --- start -----------------------------------------------------------------------------------


def _overrides(
    config: Path | None,
    taxonomy: Path | None,
    model: str | None,
    system_prompt_file: Path | None,
    sets: tuple[str, ...],
) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    try:
        if config is not None:
            overrides.update(load_run_config(config))
        for text in sets:
            name, value = parse_override(text)
            overrides[name] = value
    except RunConfigError as exc:
        raise UsageFailure(str(exc)) from None
    return overrides | option_overrides(taxonomy, model, system_prompt_file)


def _timestamp(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_since(text).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not 7d, 12h or an ISO date", param_hint=option
        ) from None


def _plan(name: str, runs: RunStore, planner: Planner, source: dict[str, Any]) -> Totals:
    click.echo(f"planning run {name} ...", err=True)
    if source["kind"] == "backlog":
        totals = planner.backlog(source["paths"])
    else:
        totals = planner.stored(Selection.from_description(source["selection"]))
    runs.update(name, status=RUN_PLANNED, plan=json.dumps(totals.as_dict()))
    return totals


def _announce(
    name: str,
    spec: RunSpec,
    totals: dict[str, Any],
    remaining: int,
    figures: dict[str, Any],
    via: str,
    why: str,
) -> None:
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(totals.get("skipped", {}).items()))
    described = spec.describe()
    lines = [
        f"run {name}: {totals['emails']} emails in {totals['items']} threads"
        + (f" ({totals['seen_live']} already seen live)" if totals.get("seen_live") else "")
        + (f"; left out: {skipped}" if skipped else ""),
        f"configuration: model {described['model']}, prompt version "
        f"{described['prompt_version']}, categories {', '.join(described['categories'])}"
        + (f", fields {', '.join(described['fields'])}" if described["fields"] else ""),
        f"to decide: {remaining} threads, about {figures['calls']} calls, "
        f"{figures['input_tokens']:,} input and {figures['output_tokens']:,} output tokens",
        f"estimated cost: {money(figures['live_usd'])} live, {money(figures['batch_usd'])} "
        "through the Message Batches API",
        f"via {via} ({why})",
    ]
    for line in lines:
        click.echo(line, err=True)


@reprocess.command("start")
@click.argument("paths", nargs=-1)
@click.option("--run", "name", required=True, help="The run's name (letters, digits, . _ -).")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A run configuration file (taxonomy, system_prompt_file, model, settings).",
)
@decision_options
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="A decision setting, e.g. max_tokens=2048.",
)
@click.option("--since", help="Stored threads last updated since (7d, 12h or an ISO date).")
@click.option("--until", help="Stored threads last updated until (7d, 12h or an ISO date).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(THREAD_STATUSES),
    help="Stored threads with this status (repeatable).",
)
@click.option("--category", "categories", multiple=True, help="Stored threads in this category.")
@click.option("--thread", "thread_ids", multiple=True, help="This stored thread (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="At most N stored threads.")
@click.option(
    "--via",
    type=click.Choice(["auto", "batch", "live"]),
    default="auto",
    show_default=True,
    help="batch: Message Batches (half price); live: calls under the fleet rate limiter; "
    "auto: batch from TRIAGE_REPROCESS_BATCH_FROM calls.",
)
@click.option("--yes", is_flag=True, help="Start without asking (scripts).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run where it stopped.")
@click.option("--estimate", "estimate_only", is_flag=True, help="Show the estimate; spend nothing.")
@click.option("--concurrency", type=click.IntRange(1, 512), help="Live calls in flight.")
@click.option("--poll-seconds", type=click.FloatRange(min=0.05), default=30.0, show_default=True)
@click.option(
    "--max-requests",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_BATCH_REQUESTS,
    show_default=True,
    help="Requests per Message Batch.",
)
def start(
    paths: tuple[str, ...],
    name: str,
    config: Path | None,
    taxonomy: Path | None,
    model: str | None,
    system_prompt_file: Path | None,
    sets: tuple[str, ...],
    since: str | None,
    until: str | None,
    statuses: tuple[str, ...],
    categories: tuple[str, ...],
    thread_ids: tuple[str, ...],
    limit: int | None,
    via: str,
    yes: bool,
    resume: bool,
    estimate_only: bool,
    concurrency: int | None,
    poll_seconds: float,
    max_requests: int,
) -> None:
    """Start (or --resume) a run over stored threads, or over a backlog PATH.

    Without PATH: the stored threads (all, or those the filters select), each re-decided from
    its customer emails. With PATH (.eml, directories, mbox, Maildir, JSONL, -): the backlog's
    emails, already seen live or not. The estimate is shown first and confirmed (--yes).
    """
    settings = _settings()
    try:
        check_name(name)
    except RunError as exc:
        raise click.BadParameter(str(exc), param_hint="--run") from None
    if name == SHADOW:
        raise click.BadParameter("'shadow' is the shadow run's name", param_hint="--run")
    client, runs, threads = _parts(settings)
    meta = runs.meta(name)
    configured = any([config, taxonomy, model, system_prompt_file, sets])
    selected = any([paths, since, until, statuses, categories, thread_ids, limit])
    if resume:
        if not meta:
            raise UsageFailure(f"no run {name} to resume (see `triage reprocess list`)")
        if configured or selected:
            raise click.UsageError("--resume continues the run as it started: no config or filters")
        if meta.get("kind") == "shadow":
            raise UsageFailure(f"{name} is the shadow run")
        spec = stored_spec(settings, _meta_json(meta, "spec"))
        source = _meta_json(meta, "source")
        created = False
    else:
        if meta:
            raise UsageFailure(
                f"run {name} exists ({meta.get('status')}): --resume continues it, "
                f"`triage reprocess delete {name}` removes it"
            )
        if paths and (statuses or categories or thread_ids or since or until or limit):
            raise click.UsageError("filters select stored threads; a PATH run takes the PATH")
        try:
            spec = derive_spec(
                settings, _overrides(config, taxonomy, model, system_prompt_file, sets)
            )
        except ConfigError as exc:
            raise UsageFailure(str(exc)) from None
        if paths:
            source = {"kind": "backlog", "paths": [str(p) for p in paths]}
            if "-" in paths:
                source["stdin"] = True
        else:
            selection = Selection(
                tuple(thread_ids),
                _timestamp(since, "--since"),
                _timestamp(until, "--until"),
                tuple(statuses),
                tuple(categories),
                limit,
            )
            source = {"kind": "threads", "selection": selection.describe()}
        runs.create(
            name,
            {
                "kind": "reprocess",
                "spec": json.dumps(spec.stored()),
                "config": json.dumps(spec.describe()),
                "prompt_version": spec.prompt_version,
                "source": json.dumps(source),
                "status": RUN_PLANNING,
            },
        )
        created = True
    planner = Planner(name, runs, threads, client, spec)
    try:
        if meta.get("status") == RUN_PLANNING or created:
            if not created:
                if source.get("stdin"):
                    raise UsageFailure(
                        "the run read stdin and its planning was interrupted: start it again"
                    )
                client.delete(*_plan_keys(name))
            totals = _plan(name, runs, planner, source).as_dict()
        else:
            totals = _meta_json(runs.meta(name), "plan") or {}
    except KeyboardInterrupt:
        click.echo(
            f"interrupted while planning; `triage reprocess --run {name} --resume` plans again",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    executor = Executor(name, runs, threads, client, spec, LEDGER_REPROCESS)
    remaining = executor.remaining()
    items = max(1, int(totals.get("items") or 0))
    tokens = int(int(totals.get("input_tokens") or 0) * remaining / items)
    figures = estimate(remaining, tokens, spec.settings.model, spec.settings.prices)
    chosen = via
    why = "--via"
    if via == "auto" and resume and meta.get("via"):
        chosen, why = meta["via"], "as the run started"
    elif via == "auto":
        threshold = settings.reprocess_batch_from
        chosen = default_via(remaining, threshold)
        why = f"{remaining} calls; batch from TRIAGE_REPROCESS_BATCH_FROM={threshold}"
    _announce(name, spec, totals, remaining, figures, chosen, why)
    if estimate_only:
        if created:
            runs.delete(name)
            click.echo("estimate only: nothing was spent; the run was not kept", err=True)
        return
    if remaining == 0:
        runs.update(name, status=RUN_DONE)
        runs.drop_plan(name)
        click.echo(f"run {name}: nothing left to decide", err=True)
        _finished(name, runs)
        return
    if not yes:
        if not sys.stdin.isatty():
            if created:
                runs.delete(name)
            raise UsageFailure("not started: confirm with --yes when not on a terminal")
        if not click.confirm("Start the run?", default=False, err=True):
            if created:
                runs.delete(name)
            click.echo("not started: nothing was spent", err=True)
            sys.exit(EXIT_DECLINED)
    _execute(
        settings,
        name,
        runs,
        executor,
        spec,
        chosen,
        remaining,
        concurrency,
        poll_seconds,
        max_requests,
    )


def _plan_keys(name: str) -> list[str]:
    return [keys.run_todo(name), keys.run_input(name), keys.run_msgids(name)]


def _execute(
    settings: Settings,
    name: str,
    runs: RunStore,
    executor: Executor,
    spec: RunSpec,
    via: str,
    remaining: int,
    concurrency: int | None,
    poll_seconds: float,
    max_requests: int,
) -> None:
    if settings.anthropic_api_key is None:
        raise BadSetting(
            "invalid setting ANTHROPIC_API_KEY: not set (a run calls the API; `triage run` "
            "serves an offline emulator the other commands use)"
        )
    runs.update(name, status=RUN_RUNNING, via=via)
    progress = Progress(remaining)
    announced: set[str] = set()

    def on_decided(decision: RunDecision) -> None:
        progress.case_done(decision.cost_usd)

    def on_submit(batch_id: str, count: int) -> None:
        progress.message(f"batch {batch_id}: {count} requests submitted")

    def on_wait(batch_id: str, counts: dict[str, int]) -> None:
        total = sum(counts.values())
        if batch_id not in announced:
            announced.add(batch_id)
        done = total - counts.get("processing", 0)
        progress.note(f"batch {batch_id[-8:]} {done}/{total}")

    sdk = make_client(spec.settings)
    try:
        if via == "batch":
            interrupted = executor.run_batch(
                BatchClient(sdk), poll_seconds, max_requests, on_decided, on_wait, on_submit
            )
        else:
            limiter = rate_limiter(settings, runs.redis)
            interrupted = executor.run_live(
                ClaudeClient(sdk).call,
                limiter,
                Retry.from_settings(settings),
                concurrency or settings.reprocess_concurrency,
                on_decided,
            )
    except TriageError as exc:
        runs.update(name, status=RUN_INTERRUPTED)
        raise ApiFailure(
            f"the API failed, the run stopped: {exc}; `triage reprocess --run {name} --resume` "
            "continues it"
        ) from None
    finally:
        progress.close()
        sdk.close()
    if interrupted or executor.remaining():
        runs.update(name, status=RUN_INTERRUPTED)
        left = executor.remaining()
        click.echo(
            f"interrupted: {left} threads not decided yet; "
            f"`triage reprocess --run {name} --resume` continues without paying again for "
            "those decided"
            + (" (its batches go on and are collected then)" if via == "batch" else ""),
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    runs.update(name, status=RUN_DONE)
    runs.drop_plan(name)
    _finished(name, runs)


def _finished(name: str, runs: RunStore) -> None:
    run = describe_run(name, runs.meta(name))
    counters = run["counters"]
    outcomes = ", ".join(
        f"{key.removeprefix('outcome:')} {value}"
        for key, value in sorted(counters.items())
        if key.startswith("outcome:")
    )
    click.echo(
        f"run {name} done: {counters.get('items_decided', 0)} threads "
        f"({counters.get('emails_decided', 0)} emails) decided: {outcomes or 'none'}; "
        f"{counters.get('changed', 0)} differ from live; {counters.get('calls', 0)} calls, "
        f"{money(run['cost_usd'])}. Next: `triage reprocess diff {name}`"
    )


# --- diff ------------------------------------------------------------------------------------


@reprocess.command("diff")
@click.argument("name")
@click.option("--against", default=LIVE, show_default=True, help="live, or another run's name.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document with every changed row.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write diff.md, diff.json and change-matrix.png into this directory.",
)
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Rows shown."
)
def diff(name: str, against: str, as_json: bool, report_dir: Path | None, limit: int) -> None:
    """What a run changed: category pairs (from -> to), field changes, and the threads."""
    settings = _settings()
    _, runs, threads = _parts(settings)
    meta = runs.meta(name)
    if not meta:
        raise UsageFailure(f"no run {name} (see `triage reprocess list`)")
    if against != LIVE and not runs.meta(against):
        raise UsageFailure(f"no run {against} to compare with (live, or a run's name)")
    run = describe_run(name, meta)
    differ = Differ(runs, threads)
    summary = Summary(name, against)
    if report_dir is not None:
        for warning in write_dir(run, summary, differ.rows(name, against, summary), report_dir):
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"report written to {report_dir}/", err=True)
        if as_json:
            click.echo((report_dir / "diff.json").read_text(encoding="utf-8"), nl=False)
        else:
            terminal(run, summary, [], 0, sys.stdout)
        return
    rows = differ.rows(name, against, summary)
    if as_json:
        write_json(run, summary, rows, sys.stdout)
    else:
        terminal(run, summary, rows, limit, sys.stdout)


# --- apply -----------------------------------------------------------------------------------


@reprocess.command("apply")
@click.argument("name")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="FROM->TO",
    help="Only these changes (repeatable; * any).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be applied; write nothing.")
@click.option("--yes", is_flag=True, help="Apply without asking (scripts).")
def apply(name: str, only: tuple[str, ...], dry_run: bool, yes: bool) -> None:
    """Promote a run's changed decisions to the live threads (`reclassified` events).

    Idempotent: a second apply finds the threads already saying what the run says.
    """
    settings = _settings()
    client, runs, threads = _parts(settings)
    if not runs.meta(name):
        raise UsageFailure(f"no run {name} (see `triage reprocess list`)")
    try:
        pairs = [parse_pair(text) for text in only]
    except TriageError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from None
    reclassifier = Reclassifier(client, threads, settings.events_maxlen)

    def row(thread_id: str, pair: tuple[str, str], outcome: str) -> None:
        click.echo(f"{thread_id}  {pair[0]} -> {pair[1]}  {outcome}")

    planned = promote(name, runs, threads, reclassifier, pairs, dry_run=True)
    if not dry_run and planned.applied and not yes:
        if not sys.stdin.isatty():
            raise UsageFailure("not applied: confirm with --yes when not on a terminal")
        if not click.confirm(
            f"Promote {planned.applied} decisions of {name} to live threads "
            f"({planned.applied} reclassified events)?",
            default=False,
            err=True,
        ):
            click.echo("nothing applied", err=True)
            sys.exit(EXIT_DECLINED)
    report = (
        planned
        if dry_run or not planned.applied
        else promote(name, runs, threads, reclassifier, pairs, dry_run=False, on_row=row)
    )
    if dry_run:
        promote(name, runs, threads, reclassifier, pairs, dry_run=True, on_row=row)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items())) or "none"
    changes = ", ".join(f"{a}->{b} {n}" for (a, b), n in report.pairs.most_common()) or "none"
    verb = "would apply" if dry_run else "applied"
    click.echo(
        f"{verb} {report.applied} ({changes}); unchanged {report.unchanged}; left alone: {skipped}"
    )


# --- list, show, delete ----------------------------------------------------------------------


@reprocess.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_runs(as_json: bool) -> None:
    """Runs kept (the shadow run included), oldest first."""
    settings = _settings()
    _, runs, _ = _parts(settings)
    for name, _ in runs.names():
        run = describe_run(name, runs.meta(name))
        if as_json:
            click.echo(json.dumps(run))
            continue
        counters = run["counters"]
        planned = run["plan"].get("items", "-")
        created = dt.datetime.fromtimestamp(run["created_at"], dt.UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{name:<24} {run['kind']:<9} {run['status'] or '-':<11} {created}  "
            f"decided {counters.get('items_decided', 0)}/{planned}  "
            f"changed {counters.get('changed', 0)}  {money(run['cost_usd'])}  "
            f"{run['config'].get('model', '?')} prompt {run['config'].get('prompt_version', '?')}"
        )


@reprocess.command("show")
@click.argument("name")
def show(name: str) -> None:
    """One run in full (JSON): configuration, source, plan, counters, batches pending."""
    settings = _settings()
    _, runs, _ = _parts(settings)
    meta = runs.meta(name)
    if not meta:
        raise UsageFailure(f"no run {name} (see `triage reprocess list`)")
    run = describe_run(name, meta)
    run["batches_pending"] = runs.batch_ids(name)
    run["applied"] = runs.applied_count(name)
    click.echo(json.dumps(run, indent=2))


@reprocess.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete every record of a run (live threads are not touched)."""
    settings = _settings()
    _, runs, _ = _parts(settings)
    if not runs.meta(name):
        raise UsageFailure(f"no run {name}")
    if not yes:
        click.confirm(f"Delete run {name} and its decisions?", abort=True, err=True)
    click.echo(f"run {name}: {runs.delete(name)} keys deleted")
