"""The Message Batches API through the official SDK: lifecycle, results, validation, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import jsonschema
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from helpers import (
    MODEL,
    TURN1,
    TURN2,
    WORKER_SCHEMA,
    assistant,
    emulator_url,
    structured,
    user,
    wait_for,
)

from emulator.brain import CLARIFY_QUESTION
from emulator.config import FaultRule
from emulator.server import EmulatorThread

DELAY_S = 0.2


def _params(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": list(messages),
        "output_config": structured(),
        **extra,
    }


def _seed_requests() -> list[dict[str, Any]]:
    return [
        {"custom_id": "turn-1", "params": _params(user(TURN1))},
        {
            "custom_id": "turn-2",
            "params": _params(user(TURN1), assistant(CLARIFY_QUESTION), user(TURN2)),
        },
    ]


def _wait_ended(client: anthropic.Anthropic, batch_id: str, timeout_s: float = 5.0) -> MessageBatch:
    def ended() -> MessageBatch | None:
        batch = client.messages.batches.retrieve(batch_id)
        return batch if batch.processing_status == "ended" else None

    batch: MessageBatch = wait_for(ended, timeout_s, f"batch {batch_id} to end")
    return batch


def _results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    by_id: dict[str, Any] = {}
    for line in client.messages.batches.results(batch_id):
        assert isinstance(line, MessageBatchIndividualResponse)
        assert line.custom_id not in by_id
        by_id[line.custom_id] = line.result
    return by_id


def _decision(result: Any) -> dict[str, Any]:
    assert result.type == "succeeded"
    message = result.message
    assert message.stop_reason == "end_turn"
    assert message.usage.service_tier == "batch"
    assert message.content[0].type == "text"
    decision: dict[str, Any] = json.loads(message.content[0].text)
    jsonschema.validate(decision, WORKER_SCHEMA)
    return decision


def test_lifecycle_and_seed_conversation(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """A batch is in progress, then ends after its delay with the seed conversation's answers."""
    emulator.configure(batch_delay_s=DELAY_S)
    created = client.messages.batches.create(requests=_seed_requests())  # type: ignore[arg-type]
    assert created.id.startswith("msgbatch_")
    assert created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.results_url is None and created.ended_at is None
    assert created.request_counts.processing == 2 and created.request_counts.succeeded == 0
    assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(86_400)

    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        client.messages.batches.results(created.id)
    assert client.messages.batches.retrieve(created.id).processing_status == "in_progress"

    ended = _wait_ended(client, created.id)
    assert ended.ended_at is not None and ended.cancel_initiated_at is None
    assert (ended.ended_at - ended.created_at).total_seconds() == pytest.approx(DELAY_S, abs=0.01)
    assert ended.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 2,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert ended.results_url == f"{emulator.base_url}/v1/messages/batches/{created.id}/results"

    results = _results(client, created.id)
    assert set(results) == {"turn-1", "turn-2"}
    first = _decision(results["turn-1"])
    assert first["action"] == "clarify" and first["question"] == CLARIFY_QUESTION
    second = _decision(results["turn-2"])
    assert second["action"] == "classify" and second["category"] == "BILLING"
    usage_1 = results["turn-1"].message.usage
    usage_2 = results["turn-2"].message.usage
    assert 0 < usage_1.input_tokens < usage_2.input_tokens
    assert usage_2.output_tokens > 0
    assert results["turn-1"].message.id != results["turn-2"].message.id


def test_zero_delay_ends_at_once(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """With no batch delay, a batch has ended when create returns."""
    emulator.configure(batch_delay_s=0)
    batch = client.messages.batches.create(requests=_seed_requests())  # type: ignore[arg-type]
    assert batch.processing_status == "ended" and batch.request_counts.succeeded == 2


def test_results_wire_format(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """Results are served as JSONL, one line per request, in request order."""
    emulator.configure(batch_delay_s=0)
    batch = client.messages.batches.create(requests=_seed_requests())  # type: ignore[arg-type]
    assert batch.results_url is not None
    response = httpx2.get(
        batch.results_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-jsonl")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["custom_id"] for line in lines] == ["turn-1", "turn-2"]
    assert lines[0]["result"]["message"]["type"] == "message"


def test_invalid_params_become_errored_results(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """A request with invalid params becomes an errored result; the others succeed."""
    emulator.configure(batch_delay_s=0)
    requests = [
        {"custom_id": "ok", "params": _params(user(TURN2))},
        {"custom_id": "sampling", "params": _params(user(TURN2), temperature=0.5)},
        {"custom_id": "no-max", "params": {"model": MODEL, "messages": [user(TURN2)]}},
    ]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.request_counts.succeeded == 1 and batch.request_counts.errored == 2
    results = _results(client, batch.id)
    assert _decision(results["ok"])["category"] == "BILLING"
    for custom_id, needle in (("sampling", "temperature"), ("no-max", "max_tokens")):
        result = results[custom_id]
        assert result.type == "errored"
        assert result.error.type == "error"
        assert result.error.error.type == "invalid_request_error"
        assert needle in result.error.error.message


@pytest.mark.parametrize(
    ("requests", "needle"),
    [
        ([], "at least 1 item"),
        (
            [
                {"custom_id": "same", "params": _params(user(TURN1))},
                {"custom_id": "same", "params": _params(user(TURN2))},
            ],
            "Duplicate custom_id",
        ),
        ([{"custom_id": "has space", "params": _params(user(TURN1))}], "pattern"),
        ([{"custom_id": "x" * 65, "params": _params(user(TURN1))}], "pattern"),
        ([{"custom_id": "", "params": _params(user(TURN1))}], "pattern"),
        ([{"custom_id": "no-params"}], "params: Field required"),
    ],
)
def test_invalid_batches_are_rejected(
    client: anthropic.Anthropic, emulator: EmulatorThread, requests: list[Any], needle: str
) -> None:
    """An empty batch, a bad or duplicate custom_id, or missing params rejects the batch."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.batches.create(requests=requests)
    assert caught.value.type == "invalid_request_error"
    assert needle in caught.value.message
    assert client.messages.batches.list().data == []


def test_missing_requests_and_limits(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """A batch without requests, or over the count or byte limit, is rejected (400, 413)."""
    with pytest.raises(anthropic.BadRequestError, match="requests: Field required"):
        client.post("/v1/messages/batches", body={}, cast_to=MessageBatch)
    emulator.configure(batch_max_requests=2)
    three = [{"custom_id": f"r{i}", "params": _params(user(TURN2))} for i in range(3)]
    with pytest.raises(anthropic.BadRequestError, match="at most 2 items"):
        client.messages.batches.create(requests=three)  # type: ignore[arg-type]
    emulator.configure(batch_max_body_bytes=500, max_body_bytes=10)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.batches.create(requests=three[:2])  # type: ignore[arg-type]
    assert caught.value.status_code == 413
    assert "maximum allowed number of bytes (500)" in caught.value.message
    emulator.configure(batch_max_body_bytes=100_000)
    assert client.messages.batches.create(requests=three[:2]).id  # type: ignore[arg-type]


def test_faults_by_match(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """Matching fault rules make batch requests expire, error or be overloaded."""
    emulator.configure(
        batch_delay_s=0,
        faults=[
            FaultRule(kind="expired", match="printer"),
            FaultRule(kind="api_error", match="refund"),
            FaultRule(kind="overloaded", match="parcel"),
            FaultRule(kind="reset"),  # meaningless for batches: never fires there
        ],
    )
    requests = [
        {"custom_id": "expires", "params": _params(user("My printer is on fire."))},
        {"custom_id": "fails", "params": _params(user("I want a refund now."))},
        {"custom_id": "busy", "params": _params(user("Where is my parcel?"))},
        {"custom_id": "fine", "params": _params(user(TURN2))},
    ]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored, counts.expired) == (1, 2, 1)
    results = _results(client, batch.id)
    assert results["expires"].type == "expired"
    assert results["fails"].type == "errored"
    assert results["fails"].error.error.type == "api_error"
    assert results["busy"].error.error.type == "overloaded_error"
    assert _decision(results["fine"])["category"] == "BILLING"


def test_expired_rule_does_not_touch_messages(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """The expired fault is for batches only: a Messages call still succeeds."""
    emulator.configure(faults=[FaultRule(kind="expired")])
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[user(TURN2)],  # type: ignore[list-item]
    )
    assert message.stop_reason == "end_turn"


def test_content_faults_apply_to_batch_messages(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """Refusal and max_tokens faults show in batch results as the stop reason."""
    emulator.configure(
        batch_delay_s=0,
        faults=[
            FaultRule(kind="refusal", match="refuse-me"),
            FaultRule(kind="max_tokens", match="cut-me"),
        ],
    )
    requests = [
        {"custom_id": "refused", "params": _params(user("refuse-me: " + TURN2))},
        {"custom_id": "cut", "params": _params(user("cut-me: " + TURN2))},
    ]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    results = _results(client, batch.id)
    assert results["refused"].message.stop_reason == "refusal"
    assert results["cut"].message.stop_reason == "max_tokens"
    assert batch.request_counts.succeeded == 2


def test_cancel(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """Cancel cancels every request; a batch cannot be deleted before nor canceled after it ends."""
    emulator.configure(batch_delay_s=60)
    batch = client.messages.batches.create(requests=_seed_requests())  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="cannot be deleted"):
        client.messages.batches.delete(batch.id)
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None and canceling.results_url is None
    ended = _wait_ended(client, batch.id, timeout_s=1.0)
    assert ended.request_counts.canceled == 2 and ended.request_counts.processing == 0
    assert ended.ended_at is not None and ended.ended_at >= canceling.cancel_initiated_at
    assert {result.type for result in _results(client, batch.id).values()} == {"canceled"}
    with pytest.raises(anthropic.BadRequestError, match="already ended"):
        client.messages.batches.cancel(batch.id)


def test_list_pagination(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """Batches list newest first, page by after_id/before_id, and reject a bad limit or id."""
    emulator.configure(batch_delay_s=0)
    ids = [
        client.messages.batches.create(requests=_seed_requests()[:1]).id  # type: ignore[arg-type]
        for _ in range(5)
    ]
    newest_first = list(reversed(ids))

    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more is True
    assert (page.first_id, page.last_id) == (newest_first[0], newest_first[1])

    after = client.messages.batches.list(limit=2, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:4] and after.has_more is True
    before = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3] and before.has_more is True

    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first
    assert [b.id for b in client.messages.batches.list()] == newest_first
    assert client.messages.batches.list().has_more is False

    with pytest.raises(anthropic.BadRequestError, match="limit"):
        client.messages.batches.list(limit=1001)
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        client.messages.batches.list(limit=0)
    with pytest.raises(anthropic.BadRequestError, match="after_id"):
        client.messages.batches.list(after_id="msgbatch_unknown")


def test_delete_and_not_found(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """A deleted batch is gone, and every batch endpoint answers 404 for an unknown one."""
    emulator.configure(batch_delay_s=0)
    batch = client.messages.batches.create(requests=_seed_requests())  # type: ignore[arg-type]
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    missing = "msgbatch_doesnotexist"
    for call in (
        lambda: client.messages.batches.retrieve(batch.id),
        lambda: client.messages.batches.retrieve(missing),
        lambda: client.messages.batches.cancel(missing),
        lambda: client.messages.batches.delete(missing),
        lambda: client.messages.batches.results(missing),
        lambda: client.get(f"/v1/messages/batches/{missing}/results", cast_to=httpx2.Response),
    ):
        with pytest.raises(anthropic.NotFoundError) as caught:
            call()
        assert caught.value.type == "not_found_error"


def test_results_before_end_is_400(client: anthropic.Anthropic, emulator: EmulatorThread) -> None:
    """Asking for results before the batch has ended is a 400."""
    emulator.configure(batch_delay_s=60)
    batch = client.messages.batches.create(requests=_seed_requests())  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="not finished processing"):
        client.get(f"/v1/messages/batches/{batch.id}/results", cast_to=httpx2.Response)


def test_reset_forgets_batches_and_store_is_bounded(
    client: anthropic.Anthropic, emulator: EmulatorThread
) -> None:
    """Only the newest max_batches batches are kept, and reset forgets them all."""
    emulator.configure(batch_delay_s=0, max_batches=2)
    ids = [
        client.messages.batches.create(requests=_seed_requests()[:1]).id  # type: ignore[arg-type]
        for _ in range(3)
    ]
    assert [b.id for b in client.messages.batches.list()] == [ids[2], ids[1]]
    emulator.reset()
    assert client.messages.batches.list().data == []
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(ids[2])


def test_batch_endpoints_require_a_key(emulator: EmulatorThread) -> None:
    """The batch endpoints answer 401 without an API key."""
    response = httpx2.get(
        f"{emulator.base_url}/v1/messages/batches", headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_cli_batch_delay_option(tmp_path: Path) -> None:
    """The emulator command reads the batch delay from its environment, faults from options."""
    out = tmp_path / "stdout.log"
    env = {**os.environ, "EMULATOR_BATCH_DELAY_S": "0.5"}
    command = [sys.executable, "-m", "emulator", "--port", "0", "--fault", "expired:0.5"]
    with out.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        config = httpx2.get(f"{emulator_url(proc, out)}/_emulator/config").json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert config["batch_delay_s"] == 0.5
    assert [(f["kind"], f["rate"]) for f in config["faults"]] == [("expired", 0.5)]
