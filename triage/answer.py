"""`triage answer THREAD_ID --text "..."`: reply to our question as the customer would.

Builds the email the customer's mail client would send: from the thread's customer to the support
address, `Re:` the thread's subject, In-Reply-To and References naming our last question's
Message-ID (so it joins the thread by the same threading as real mail), and enqueues it through
the producers' normal path (`producers.enqueue.Enqueuer`). For demos, tests and support staff who
took an answer by phone.
"""

from __future__ import annotations

import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate

import click

from common.logging import configure_logging
from common.settings import Settings
from producers.enqueue import Enqueuer, Rejected
from worker.state.snapshot import Snapshot

FALLBACK_CUSTOMER = "customer@example.org"


def last_question_id(snapshot: Snapshot) -> str | None:
    """Our newest question's Message-ID in the thread's References chain (ours embed the id)."""
    ours = f"<triage.{snapshot.thread_id}."
    return next((mid for mid in reversed(snapshot.references) if mid.startswith(ours)), None)


def reply_subject(subject: str) -> str:
    stripped = subject.strip()
    return stripped if stripped.lower().startswith("re:") else f"Re: {stripped or 'your question'}"


def answer_email(snapshot: Snapshot, question_id: str, text: str, support_address: str) -> bytes:
    """The customer's reply as raw RFC 5322 bytes (pure but for the fresh Message-ID)."""
    customer = snapshot.meta.get("customer") or FALLBACK_CUSTOMER
    domain = customer.rsplit("@", 1)[-1].strip(" >") or "example.org"
    references = [mid for mid in snapshot.references if mid != question_id] + [question_id]
    msg = EmailMessage()
    msg["From"] = customer
    msg["To"] = support_address
    msg["Subject"] = reply_subject(snapshot.meta.get("subject", ""))
    msg["Date"] = formatdate(time.time(), usegmt=True)
    msg["Message-ID"] = f"<answer.{uuid.uuid4().hex}@{domain}>"
    msg["In-Reply-To"] = question_id
    msg["References"] = " ".join(references[-20:])
    msg.set_content(text.strip() + "\n")
    return msg.as_bytes()


@click.command("answer")
@click.argument("thread_id")
@click.option("--text", required=True, help="What the customer writes back.")
def answer_command(thread_id: str, text: str) -> None:
    """Answer the thread's last question as the customer (enqueues the reply email)."""
    from triage.resources import open_redis, open_store, settings_or_exit

    if not text.strip():
        raise click.BadParameter("the answer is empty", param_hint="--text")
    settings: Settings = settings_or_exit()
    # What was enqueued is this command's one line of output, not an INFO log line.
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    snapshot = open_store(settings).peek(thread_id)
    if not snapshot.meta and not snapshot.messages and not snapshot.inbox:
        raise click.ClickException(f"no thread {thread_id} (see `triage thread list`)")
    question_id = last_question_id(snapshot)
    if question_id is None:
        raise click.ClickException(
            f"thread {thread_id} has asked no question (status {snapshot.status}): nothing to "
            "answer; `triage thread list --status awaiting_customer` lists the threads that did"
        )
    raw = answer_email(snapshot, question_id, text, settings.support_address)
    result = Enqueuer(settings, open_redis(settings)).enqueue_bytes(raw, "triage answer")
    if isinstance(result, Rejected):
        raise click.ClickException(f"the answer was rejected: {result.reason}: {result.error}")
    if result.thread_id != thread_id:
        raise click.ClickException(
            f"the answer went to thread {result.thread_id}, not {thread_id} (was our question "
            f"{question_id} forgotten?)"
        )
    click.echo(f"answered {question_id} -> thread {thread_id} ({result.status})")
