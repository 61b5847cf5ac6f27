"""The web console served by uvicorn on a free port, spoken to over real HTTP, with real Redis and
threads made by the worker's own drain step (in-process, against the emulator).

Every page and action is requested as a user would: signed in by basic auth, a bearer token or
the login form; every refusal (no credentials, wrong ones, the viewer role, a missing or forged
CSRF token, another site) is checked to change nothing and to be kept in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from helpers import (
    SEED_FIRST,
    SEED_REPLY,
    ConsoleServer,
    Http,
    base_env,
    make_email,
    settings_from_env,
    start_console,
    stream_events,
    wait_for,
)
from starlette.applications import Starlette
from starlette.routing import Mount

from common import keys
from common.deadletters import DeadLetterStream
from console.app import create_app
from emulator.config import FaultRule
from worker.state.browse import event_cost
from worker.state.ledger import Ledger
from worker.state.runs import RunStore

REVIEWER = ("ann", "ann-password-1")
VIEWER = ("vic", "vic-password-1")
TOKEN = "bot-token-0123456789"  # a viewer's bearer token
SECRET = "console-secret-for-tests-0123"
TAXONOMY = """\
categories:
  - name: BILLING
    description: charges, invoices, refunds, payments, subscriptions
  - name: SHIPPING
    description: deliveries, tracking, lost or damaged parcels
  - name: TECHNICAL
    description: errors, bugs, log-in and app or website problems
  - name: OTHER
    description: anything else
fields:
  - name: order_number
    type: string
    description: the order number the customer mentions, if any
    pattern: "^[A-Z]{2}-[0-9]{4,8}$"
"""
SHIPPING_DE = "Hallo, mein Paket ist nicht angekommen. Wo ist meine Lieferung?"
REVIEW_TEXT = "My parcel wobbles in the tracking page, where is it?"
DEAD_TEXT = "My toaster invoice is wrong, please fix the charge."


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("taxonomy") / "taxonomy.yaml"
    path.write_text(TAXONOMY)
    return path


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def console(
    state_url: str, broker_url: str, taxonomy: Path, reports_dir: Path
) -> Iterator[ConsoleServer]:
    """The console with a reviewer, a viewer and a viewer's bearer token."""
    env = base_env(
        state_url,
        broker_url,
        "http://127.0.0.1:9",
        TRIAGE_TAXONOMY_FILE=str(taxonomy),
        TRIAGE_CONSOLE_USERS=f"{REVIEWER[0]}:{REVIEWER[1]}:reviewer,{VIEWER[0]}:{VIEWER[1]}:viewer",
        TRIAGE_CONSOLE_TOKENS=f"bot:{TOKEN}:viewer",
        TRIAGE_CONSOLE_SECRET=SECRET,
        TRIAGE_CONSOLE_REPORTS_DIR=str(reports_dir),
    )
    server = start_console(settings_from_env(env))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_console(state_url: str, broker_url: str) -> Iterator[ConsoleServer]:
    """The console with no user configured: open, read-only, loopback only."""
    server = start_console(settings_from_env(base_env(state_url, broker_url, "http://x:9")))
    yield server
    server.stop()


@pytest.fixture
def world(in_process: Any, taxonomy: Path) -> Any:
    """The drain step in-process, with the console's taxonomy."""
    return in_process(TRIAGE_TAXONOMY_FILE=str(taxonomy))


def seed_conversation(r: redis.Redis, world: Any) -> str:
    """The README's seed thread: a vague email, our question, the customer's answer: BILLING."""
    thread_id = world.submit(make_email("<seed-1@example.org>", SEED_FIRST))
    world.step.drain(thread_id)
    [question] = stream_events(r, "clarification")
    answer = make_email(
        "<seed-2@example.org>",
        SEED_REPLY,
        subject="Re: Help",
        in_reply_to=question["reply_message_id"],
    )
    assert world.submit(answer) == thread_id
    world.step.drain(thread_id)
    return thread_id


def review_item(world: Any, emulator: Any, message_id: str = "<rev-1@example.org>") -> str:
    """A classification under the review threshold (the emulator's low-confidence fault)."""
    emulator.configure(faults=[FaultRule(kind="low_confidence", match="wobbles")])
    thread_id = world.submit(
        make_email(message_id, REVIEW_TEXT, subject="Tracking", sender="Rae <rae@example.net>")
    )
    world.step.drain(thread_id)
    assert world.step.store.peek(thread_id).status == "needs_review"
    return thread_id


def dead_letter(
    r: redis.Redis, world: Any, emulator: Any, message_id: str = "<dead-1@example.org>"
) -> str:
    """An email dead-lettered for real: the model's reply truncated twice; its entry id."""
    emulator.configure(faults=[FaultRule(kind="max_tokens", match="toaster")])
    thread_id = world.submit(make_email(message_id, DEAD_TEXT, subject="Toaster"))
    world.step.drain(thread_id)
    emulator.configure(faults=[])
    [letter] = [d for d in DeadLetterStream(r).list() if d.thread_id == thread_id]
    return letter.entry_id


def audit(r: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(fields[b"payload"]) for _, fields in r.xrange(keys.CONSOLE_AUDIT)]


def signed_in(console: ConsoleServer) -> Http:
    """A browser-like client signed in with the login form as the reviewer."""
    client = Http(console.url)
    form = client.get("/login")
    page = client.post(
        "/login",
        {"csrf": form.csrf(), "name": REVIEWER[0], "password": REVIEWER[1], "next": "/review"},
    )
    assert page.status == 303 and page.location == "/review"
    return client


# --- access ------------------------------------------------------------------------------------


def test_every_page_needs_credentials_and_wrong_ones_are_refused(console, r):
    """No credentials: 401 with a basic-auth challenge (303 to the login form for a browser);
    a wrong password or token: 401; a user or token: 200; /healthz needs nothing."""
    anonymous = Http(console.url)
    for path in ("/", "/threads", "/threads/t1", "/review", "/dead-letters", "/runs"):
        page = anonymous.get(path)
        assert page.status == 401, path
        assert page.headers["www-authenticate"].startswith("Basic realm=")
    browser = anonymous.get("/review", Accept="text/html")
    assert browser.status == 303 and browser.location == "/login?next=%2Freview"
    assert Http(console.url, auth=(REVIEWER[0], "wrong-password")).get("/").status == 401
    assert Http(console.url, auth=("nobody", REVIEWER[1])).get("/").status == 401
    assert Http(console.url, token="not-the-token-at-all").get("/").status == 401
    assert Http(console.url, auth=VIEWER).get("/").status == 200
    assert Http(console.url, token=TOKEN).get("/threads").status == 200
    assert anonymous.get("/healthz").text == "ok"


def test_pages_carry_security_headers_and_are_not_cached(console, r):
    """Every page has a strict CSP, no framing, nosniff, and Cache-Control: no-store."""
    page = Http(console.url, auth=VIEWER).get("/")
    assert page.status == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    css = Http(console.url).get("/static/console.css")
    assert css.status == 200 and "content-security-policy" in css.headers


def test_the_login_form_signs_in_and_out_and_is_itself_protected(console, r):
    """A wrong password is refused (401) and recorded; the right one sets a session cookie
    that opens the pages; signing out ends it; a login without its CSRF token is refused."""
    client = Http(console.url)
    form = client.get("/login")
    assert form.status == 200 and "triage_console_nonce" in client.cookies
    wrong = client.post("/login", {"csrf": form.csrf(), "name": "ann", "password": "nope-nope"})
    assert wrong.status == 401 and "Wrong name or password" in wrong.text
    forged = Http(console.url).post("/login", {"name": REVIEWER[0], "password": REVIEWER[1]})
    assert forged.status == 403 and "triage_console" not in forged.text
    page = client.post(
        "/login", {"csrf": wrong.csrf(), "name": REVIEWER[0], "password": REVIEWER[1]}
    )
    assert page.status == 303 and "triage_console" in client.cookies
    overview = client.get("/")
    assert overview.status == 200 and '<span id="who">ann</span>' in overview.text
    out = client.post("/logout", {"csrf": overview.csrf()})
    assert out.status == 303 and out.location == "/login"
    assert "triage_console" not in client.cookies
    assert client.get("/").status == 401
    outcomes = [(a["action"], a["by"], a["outcome"]) for a in audit(r)]
    assert outcomes == [
        ("login", "ann", "failed"),
        ("login", "ann", "refused"),
        ("login", "ann", "done"),
        ("logout", "ann", "done"),
    ]
    assert "password" not in json.dumps(audit(r)).replace('"reason"', "")


def test_a_session_cookie_cannot_be_forged_and_open_redirects_are_not_followed(console, r):
    """A tampered session cookie opens nothing; `next` pointing at another site goes home."""
    client = signed_in(console)
    name, expires, signature = client.cookies["triage_console"].split(".")
    client.cookies["triage_console"] = f"{name}.{int(expires) + 3600}.{signature}"
    assert client.get("/").status == 401
    other = Http(console.url)
    form = other.get("/login")
    page = other.post(
        "/login",
        {
            "csrf": form.csrf(),
            "name": REVIEWER[0],
            "password": REVIEWER[1],
            "next": "//evil.example/x",
        },
    )
    assert page.status == 303 and page.location == "/"


def test_a_form_body_over_64_kib_is_refused_before_it_is_read(console, r):
    """Forms are small: a bigger body (login or action) is answered 413 and nothing is done."""
    client = Http(console.url, auth=REVIEWER)
    big = {"csrf": client.get("/dead-letters").csrf(), "note": "x" * 70_000}
    assert client.post("/login", big).status == 413
    assert client.post("/dead-letters/replay", big).status == 413
    assert audit(r) == []


# --- pages -------------------------------------------------------------------------------------


def test_the_overview_shows_the_numbers_of_a_run(console, r, world, emulator):
    """After a run (the seed conversation, a German email, one to review, one dead-lettered),
    the overview shows the emails decided today, what waits, and today's cost per the ledger."""
    seed_conversation(r, world)
    world.step.drain(world.submit(make_email("<de-1@example.org>", SHIPPING_DE, subject="Paket")))
    review_item(world, emulator)
    dead_letter(r, world, emulator)
    page = Http(console.url, auth=VIEWER).get("/")
    assert page.status == 200

    def tile(name: str) -> str:
        match = re.search(rf'id="{name}">([^<]*)<', page.text)
        assert match, name
        return match.group(1)

    assert tile("emails-today") == "4"  # 2 seed emails, the German one, the one in review
    assert tile("in-review") == "1" and tile("dead-letters") == "1"
    assert tile("awaiting") == "0" and tile("pending") == "0"
    today = dt.datetime.now(dt.UTC).date()
    ledger = Ledger(r, world.settings.prices, world.settings.thread_ttl_seconds).totals(today)
    cost = ledger.total["cost_micro_usd"] / 1_000_000
    assert tile("cost-today") == f"${cost:,.6f}" and cost > 0
    assert tile("cost-per-email") == f"${cost / 4:,.6f}"
    assert 'data-outcome="classified">2<' in page.text  # the seed answer and the German email
    assert 'data-outcome="clarified">1<' in page.text and 'data-outcome="review">1<' in page.text
    assert page.text.count('<svg class="chart"') == 2


def test_the_threads_list_filters_and_searches(console, r, world, emulator):
    """Status, category, priority, language and date filter the list; the search finds a
    customer or a subject; every row links its thread page by id; a bad filter says so."""
    seed = seed_conversation(r, world)
    german = world.submit(make_email("<de-2@example.org>", SHIPPING_DE, subject="Paket fehlt"))
    world.step.drain(german)
    review = review_item(world, emulator)
    client = Http(console.url, auth=VIEWER)

    def listed(query: str) -> list[str]:
        page = client.get("/threads" + query)
        assert page.status == 200, page.text
        return re.findall(r'<a href="/threads/([^"]+)" class="mono">', page.text)

    assert set(listed("")) == {seed, german, review}
    assert listed("?status=needs_review") == [review]
    assert listed("?category=billing") == [seed]
    assert listed("?language=de") == [german]
    assert set(listed("?priority=normal")) <= {seed, german, review}
    assert listed("?q=rae%40example") == [review]  # the customer
    assert listed("?q=PAKET") == [german]  # the subject, any case
    assert listed(f"?q={seed}") == [seed]  # the id
    assert listed("?from=2999-01-01") == [] and set(listed("?to=2999-01-01")) == {
        seed,
        german,
        review,
    }
    bad = client.get("/threads?status=lost&category=NOPE")
    assert bad.status == 400 and "status &#39;lost&#39; is not one of" in bad.text


def test_the_thread_page_is_the_seed_conversation_as_a_transcript(console, r, world):
    """Customer emails, our question as sent, the BILLING decision with confidence, band,
    reason, prompt version, tokens and cost per call, the total, and the thread's events."""
    thread_id = seed_conversation(r, world)
    page = Http(console.url, auth=VIEWER).get(f"/threads/{thread_id}")
    assert page.status == 200
    question, classified = stream_events(r, "clarification", "classified")
    text = page.text
    assert SEED_FIRST.replace("'", "&#39;") in text and SEED_REPLY in text
    assert "we asked the customer" in text and 'classified as <span class="cat">BILLING' in text
    assert question["reply_message_id"].replace("<", "&lt;").replace(">", "&gt;") in text
    for event in (question, classified):
        _, cost = event_cost(event, world.settings.prices)
        assert f"${cost:,.6f}" in text and event["request_id"] in text
        assert f"tokens in {event['usage']['input_tokens']}" in text
    assert classified["prompt_version"] in text and 'class="band b-high"' in text
    assert classified["reason"] in text
    events_table = text.split('id="events"', 1)[1]
    assert events_table.index("clarification") < events_table.index("classified")
    assert 'id="status">classified<' in text
    assert Http(console.url, auth=VIEWER).get("/threads/no-such-thread").status == 404


def test_what_customers_wrote_is_shown_as_text_never_as_markup(console, r, world):
    """A subject, a body or a dead-lettered payload holding HTML is escaped on every page."""
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    thread_id = world.submit(
        make_email("<xss-1@example.org>", f"My parcel is late. {hostile}", subject=hostile)
    )
    world.step.drain(thread_id)
    entry_id = DeadLetterStream(r).add("parse_failed", hostile, {"raw": hostile})
    client = Http(console.url, auth=VIEWER)
    for path in ("/threads", f"/threads/{thread_id}", "/dead-letters", f"/dead-letters/{entry_id}"):
        page = client.get(path)
        assert page.status == 200, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path


def test_bodies_are_shown_only_to_signed_in_users(open_console, r, world, emulator):
    """With no users the console is open but read-only: no customer email, no dead-letter
    payload, every action refused; and it answers only for a loopback host name."""
    thread_id = seed_conversation(r, world)
    entry_id = dead_letter(r, world, emulator)
    anonymous = Http(open_console.url)
    page = anonymous.get(f"/threads/{thread_id}")
    assert page.status == 200 and "BILLING" in page.text
    assert SEED_REPLY not in page.text and "hidden: sign in to read" in page.text
    letter = anonymous.get(f"/dead-letters/{entry_id}")
    assert letter.status == 200 and DEAD_TEXT not in letter.text
    refused = anonymous.post(f"/dead-letters/{entry_id}/replay", {"csrf": page.csrf()})
    assert refused.status == 403 and "read-only" in refused.text
    assert DeadLetterStream(r).size() == 1
    rebound = anonymous.get("/", Host="attacker.example")
    assert rebound.status == 403
    assert Http(open_console.url).get("/", Host="localhost").status == 200


# --- actions -----------------------------------------------------------------------------------


def test_the_review_lane_accepts_and_corrects(console, r, world, emulator):
    """The lane lists threads in review oldest first; accept makes one final
    (`review_accepted`), correct changes category and fields (`corrected`), both by who."""
    first = review_item(world, emulator, "<rev-a@example.org>")
    second = review_item(world, emulator, "<rev-b@example.org>")
    client = signed_in(console)
    lane = client.get("/review")
    assert lane.status == 200
    assert lane.text.index(first) < lane.text.index(second) and REVIEW_TEXT in lane.text
    csrf = lane.csrf()
    version = world.step.store.peek(first).version
    done = client.post(
        f"/review/{first}/accept", {"csrf": csrf, "version": str(version), "note": "fine"}
    )
    assert done.status == 303 and done.location == "/review"
    assert f"{first}: accepted as SHIPPING" in client.get("/review").text
    corrected = client.post(
        f"/review/{second}/correct",
        {
            "csrf": csrf,
            "version": str(world.step.store.peek(second).version),
            "category": "BILLING",
            "field.order_number": "AB-12345",
            "note": "an invoice question",
            "back": "thread",
        },
    )
    assert corrected.status == 303 and corrected.location == f"/threads/{second}"
    accepted, fixed = stream_events(r, "review_accepted", "corrected")
    assert (accepted["thread_id"], accepted["by"], accepted["note"]) == (first, "ann", "fine")
    assert (fixed["thread_id"], fixed["by"], fixed["category"]) == (second, "ann", "BILLING")
    assert fixed["new"]["fields"]["order_number"] == "AB-12345"
    page = client.get(f"/threads/{second}")
    assert 'id="status">classified<' in page.text and "an invoice question" in page.text
    assert world.step.store.peek(second).meta["category"] == "BILLING"
    assert [a["action"] for a in audit(r) if a["outcome"] == "done"][-2:] == [
        "review_accept",
        "review_correct",
    ]


def test_a_correction_with_a_bad_field_or_a_stale_version_changes_nothing(
    console, r, world, emulator
):
    """A field value that fails its pattern, an unknown category, or a thread that moved on
    since the page was read: the page says why and the thread is left as it was."""
    thread_id = review_item(world, emulator)
    client = signed_in(console)
    csrf = client.get("/review").csrf()
    version = str(world.step.store.peek(thread_id).version)
    for form, why in (
        ({"category": "BILLING", "field.order_number": "12"}, "field order_number"),
        ({"category": "NOPE"}, "NOPE is not one of"),
        ({"category": "BILLING", "version": str(int(version) - 1)}, "changed meanwhile"),
    ):
        page = client.post(
            f"/review/{thread_id}/correct", {"csrf": csrf, "version": version, **form}
        )
        assert page.status == 303
        assert why in client.get("/review").text.replace("&#39;", "'")
    assert world.step.store.peek(thread_id).status == "needs_review"
    assert stream_events(r, "corrected") == []


def test_actions_need_the_csrf_token_the_reviewer_role_and_the_same_site(
    console, r, world, emulator
):
    """A viewer (by password or token), a missing or forged CSRF token, a token issued to
    someone else, or a form posted from another site: 403, nothing changes, all recorded."""
    thread_id = review_item(world, emulator)
    path = f"/review/{thread_id}/accept"
    viewer = Http(console.url, auth=VIEWER)
    viewer_csrf = viewer.get("/review").csrf()
    reviewer = Http(console.url, auth=REVIEWER)
    reviewer_csrf = reviewer.get("/review").csrf()
    issued, _, signature = reviewer_csrf.partition(".")
    attempts = [
        (viewer, {"csrf": viewer_csrf}, {}, "needs the reviewer role"),
        (Http(console.url, token=TOKEN), {"csrf": viewer_csrf}, {}, "CSRF"),
        (reviewer, {}, {}, "CSRF"),
        (reviewer, {"csrf": f"{issued}.{'0' * len(signature)}"}, {}, "CSRF"),
        (reviewer, {"csrf": viewer_csrf}, {}, "CSRF"),  # issued to the viewer
        (reviewer, {"csrf": reviewer_csrf}, {"Origin": "https://evil.example"}, "another site"),
        (reviewer, {"csrf": reviewer_csrf}, {"Sec-Fetch-Site": "cross-site"}, "another site"),
    ]
    for client, form, headers, why in attempts:
        page = client.post(path, form, **headers)
        assert page.status == 403 and why in page.text, (form, headers, page.text[-500:])
    token_csrf = Http(console.url, token=TOKEN).get("/review").csrf()
    page = Http(console.url, token=TOKEN).post(path, {"csrf": token_csrf})
    assert page.status == 403 and "bot is a viewer" in page.text
    assert world.step.store.peek(thread_id).status == "needs_review"
    assert stream_events(r, "review_accepted") == []
    refused = [a for a in audit(r) if a["outcome"] == "refused"]
    assert len(refused) == len(attempts) + 1
    assert {a["detail"]["reason"] for a in refused} == {"role", "csrf", "cross_site"}
    assert all(a["action"] == "review_accept" and a["target"] == thread_id for a in refused)
    ok = reviewer.post(path, {"csrf": reviewer_csrf}, Origin=console.url)
    assert ok.status == 303 and world.step.store.peek(thread_id).status == "classified"


def test_dead_letters_list_detail_replay_and_purge(console, r, world, emulator):
    """The list and the detail show a real dead letter; replay puts the email back through the
    normal path (decided once drained); replay all keeps what cannot be replayed; purge needs
    the confirmation and the count it confirmed."""
    entry_id = dead_letter(r, world, emulator)
    thread_id = DeadLetterStream(r).get(entry_id).thread_id
    client = signed_in(console)
    listing = client.get("/dead-letters")
    assert listing.status == 200 and entry_id in listing.text and "truncated" in listing.text
    detail = client.get(f"/dead-letters/{entry_id}")
    assert detail.status == 200 and "toaster invoice" in detail.text
    assert client.get("/dead-letters/1-2-3").status == 404
    page = client.post(f"/dead-letters/{entry_id}/replay", {"csrf": detail.csrf()})
    assert page.status == 303 and page.location == "/dead-letters"
    assert f"{entry_id}: replayed" in client.get("/dead-letters").text
    assert DeadLetterStream(r).size() == 0
    # Back in its thread: drained here, unless a worker left running by earlier tests (its
    # sweeper watches this Redis too) got there first; decided once either way.
    world.step.drain(thread_id)
    wait_for(lambda: stream_events(r, "classified"), what="the replayed email's decision")
    assert [e["category"] for e in stream_events(r, "classified")] == ["BILLING"]

    DeadLetterStream(r).add("invalid_payload", "not JSON", "garbage", thread_id="")
    dead_letter(r, world, emulator, "<dead-2@example.org>")
    csrf = client.get("/dead-letters").csrf()
    assert client.post("/dead-letters/replay", {"csrf": csrf}).status == 303
    notice = client.get("/dead-letters").text
    assert "1 replayed, 1 kept" in notice and DeadLetterStream(r).size() == 1

    DeadLetterStream(r).add("invalid_payload", "again", "garbage")
    confirm = client.get("/dead-letters/purge")
    assert 'id="purge-count">2<' in confirm.text
    unchecked = client.post("/dead-letters/purge", {"csrf": csrf, "expected": "2"})
    assert unchecked.location == "/dead-letters/purge" and DeadLetterStream(r).size() == 2
    stale = client.post("/dead-letters/purge", {"csrf": csrf, "expected": "1", "confirm": "yes"})
    assert stale.status == 303 and DeadLetterStream(r).size() == 2
    done = client.post("/dead-letters/purge", {"csrf": csrf, "expected": "2", "confirm": "yes"})
    assert done.status == 303 and DeadLetterStream(r).size() == 0
    assert "2 dead letters deleted" in client.get("/dead-letters").text
    actions = [(a["action"], a["outcome"]) for a in audit(r) if a["action"].startswith("dlq")]
    assert actions == [
        ("dlq_replay", "done"),
        ("dlq_replay_all", "done"),
        ("dlq_purge", "failed"),
        ("dlq_purge", "done"),
    ]


def test_the_runs_page_shows_runs_and_reports_and_serves_only_their_plots(console, r, reports_dir):
    """Reprocessing runs from Redis; report directories with their tables (Markdown, raw
    HTML escaped) and PNG plots; nothing outside the directory and no other file is served."""
    RunStore(r, 30).create(
        "haiku-v2",
        {
            "kind": "reprocess",
            "status": "done",
            "config": json.dumps({"model": "claude-haiku-4-5", "prompt_version": "p1234"}),
            "calls": "12",
            "cost_micro_usd": "4200",
        },
    )
    report = reports_dir / "evals" / "haiku-v2"
    report.mkdir(parents=True)
    (report / "report.md").write_text(
        "# Evaluation of haiku-v2\n\n| category | recall |\n|---|---|\n| BILLING | 0.9 |\n"
        "| <script>alert(1)</script> | 0 |\n\n![confusion matrix](confusion.png)\n"
    )
    (report / "confusion.png").write_bytes(png_bytes())
    (report / "secret.txt").write_text("not served")
    client = Http(console.url, auth=VIEWER)
    runs = client.get("/runs")
    assert runs.status == 200 and "haiku-v2" in runs.text and "$0.004200" in runs.text
    assert "Evaluation of haiku-v2" in runs.text
    run = client.get("/runs/haiku-v2")
    assert run.status == 200 and "p1234" in run.text and "evals/haiku-v2" in run.text
    page = client.get("/reports/evals/haiku-v2")
    assert page.status == 200 and "<td>BILLING</td>" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert 'src="/report-files/evals/haiku-v2/confusion.png"' in page.text
    plot = client.get("/report-files/evals/haiku-v2/confusion.png")
    assert plot.status == 200 and plot.headers["content-type"] == "image/png"
    for path in (
        "/report-files/evals/haiku-v2/secret.txt",
        "/report-files/" + quote("../" * 6 + "etc/passwd.png", safe=""),
        "/reports/" + quote("../..", safe=""),
        "/runs/" + quote("../x", safe=""),
    ):
        assert client.get(path).status == 404, path


def test_redis_down_is_a_503_page_naming_the_setting(broker_url):
    """Pages and actions answer 503 with the reason when Redis cannot be reached."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    settings = settings_from_env(
        base_env(
            closed,
            closed,
            "http://x:9",
            TRIAGE_CONSOLE_USERS=f"{REVIEWER[0]}:{REVIEWER[1]}:reviewer",
            TRIAGE_CONSOLE_SECRET=SECRET,
        )
    )
    server = start_console(settings)
    try:
        client = Http(server.url, auth=REVIEWER)
        for path in ("/", "/threads", "/review", "/dead-letters", "/runs"):
            page = client.get(path)
            assert page.status == 503 and "TRIAGE_REDIS_URL" in page.text, path
        csrf = client.get("/").csrf()
        assert client.post("/dead-letters/purge", {"csrf": csrf, "confirm": "yes"}).status == 503
    finally:
        server.stop()


def test_the_console_mounts_under_a_path_of_another_app(state_url, broker_url, r):
    """Mounted at /console (as `triage serve` can), links, redirects and cookies stay under it."""
    settings = settings_from_env(
        base_env(
            state_url,
            broker_url,
            "http://x:9",
            TRIAGE_CONSOLE_USERS=f"{REVIEWER[0]}:{REVIEWER[1]}:reviewer",
            TRIAGE_CONSOLE_SECRET=SECRET,
        )
    )
    host = Starlette(routes=[Mount("/console", app=create_app(settings))])
    server = start_console(settings, app=host)
    try:
        client = Http(server.url)
        assert client.get("/console/", Accept="text/html").location == (
            "/console/login?next=%2Fconsole%2F"
        )
        form = client.get("/console/login")
        assert 'action="/console/login"' in form.text
        assert 'href="/console/static/console.css"' in form.text
        page = client.post(
            "/console/login",
            {
                "csrf": form.csrf(),
                "name": REVIEWER[0],
                "password": REVIEWER[1],
                "next": "/console/threads",
            },
        )
        assert page.status == 303 and page.location == "/console/threads"
        assert any("Path=/console/" in cookie for cookie in page.cookies)
        assert client.get("/console/threads").status == 200
    finally:
        server.stop()
