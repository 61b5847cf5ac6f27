"""Same-machine A/B of the worker: code versions and settings, interleaved, repeated.

    .venv/bin/python -m bench.ab --emails 3000 --repeats 3 \
        --variant head HEAD --variant events-off HEAD TRIAGE_TASK_EVENTS=false \
        --variant mine /path/to/a/tree

Each variant is a name, a code version (a git revision, exported with `git archive` into a
temporary directory, or a directory holding a copy of the repository) and optional worker
settings (`TRIAGE_X=1,TRIAGE_Y=2`, passed as `TRIAGE_BENCH_SETTINGS`). Every run is that
version's own `bench.throughput` (one worker, threads pool, the emulator at `--latency-ms`, the
backlog loaded first, the steady-state rate) in a child process whose imports come from the
version's directory. Runs are interleaved (round r runs every variant, in an order rotated by r)
so that a machine getting busier or quieter spreads over all variants; on a shared machine
compare medians of several repeats, never single runs. Prints one JSON line per run, then the
median, min and max of emails/s and worker CPU ms per email per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    name: str
    tree: Path
    settings: str


def export(revision: str, into: Path) -> Path:
    """The repository at `revision` as plain files (no checkout: the work tree is untouched)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def variants(specs: list[list[str]], scratch: Path) -> list[Variant]:
    trees: dict[str, Path] = {}
    found = []
    for spec in specs:
        if len(spec) not in (2, 3):
            raise SystemExit(f"--variant NAME REVISION|DIRECTORY [SETTINGS], got {spec}")
        name, version = spec[0], spec[1]
        if version not in trees:
            path = Path(version)
            trees[version] = (
                path.resolve() if path.is_dir() else export(version, scratch / f"v{len(trees)}")
            )
        found.append(Variant(name, trees[version], spec[2] if len(spec) == 3 else ""))
    return found


def run(variant: Variant, args: argparse.Namespace) -> dict[str, Any]:
    """One `bench.throughput` run of `variant`; its JSON result."""
    command = [sys.executable, "-m", "bench.throughput", "--emails", str(args.emails)]
    command += ["--latency-ms", str(args.latency_ms), "--concurrency", str(args.concurrency)]
    env = dict(os.environ, PYTHONPATH=str(variant.tree), TRIAGE_BENCH_SETTINGS=variant.settings)
    done = subprocess.run(
        command, cwd=variant.tree, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{variant.name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    load = os.getloadavg()[0]
    return {"variant": variant.name, "load_1m": round(load, 2), **result}


def summary(results: list[dict[str, Any]], names: list[str]) -> str:
    rows = ["variant  runs  emails/s median (min-max)  CPU ms/email median (min-max)"]
    for name in names:
        rates = [r["emails_per_s"] for r in results if r["variant"] == name]
        cpus = [r["cpu_ms_per_email"] for r in results if r["variant"] == name]
        rows.append(
            f"{name}  {len(rates)}  {statistics.median(rates):.1f} ({min(rates)}-{max(rates)})"
            f"  {statistics.median(cpus):.2f} ({min(cpus)}-{max(cpus)})"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME REVISION|DIRECTORY [SETTINGS]",
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        chosen = variants(args.variant, Path(scratch))
        for round_ in range(args.repeats):
            shift = round_ % len(chosen)
            for variant in chosen[shift:] + chosen[:shift]:
                result = run(variant, args)
                results.append(result)
                print(json.dumps(result), flush=True)
    print()
    print(summary(results, [v.name for v in chosen]))


if __name__ == "__main__":
    main()
