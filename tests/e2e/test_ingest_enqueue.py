"""Ingestion into real Redis: payloads in the thread inbox, threading, dedupe, rejects, the CLI."""

from __future__ import annotations

import json

import pytest
import redis
from helpers import (
    ingest_env,
    jsonl_line,
    make_enqueuer,
    message,
    raw_email,
    run_enqueue,
    write_maildir,
    write_mbox,
)

from common import keys
from common.contract import EmailPayload
from common.deadletters import DeadLetterStream
from common.recipient import choose_recipient
from producers.enqueue import Rejected
from producers.sources import iter_items, resolve_inputs
from producers.submit import Submitted, thread_id_for


def inbox(r: redis.Redis, thread_id: str) -> list[EmailPayload]:
    return [
        EmailPayload.model_validate_json(x) for x in r.lrange(keys.thread_inbox(thread_id), 0, -1)
    ]


def ours(r) -> list[bytes]:
    """Every key but the heartbeats of workers that other tests left running."""
    return sorted(k for k in r.scan_iter() if not k.startswith(b"triage:worker:"))


def test_payload_in_the_inbox_carries_every_field(r, state_url):
    """The inbox entry carries text, recipients, flags and attachment metadata."""
    enqueuer = make_enqueuer(state_url, r)
    raw = message(
        "<p1@example.org>",
        "Charged twice.\n\nOn Mon, Support wrote:\n> old",
        sender="No Reply <noreply@shop.example>",
        headers={"Auto-Submitted": "auto-generated", "List-Id": "<l.example.org>"},
        attachments=[("invoice.pdf", "application/pdf", b"%PDF" * 10)],
    ).as_bytes()
    result = enqueuer.enqueue_bytes(raw, "a.eml")
    assert isinstance(result, Submitted) and result.status == "enqueued" and result.scheduled
    assert result.thread_id == thread_id_for("<p1@example.org>")
    [payload] = inbox(r, result.thread_id)
    assert payload.text == "Charged twice."
    assert payload.to == ["support@example.com"]
    assert payload.flags == ["auto_submitted", "bulk", "no_reply"]
    assert [(a.name, a.content_type, a.size) for a in payload.attachments] == [
        ("invoice.pdf", "application/pdf", 40)
    ]
    assert (r.get(keys.thread_scheduled(result.thread_id)) or b"").startswith(b"queued")


def test_each_source_format_is_enqueued(r, state_url, tmp_path):
    """.eml, mbox, Maildir and JSONL (text and HTML) all reach their inboxes."""
    (tmp_path / "one.eml").write_bytes(raw_email("<src-eml@example.org>"))
    write_mbox(
        tmp_path / "box.mbox",
        [message("<src-mbox-1@example.org>"), message("<src-mbox-2@example.org>")],
    )
    write_maildir(tmp_path / "Maildir", [message("<src-maildir@example.org>")])
    (tmp_path / "feed.jsonl").write_text(
        jsonl_line(message_id="<src-jsonl@example.org>", to="support@example.com")
        + "\n"
        + jsonl_line(
            message_id="<src-html@example.org>", text=None, html="<p>Late <b>order</b></p>"
        )
        + "\n"
    )
    enqueuer = make_enqueuer(state_url, r)
    results = [
        enqueuer.enqueue_item(item) for item in iter_items(resolve_inputs([tmp_path]), 10**6)
    ]
    assert all(isinstance(x, Submitted) and x.status == "enqueued" for x in results), results
    ids = sorted(x.message_id for x in results if isinstance(x, Submitted))
    assert ids == sorted(
        f"<src-{name}@example.org>"
        for name in ("eml", "mbox-1", "mbox-2", "maildir", "jsonl", "html")
    )
    [html] = inbox(r, thread_id_for("<src-html@example.org>"))
    assert html.text == "Late order" and html.from_addr == "dana@example.org"
    [jsonl] = inbox(r, thread_id_for("<src-jsonl@example.org>"))
    assert jsonl.to == ["support@example.com"] and jsonl.subject == "Order"


def test_reply_to_our_clarification_joins_its_thread(r, state_url):
    """In-Reply-To or References naming our question put the answer in its thread."""
    enqueuer = make_enqueuer(state_url, r)
    first = enqueuer.enqueue_bytes(raw_email("<root@example.org>", "My thing is broken."))
    assert isinstance(first, Submitted)
    ours = "<triage.q1.t123@example.com>"
    r.set(keys.message_index(ours), first.thread_id)  # what the worker's commit records
    reply = raw_email(
        "<answer@example.org>",
        "I was charged twice.\n\nOn Mon, Support <support@example.com> wrote:\n> What is wrong?",
        subject="Something completely different",
        headers={"In-Reply-To": ours},
    )
    joined = enqueuer.enqueue_bytes(reply)
    assert isinstance(joined, Submitted) and joined.thread_id == first.thread_id
    assert [p.text for p in inbox(r, first.thread_id)] == [
        "My thing is broken.",
        "I was charged twice.",
    ]
    # References alone (a client that drops In-Reply-To) find the thread too
    refs = raw_email(
        "<answer2@example.org>", "More detail.", headers={"References": f"<x@y> {ours}"}
    )
    assert enqueuer.enqueue_bytes(refs).thread_id == first.thread_id  # type: ignore[union-attr]


def test_unknown_references_and_same_subject_start_new_threads(r, state_url):
    """Unknown references and a matching subject never join a thread."""
    enqueuer = make_enqueuer(state_url, r)
    first = enqueuer.enqueue_bytes(raw_email("<s1@example.org>", "Broken.", subject="Help"))
    second = enqueuer.enqueue_bytes(
        raw_email(
            "<s2@example.org>",
            "Also broken.",
            subject="Re: Help",
            headers={"In-Reply-To": "<nope@x>"},
        )
    )
    assert isinstance(first, Submitted) and isinstance(second, Submitted)
    assert second.thread_id == thread_id_for("<s2@example.org>") != first.thread_id


def test_the_same_email_twice_is_one_inbox_entry_across_enqueuers(r, state_url):
    """The same email from two enqueuers (and one without Message-ID) is one inbox entry."""
    raw = raw_email("<dup@example.org>", "Charged twice.")
    first = make_enqueuer(state_url, r).enqueue_bytes(raw)
    other_client = redis.Redis.from_url(state_url)
    try:
        second = make_enqueuer(state_url, other_client).enqueue_bytes(raw)
    finally:
        other_client.close()
    assert isinstance(first, Submitted) and isinstance(second, Submitted)
    assert (first.status, second.status) == ("enqueued", "duplicate")
    assert len(inbox(r, first.thread_id)) == 1
    # without a Message-ID, the synthetic id dedupes as well
    headerless = raw_email(None, "No id here.")
    results = [make_enqueuer(state_url, r).enqueue_bytes(headerless) for _ in range(2)]
    assert [x.status for x in results if isinstance(x, Submitted)] == ["enqueued", "duplicate"]


@pytest.mark.parametrize(
    ("line", "reason", "named"),
    [
        ('{"subject": "x", "text": "y"}', "invalid_jsonl", "from"),
        ('{"from": "a@example.org", "subject": "x"}', "invalid_jsonl", "text"),
        ('{"from": "a@example.org", "text": "y"}', "invalid_jsonl", "subject"),
        (
            '{"from": "a@example.org", "subject": "x", "text": "y", "bdy": 1}',
            "invalid_jsonl",
            "bdy",
        ),
        ('{"from": "a@example.org", "subject": "x", "text": "y", "to": 5}', "invalid_jsonl", "to"),
        ("not json at all", "invalid_jsonl", "not JSON"),
        ("[1, 2]", "invalid_jsonl", "object"),
        ('{"from": "Dana <>", "subject": "x", "text": "y"}', "no_sender", "from"),
        ('{"from": "a@example.org", "subject": "", "text": " "}', "no_text", "text"),
    ],
)
def test_bad_jsonl_lines_are_rejected_naming_the_field(r, state_url, line, reason, named):
    """A bad JSONL record is rejected naming the field at fault."""
    result = make_enqueuer(state_url, r).enqueue_record(line, "feed.jsonl", "line 4")
    assert isinstance(result, Rejected), result
    assert (result.reason, result.position) == (reason, "line 4")
    assert named in result.error


def test_jsonl_headers_give_flags(r, state_url):
    """JSONL `headers` and `flags` become the payload's robot flags."""
    line = jsonl_line(
        message_id="<jf@example.org>", headers={"Precedence": "bulk"}, flags=["bounce"]
    )
    result = make_enqueuer(state_url, r).enqueue_record(line)
    assert isinstance(result, Submitted)
    assert inbox(r, result.thread_id)[0].flags == ["bounce", "bulk"]


def test_rejects_are_dead_lettered_with_source_and_position(r, state_url):
    """A rejected email is dead-lettered with its source and position, no inbox entry."""
    enqueuer = make_enqueuer(state_url, r, TRIAGE_MAX_EMAIL_BYTES="4096")
    big = raw_email("<big@example.org>", "x " * 5000)
    result = enqueuer.enqueue_bytes(big, "box.mbox", "message 7")
    assert isinstance(result, Rejected) and result.reason == "too_large"
    [letter] = DeadLetterStream(r).list()
    assert letter.reason == "too_large"
    assert letter.body["payload"]["source"] == "box.mbox"
    assert letter.body["payload"]["position"] == "message 7"
    assert r.keys(keys.thread_inbox("*")) == []


def test_cli_batch_with_every_bad_input_then_a_second_run(r, state_url, tmp_path):
    """Every bad input is rejected with its reason, the rest enqueued; a re-run: duplicates."""
    inbox_dir = tmp_path / "in"
    inbox_dir.mkdir()
    (inbox_dir / "01-good.eml").write_bytes(raw_email("<cli-good@example.org>", "Parcel lost."))
    (inbox_dir / "02-not-mail.eml").write_bytes(b"%PDF-1.4\n\x00\x01binary")
    (inbox_dir / "03-no-from.eml").write_bytes(b"Subject: hi\r\nMessage-ID: <nf@x>\r\n\r\nbody\r\n")
    (inbox_dir / "04-empty.eml").write_bytes(
        raw_email("<cli-empty@example.org>", "\n> quoted only\n")
    )
    (inbox_dir / "05-attachment.eml").write_bytes(
        message(
            "<cli-att@example.org>", None, attachments=[("a.pdf", "application/pdf", b"%PDF")]
        ).as_bytes()
    )
    (inbox_dir / "06-huge.eml").write_bytes(raw_email("<cli-huge@example.org>", "y " * 6000))
    write_mbox(
        inbox_dir / "07.mbox",
        [message("<cli-mbox-1@example.org>"), message("<cli-mbox-2@example.org>")],
    )
    (inbox_dir / "08.jsonl").write_text(
        jsonl_line(message_id="<cli-jsonl@example.org>")
        + "\n"
        + '{"subject": "no from", "text": "x"}\n'
    )
    env = ingest_env(state_url, TRIAGE_MAX_EMAIL_BYTES="8192")
    report = tmp_path / "report.jsonl"
    first = run_enqueue(str(inbox_dir), "--report", str(report), env=env, cwd=tmp_path)
    out, err = first.stdout.decode(), first.stderr.decode()
    assert first.returncode == 1, err
    assert (
        "6 enqueued, 0 duplicate, 4 rejected (invalid_jsonl: 1, no_sender: 1, not_an_email: 1, "
        "too_large: 1)"
    ) in out
    assert "07.mbox (message 2) -> thread" in out
    records = [json.loads(line) for line in report.read_text().splitlines()]
    rejected = {(x["source"].rsplit("/", 1)[-1], x["position"], x["reason"]) for x in records[:-1]}
    assert rejected == {
        ("02-not-mail.eml", "", "not_an_email"),
        ("03-no-from.eml", "", "no_sender"),
        ("06-huge.eml", "", "too_large"),
        ("08.jsonl", "line 2", "invalid_jsonl"),
    }
    assert all(x["error"] for x in records[:-1])
    assert records[-1] == {
        "type": "summary",
        "read": 10,
        "enqueued": 6,
        "duplicates": 0,
        "reply_bounced": 0,
        "join_refused": 0,
        "rejected": 4,
        "rejected_by_reason": {
            "invalid_jsonl": 1,
            "no_sender": 1,
            "not_an_email": 1,
            "too_large": 1,
        },
        "not_done": 0,
        "seconds": records[-1]["seconds"],
    }
    assert DeadLetterStream(r).size() == 4
    # quoted text only, attachment only: a turn that says what was there
    texts = {
        p.message_id: p.text
        for t in r.keys(keys.thread_inbox("*"))
        for p in inbox(r, t.decode().split(":")[2])
    }
    assert texts["<cli-att@example.org>"] == "(no text; attachments: a.pdf)"
    assert texts["<cli-empty@example.org>"].startswith("(the email only quotes other text)")

    for name in (
        "02-not-mail.eml",
        "03-no-from.eml",
        "04-empty.eml",
        "05-attachment.eml",
        "06-huge.eml",
    ):
        (inbox_dir / name).unlink()
    (inbox_dir / "08.jsonl").write_text(jsonl_line(message_id="<cli-jsonl@example.org>") + "\n")
    second = run_enqueue(str(inbox_dir), "-q", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr.decode()
    assert second.stdout.decode().strip() == "0 enqueued, 4 duplicate, 0 rejected"
    assert list(tmp_path.glob("triage-enqueue-*")) == []  # nothing rejected: no default report


def test_cli_stdin_progress_default_report_and_usage_errors(r, state_url, tmp_path):
    """stdin with a progress bar writes the default report; bad settings and paths exit 2."""
    env = ingest_env(state_url)
    mbox = (
        b"From a Mon Mar  2 10:00:00 2026\n"
        + raw_email("<stdin-1@example.org>")
        + b"\nFrom b Mon Mar  2 10:00:00 2026\n"
        + b"Subject: no sender\n\nbody\n"
    )
    result = run_enqueue("-", "--progress", env=env, cwd=tmp_path, stdin=mbox)
    assert result.returncode == 1, result.stderr.decode()
    assert "1 enqueued, 0 duplicate, 1 rejected (no_sender: 1)" in result.stdout.decode()
    [report] = tmp_path.glob("triage-enqueue-*.rejects.jsonl")
    assert json.loads(report.read_text().splitlines()[0])["position"] == "message 2"
    assert f"report: {report.name}" in result.stderr.decode()
    bad_setting = run_enqueue("-", env={**env, "TRIAGE_MAX_EMAIL_BYTES": "tiny"}, cwd=tmp_path)
    assert bad_setting.returncode == 2
    assert "invalid setting TRIAGE_MAX_EMAIL_BYTES" in bad_setting.stderr.decode()
    missing = run_enqueue(str(tmp_path / "nope.eml"), env=env, cwd=tmp_path)
    assert missing.returncode == 2


HOSTILE_MBOX = [
    b"From: Dana <dana@example.org>\nSubject: first\nMessage-ID: <h1@example.org>\n\nHelp\n",
    b"From: =?utf-8?q?Dana=0D=0ABcc:_x@evil.example?= <dana@example.org>\nSubject: crlf\n"
    b"Message-ID: <h2@example.org>\n\nMy order\n",
    b"From: dana@example.org\nSubject: nested\nMessage-ID: <h3@example.org>\n"
    b"Content-Type: multipart/mixed; boundary=b0\n\n"
    + b"".join(
        b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i)
        for i in range(1, 10_000)
    ),
    b"From: " + b"(" * 100_000 + b"dana@example.org\nSubject: parens\n"
    b"Message-ID: <h4@example.org>\n\nbody\n",
    b"From: dana@example.org\nSubject: attached\nMessage-ID: <h5@example.org>\n"
    b"Content-Type: multipart/mixed; boundary=z\n\n--z\nContent-Type: text/plain\n\nSee.\n--z\n"
    + b"Content-Type: message/rfc822\n\nFrom: a@example.org\nSubject: fwd\n" * 2_000
    + b"\nhi\n--z--\n",
    b"From: Dana <dana@example.org>\nSubject: last\nMessage-ID: <h6@example.org>\n\nHelp\n",
]


def test_cli_mbox_with_every_failure_class_enqueues_all_and_adds_up(r, state_url, tmp_path):
    """The mbox whose 2nd message used to abort the run: all six enqueued, summary adds up."""
    box = tmp_path / "hostile.mbox"
    box.write_bytes(
        b"".join(b"From x Mon Mar  2 10:00:00 2026\n" + m + b"\n" for m in HOSTILE_MBOX)
    )
    result = run_enqueue(str(box), "--no-report", env=ingest_env(state_url), cwd=tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert out.strip().splitlines()[-1] == "6 enqueued, 0 duplicate, 0 rejected"
    assert [line.split()[0] for line in out.strip().splitlines()[:-1]] == ["enqueued"] * 6
    for number in range(1, 7):
        thread = thread_id_for(f"<h{number}@example.org>")
        [payload] = inbox(r, thread)
        if number in (2, 4):  # a From two parsers read differently is kept as written
            assert choose_recipient(payload.from_addr, None).address is None
            assert "\n" not in payload.from_addr and len(payload.from_addr) <= 512
        else:
            assert payload.from_addr == "dana@example.org"
    assert DeadLetterStream(r).size() == 0


def test_cli_dry_run_prints_each_email_as_the_model_sees_it_and_writes_nothing(
    r, state_url, tmp_path
):
    """`--dry-run --json`: one record per email (text, flags, attachments, thread, rejection),
    nothing written to Redis and no report file; plain `--dry-run` prints readable blocks."""
    make_enqueuer(state_url, r).enqueue_bytes(raw_email("<dr-root@example.org>", "Broken."))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "1.eml").write_bytes(
        raw_email(
            "<dr-reply@example.org>",
            "Order 4711.\n\nOn Mon, Support <support@example.com> wrote:\n> Which order?",
            headers={"In-Reply-To": "<dr-root@example.org>"},
        )
    )
    (folder / "2.eml").write_bytes(
        message(
            "<dr-pdf@example.org>", None, attachments=[("invoice.pdf", "application/pdf", b"%P")]
        ).as_bytes()
    )
    (folder / "3.eml").write_bytes(b"Subject: no sender\r\n\r\nbody\r\n")
    before = ours(r)
    env = ingest_env(state_url)
    result = run_enqueue(str(folder), "--dry-run", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr.decode()  # one would be rejected
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [x.get("would_be") or x.get("rejection_reason") for x in records] == [
        "reply",
        "new",
        "no_sender",
    ]
    reply, pdf, _ = records
    assert reply["text"] == "Order 4711." and reply["thread_id"] == thread_id_for(
        "<dr-root@example.org>"
    )
    assert {"message_id", "from", "subject", "text", "flags", "attachments"} <= set(reply)
    assert pdf["text"] == "(no text; attachments: invoice.pdf)"
    assert pdf["attachments"][0]["name"] == "invoice.pdf"
    assert "would be 2 enqueued, 0 duplicate, 1 rejected" in result.stderr.decode()
    assert ours(r) == before and DeadLetterStream(r).size() == 0
    assert list(tmp_path.glob("triage-enqueue-*")) == []
    human = run_enqueue(str(folder / "1.eml"), "--dry-run", env=env, cwd=tmp_path)
    assert human.returncode == 0, human.stderr.decode()
    text = human.stdout.decode()
    assert "-> reply, thread" in text and "\nOrder 4711.\n" in text
    assert "dry run, nothing written: would be 1 enqueued" in text
    assert ours(r) == before
