"""`triage eval` against the emulator over HTTP, in-process: the figures a small dataset must
give for the emulator's deterministic answers, multi-turn cases, CSV imports, the review export,
batch = live, --compare, the report directory and the --fail-under gate."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import SEED_FIRST, SEED_REPLY, TEST_KEY, api_requests, user_texts
from PIL import Image

from common import keys
from emulator.config import FaultRule
from triage.main import cli
from worker.state.review import ReviewLane
from worker.state.store import ThreadStore

LABELS = ["BILLING", "SHIPPING", "TECHNICAL", "OTHER"]

BOUNCE = """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Date: Tue, 04 Nov 2025 09:00:00 +0000
Message-ID: <bounce-1@mx.example.net>
Auto-Submitted: auto-replied

Your message could not be sent to one or more recipients.
"""

STATEMENT = """\
From: Statements <no-reply@bank.example>
To: support@example.com
Subject: Your monthly statement
Date: Tue, 04 Nov 2025 09:00:00 +0000
Message-ID: <statement-1@bank.example>

Your statement for October is ready to view online.
"""


def email(text: str, subject: str = "Hello") -> dict[str, Any]:
    return {"from": "Dana Customer <dana@example.org>", "subject": subject, "text": text}


#: (id, emails, expected category, expected clarify, and what the emulator does, worked out by
#: hand from emulator/brain.py: predicted category or None (failed), confidence, first move).
SMALL = [
    ("a", [email("I was charged twice for my subscription.")], "BILLING", False,
     ("BILLING", 0.9, "classify")),  # charged, subscription: one topic
    ("b", [email("My parcel never arrived.")], "SHIPPING", False,
     ("SHIPPING", 0.9, "classify")),
    ("c", [email("The app shows an error when I upload a photo.")], "TECHNICAL", False,
     ("TECHNICAL", 0.9, "classify")),
    ("d", [email("Where is my invoice? The package arrived but the invoice was missing.")],
     "BILLING", False, ("BILLING", 0.7, "classify")),  # 2 billing, 2 shipping: billing first
    ("e", [email("The delivery was late and I want a refund of the shipping fee.")],
     "SHIPPING", False, ("BILLING", 0.7, "classify")),  # refund, fee vs delivery, shipping
    ("f", [email("Hello, can you help me?")], "OTHER", True,
     ("OTHER", 0.3, "clarify")),  # no keyword: a question; nothing answers it
    ("g", [email(SEED_FIRST), email(SEED_REPLY, "Re: Hello")], "BILLING", True,
     ("BILLING", 0.9, "clarify")),  # the seed conversation: question, answer, BILLING
    ("h", [email("I would like to know your opening hours.")], "OTHER", False,
     ("OTHER", 0.3, "clarify")),  # a needless question
    ("i", [email("I need help with a payment or a delivery."), email("It is the delivery.")],
     "SHIPPING", True, ("BILLING", 0.7, "classify")),  # a missed question: tie, billing
    ("j", [BOUNCE], "OTHER", False, ("OTHER", 0.3, "classify")),  # robot: no question allowed
    ("k", [STATEMENT], "BILLING", False, ("OTHER", 0.3, "classify")),  # robot, no keyword
    ("l", [email("refuse-me: my parcel arrived broken")], "SHIPPING", False,
     (None, None, None)),  # refused (fault)
    ("m", [email("truncate-me: the app crashes")], "TECHNICAL", False,
     (None, None, None)),  # truncated twice (fault)
]  # fmt: skip

FAULTS = [
    FaultRule(kind="refusal", match="refuse-me"),
    FaultRule(kind="max_tokens", match="truncate-me"),
]


def write_dataset(path: Path, cases: list[tuple[Any, ...]]) -> Path:
    lines = [
        json.dumps(
            {
                "id": case_id,
                "emails": emails,
                "expected": {"category": category, "clarify": clarify},
                "note": f"case {case_id}",
            }
        )
        for case_id, emails, category, clarify, _ in cases
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_eval(emulator: Any, *args: str) -> Result:
    env = {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": emulator.base_url}
    return CliRunner().invoke(cli, ["eval", *args], env=env, catch_exceptions=False)


def report_of(result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture
def small(tmp_path: Path, emulator: Any) -> Path:
    emulator.configure(faults=FAULTS)
    return write_dataset(tmp_path / "small.jsonl", SMALL)


def test_a_small_dataset_gives_the_exact_figures_of_the_emulators_answers(small, emulator):
    """Confusion matrix, accuracy and its interval, P/R/F1, questions, bands, ECE and review:
    each equal to what the hand-worked emulator answers give, computed here independently."""
    result = run_eval(emulator, str(small), "--json")
    assert result.exit_code == 0, result.output
    report = report_of(result)
    m = report["metrics"]
    rows = [
        {"id": i, "expected": cat, "clarify": clarify, "pred": p, "conf": c, "first": f}
        for i, _, cat, clarify, (p, c, f) in SMALL
    ]
    by_id = {case["id"]: case for case in report["cases"]}
    assert [case["id"] for case in report["cases"]] == [row["id"] for row in rows]
    for row in rows:
        case = by_id[row["id"]]
        assert (case["predicted"], case["first_move"]) == (row["pred"], row["first"]), row
        if row["pred"] is not None and case["status"] == "classified":
            assert case["confidence"] == pytest.approx(row["conf"])

    correct = [row for row in rows if row["pred"] == row["expected"]]
    assert m["accuracy"]["correct"] == len(correct) == 8
    assert m["accuracy"]["value"] == pytest.approx(8 / 13)

    pairs = Counter((row["expected"], row["pred"] or "(failed)") for row in rows)
    columns = [*LABELS, "(failed)"]
    assert m["confusion"]["columns"] == columns
    assert m["confusion"]["matrix"] == [[pairs[(e, p)] for p in columns] for e in LABELS]
    assert m["confusion"]["matrix"] == [
        [3, 0, 0, 1, 0],
        [2, 1, 0, 0, 1],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 3, 0],
    ]
    for label in LABELS:
        tp = pairs[(label, label)]
        predicted = sum(1 for row in rows if row["pred"] == label)
        support = sum(1 for row in rows if row["expected"] == label)
        got = m["per_category"][label]
        assert got["support"] == support
        assert got["precision"] == pytest.approx(tp / predicted)
        assert got["recall"] == pytest.approx(tp / support)
        p, r = tp / predicted, tp / support
        assert got["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)

    assert m["failures"] == {"total": 2, "refused": 1, "truncated": 1}
    q = m["clarification"]
    decided = [row for row in rows if row["first"] is not None]
    assert q["decided"] == len(decided) == 11
    assert q["asked"] == sum(row["first"] == "clarify" for row in decided) == 3
    assert (q["needless"], q["clear"]) == (1, 8)  # h
    assert (q["missed"], q["vague"]) == (1, 3)  # i
    assert q["unanswered"] == 2  # f and h end on a question

    classified = [row for row in decided if row["id"] not in ("f", "h")]
    bands = {
        "high": [row for row in classified if row["conf"] >= 0.85],
        "medium": [row for row in classified if 0.6 <= row["conf"] < 0.85],
        "low": [row for row in classified if row["conf"] < 0.6],
    }
    for band, members in bands.items():
        hits = sum(row["pred"] == row["expected"] for row in members)
        assert m["calibration"]["bands"][band]["count"] == len(members)
        assert m["calibration"]["bands"][band]["accuracy"] == pytest.approx(hits / len(members))
    ece = 0.0
    for conf in {row["conf"] for row in classified}:
        members = [row for row in classified if row["conf"] == conf]
        hits = sum(row["pred"] == row["expected"] for row in members) / len(members)
        ece += len(members) / len(classified) * abs(hits - conf)
    assert m["calibration"]["ece"] == pytest.approx(ece)  # 1.9 / 9

    rest = [row for row in classified if row["conf"] >= 0.6]  # review below 0.6
    assert m["review"]["sent"] == len(classified) - len(rest) == 2
    assert m["review"]["accuracy_rest"] == pytest.approx(
        sum(row["pred"] == row["expected"] for row in rest) / len(rest)
    )

    rng = random.Random(7)
    outcomes = [row["pred"] == row["expected"] for row in rows]
    means = sorted(
        sum(rng.choices(outcomes, k=len(outcomes))) / len(outcomes) for _ in range(20_000)
    )
    low, high = m["accuracy"]["ci95"]
    assert abs(low - means[int(0.025 * len(means))]) <= 1 / 13 + 1e-9
    assert abs(high - means[int(0.975 * len(means)) - 1]) <= 1 / 13 + 1e-9
    assert m["cost"]["calls"] == sum(case["calls"] for case in report["cases"])
    assert m["cost"]["total_usd"] > 0 and m["latency_ms"]["p95"] >= m["latency_ms"]["p50"]


def test_a_multi_turn_case_is_answered_by_its_next_email_and_scored(tmp_path, emulator):
    """The model asks; the next scripted email is the answer, sent after our question in the
    same array (as the worker would); the case is scored on the final classification."""
    dataset = write_dataset(tmp_path / "seed.jsonl", [c for c in SMALL if c[0] == "g"])
    result = run_eval(emulator, str(dataset), "--json")
    assert result.exit_code == 0, result.output
    [case] = report_of(result)["cases"]
    first, second = case["steps"]
    assert first["outcome"] == "clarified" and first["decision"]["question_sent"]
    assert second["outcome"] == "classified"
    assert second["no_question_reason"] == "clarification_limit"
    assert (case["predicted"], case["correct"], case["questions"], case["calls"]) == (
        "BILLING", True, 1, 2,
    )  # fmt: skip
    [ask, answer] = api_requests(emulator)
    turns = answer["body"]["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert SEED_FIRST in user_texts(turns[0]) and SEED_REPLY in user_texts(turns[2])
    assert len(ask["body"]["messages"]) == 1


def test_a_csv_export_imports_with_a_label_map(tmp_path, emulator):
    """Columns named by --map, labels renamed by --label-map (`*` for the rest); the imported
    cases can be written as a dataset or run directly; an unmapped label stops the import."""
    csv_file = tmp_path / "tickets.csv"
    csv_file.write_text(
        "ticket,title,message,queue,prio,lang\n"
        't1,Double charge,"I was charged twice, please refund.",Billing and Payments,High,en\n'
        "t2,Parcel,My parcel never arrived.,Returns and Exchanges,Critical,de\n"
        "t3,Crash,The app crashes when I log in.,Technical Support,medium,xx-invalid-\n"
        "t4,,,Technical Support,low,en\n"
    )
    mapping = "subject=title,body=message,label=queue,priority=prio,language=lang,id=ticket"
    labels = "billing and payments=BILLING,Technical Support=TECHNICAL,*=SHIPPING"
    out = tmp_path / "imported.jsonl"
    args = ["--import-csv", str(csv_file), "--map", mapping, "--label-map", labels]
    result = run_eval(emulator, *args, "--write-dataset", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(c["id"], c["expected"]["category"]) for c in lines] == [
        ("t1", "BILLING"), ("t2", "SHIPPING"), ("t3", "TECHNICAL"),
    ]  # fmt: skip
    assert [c["expected"].get("priority") for c in lines] == ["high", "urgent", "normal"]
    assert lines[1]["expected"]["language"] == "de" and "language" not in lines[2]["expected"]
    assert lines[0]["emails"][0]["subject"] == "Double charge"
    assert "1 rows without subject or body" in result.stderr
    assert not api_requests(emulator)  # writing the dataset sends nothing

    result = run_eval(emulator, *args, "--json")
    assert result.exit_code == 0, result.output
    assert [c["predicted"] for c in report_of(result)["cases"]] == [
        "BILLING", "SHIPPING", "TECHNICAL",
    ]  # fmt: skip

    result = run_eval(emulator, "--import-csv", str(csv_file), "--map", mapping)
    assert result.exit_code == 2
    assert "'Billing and Payments' (1)" in result.output and "--label-map" in result.output


def test_the_review_lanes_export_loads_as_a_dataset(tmp_path, r, emulator):
    """`triage review export` writes cases `triage eval` reads; the stored turn's Subject line
    is not sent twice."""
    example = {
        "id": "t0123",
        "emails": ["Subject: Order 5\n\nMy parcel never arrived."],
        "subject": "Order 5",
        "customer": "dana@example.org",
        "category": "SHIPPING",
        "fields": {},
        "corrected": True,
        "note": None,
        "at": 1.0,
    }
    r.xadd(keys.LABELLED, {"example": json.dumps(example)})
    export = tmp_path / "labelled.jsonl"
    assert ReviewLane(r, ThreadStore(r, 3600, 1000), 1000).export(export) == 1
    result = run_eval(emulator, str(export), "--json")
    assert result.exit_code == 0, result.output
    [case] = report_of(result)["cases"]
    assert (case["id"], case["predicted"], case["correct"]) == ("t0123", "SHIPPING", True)
    [request] = api_requests(emulator)
    text = user_texts(request["body"]["messages"][0])
    assert text.count("Subject: Order 5") == 1 and "My parcel never arrived." in text


def test_a_batch_run_equals_the_live_run(small, emulator):
    """Through the Message Batches API (rounds for questions and truncation retries) every case
    ends as it does live, at half the price."""
    emulator.configure(batch_delay_s=0.0)
    live = run_eval(emulator, str(small), "--json")
    batch = run_eval(emulator, str(small), "--json", "--via", "batch", "--poll-seconds", "0.05")
    assert live.exit_code == 0 and batch.exit_code == 0, batch.output

    def outcome(case: dict[str, Any]) -> tuple[Any, ...]:
        steps = [(s["outcome"], s["decision"] and s["decision"]["category"]) for s in case["steps"]]
        return case["id"], case["status"], case["failure"], case["predicted"], case["calls"], steps

    a, b = report_of(live), report_of(batch)
    assert [outcome(c) for c in a["cases"]] == [outcome(c) for c in b["cases"]]
    assert a["metrics"]["confusion"] == b["metrics"]["confusion"]
    assert b["run"]["via"] == "batch" and b["metrics"]["cost"]["batch"] is True
    assert b["metrics"]["cost"]["total_usd"] == pytest.approx(
        a["metrics"]["cost"]["total_usd"] / 2, abs=1e-5
    )
    assert b["metrics"]["latency_ms"] is None


def test_compare_finds_the_cases_that_flipped(tmp_path, emulator):
    """Two report.json files: the cases fixed and broken between them, and McNemar's p."""
    dataset = write_dataset(tmp_path / "set.jsonl", SMALL[:4])
    emulator.configure(faults=[FaultRule(kind="refusal", match="parcel")])  # b fails in A
    assert run_eval(emulator, str(dataset), "--report", str(tmp_path / "a")).exit_code == 0
    emulator.configure(faults=[FaultRule(kind="refusal", match="upload")])  # c fails in B
    assert run_eval(emulator, str(dataset), "--report", str(tmp_path / "b")).exit_code == 0
    reports = [str(tmp_path / name / "report.json") for name in ("a", "b")]
    result = run_eval(emulator, "--compare", *reports, "--json")
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert [f["id"] for f in compared["fixed"]] == ["b"]
    assert [f["id"] for f in compared["broken"]] == ["c"]
    assert compared["mcnemar"] == {"a_only_right": 1, "b_only_right": 1, "p_value": 1.0}
    assert compared["difference"] == 0.0
    text = run_eval(emulator, "--compare", *reports).stdout
    assert "b: expected SHIPPING, A failed, B SHIPPING" in text


def test_the_report_directory_has_the_report_and_valid_pngs(small, tmp_path, emulator):
    """report.md, report.json with every case and its decision, and two PNG plots that open."""
    out = tmp_path / "report"
    result = run_eval(emulator, str(small), "--report", str(out))
    assert result.exit_code == 0, result.output
    assert "accuracy    61.5%  (8/13)" in result.stdout
    document = json.loads((out / "report.json").read_text())
    assert len(document["cases"]) == len(SMALL)
    assert all("steps" in case and "predicted" in case for case in document["cases"])
    markdown = (out / "report.md").read_text()
    assert "![confusion](confusion.png)" in markdown and "`e`" in markdown
    for name in ("confusion.png", "reliability.png"):
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 300


def test_fail_under_makes_it_a_gate(small, emulator):
    """Exit 1 under the threshold (0.7 and 70 alike), 0 at or above it."""
    assert run_eval(emulator, str(small), "--fail-under", "60").exit_code == 0
    below = run_eval(emulator, str(small), "--fail-under", "0.7")
    assert below.exit_code == 1 and "under --fail-under 70%" in below.stderr


def test_a_broken_dataset_stops_before_any_call(tmp_path, emulator):
    """Every bad line is listed with file:line, exit 2, and nothing is sent to the API."""
    dataset = tmp_path / "bad.jsonl"
    good = {
        "id": "x",
        "emails": [email("My parcel never arrived.")],
        "expected": {"category": "SHIPPING"},
    }
    dataset.write_text(
        json.dumps(good) + "\nnot json\n"
        + json.dumps({**good, "expected": {"category": "RETURNS"}}) + "\n"
        + json.dumps(good) + "\n"
        + json.dumps({**good, "id": "y", "emails": [{"subject": "no sender", "text": "hi"}]}) + "\n"
    )  # fmt: skip
    result = run_eval(emulator, str(dataset))
    assert result.exit_code == 2
    for line, problem in ((2, "not JSON"), (3, "'RETURNS'"), (4, "already used"), (5, "emails.0")):
        assert f"bad.jsonl:{line}: " in result.output and problem in result.output
    assert not api_requests(emulator)
