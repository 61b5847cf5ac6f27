"""The seed conversation, end to end: real worker, real Redis, real SDK against the emulator."""

from __future__ import annotations

import json
from email import message_from_string, policy

from helpers import SEED_FIRST, SEED_REPLY, events, make_email, outbox, user_texts, wait_for

from producers.submit import thread_id_for
from worker.state.store import ThreadStore


def test_seed_conversation_clarifies_then_classifies_billing(r, emulator, worker, enqueue):
    """The seed conversation: a vague email gets one question; the answer is BILLING."""
    first = enqueue(make_email("<seed-1@example.org>", SEED_FIRST))
    assert first.status == "enqueued"
    thread_id = first.thread_id
    assert thread_id == thread_id_for("<seed-1@example.org>")

    sent = wait_for(lambda: outbox(r), what="the clarifying question in the outbox")
    assert len(sent) == 1 and sent[0]["thread_id"] == thread_id
    mail = message_from_string(sent[0]["message"], policy=policy.default)
    assert mail["To"] == "dana@example.org"
    assert mail["Subject"] == "Re: Help"
    assert mail["In-Reply-To"] == "<seed-1@example.org>"
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["Message-ID"] == sent[0]["message_id"]
    assert "?" in mail.get_content()
    [asked] = events(r, ("clarification",))
    assert asked["thread_id"] == thread_id and asked["question_replaced"] is False
    assert asked["reply_message_id"] == mail["Message-ID"]

    # First request: one user turn, system prompt top-level, never a role.
    [request1] = [q for q in emulator.requests if q["path"] == "/v1/messages"]
    body1 = request1["body"]
    assert [m["role"] for m in body1["messages"]] == ["user"]
    assert SEED_FIRST in user_texts(body1["messages"][0])
    [system] = body1["system"]  # one text block, its own cache breakpoint at the end
    assert system["type"] == "text" and "BILLING" in system["text"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "temperature" not in body1
    assert body1["output_config"]["format"]["type"] == "json_schema"
    assert body1["cache_control"] == {"type": "ephemeral"}
    store = ThreadStore(r, 3600, 1000)
    assert store.snapshot(thread_id).status == "awaiting_customer"

    # The customer answers our question: threaded by In-Reply-To alone.
    reply = make_email(
        "<seed-2@example.org>", SEED_REPLY, subject="Re: Help", in_reply_to=mail["Message-ID"]
    )
    second = enqueue(reply)
    assert second.thread_id == thread_id

    [event] = wait_for(lambda: events(r), what="the classification event")
    assert event["type"] == "classified"
    assert event["category"] == "BILLING"
    assert event["thread_id"] == thread_id
    assert event["email_ids"] == ["<seed-2@example.org>"]
    assert event["turns"] == 4 and event["clarifications"] == 1
    assert event["thread_usage"]["input_tokens"] > event["usage"]["input_tokens"] > 0

    requests = [q for q in emulator.requests if q["path"] == "/v1/messages"]
    assert len(requests) == 2
    body2 = requests[1]["body"]
    assert [m["role"] for m in body2["messages"]] == ["user", "assistant", "user"]
    assert all(m["role"] != "system" for m in body2["messages"])
    assert SEED_REPLY in user_texts(body2["messages"][2])
    assert "wrote:" not in user_texts(body2["messages"][2])  # quoted history stripped

    snapshot = store.snapshot(thread_id)
    assert snapshot.status == "classified" and snapshot.meta["category"] == "BILLING"
    # The stored array is exactly what was resent, plus Claude's final answer.
    assert snapshot.messages[:3] == body2["messages"]
    assert json.loads(snapshot.messages[3]["content"][0]["text"])["category"] == "BILLING"
    # Input tokens grow with the array.
    assert (
        requests[1]["response"]["usage"]["input_tokens"]
        > requests[0]["response"]["usage"]["input_tokens"]
    )


def test_claude_call_log_carries_token_counts(r, emulator, worker, enqueue):
    """The claude.call log line carries the API's token counts, never the body or the key."""
    first = enqueue(make_email("<log-1@example.org>", "I was charged twice, please refund me."))
    wait_for(lambda: events(r), what="the classification event")
    calls = wait_for(
        lambda: [c for c in worker.logs("claude.call") if c.get("thread_id") == first.thread_id],
        what="the claude.call log line",
    )
    assert len(calls) == 1
    call = calls[0]
    [request] = [q for q in emulator.requests if q["path"] == "/v1/messages"]
    usage = request["response"]["usage"]
    assert call["request_id"] == request["request_id"]
    assert call["input_tokens"] == usage["input_tokens"] > 0
    assert call["output_tokens"] == usage["output_tokens"] > 0
    assert call["cache_creation_input_tokens"] == usage["cache_creation_input_tokens"]
    assert call["cache_read_input_tokens"] == usage["cache_read_input_tokens"]
    assert call["stop_reason"] == "end_turn" and call["turns"] == 1
    assert call["model"] == "claude-haiku-4-5"
    assert call["thread_input_tokens"] == (
        usage["input_tokens"]
        + usage["cache_creation_input_tokens"]
        + usage["cache_read_input_tokens"]
    )
    assert call["email_ids"] == ["<log-1@example.org>"]
    assert call["task_id"]
    # No email body and no key in any log line.
    text = worker.log_path.read_text()
    assert "charged twice, please refund" not in text
    assert "sk-test-key" not in text
