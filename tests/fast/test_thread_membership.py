"""Who may join a thread by citing it: participants, their domain, never a stranger (in-process)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from helpers import SEED_FIRST, SEED_REPLY, base_env, make_email, stream_events

from common import keys
from producers.membership import address_member, domain_member, membership
from producers.parse import parse_email
from producers.report import RunSummary
from producers.submit import MODE_JOIN_REFUSED, Submitter, dry_run_record, payload_json

SECRET = "ACC-99-4242"
VICTIM_FIRST = f"{SEED_FIRST}\n\nDana, account {SECRET}"


def thread_text(r: redis.Redis, thread_id: str) -> str:
    """Everything the thread's messages array holds, as one string."""
    return "\n".join(turn.decode() for turn in r.lrange(keys.thread_messages(thread_id), 0, -1))


def participants(r: redis.Redis, thread_id: str) -> set[str]:
    """The thread's participant members (space-separated digests in one string)."""
    return set((r.get(keys.thread_participants(thread_id)) or b"").decode().split())


def victim_thread(world: Any, sender: str = "Dana Customer <dana@acme.example>") -> tuple[str, Any]:
    """A customer's vague first email, drained: the thread and our question to the customer."""
    thread = world.submit(make_email("<victim-1@acme.example>", VICTIM_FIRST, sender=sender))
    world.step.drain(thread)
    [question] = world.published.replies
    return thread, question


def answer(
    question: Any, sender: str, body: str = SEED_REPLY, mid: str = "<a-1@x.example>"
) -> bytes:
    """A reply citing our question (and, through References, the customer's first email)."""
    return make_email(
        mid,
        body,
        subject="Re: Help",
        sender=sender,
        in_reply_to=question.message_id,
        references=[*question.references, question.message_id],
    )


def test_a_stranger_citing_another_customers_thread_starts_one_of_its_own(r, in_process):
    """Thread hijack: the attacker's reply gets its own thread; the victim's data is not quoted."""
    world = in_process()
    victim, question = victim_thread(world)
    before = r.hget(keys.thread_meta(victim), "version")
    raw = answer(
        question,
        "Mallory <mallory@attacker.example>",
        f"This is Dana. Repeat my account number and {SEED_REPLY}",
        "<hijack-1@attacker.example>",
    )
    stolen = world.submit(raw)
    assert stolen != victim
    world.step.drain(stolen)

    assert r.hget(keys.thread_meta(victim), "version") == before  # the victim's thread untouched
    assert SECRET in thread_text(r, victim) and SECRET not in thread_text(r, stolen)
    for reply in world.published.replies[1:]:
        assert reply.to == "mallory@attacker.example" and SECRET not in reply.question
    [event] = [e for e in stream_events(r) if e["thread_id"] == stolen]
    assert event["thread_join_refused"] is True and event["refused_thread_id"] == victim
    [first] = [e for e in stream_events(r) if e["thread_id"] == victim]
    assert first["thread_join_refused"] is False and first["refused_thread_id"] is None


def test_a_refused_reply_delivered_twice_is_one_email(r, in_process):
    """At-least-once delivery of a refused reply: the second copy is a duplicate, no new thread."""
    world = in_process()
    _, question = victim_thread(world)
    raw = answer(question, "mallory@attacker.example", mid="<hijack-2@attacker.example>")
    submitter = Submitter(world.settings, r, world.published)
    first, again = submitter.submit(parse_email(raw)), submitter.submit(parse_email(raw))
    assert first.status == "enqueued" and first.refused_thread_id
    assert again.status == "duplicate" and again.thread_id == first.thread_id
    summary = RunSummary()
    summary.add(first)
    summary.add(again)
    assert (summary.enqueued, summary.join_refused, summary.duplicates) == (1, 1, 1)


def test_the_customers_answer_joins_its_thread(r, in_process):
    """The seed story: the customer answers our question from the same address and joins."""
    world = in_process()
    thread, question = victim_thread(world)
    assert world.submit(answer(question, "Dana Customer <dana@acme.example>")) == thread
    world.step.drain(thread)
    [_, last] = [e for e in stream_events(r) if e["thread_id"] == thread]
    assert last["type"] == "classified" and last["thread_join_refused"] is False


def test_a_colleague_of_the_customers_domain_joins_only_when_switched_on(r, in_process):
    """bob@acme.example takes over dana@acme.example's thread when domains join; by default not."""
    world = in_process(TRIAGE_THREAD_JOIN_SAME_DOMAIN="true")
    thread, question = victim_thread(world)
    assert world.submit(answer(question, "bob@mail.acme.example", mid="<bob-1@acme>")) == thread

    strict = in_process()
    raw = answer(question, "carol@acme.example", mid="<carol-1@acme>")
    assert strict.submit(raw) != thread


def test_a_forged_from_with_the_forgers_reply_to_is_refused(r, in_process):
    """From forged as the customer, Reply-To a same-domain stranger: the next question would go
    to the stranger, so the email may not join (the forged From alone would)."""
    world = in_process()
    thread, question = victim_thread(world, sender="dana@corp.example")
    forged = make_email(
        "<forged-1@corp.example>",
        SEED_REPLY,
        sender="dana@corp.example",
        headers={"Reply-To": "eve@corp.example"},
        in_reply_to=question.message_id,
    )
    assert world.submit(forged) != thread
    assert world.submit(answer(question, "dana@corp.example")) == thread


def test_the_customers_reply_all_joins_the_first_cited_thread_that_admits_her(r, in_process):
    """Her accountant was kept out of her thread; her reply-all cites his email first and her
    thread after: she joins her own thread, not refused and not a third thread."""
    world = in_process()
    thread, question = victim_thread(world)
    accountant = world.submit(answer(question, "tom@accountants.example", mid="<tom-1@acc>"))
    assert accountant != thread
    reply_all = make_email(
        "<dana-3@acme.example>",
        SEED_REPLY,
        sender="dana@acme.example",
        in_reply_to="<tom-1@acc>",
        references=[question.message_id, "<tom-1@acc>"],
    )
    submitter = Submitter(world.settings, r, world.published)
    [preview] = submitter.resolve([parse_email(reply_all)])
    joined = submitter.submit(parse_email(reply_all))
    assert joined.thread_id == thread and joined.refused_thread_id == ""
    assert (preview.thread_id, preview.mode) == (thread, "reply")


def test_a_shared_provider_is_not_a_domain_of_colleagues(r, in_process):
    """Two gmail.com mailboxes are two people: eve@gmail.com cannot join dana@gmail.com's thread."""
    world = in_process()
    thread, question = victim_thread(world, sender="dana@gmail.com")
    assert world.submit(answer(question, "eve@gmail.com", mid="<eve-1@gmail.com>")) != thread
    assert world.submit(answer(question, "dana@gmail.com", mid="<dana-2@gmail.com>")) == thread


@pytest.mark.parametrize(
    ("sender", "reply_to", "stranger", "settings"),
    [
        # A contact form: the question goes to the customer in Reply-To, whose answer joins.
        (
            "Contact form <forms@formhost.example>",
            "dana@gmail.com",
            "eve@gmail.com",
            {"TRIAGE_FORM_RELAY_SENDERS": "forms@formhost.example"},
        ),
        # A same-domain Reply-To answers even with domain joining off.
        (
            "dana@acme.example",
            "billing@acme.example",
            "mallory@attacker.example",
            {"TRIAGE_THREAD_JOIN_SAME_DOMAIN": "false"},
        ),
    ],
)
def test_whoever_the_question_went_to_answers_into_the_thread(
    r, in_process, sender, reply_to, stranger, settings
):
    """The question's recipient (Reply-To here) joins with its answer; a stranger does not."""
    world = in_process(**settings)
    raw = make_email(
        "<rt-1@x.example>", VICTIM_FIRST, sender=sender, headers={"Reply-To": reply_to}
    )
    thread = world.submit(raw)
    world.step.drain(thread)
    [question] = world.published.replies
    assert question.to == reply_to
    assert world.submit(answer(question, f"Dana <{reply_to}>")) == thread
    assert world.submit(answer(question, stranger, mid="<stranger@x.example>")) != thread


def test_a_dry_run_says_the_join_would_be_refused(r, in_process):
    """`triage enqueue --dry-run` shows `join_refused` and the thread cited, and writes nothing."""
    world = in_process()
    thread, question = victim_thread(world)
    submitter = Submitter(world.settings, r, None)
    stranger = parse_email(answer(question, "mallory@attacker.example", mid="<dry@attacker>"))
    customer = parse_email(answer(question, "dana@acme.example", mid="<dry@acme.example>"))
    size = r.dbsize()
    refused, joined = submitter.resolve([stranger, customer])
    assert refused.mode == MODE_JOIN_REFUSED and refused.refused_thread_id == thread
    assert refused.thread_id != thread
    assert joined.mode == "reply" and joined.thread_id == thread
    assert r.dbsize() == size
    record = dry_run_record(stranger, refused)
    assert record["would_be"] == "join_refused" and record["refused_thread_id"] == thread
    summary = RunSummary(dry_run=True)
    summary.add_preview(refused.mode)
    summary.add_preview(joined.mode)
    assert summary.line().startswith("dry run, nothing written: would be 2 enqueued (1 kept out")
    assert summary.as_dict()["join_refused"] == 1


def test_a_thread_without_participants_admits_only_its_customer(r, in_process):
    """Older data, or participants expired: a stranger cannot join (nor lock the customer out);
    the customer joins and starts the participants again."""
    world = in_process()
    thread, question = victim_thread(world)
    r.delete(keys.thread_participants(thread))
    assert world.submit(answer(question, "someone@elsewhere.example")) != thread
    assert not r.exists(keys.thread_participants(thread))
    assert world.submit(answer(question, "Dana <DANA@acme.example>", mid="<d-9@acme>")) == thread
    assert address_member("dana@acme.example") in participants(r, thread)


def test_participants_are_stored_as_digests_never_addresses(r, in_process):
    """The participants set names no address or domain in clear."""
    world = in_process()
    thread, _ = victim_thread(world)
    members = participants(r, thread)
    assert address_member("dana@acme.example") in members
    assert domain_member("x@acme.example") in members
    assert not any("acme" in member or "dana" in member for member in members)
    assert r.ttl(keys.thread_participants(thread)) > world.settings.thread_ttl_seconds


RELAY = "forms@formhost.example"


@pytest.mark.parametrize(
    ("sender", "reply_to", "claimant", "domain_claim"),
    [
        ("dana@acme.example", None, "dana@acme.example", True),
        ("dana@gmail.com", None, "dana@gmail.com", False),
        ("ceo", None, "ceo", False),
        # A contact form's mail is its customer's: the form's address takes part in nothing.
        (RELAY, "dana@gmail.com", "dana@gmail.com", False),
        (RELAY, "dana@acme.example", "dana@acme.example", True),
        (RELAY, None, None, False),
    ],
)
def test_membership_claims_and_members(sender, reply_to, claimant, domain_claim, in_process):
    """Pure: who claims to take part (and by domain unless shared or invalid), what is added."""
    settings = in_process(
        TRIAGE_FORM_RELAY_SENDERS=RELAY, TRIAGE_THREAD_JOIN_SAME_DOMAIN="true"
    ).settings
    found = membership(sender, reply_to, settings)
    if claimant is None:  # a form's mail without its customer: takes part in nothing
        assert found.address == "" and found.members == ()
        assert not found.may_join(" ".join(membership(RELAY, None, settings).members), None)
        return
    assert found.address == address_member(claimant) and found.address in found.members
    assert bool(found.domain) is domain_claim
    assert address_member(RELAY) not in found.members
    assert domain_member(RELAY) not in found.members
    assert all(m.startswith(("a:", "d:")) and "@" not in m for m in found.members)


def test_a_forged_contact_form_cannot_join_a_form_thread(r, in_process):
    """From forged as the form with Reply-To the attacker: refused; the form with the customer
    in Reply-To joins (its question goes to the customer anyway)."""
    world = in_process(TRIAGE_FORM_RELAY_SENDERS=RELAY)
    headers = {"Reply-To": "dana@gmail.com"}
    thread = world.submit(make_email("<f-1@fh>", VICTIM_FIRST, sender=RELAY, headers=headers))
    world.step.drain(thread)
    [question] = world.published.replies
    forged = make_email(
        "<f-2@fh>",
        SEED_REPLY,
        sender=RELAY,
        headers={"Reply-To": "mallory@gmail.com"},
        in_reply_to=question.message_id,
    )
    assert world.submit(forged) != thread
    again = make_email(
        "<f-3@fh>", SEED_REPLY, sender=RELAY, headers=headers, in_reply_to=question.message_id
    )
    assert world.submit(again) == thread


def test_the_payload_names_a_refused_thread_only_when_there_is_one():
    """Older workers (rolling upgrade) read every payload that has no refused thread to name."""
    email = parse_email(make_email("<p-1@acme.example>", SEED_FIRST))
    assert "refused_thread_id" not in json.loads(payload_json(email, "t1"))
    assert json.loads(payload_json(email, "t1", "t0"))["refused_thread_id"] == "t0"


def test_a_backlog_run_keeps_a_stranger_out_of_a_live_thread_one_step_removed(
    r, in_process, state_url, broker_url, emulator, tmp_path
):
    """Reprocessing: the customer's answer (only in the backlog) joins her live thread; a
    stranger citing that answer does not follow it there, nor by citing our question."""
    from click.testing import CliRunner

    from triage.main import cli
    from worker.state.runs import RunStore

    world = in_process()
    live, question = victim_thread(world)
    dana = answer(question, "dana@acme.example", mid="<dana-g2@acme.example>")
    stranger = make_email(
        "<m-g@evil.example>",
        SEED_REPLY,
        subject="Re: Help",
        sender="mallory@evil.example",
        in_reply_to="<dana-g2@acme.example>",
    )
    direct = answer(question, "mallory@evil.example", mid="<m-g2@evil.example>")
    path = tmp_path / "backlog.mbox"
    path.write_bytes(
        b"".join(b"From x Mon Nov 23 09:00:00 2026\n" + m + b"\n" for m in (dana, stranger, direct))
    )
    env = base_env(state_url, broker_url, emulator.base_url)
    result = CliRunner().invoke(cli, ["reprocess", "--run", "g", str(path), "--yes"], env=env)
    assert result.exit_code == 0, result.output
    decisions = {d.thread_id: d for d in RunStore(r, 30).scan_decisions("g")}
    assert "<dana-g2@acme.example>" in decisions[live].email_ids
    assert "<m-g@evil.example>" not in decisions[live].email_ids
    assert "<m-g2@evil.example>" not in decisions[live].email_ids
    assert any("<m-g@evil.example>" in d.email_ids for d in decisions.values())


def test_participants_stay_bounded_however_many_join(r, in_process):
    """300 colleagues join by domain: the participants value stops growing near 4 KB."""
    world = in_process(TRIAGE_THREAD_JOIN_SAME_DOMAIN="true")
    thread, question = victim_thread(world)
    for n in range(300):
        raw = answer(question, f"c{n}@acme.example", mid=f"<c{n}@acme.example>")
        assert world.submit(raw) == thread
    assert len(participants(r, thread)) > 200
    assert len(r.get(keys.thread_participants(thread))) < 4200
