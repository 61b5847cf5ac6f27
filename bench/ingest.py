"""Ingestion speed and bounds: `triage enqueue` on a generated mbox, a bare stdlib loop, each limit.

```bash
.venv/bin/python -m bench.ingest                 # 10,000 emails, then one case per limit
.venv/bin/python -m bench.ingest --emails 2000 --no-limits
```

1. A 10,000-message mbox of realistic support mail is generated (2-4 KB each: Received and
   DKIM headers, a third of them replies with quoted history, a quarter multipart/alternative,
   one in ten with a PDF attached).
2. `triage enqueue -q --no-report` runs on it as a subprocess against a private Redis (also the
   broker): emails/s (wall), CPU per email and peak RSS of that process (`wait4` rusage), so
   start-up is included. The same emails are then run in-process (parse, dedupe, inbox, drain
   task), timed after a warm-up, with RSS sampled every 10% of the run (flat memory).
3. The bare stdlib loop: `mailbox.mbox` + `email` with `policy.default` (what ingestion code
   usually starts as: headers, `get_body()`, `get_content()`), in its own process.
4. One hostile email per parse limit, parsed by our parser and by the stdlib, each in a child
   process with a 2 GiB address-space limit and a 60 s timeout: seconds, the peak memory the
   parse allocated (tracemalloc, second run), outcome.

Every measurement prints one JSON line; a table follows.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from itertools import islice
from pathlib import Path
from typing import Any

import redis

from bench.common import redis_base

REPO = Path(__file__).resolve().parents[1]
NAMES = ["Dana Customer", "Jürgen Kunde", "Zoë Martin", "Li Wei", "Ana Souza"]
TOPICS = [
    "I was charged twice for my subscription this month, invoice 4711.",
    "My parcel never arrived and the tracking page has been stuck for a week.",
    "The app shows an error when I log in on my phone.",
]
WORDS = ["please", "help", "order", "the", "refund", "account", "since", "Monday", "again"]
MEMORY_LIMIT = 2 * 1024**3
CASE_TIMEOUT = 60


def support_email(i: int, rnd: random.Random) -> bytes:
    """One realistic support email (headers as big as real ones, a third of them replies)."""
    m = EmailMessage()
    m["Received"] = (
        f"from mx{i % 7}.mail.example.net (mx.example.net [203.0.113.{i % 250}]) by "
        f"mx.support.example.com with ESMTPS id abc{i}; Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0000"
    )
    m["Received"] = f"by 2002:a05:6a10:{i % 9999:x} with SMTP id q{i}; Mon, 2 Mar 2026 10:00:00"
    m["DKIM-Signature"] = (
        "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=20230601; t=1700000000; "
        "h=to:subject:message-id:date:from:mime-version; bh=" + "A" * 44 + "; b=" + "B" * 340
    )
    m["From"] = f"{NAMES[i % 5]} <c{i}@example.org>"
    m["To"] = "Support <support@example.com>"
    m["Subject"] = f"Re: Case {i}" if i % 3 == 0 else f"Help with order {i}"
    m["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    m["Message-ID"] = f"<CA+{i}x{rnd.randrange(10**12)}@mail.example.org>"
    if i % 3 == 0:
        m["In-Reply-To"] = f"<root{i}@mail.example.org>"
        m["References"] = f"<root{i}@mail.example.org>"
    words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(20, 120)))
    body = f"{TOPICS[i % 3]}\n\n{words}\n"
    if i % 3 == 0:
        quoted = "\n".join("> " + t for t in TOPICS)
        body += f"\nOn Mon, 2 Mar 2026 at 09:00, Support <support@example.com> wrote:\n{quoted}\n"
    m.set_content(body)
    if i % 4 == 1:
        m.add_alternative(
            "<html><body><p>" + body.replace("\n", "<br>") + "</p></body></html>", subtype="html"
        )
    if i % 10 == 7:
        pdf = b"%PDF-1.4 " + bytes(rnd.randrange(256) for _ in range(3000))
        m.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    return m.as_bytes()


def write_mbox(path: Path, count: int) -> int:
    rnd = random.Random(14)
    with path.open("wb") as out:
        for i in range(count):
            raw = support_email(i, rnd).replace(b"\nFrom ", b"\n>From ")
            out.write(b"From c@example.org Mon Mar  2 10:00:00 2026\n" + raw + b"\n")
    return path.stat().st_size


def run_child(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run a child mode of this module; its wall time and the usage it reports."""
    started = time.perf_counter()
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return {"timeout": True, "seconds": timeout}
    # the child reports its own rusage (CPU, peak RSS) as its last JSON line
    wall = time.perf_counter() - started
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = {}
    return {
        "wall_s": round(wall, 3),
        "returncode": process.returncode,
        **({"stderr_tail": err.decode(errors="replace").strip()[-300:]} if not report else {}),
        **report,
    }


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


# --- child modes ---------------------------------------------------------------------------


def child_cli(argv: list[str]) -> None:
    """`triage enqueue` in this process, then our own rusage as the last JSON line."""
    from triage.main import main

    started = time.perf_counter()
    try:
        main(["enqueue", *argv])
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    sys.stdout.flush()
    print(
        json.dumps(
            {"exit": code, "inner_wall_s": round(time.perf_counter() - started, 3), **_usage()}
        )
    )


def child_inprocess(path: str, count: int) -> None:
    """Enqueuer over the mbox in-process, after a warm-up; RSS every 10% of the run."""
    from common.logging import configure_logging
    from common.settings import load_settings
    from producers.enqueue import Enqueuer
    from producers.sources import read_mbox

    settings = load_settings(log_level="WARNING")
    configure_logging(settings)
    enqueuer = Enqueuer(settings)
    with open(path, "rb") as handle:  # a warm-up on other Message-IDs: not duplicates later
        for item in islice(read_mbox(handle, path, settings.max_email_bytes), 200):
            enqueuer.enqueue_item(replace(item, data=item.data.replace(b"<CA+", b"<warm.CA+")))
    samples: list[float] = []
    statuses: dict[str, int] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with open(path, "rb") as handle:
        stream = enqueuer.enqueue_items(read_mbox(handle, path, settings.max_email_bytes))
        for n, (_, outcome) in enumerate(stream, 1):
            key = str(getattr(outcome, "status", None) or getattr(outcome, "reason", "?"))
            statuses[key] = statuses.get(key, 0) + 1
            if n % max(1, count // 10) == 0:
                samples.append(round(_rss_mb(), 1))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    total = sum(statuses.values())
    print(
        json.dumps(
            {
                "emails": total,
                "outcomes": statuses,
                "emails_per_s_wall": round(total / wall, 1),
                "emails_per_cpu_s": round(total / cpu, 1),
                "cpu_ms_per_email": round(cpu / total * 1000, 3),
                "rss_mb_every_10pct": samples,
                **_usage(),
            }
        )
    )


def child_stdlib(path: str) -> None:
    """The bare stdlib loop: mailbox.mbox + policy.default, headers and the body's text."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = 0
    parser = BytesParser(policy=policy.default)
    for message in mailbox.mbox(path, factory=None, create=False):
        raw = message.as_bytes()
        email = parser.parsebytes(raw)
        _ = (str(email["From"]), str(email["Subject"]), str(email["Message-ID"]), str(email["To"]))
        body = email.get_body(preferencelist=("plain", "html"))
        if body is not None:
            body.get_content()
        count += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        json.dumps(
            {
                "emails": count,
                "emails_per_s_wall": round(count / wall, 1),
                "emails_per_cpu_s": round(count / cpu, 1),
                "cpu_ms_per_email": round(cpu / count * 1000, 3),
                **_usage(),
            }
        )
    )


def hostile_cases() -> dict[str, tuple[str, bytes]]:
    """One email per parse limit (and per failure class of issue 14): (limit, bytes)."""
    head = b"From: Dana <dana@example.org>\r\nTo: support@example.com\r\nMessage-ID: <h@x>\r\n"
    nested = head + b"Subject: nested\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(1, 10_000):
        nested += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
    attached = head + b"Subject: x\r\n\r\nhi\r\n"
    for _ in range(2_000):
        attached = head + b"Subject: fwd\r\nContent-Type: message/rfc822\r\n\r\n" + attached
    parts = head + b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
    parts += b"--zz\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000 + b"--zz--\r\n"
    words = b" ".join([b"=?utf-8?q?a?="] * 7_000)
    addresses = b", ".join(b"u%d@example.org" % i for i in range(5_000))
    big = head + b"Subject: big\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
    big += b"Content-Type: text/plain\r\n\r\nsee attached\r\n--zz\r\n"
    big += b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    big += (b"QUJD" * 19 + b"\r\n") * 320_000 + b"--zz--\r\n"
    return {
        "header block 205 KB (100,000 encoded words in Subject)": (
            "max_header_bytes",
            head + b"Subject: " + b" ".join([b"=?utf-8?q?a?="] * 15_000) + b"\r\n\r\nbody\r\n",
        ),
        "7,000 encoded words in Subject (98 KB)": (
            "max_encoded_words",
            head + b"Subject: " + words + b"\r\n\r\nbody\r\n",
        ),
        "100,000 MIME parts": ("max_mime_parts", parts),
        "10,000 nested multiparts": ("max_mime_depth", nested),
        "2,000 nested attached emails": ("max_mime_depth", attached),
        "5,000 To addresses": (
            "max_addresses_per_header",
            head.replace(b"To: support@example.com", b"To: " + addresses)
            + b"Subject: x\r\n\r\nbody\r\n",
        ),
        "100,000 '(' in From": (
            "address parser depth",
            b"From: " + b"(" * 100_000 + b"dana@example.org\r\nSubject: x\r\n\r\nbody\r\n",
        ),
        "Subject of 60,000 characters": (
            "max_subject_chars",
            head + b"Subject: " + b"refund " * 8_500 + b"\r\n\r\nbody\r\n",
        ),
        "encoded CR/LF in From display name": (
            "header decoding",
            b"From: =?utf-8?q?Dana=0D=0ABcc:_x@evil.example?= <dana@example.org>\r\n"
            b"Subject: x\r\n\r\nbody\r\n",
        ),
        "quote line of 200,000 characters": (
            "quote stripping",
            head + b"Subject: x\r\n\r\nOn " + b"a " * 100_000 + b"wrote:\r\n> x\r\nreply\r\n",
        ),
        "25 MB attachment": ("max_email_bytes", big),
    }


def _parse_with(parser: str, raw: bytes) -> str:
    """Parse `raw` with our parser or the stdlib's (what ingestion code reads); the outcome."""
    from producers.parse import EmailParseError, parse_email

    try:
        if parser == "ours":
            try:
                parsed = parse_email(raw)
                return f"turn: {parsed.text[:60]!r}; notes: {parsed.notes}"
            except EmailParseError as exc:
                return f"rejected: {exc.reason}"
        email = BytesParser(policy=policy.default).parsebytes(raw)
        _ = (str(email["From"]), str(email["Subject"]), str(email["To"]))
        body = email.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body is not None else ""
        return f"parsed: {text[:40]!r}"
    except MemoryError:
        return "MemoryError (2 GiB limit)"
    except BaseException as exc:
        return f"{type(exc).__name__}: {str(exc)[:60]}"


def child_case(name: str, parser: str) -> None:
    """Parse one hostile email with `parser` ("ours" or "stdlib"): seconds, then (in a second
    run under tracemalloc, when the first took under 10 s) the peak memory the parse allocated
    over the input's own size, and the outcome."""
    import tracemalloc

    _parse_with(parser, b"From: a@example.org\r\n\r\nwarm-up\r\n")  # imports, caches
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    limit, raw = hostile_cases()[name]
    started = time.perf_counter()
    outcome = _parse_with(parser, raw)
    seconds = time.perf_counter() - started
    peak_mb: float | str = "-"
    if seconds < 10:
        tracemalloc.start()
        _parse_with(parser, raw)
        peak_mb = round(tracemalloc.get_traced_memory()[1] / 1024**2, 1)
        tracemalloc.stop()
    print(
        json.dumps(
            {
                "case": name,
                "limit": limit,
                "parser": parser,
                "bytes": len(raw),
                "seconds": round(seconds, 3),
                "peak_alloc_mb": peak_mb,
                "outcome": outcome,
            },
            ensure_ascii=False,
        )
    )


# --- driver --------------------------------------------------------------------------------


def cell(result: dict[str, Any]) -> str:
    """One parser's figures for a hostile case: seconds / peak allocated MB / outcome."""
    if result.get("timeout"):
        return f"> {CASE_TIMEOUT} s (killed)"
    outcome = str(result.get("outcome", result.get("stderr_tail", "")))[:70]
    return f"{result.get('seconds')} s / {result.get('peak_alloc_mb')} MB / {outcome}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--no-limits", action="store_true", help="skip the per-limit cases")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        {
            "cli": lambda: child_cli(rest),
            "inprocess": lambda: child_inprocess(rest[0], int(rest[1])),
            "stdlib": lambda: child_stdlib(rest[0]),
            "case": lambda: child_case(rest[0], rest[1]),
        }[mode]()
        return
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, redis_base() as base:
        box = Path(tmp) / "support.mbox"
        size = write_mbox(box, args.emails)
        state, broker = f"{base}/11", f"{base}/12"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
        env |= {"TRIAGE_REDIS_URL": state, "TRIAGE_BROKER_URL": broker, "PYTHONPATH": str(REPO)}
        me = [sys.executable, "-m", "bench.ingest", "--child"]
        runs: tuple[tuple[str, str, dict[str, str]], ...] = (
            ("triage enqueue (CLI, end to end)", "cli", {}),
            ("in-process, warm", "inprocess", {}),
            ("triage enqueue, TRIAGE_TASK_EVENTS=false", "cli", {"TRIAGE_TASK_EVENTS": "false"}),
        )
        for label, mode, extra in runs:
            for url in (state, broker):
                redis.Redis.from_url(url).flushdb()
            child = me + (
                ["cli", "-q", "--no-report", str(box)]
                if mode == "cli"
                else ["inprocess", str(box), str(args.emails)]
            )
            result = {
                "run": label,
                "emails": args.emails,
                "mbox_mb": round(size / 1e6, 1),
                **run_child(child, env | extra),
            }
            if mode == "cli" and "cpu_s" in result:
                result["emails_per_s_wall"] = round(args.emails / result["inner_wall_s"], 1)
                result["cpu_ms_per_email"] = round(result["cpu_s"] / args.emails * 1000, 3)
                result["emails_per_cpu_s"] = round(args.emails / result["cpu_s"], 1)
            print(json.dumps(result, ensure_ascii=False), flush=True)
            rows.append(result)
        result = {
            "run": "bare stdlib loop (mailbox + policy.default)",
            **run_child([*me, "stdlib", str(box)], env),
        }
        print(json.dumps(result), flush=True)
        rows.append(result)
    print()
    print("| run | emails/s (wall) | emails per CPU-second | CPU ms/email | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        cells = [
            row["run"],
            row.get("emails_per_s_wall", "-"),
            row.get("emails_per_cpu_s", "-"),
            row.get("cpu_ms_per_email", "-"),
            round(row.get("peak_rss_mb", 0), 1),
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.no_limits:
        return
    print()
    cases: list[dict[str, Any]] = []
    for name in hostile_cases():
        for which in ("ours", "stdlib"):
            result = run_child([*me, "case", name, which], timeout=CASE_TIMEOUT)
            result = {"case": name, "parser": which, **result}
            print(json.dumps(result, ensure_ascii=False), flush=True)
            cases.append(result)
    print()
    print("| case | limit | ours: s / peak MB / outcome | stdlib: s / peak MB / outcome |")
    print("| --- | --- | --- | --- |")
    for ours, stdlib in zip(cases[::2], cases[1::2], strict=True):
        print(f"| {ours['case']} | {ours.get('limit', '')} | {cell(ours)} | {cell(stdlib)} |")


if __name__ == "__main__":
    main()
