"""The pure parts of `triage eval`: statistics, the progress line, and the shipped labelled set
(`evals/`) having what it must cover."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from common.settings import Settings
from evaluation.dataset import load_datasets
from evaluation.metrics import bootstrap_interval, mcnemar_p, per_category, percentile
from evaluation.progress import line
from worker.decide.claude import CallResult
from worker.decide.verdict import read_result, retry_budget
from worker.state.usage import Usage

EVALS = Path(__file__).resolve().parents[2] / "evals"


@pytest.mark.parametrize(
    ("only_a", "only_b", "p"),
    [
        (0, 0, 1.0),
        (0, 5, 2 * 0.5**5),
        (1, 9, 2 * (1 + 10) / 2**10),
        (5, 5, 1.0),
        (3, 12, 2 * sum(math.comb(15, k) for k in range(4)) / 2**15),
    ],
)
def test_mcnemar_is_the_exact_two_sided_binomial_test(only_a, only_b, p):
    """p = 2 P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), capped at 1."""
    assert mcnemar_p(only_a, only_b) == pytest.approx(p)
    assert mcnemar_p(only_b, only_a) == pytest.approx(p)


@pytest.mark.parametrize(("correct", "n"), [(0, 10), (10, 10), (7, 10), (150, 207), (9000, 10000)])
def test_the_bootstrap_interval_holds_the_accuracy_and_narrows_with_more_cases(correct, n):
    """The interval contains the observed accuracy, stays in [0, 1], and 100% gives [1, 1]."""
    low, high = bootstrap_interval(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    if correct in (0, n):
        assert low == high == correct / n
    else:
        wide = bootstrap_interval(correct * 10, n * 10)
        assert wide[1] - wide[0] < high - low


def test_percentiles_are_nearest_rank():
    """p50 and p95 of 1..100 are 50 and 95; none for no values."""
    values = list(range(100, 0, -1))
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50, 95)
    assert percentile([], 0.5) is None


def test_precision_is_undefined_for_a_category_never_predicted():
    """Nothing predicted: precision None (not 0), recall 0, F1 0."""
    records = [{"expected": {"category": "OTHER"}, "predicted": "BILLING", "correct": False}]
    table = per_category(records, ["BILLING", "OTHER"])
    assert table["OTHER"] == {
        "precision": None, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0,
    }  # fmt: skip
    assert table["BILLING"]["precision"] == 0.0 and table["BILLING"]["recall"] is None


def test_the_progress_line_shows_count_rate_eta_and_cost():
    """Count, bar, share, rate, ETA and cost so far in one line."""
    text = line(50, 200, 10.0, 0.1234)
    assert text.startswith(" 50/200 [######------------------]  25%")
    assert "5.0 cases/s" in text and "ETA 0:30" in text and "$0.1234" in text


def result(text: str, stop: str = "end_turn") -> CallResult:
    return CallResult(text, stop, None, Usage(10, 5), "req_1", "claude-haiku-4-5", 1.0)


def test_a_result_is_read_as_the_drain_step_reads_it():
    """Decisions, refusals, truncations, invalid output and other stops, with ledger labels."""
    settings = Settings(anthropic_api_key=None)
    decision = json.dumps({"action": "clarify", "question": "Which order?", "category": "OTHER"})
    assert read_result(result(decision), settings, True).label == "CLARIFY"
    assert read_result(result(decision), settings, False).kind == "invalid"
    assert read_result(result("", "refusal"), settings, True).label == "ESCALATED"
    assert read_result(result("{", "max_tokens"), settings, True).kind == "truncated"
    assert read_result(result("", "pause_turn"), settings, True).label == "UNEXPECTED_STOP"
    assert retry_budget(1024) == 2048 and retry_budget(40_000) == 64_000


def test_the_shipped_set_covers_what_it_must():
    """At least 200 cases, every default category, questions and none, five or more languages,
    robots, prompt injections, long quoted threads, HTML-only mail, each with a note."""
    settings = Settings(anthropic_api_key=None)
    cases = load_datasets([EVALS], settings)
    assert len(cases) >= 200
    categories = Counter(case.expected.category for case in cases)
    assert set(categories) == set(settings.category_names)
    assert min(categories.values()) >= 30
    clarify = Counter(case.expected.clarify for case in cases)
    assert clarify[True] >= 20 and clarify[False] >= 150
    assert all(len(case.emails) >= 2 for case in cases if case.expected.clarify)
    languages = Counter((case.expected.language or "").split("-")[0] for case in cases)
    assert len([lang for lang, n in languages.items() if n >= 5]) >= 5
    assert sum(1 for case in cases if any(e.flags for e in case.emails)) >= 10
    assert all(case.note for case in cases)
    raw = [json.loads(line) for p in EVALS.glob("*.jsonl") for line in p.read_text().splitlines()]
    texts = [json.dumps(c["emails"]) for c in raw]
    assert sum("Content-Type: text/html" in t or '"html"' in t for t in texts) >= 8
    assert sum(t.count("\\n> ") >= 3 or "Original Message" in t for t in texts) >= 6
    assert sum(c["id"].startswith("inject") for c in raw) >= 8
