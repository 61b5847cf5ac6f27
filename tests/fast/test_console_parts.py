"""The console's pure parts: users from settings, sessions and CSRF tokens, charts, the hourly
counts, the threads query, report Markdown and paths, form values, and the command's guard."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.errors import ConfigError
from common.settings import load_settings
from common.taxonomy import FieldSpec
from console.actions import field_value
from console.auth import Gate
from console.charts import Series, legend, stacked_bars
from console.overview import hourly
from console.reports import find_reports, inside, render_markdown
from console.threads import ThreadQuery, matches
from triage.main import cli

USERS = "ann:pass:word:1:reviewer, vic:vic-password:viewer"


def gate(**overrides: str) -> Gate:
    settings = load_settings(
        _env_file=None,
        console_users=overrides.pop("users", USERS),
        console_tokens=overrides.pop("tokens", "bot:bot-token-0123456789:viewer"),
        console_secret=overrides.pop("secret", "s" * 32),
        **overrides,
    )
    return Gate(settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ann:secret-one:admin", "entry 1 (ann): role 'admin' is not one of viewer, reviewer"),
        ("ann:short:viewer", "entry 1 (ann): the password needs at least 8 characters"),
        ("ann-without-colons", "entry 1 is not name:password:role"),
        ("ann:secret-one:viewer,ann:secret-two:viewer", "entry 2: the name 'ann' is used twice"),
        ("a n:secret-one:viewer", "entry 1: the name must be letters"),
    ],
)
def test_a_bad_user_entry_is_named_by_position_never_by_its_password(value, message):
    """TRIAGE_CONSOLE_USERS errors name the variable and the entry, and never echo a secret."""
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, console_users=value)
    text = str(raised.value)
    assert text.startswith("invalid setting TRIAGE_CONSOLE_USERS: ") and message in text
    for secret in ("secret-one", "secret-two", "short"):
        assert secret not in text


def test_users_and_tokens_parse_with_colons_in_secrets_and_blanks_dropped():
    """`name:secret:role`: the secret is what lies between the first and the last colon."""
    settings = load_settings(_env_file=None, console_users=USERS + ",", console_tokens="")
    ann, vic = settings.console_users
    assert (ann.name, ann.secret.get_secret_value(), ann.role) == ("ann", "pass:word:1", "reviewer")
    assert (vic.name, vic.role) == ("vic", "viewer") and settings.console_tokens == []
    assert "pass:word" not in repr(settings)


def test_basic_auth_bearer_tokens_and_passwords_are_checked():
    """The right password or token gives the user and role; anything else gives nobody."""
    g = gate()
    basic = base64.b64encode(b"ann:pass:word:1").decode()
    assert g.authorization(f"Basic {basic}").role == "reviewer"
    assert g.authorization("Basic " + base64.b64encode(b"ann:wrong").decode()) is None
    assert g.authorization("Basic not-base64!!") is None
    assert g.authorization("Bearer bot-token-0123456789").name == "bot"
    assert g.authorization("Bearer bot-token-012345678") is None
    assert g.authorization("Digest x") is None
    assert g.password("nobody", "pass:word:1") is None


def test_sessions_expire_and_end_with_the_password_or_the_secret():
    """A session cookie is refused once expired, tampered with, after the user's password
    changed, the user was removed, or the secret changed."""
    g = gate()
    now = 1_800_000_000.0
    cookie = g.session("vic", now)
    assert g.from_session(cookie, now + 60).name == "vic"
    assert g.from_session(cookie, now + g.session_seconds + 1) is None
    name, expires, signature = cookie.split(".")
    assert g.from_session(f"{name}.{int(expires) + 99}.{signature}", now) is None
    assert g.from_session("garbage", now) is None
    changed = gate(users="ann:pass:word:1:reviewer,vic:a-new-password:viewer")
    assert changed.from_session(cookie, now) is None
    assert gate(users="ann:pass:word:1:reviewer").from_session(cookie, now) is None
    assert gate(secret="t" * 32).from_session(cookie, now) is None


def test_csrf_tokens_are_bound_to_their_identity_and_expire():
    """A token works for the identity it was issued to, within the session length, only."""
    g = gate()
    now = 1_800_000_000.0
    token = g.csrf_token("user:ann", now)
    assert g.csrf_ok("user:ann", token, now + 10)
    assert not g.csrf_ok("user:vic", token, now + 10)
    assert not g.csrf_ok("user:ann", token, now + g.session_seconds + 1)
    assert not g.csrf_ok("user:ann", token.replace(".", ".0", 1), now)
    assert not g.csrf_ok("user:ann", None, now) and not g.csrf_ok("user:ann", "x.y", now)
    assert not gate(secret="t" * 32).csrf_ok("user:ann", token, now)


def test_the_open_console_has_no_users_and_its_anonymous_viewer_cannot_act():
    """No users and no tokens: open, read-only."""
    settings = load_settings(_env_file=None)
    assert Gate(settings).open and not Gate(settings).has_users
    assert not gate().open


def test_charts_are_svg_with_escaped_labels_and_one_bar_part_per_value():
    """Stacked bars: a rect per non-zero part with a tooltip, labels escaped, a legend."""
    series = [Series("ok", "s-ok"), Series("<bad>", "s-bad")]
    svg = str(stacked_bars(["<01>", "02"], [[2, 1], [0, 3]], series, title="T & T"))
    assert svg.startswith("<svg") and svg.count("<rect") == 3
    assert "&lt;01&gt;" in svg and "T &amp; T" in svg and "<bad>" not in svg
    assert "02: &lt;bad&gt; 3" in svg
    assert str(legend(series)).count("<li>") == 2
    empty = str(stacked_bars([], [], series, title="none"))
    assert "<rect" not in empty


def test_hourly_counts_emails_by_outcome_in_the_last_24_hours():
    """Decisions count their emails in their UTC hour; reviews and older events are left out;
    `today` starts at midnight UTC."""
    now = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)
    at = now.timestamp()
    events = [
        (at, {"type": "classified", "email_ids": ["a", "b"]}),
        (at - 600, {"type": "classified", "needs_review": True, "email_ids": ["c"]}),
        (at - 3600, {"type": "clarification", "email_ids": ["d"]}),
        (at - 2 * 3600, {"type": "escalated", "email_ids": ["e"]}),
        (at - 60, {"type": "corrected"}),
        (at - 30 * 3600, {"type": "classified", "email_ids": ["f"]}),
    ]
    chart = hourly(events, now)
    assert chart.labels[-1] == "01" and chart.labels[-2] == "00" and len(chart.labels) == 24
    assert chart.counts[-1] == {"classified": 2, "review": 1}
    assert chart.counts[-2] == {"clarified": 1} and chart.counts[-3] == {"escalated": 1}
    assert chart.total == 5 and chart.emails_today == 4
    assert chart.outcomes_today == {"classified": 2, "review": 1, "clarified": 1}


def test_the_threads_query_names_bad_filters_and_bounds_its_dates():
    """Unknown values are dropped and named; dates cover whole UTC days."""
    settings = load_settings(_env_file=None)
    query, errors = ThreadQuery.parse(
        {"status": "lost", "category": "billing", "from": "2026-03-01", "to": "nope", "page": "x"},
        settings,
    )
    assert query.status == "" and query.category == "BILLING" and query.page == 1
    assert errors == [
        "to 'nope' is not a date (YYYY-MM-DD)",
        "status 'lost' is not one of new, awaiting_customer, classified, needs_review, "
        "escalated, reply_failed, reply_bounced",
    ]
    since, until = ThreadQuery(date_from="2026-03-01", date_to="2026-03-01").window()
    assert since == dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
    assert until is not None and until - since == pytest.approx(86_400, abs=0.01)
    assert ThreadQuery(category="BILLING", page=2).params(page=3) == {
        "category": "BILLING",
        "page": 3,
    }
    assert matches({"customer": "Dana@Example.org", "subject": "Help"}, "t1", "example.ORG")
    assert matches({}, "t1", "T1") and not matches({"subject": "x"}, "t1", "y")


def test_report_markdown_escapes_html_and_keeps_only_the_reports_own_images():
    """Raw HTML is text, a javascript: link is not a link, an image is shown only if it is a
    PNG of the report's own directory (through the console's URL)."""
    html = str(
        render_markdown(
            "<script>x</script>\n\n[a](javascript:alert(1)) ![p](plot.png) ![q](../up.png) "
            "![r](https://e.example/r.png)",
            lambda name: f"/files/{name}" if name == "plot.png" else None,
        )
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert '<img src="/files/plot.png" alt="p"' in html and html.count("<img") == 1


def test_report_paths_stay_inside_the_reports_directory(tmp_path: Path):
    """`..` and a symlink pointing out are refused; report directories are found by file."""
    root = tmp_path / "reports"
    (root / "eval-1").mkdir(parents=True)
    (root / "eval-1" / "report.md").write_text("# Eval one\n")
    (root / "diff-1").mkdir()
    (root / "diff-1" / "diff.md").write_text("# Diff one\n")
    (root / "out").symlink_to(tmp_path)
    assert inside(root, "eval-1") == (root / "eval-1").resolve()
    assert inside(root, "../x") is None and inside(root, "out/x") is None
    found = {report.path: (report.kind, report.title) for report in find_reports(root)}
    assert found == {
        "eval-1": ("evaluation", "Eval one"),
        "diff-1": ("reprocessing", "Diff one"),
    }


def test_form_values_are_read_as_the_fields_declared_type():
    """Blank is none; integers, numbers and booleans are converted; pattern and enum checked."""
    order = FieldSpec(name="order_number", pattern=r"^[A-Z]{2}-[0-9]{4,8}$")
    assert field_value(order, " AB-1234 ") == "AB-1234" and field_value(order, "") is None
    with pytest.raises(ValueError, match=r"not \^\[A-Z\]"):
        field_value(order, "12")
    assert field_value(FieldSpec(name="count", type="integer"), "3") == 3
    assert field_value(FieldSpec(name="flag", type="boolean"), "TRUE") is True
    with pytest.raises(ValueError):
        field_value(FieldSpec(name="count", type="integer"), "three")
    channel = FieldSpec(name="channel", type="enum", values=["web", "app"])
    assert field_value(channel, "app") == "app"
    with pytest.raises(ValueError, match="one of web, app"):
        field_value(channel, "fax")


def test_the_command_refuses_a_public_address_without_users(monkeypatch):
    """`triage console --host 0.0.0.0` without users exits 2 naming the setting; --help lists
    --host and --port."""
    for name in ("TRIAGE_CONSOLE_USERS", "TRIAGE_CONSOLE_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    refused = runner.invoke(cli, ["console", "--host", "0.0.0.0", "--port", "1"])
    assert refused.exit_code == 2 and "TRIAGE_CONSOLE_USERS" in refused.output
    helped = runner.invoke(cli, ["console", "--help"])
    assert helped.exit_code == 0 and "--port" in helped.output and "--host" in helped.output
