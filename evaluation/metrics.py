"""The figures of an evaluation, from its case records (pure; docs/evaluation.md says what each
one means).

A case is correct when its final category is the expected one; a failed case (API error,
truncated twice, refused, invalid output) has no category and counts as wrong, never skipped.
A case that ended on a question no scripted email answers is scored by the category the model
gave with its question (its best guess).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

FAILED = "(failed)"
BINS = 10
BANDS = ("high", "medium", "low")


def binomial_cdf_table(n: int, p: float) -> list[float]:
    """P(X <= j) for X ~ Binomial(n, p), j = 0..n (computed in log space: any n)."""
    if p <= 0.0:
        return [1.0] * (n + 1)
    if p >= 1.0:
        return [0.0] * n + [1.0]
    log_p, log_q = math.log(p), math.log1p(-p)
    logs = [
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + j * log_p
        + (n - j) * log_q
        for j in range(n + 1)
    ]
    top = max(logs)
    weights = [math.exp(value - top) for value in logs]
    total = sum(weights)
    table, running = [], 0.0
    for weight in weights:
        running += weight
        table.append(min(1.0, running / total))
    return table


def bootstrap_interval(correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of an accuracy, computed exactly.

    Resampling n cases with replacement draws each as correct with probability correct/n, so the
    bootstrap distribution of the accuracy is Binomial(n, correct/n)/n; its quantiles are the
    interval an infinite number of resamples would give (no seed, no sampling noise).
    """
    if n == 0:
        return (0.0, 0.0)
    table = binomial_cdf_table(n, correct / n)
    tail = (1 - level) / 2

    def quantile(q: float) -> int:
        return next(j for j, value in enumerate(table) if value >= q - 1e-12)

    return (quantile(tail) / n, quantile(1 - tail) / n)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: p of a split at least this uneven if both were as good."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    table = binomial_cdf_table(m, 0.5)
    return min(1.0, 2 * table[min(only_a, only_b)])


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def per_category(
    records: Sequence[dict[str, Any]], labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Precision, recall, F1 and support per category (None where undefined: nothing to divide)."""
    expected = Counter(r["expected"]["category"] for r in records)
    predicted = Counter(r["predicted"] for r in records if r["predicted"] is not None)
    hits = Counter(r["predicted"] for r in records if r["correct"])
    table: dict[str, dict[str, Any]] = {}
    for label in labels:
        precision = _ratio(hits[label], predicted[label])
        recall = _ratio(hits[label], expected[label])
        if precision is None and recall is None:
            f1 = None
        elif not precision or not recall:
            f1 = 0.0
        else:
            f1 = 2 * precision * recall / (precision + recall)
        table[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": expected[label],
            "predicted": predicted[label],
        }
    return table


def confusion(records: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Rows: expected category; columns: predicted category, then failed cases."""
    columns = [*labels, FAILED]
    counts = Counter((r["expected"]["category"], r["predicted"] or FAILED) for r in records)
    return {
        "rows": list(labels),
        "columns": columns,
        "matrix": [[counts[(row, column)] for column in columns] for row in labels],
    }


def clarification(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Questions as a first move: how often, and how often needless or missed (labelled cases)."""
    answered = [r for r in records if r["first_move"] is not None]
    asked = [r for r in answered if r["first_move"] == "clarify"]
    labelled = [r for r in answered if r["expected"]["clarify"] is not None]
    clear = [r for r in labelled if not r["expected"]["clarify"]]
    vague = [r for r in labelled if r["expected"]["clarify"]]
    needless = [r for r in clear if r["first_move"] == "clarify"]
    missed = [r for r in vague if r["first_move"] == "classify"]
    return {
        "decided": len(answered),
        "asked": len(asked),
        "rate": _ratio(len(asked), len(answered)),
        "labelled": len(labelled),
        "clear": len(clear),
        "vague": len(vague),
        "needless": len(needless),
        "needless_rate": _ratio(len(needless), len(clear)),
        "missed": len(missed),
        "missed_rate": _ratio(len(missed), len(vague)),
        "right_first_move": _ratio(len(labelled) - len(needless) - len(missed), len(labelled)),
        "unanswered": sum(1 for r in records if r["status"] == "asked"),
        "questions_replaced": sum(r["questions_replaced"] for r in records),
    }


def calibration(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per confidence band and per tenth of confidence, and the expected calibration
    error, over the cases that ended in a classification."""
    classified = [r for r in records if r["status"] == "classified"]
    bands: dict[str, dict[str, Any]] = {}
    for band in BANDS:
        members = [r for r in classified if r["band"] == band]
        bands[band] = {
            "count": len(members),
            "share": _ratio(len(members), len(classified)),
            "accuracy": _ratio(sum(r["correct"] for r in members), len(members)),
            "mean_confidence": _ratio(sum(r["confidence"] for r in members), len(members)),
        }
    bins = []
    ece = 0.0
    for index in range(BINS):
        low, high = index / BINS, (index + 1) / BINS
        members = [
            r
            for r in classified
            if low <= r["confidence"] < high or (index == BINS - 1 and r["confidence"] == 1.0)
        ]
        accuracy = _ratio(sum(r["correct"] for r in members), len(members))
        confidence = _ratio(sum(r["confidence"] for r in members), len(members))
        if accuracy is not None and confidence is not None:
            ece += len(members) / len(classified) * abs(accuracy - confidence)
        bins.append(
            {
                "low": low,
                "high": high,
                "count": len(members),
                "accuracy": accuracy,
                "mean_confidence": confidence,
            }
        )
    return {
        "classified": len(classified),
        "bands": bands,
        "bins": bins,
        "ece": ece if classified else None,
    }


def review(records: Sequence[dict[str, Any]], thresholds_set: bool) -> dict[str, Any] | None:
    """With review thresholds: the share of classifications sent to review, and the accuracy of
    the rest (what would be routed without a person)."""
    if not thresholds_set:
        return None
    classified = [r for r in records if r["status"] == "classified"]
    sent = [r for r in classified if r["needs_review"]]
    rest = [r for r in classified if not r["needs_review"]]
    return {
        "sent": len(sent),
        "share": _ratio(len(sent), len(classified)),
        "rest": len(rest),
        "accuracy_rest": _ratio(sum(r["correct"] for r in rest), len(rest)),
        "accuracy_sent": _ratio(sum(r["correct"] for r in sent), len(sent)),
    }


def cost(records: Sequence[dict[str, Any]], batch: bool) -> dict[str, Any]:
    """Money and tokens, per 1,000 emails sent (and per 1,000 cases)."""
    total = sum(r["cost_usd"] for r in records)
    emails = sum(r["emails_sent"] for r in records)
    tokens: Counter[str] = Counter()
    for record in records:
        tokens.update(record["usage"])
    return {
        "batch": batch,
        "total_usd": round(total, 6),
        "calls": sum(r["calls"] for r in records),
        "emails": emails,
        "per_1000_emails_usd": None if not emails else round(total / emails * 1000, 4),
        "per_1000_cases_usd": None if not records else round(total / len(records) * 1000, 4),
        "tokens": dict(tokens),
    }


def latency(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Per-call latency in ms (live runs; a batch has none per request)."""
    values = [
        call["latency_ms"]
        for r in records
        for step in r["steps"]
        for call in step["calls"]
        if call["latency_ms"] is not None
    ]
    if not values:
        return None
    return {
        "calls": len(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


def attributes(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Priority, language (primary subtag) and fields, on the cases labelled with them."""

    def primary(tag: str | None) -> str:
        return (tag or "").split("-")[0].lower()

    out: dict[str, Any] = {}
    for name, same in (
        ("priority", lambda a, b: a == b),
        ("language", lambda a, b: primary(a) == primary(b)),
    ):
        labelled = [r for r in records if r["expected"][name] is not None]
        right = sum(
            1 for r in labelled if r[name] is not None and same(r[name], r["expected"][name])
        )
        out[name] = {
            "labelled": len(labelled),
            "correct": right,
            "accuracy": _ratio(right, len(labelled)),
        }
    fields: dict[str, dict[str, Any]] = {}
    for record in records:
        for field, value in (record["expected"]["fields"] or {}).items():
            row = fields.setdefault(field, {"labelled": 0, "correct": 0})
            row["labelled"] += 1
            row["correct"] += (record["fields"] or {}).get(field) == value
    for row in fields.values():
        row["accuracy"] = _ratio(row["correct"], row["labelled"])
    out["fields"] = fields
    return out


def compute(
    records: Sequence[dict[str, Any]],
    labels: Sequence[str],
    *,
    batch: bool = False,
    review_thresholds: bool = True,
) -> dict[str, Any]:
    """Every figure of the report, from the case records."""
    n = len(records)
    correct = sum(1 for r in records if r["correct"])
    failures = Counter(r["failure"] for r in records if r["status"] == "failed")
    categories = per_category(records, labels)
    supported = [row["f1"] or 0.0 for row in categories.values() if row["support"]]
    return {
        "cases": n,
        "accuracy": {
            "value": _ratio(correct, n),
            "correct": correct,
            "ci95": list(bootstrap_interval(correct, n)) if n else None,
        },
        "macro_f1": sum(supported) / len(supported) if supported else None,
        "failures": {"total": sum(failures.values()), **dict(sorted(failures.items()))},
        "per_category": categories,
        "confusion": confusion(records, labels),
        "clarification": clarification(records),
        "calibration": calibration(records),
        "review": review(records, review_thresholds),
        "cost": cost(records, batch),
        "latency_ms": latency(records),
        "attributes": attributes(records),
    }
