"""`triage emulator`: run the emulator in the foreground until Ctrl-C or SIGTERM.

Every option can also come from an `EMULATOR_<NAME>` environment variable. Logging is configured
here and only here: JSON lines when stdout is not a terminal, a console renderer otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import click
import structlog
from aiohttp import web

from emulator.config import EmulatorConfig, FaultRule, parse_fault_spec
from emulator.server import create_app


def configure_logging(*, json_lines: bool) -> None:
    """Process-wide structlog setup for the CLI entry point."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


def _parse_faults(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[FaultRule, ...]:
    try:
        return tuple(parse_fault_spec(value) for value in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        click.echo(f"Claude API emulator listening on http://{bound_host}:{bound_port}")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="EMULATOR_HOST")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=int,
    envvar="EMULATOR_PORT",
    help="0 picks a free port (printed on start).",
)
@click.option(
    "--latency-ms",
    default=0.0,
    type=float,
    envvar="EMULATOR_LATENCY_MS",
    help="Base latency added to every /v1/messages call.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    type=float,
    envvar="EMULATOR_JITTER_MS",
    help="Extra random latency in [0, jitter], seeded per request.",
)
@click.option("--seed", default=0, type=int, envvar="EMULATOR_SEED")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_parse_faults,
    envvar="EMULATOR_FAULT",
    metavar="KIND:RATE",
    help="Inject a fault (rate_limit, overloaded, api_error, reset, max_tokens, "
    "refusal, low_confidence, expired) with a probability; repeatable.",
)
@click.option(
    "--rpm", default=None, type=int, envvar="EMULATOR_RPM", help="Requests-per-minute limit."
)
@click.option(
    "--itpm", default=None, type=int, envvar="EMULATOR_ITPM", help="Input-tokens-per-minute limit."
)
@click.option(
    "--record",
    "record_path",
    default=None,
    envvar="EMULATOR_RECORD",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every handled request as a JSON line to this file.",
)
@click.option(
    "--cache-min-tokens",
    default=1024,
    type=int,
    envvar="EMULATOR_CACHE_MIN_TOKENS",
    show_default=True,
)
@click.option(
    "--api-key",
    default=None,
    envvar="EMULATOR_API_KEY",
    help="Accept only this key (default: any non-empty key).",
)
@click.option(
    "--accept-any-model",
    is_flag=True,
    envvar="EMULATOR_ACCEPT_ANY_MODEL",
    help="Also accept unknown model ids starting with 'claude-'.",
)
@click.option(
    "--batch-delay-s",
    default=2.0,
    type=float,
    envvar="EMULATOR_BATCH_DELAY_S",
    show_default=True,
    help="Seconds after creation at which a Message Batch ends (0: at once).",
)
def emulator_command(
    host: str,
    port: int,
    latency_ms: float,
    jitter_ms: float,
    seed: int,
    faults: tuple[FaultRule, ...],
    rpm: int | None,
    itpm: int | None,
    record_path: Path | None,
    cache_min_tokens: int,
    api_key: str | None,
    accept_any_model: bool,
    batch_delay_s: float,
) -> None:
    """Run an offline, deterministic Claude Messages-API emulator."""
    configure_logging(json_lines=not sys.stdout.isatty())
    try:
        config = EmulatorConfig(
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            seed=seed,
            faults=faults,
            rpm=rpm,
            itpm=itpm,
            record_path=record_path,
            cache_min_tokens=cache_min_tokens,
            api_key=api_key,
            accept_any_model=accept_any_model,
            batch_delay_s=batch_delay_s,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, host, port))


if __name__ == "__main__":
    emulator_command()
