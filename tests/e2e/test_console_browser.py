"""The console in a real headless browser: Debian's Chromium driven by Selenium (chromedriver).

Each test makes its own threads with the worker's drain step (in-process, against the emulator),
then uses the pages as a person would: sign in with the form, read, click, type. A screenshot of
every page is written to artifacts/console/ (or $TRIAGE_TEST_ARTIFACTS/console/; not committed).
Without Chromium these tests skip locally and fail in CI (`.ci/run` installs it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import (
    SEED_FIRST,
    SEED_REPLY,
    ConsoleServer,
    artifacts_dir,
    base_env,
    chromium_driver,
    make_email,
    settings_from_env,
    start_console,
    stream_events,
    wait_for,
)

from common.deadletters import DeadLetterStream
from emulator.config import FaultRule
from worker.state.browse import decision_fields, event_cost
from worker.state.ledger import Ledger
from worker.state.runs import RunStore

REVIEWER = ("rita", "rita-password-1")
VIEWER = ("vera", "vera-password-1")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium_driver()
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(driver.profile_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def console(state_url: str, broker_url: str, reports_dir: Path) -> Iterator[ConsoleServer]:
    env = base_env(
        state_url,
        broker_url,
        "http://127.0.0.1:9",
        TRIAGE_CONSOLE_USERS=f"{REVIEWER[0]}:{REVIEWER[1]}:reviewer,{VIEWER[0]}:{VIEWER[1]}:viewer",
        TRIAGE_CONSOLE_SECRET="browser-test-secret-0123456789",
        TRIAGE_CONSOLE_REPORTS_DIR=str(reports_dir),
    )
    server = start_console(settings_from_env(env))
    yield server
    server.stop()


class Pages:
    """The browser on the console: navigation, forms, screenshots."""

    def __init__(self, driver: Any, base: str, shots: Path) -> None:
        self.driver = driver
        self.base = base
        self.shots = shots

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self) -> str:
        return str(self.find("body").text)

    def wait_text(self, text: str, timeout: float = 10) -> None:
        """Wait for `text` on the page (a page still loading is simply not there yet)."""
        from selenium.common.exceptions import WebDriverException

        def shown() -> bool:
            try:
                return text in self.text()
            except WebDriverException:  # the old page went away while it was read
                return False

        wait_for(shown, timeout, f"{text!r} on {self.driver.current_url}")

    def sign_in(self, user: tuple[str, str]) -> None:
        self.driver.delete_all_cookies()
        self.open("/login")
        self.find("#name").send_keys(user[0])
        self.find("#password").send_keys(user[1])
        self.find("#sign-in").click()
        wait_for(lambda: self.all("#who"), 10, "the signed-in page")
        assert self.find("#who").text == user[0]

    def shot(self, name: str) -> None:
        """The whole page as a PNG artifact (Chromium's DevTools: beyond the viewport)."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        (self.shots / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
def pages(browser: Any, console: ConsoleServer) -> Pages:
    return Pages(browser, console.url, artifacts_dir("console"))


@pytest.fixture
def world(in_process: Any) -> Any:
    return in_process()


def seed_conversation(r: redis.Redis, world: Any) -> str:
    thread_id = world.submit(make_email("<b-seed-1@example.org>", SEED_FIRST))
    world.step.drain(thread_id)
    [question] = stream_events(r, "clarification")
    reply = make_email(
        "<b-seed-2@example.org>",
        SEED_REPLY,
        subject="Re: Help",
        in_reply_to=question["reply_message_id"],
    )
    world.submit(reply)
    world.step.drain(thread_id)
    return thread_id


def review_item(world: Any, emulator: Any) -> str:
    emulator.configure(faults=[FaultRule(kind="low_confidence", match="wobbles")])
    thread_id = world.submit(
        make_email(
            "<b-rev-1@example.org>",
            "My parcel wobbles on the tracking page, where is it?",
            subject="Tracking",
            sender="Rae <rae@example.net>",
        )
    )
    world.step.drain(thread_id)
    emulator.configure(faults=[])
    return thread_id


def dead_letter(world: Any, emulator: Any) -> str:
    emulator.configure(faults=[FaultRule(kind="max_tokens", match="toaster")])
    thread_id = world.submit(
        make_email("<b-dead-1@example.org>", "My toaster invoice is wrong.", subject="Toaster")
    )
    world.step.drain(thread_id)
    emulator.configure(faults=[])
    return thread_id


def test_sign_in_and_the_overview_shows_the_run(pages, r, world, emulator):
    """Signed in with the form, the overview shows the emails the test's run decided, what
    waits in review and in the dead letters, and today's cost."""
    pages.open("/")
    assert "/login" in pages.driver.current_url  # a browser is sent to the form
    pages.shot("login")
    seed_conversation(r, world)
    review_item(world, emulator)
    dead_letter(world, emulator)
    pages.sign_in(VIEWER)
    pages.open("/")
    assert pages.find("#emails-today").text == "3"
    assert pages.find("#in-review").text == "1" and pages.find("#dead-letters").text == "1"
    today = dt.datetime.now(dt.UTC).date()
    ledger = Ledger(r, world.settings.prices, world.settings.thread_ttl_seconds).totals(today)
    cost = ledger.total["cost_micro_usd"] / 1_000_000
    assert cost > 0 and pages.find("#cost-today").text == f"${cost:,.6f}"
    assert len(pages.all("svg.chart rect")) >= 3  # the hourly bars and the day's cost
    pages.shot("overview")


def test_the_thread_page_shows_the_seed_conversation(pages, r, world):
    """From the threads list to the thread page: the customer's emails, our question as sent,
    and the BILLING classification with its reason and cost."""
    thread_id = seed_conversation(r, world)
    pages.sign_in(VIEWER)
    pages.open("/threads")
    pages.shot("threads")
    pages.find(f'a[href="/threads/{thread_id}"]').click()
    pages.wait_text("Conversation")
    pages.shot("thread")
    [question] = stream_events(r, "clarification")
    text = pages.text()
    assert SEED_FIRST in text and SEED_REPLY in text
    asked = decision_fields(world.step.store.peek(thread_id).messages[1])["question"]
    assert pages.find("blockquote.question").text == asked
    assert question["reply_message_id"] in text
    assert pages.find("li.classification .cat").text == "BILLING"
    [classified] = stream_events(r, "classified")
    _, cost = event_cost(classified, world.settings.prices)
    assert "Mentions billing keywords" in text and f"${cost:,.6f}" in text


def test_correct_a_review_item_and_see_the_status_and_the_event(pages, r, world, emulator):
    """In the review lane a reviewer picks another category and submits with the keyboard;
    the thread page then shows status classified and the `corrected` event with who did it."""
    thread_id = review_item(world, emulator)
    pages.sign_in(REVIEWER)
    pages.open("/review")
    pages.wait_text("Tracking")
    pages.shot("review")
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    item = pages.find("[data-item]")
    item.send_keys("c")  # keyboard: c focuses the category
    select = pages.find("[data-item] select[data-category]")
    assert pages.driver.switch_to.active_element == select
    Select(select).select_by_visible_text("BILLING")
    select.send_keys(Keys.ENTER)
    pages.wait_text(f"{thread_id}: SHIPPING -> BILLING")
    assert "Nothing waits for review" in pages.text()
    pages.open(f"/threads/{thread_id}")
    pages.wait_text("Events")
    assert pages.find("#status").text == "classified"
    row = pages.find("#events tr.e-corrected")
    assert "BILLING" in row.text and REVIEWER[0] in row.text and "SHIPPING" in row.text
    [event] = stream_events(r, "corrected")
    assert event["by"] == REVIEWER[0] and event["category"] == "BILLING"
    pages.shot("thread-corrected")


def test_replay_a_dead_letter(pages, r, world, emulator):
    """A reviewer opens the dead letter, replays it, and the list is empty; the email is back
    in its thread for the worker."""
    thread_id = dead_letter(world, emulator)
    [letter] = DeadLetterStream(r).list()
    pages.sign_in(REVIEWER)
    pages.open("/dead-letters")
    pages.shot("dead-letters")
    pages.find(f'a[href="/dead-letters/{letter.entry_id}"]').click()
    pages.wait_text("toaster invoice")
    pages.shot("dead-letter")
    pages.find("#replay").click()
    pages.wait_text(f"{letter.entry_id}: replayed")
    assert pages.all("#no-dead-letters")
    assert DeadLetterStream(r).size() == 0
    message_id = letter.body["payload"]["message_id"]
    wait_for(  # back in its thread: waiting there, or already decided by a running worker
        lambda: (
            r.llen(f"triage:thread:{thread_id}:inbox") == 1
            or r.sismember(f"triage:thread:{thread_id}:applied", message_id)
        ),
        what="the replayed email back in its thread",
    )
    pages.open("/dead-letters/purge")
    pages.shot("purge")


def test_the_runs_page_shows_a_run_and_its_reports_table_and_plot(pages, r, reports_dir):
    """A reprocessing run kept in Redis and its report directory: the run's figures, the
    report's Markdown table and its PNG plot, loaded by the browser."""
    from PIL import Image

    RunStore(r, 30).create(
        "sonnet-trial",
        {
            "kind": "reprocess",
            "status": "done",
            "config": json.dumps({"model": "claude-sonnet-4-6", "prompt_version": "9f3e"}),
            "calls": "40",
            "cost_micro_usd": "123456",
        },
    )
    report = reports_dir / "sonnet-trial"
    report.mkdir(exist_ok=True)
    (report / "diff.md").write_text(
        "# Run sonnet-trial against live\n\n| from | to | threads |\n|---|---|---|\n"
        "| SHIPPING | OTHER | 3 |\n\n![change matrix](change-matrix.png)\n"
    )
    Image.new("RGB", (320, 200), (70, 120, 200)).save(report / "change-matrix.png")
    pages.sign_in(VIEWER)
    pages.open("/runs")
    pages.wait_text("sonnet-trial")
    pages.shot("runs")
    pages.find('a[href="/runs/sonnet-trial"]').click()
    pages.wait_text("claude-sonnet-4-6")
    pages.shot("run")
    pages.find('a[href="/reports/sonnet-trial"]').click()
    pages.wait_text("SHIPPING")
    image = pages.find("#report img")
    loaded = pages.driver.execute_script("return arguments[0].naturalWidth;", image)
    assert loaded == 320
    pages.shot("report")


def test_an_action_without_csrf_or_by_a_viewer_is_refused(pages, r, world, emulator):
    """A viewer's accept (its disabled button switched on by hand) is refused with 403 and
    changes nothing; so is a reviewer's form whose CSRF token was removed."""
    thread_id = review_item(world, emulator)
    pages.sign_in(VIEWER)
    pages.open("/review")
    button = pages.find("[data-item] button.accept-button")
    assert button.get_attribute("disabled") is not None  # a viewer's buttons are off
    pages.driver.execute_script("arguments[0].disabled = false;", button)  # a crafted request
    button.click()
    pages.wait_text("needs the reviewer role")
    pages.shot("refused-viewer")
    pages.sign_in(REVIEWER)
    pages.open("/review")
    pages.driver.execute_script(
        "document.querySelectorAll('input[name=csrf]').forEach(function (e) { e.remove(); });"
    )
    pages.find("[data-item] button.accept-button").click()
    pages.wait_text("CSRF token is missing")
    pages.shot("refused-csrf")
    assert stream_events(r, "review_accepted") == []
    assert r.hget(f"triage:thread:{thread_id}", "status") == b"needs_review"
