"""Reading and continuing a conversation: `answer`, `thread show`, `outbox`, `thread list`."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest
from helpers import SEED_FIRST, base_env, make_email, reply_id_pattern, run_triage, wait_for

from common import keys
from producers.submit import thread_id_for
from triage.localstack import free_port

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ANSWER = "Sorry, I mean I was charged twice for my subscription this month."


def status(r, thread_id: str) -> str | None:
    value = r.hget(keys.thread_meta(thread_id), "status")
    return value.decode() if value else None


@pytest.fixture
def env(tmp_path, state_url, broker_url, emulator, worker) -> dict[str, str]:
    """The shared worker's settings, and a home of its own (no serving `triage run` applies)."""
    return base_env(state_url, broker_url, emulator.base_url) | {
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(tmp_path),
    }


@pytest.fixture
def answered(r, env, enqueue) -> str:
    """A seed thread: the vague email, our question, the customer's answer via `triage answer`."""
    message_id = "<conv-1@example.org>"
    thread_id = thread_id_for(message_id)
    enqueue(make_email(message_id, SEED_FIRST))
    wait_for(lambda: status(r, thread_id) == "awaiting_customer", 30, "our question")
    wait_for(lambda: r.xlen(keys.OUTBOX) == 1, 30, "the question to be sent")
    result = run_triage("answer", thread_id, "--text", ANSWER, env=env)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    question = reply_id_pattern(thread_id, 1, "example.com")
    assert re.fullmatch(rf"answered {question} -> thread {thread_id} \(enqueued\)", line)
    assert result.stderr == ""
    wait_for(lambda: status(r, thread_id) == "classified", 30, "the answer to be classified")
    return thread_id


def test_answer_joins_the_thread_by_in_reply_to(r, answered):
    """`triage answer` enqueues a reply whose In-Reply-To is our question; it is classified."""
    meta = {k.decode(): v.decode() for k, v in r.hgetall(keys.thread_meta(answered)).items()}
    assert meta["category"] == "BILLING" and meta["clarifications"] == "1"
    root, question = json.loads(meta["references"])[:2]
    assert root == "<conv-1@example.org>"
    assert re.fullmatch(reply_id_pattern(answered, 1, "example.com"), question)


def test_answer_mistakes_are_one_line(r, env, enqueue):
    """An unknown thread, or one that asked nothing, is one `Error:` line and exit 1."""
    missing = run_triage("answer", "t-none", "--text", "hi", env=env)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "Error: no thread t-none (see `triage thread list`)",
    )
    thread_id = thread_id_for("<conv-clear@example.org>")
    enqueue(make_email("<conv-clear@example.org>", "My parcel never arrived.", subject="Parcel"))
    wait_for(lambda: status(r, thread_id) == "classified", 30, "the classification")
    asked_nothing = run_triage("answer", thread_id, "--text", "hi", env=env)
    assert asked_nothing.returncode == 1
    assert asked_nothing.stderr.strip() == (
        f"Error: thread {thread_id} has asked no question (status classified): nothing to "
        "answer; `triage thread list --status awaiting_customer` lists the threads that did"
    )


def test_thread_show_text_renders_the_conversation(answered, env):
    """`thread show --text`: who said what, the question as text, the decision, tokens, cost."""
    result = run_triage("thread", "show", answered, "--text", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not ANSI.search(out)  # piped: no colour
    assert f'thread {answered}  "Help"' in out
    assert "status classified · category BILLING · clarifications 1" in out
    assert f"#1 customer\n   Subject: Help\n\n   {SEED_FIRST}" in out
    assert "#2 assistant asks the customer:\n   Could you tell me a bit more" in out
    assert re.search(f"sent as {reply_id_pattern(answered, 1, 'example.com')}", out)
    assert f"#3 customer\n   Subject: Re: Help\n\n   {ANSWER}" in out
    assert "#4 assistant classifies: BILLING\n   confidence 0.90 · reason: " in out
    calls = re.findall(r"call  \S+ · req_\w+ · tokens in (\d+) · out (\d+) .* · \$(\d\.\d{6})", out)
    assert len(calls) == 2 and all(float(cost) > 0 for _, _, cost in calls)
    total = re.search(r"total  2 call\(s\) · tokens in (\d+) · out (\d+)", out)
    assert total is not None
    assert int(total.group(1)) == sum(int(i) for i, _, _ in calls)


def test_thread_show_json_is_the_stored_array(r, answered, env):
    """`thread show --json` (and any piped `thread show`) prints exactly the stored array."""
    stored = [json.loads(turn) for turn in r.lrange(keys.thread_messages(answered), 0, -1)]
    expected = json.dumps(stored, indent=2, ensure_ascii=False) + "\n"
    assert run_triage("thread", "show", answered, "--json", env=env).stdout == expected
    assert run_triage("thread", "show", answered, env=env).stdout == expected


def test_thread_show_on_a_terminal_is_the_coloured_conversation(answered, env, tmp_path):
    """On a terminal `thread show` renders the conversation, in colour."""
    leader, follower = pty.openpty()
    with (tmp_path / "stderr").open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "triage", "thread", "show", answered],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=errors,
        )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=30) == 0, (tmp_path / "stderr").read_text()
    out = b"".join(chunks).decode()
    assert ANSI.search(out)
    assert "asks the customer:" in ANSI.sub("", out) and '"role"' not in out


def test_outbox_decodes_the_email(answered, env):
    """`outbox --full` prints headers and the decoded body; `--json` the same as JSON."""
    full = run_triage("outbox", "--full", env=env)
    assert full.returncode == 0, full.stderr
    assert full.stdout.splitlines()[0].split() == ["ID", "TRANSPORT", "THREAD", "TO", "SUBJECT"]
    assert "=\n" not in full.stdout and "=E2=80=94" not in full.stdout  # no quoted-printable
    assert "    In-Reply-To: <conv-1@example.org>" in full.stdout
    assert "— is it about a payment, a delivery" in full.stdout
    [line] = run_triage("outbox", "--json", env=env).stdout.splitlines()
    reply = json.loads(line)
    assert reply["thread_id"] == answered and reply["subject"] == "Re: Help"
    assert re.fullmatch(reply_id_pattern(answered, 1, "example.com"), reply["message_id"])
    assert reply["in_reply_to"] == "<conv-1@example.org>"
    assert "Could you tell me a bit more" in reply["body"] and "=\n" not in reply["body"]


def test_thread_list_has_clean_columns_and_json_numbers(answered, env):
    """`thread list`: CALLS is a number column; `--json` gives numbers as JSON numbers."""
    table = run_triage("thread", "list", env=env).stdout.splitlines()
    header, row = table[0], table[1]
    assert header.split()[:6] == ["THREAD", "STATUS", "CATEGORY", "UPDATED", "(UTC)", "CALLS"]
    calls_end = header.index("CALLS") + len("CALLS")
    assert row[:calls_end].rstrip().endswith(" 2") and "calls=" not in row
    [document] = [
        json.loads(line)
        for line in run_triage("thread", "list", "--json", env=env).stdout.splitlines()
    ]
    assert document["calls"] == 2 and document["version"] == 2 and document["clarifications"] == 1
    assert isinstance(document["updated_at"], float) and isinstance(document["input_tokens"], int)
    assert isinstance(document["references"], list)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--status",
            "nonsense",
            "Error: --status 'nonsense' is not a thread status; valid: new, awaiting_customer, "
            "classified, needs_review, escalated, reply_failed, reply_bounced",
        ),
        (
            "--category",
            "refunds",
            "Error: --category 'refunds' is not a configured category; valid: BILLING, "
            "SHIPPING, TECHNICAL, OTHER (set by TRIAGE_CATEGORIES)",
        ),
    ],
)
def test_thread_list_rejects_unknown_filter_values(env, option, value, message):
    """An unknown status or category is one line listing the valid values, exit 2."""
    result = run_triage("thread", "list", option, value, env=env)
    assert (result.returncode, result.stderr.strip(), result.stdout) == (2, message, "")


@pytest.mark.parametrize(
    "command",
    [("answer", "t1", "--text", "hi"), ("outbox", "--json"), ("thread", "show", "t1", "--text")],
    ids=" ".join,
)
def test_new_commands_report_an_unreachable_redis_in_one_line(tmp_path, command):
    """`answer`, `outbox --json`, `thread show --text` without Redis: one line, exit 1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "ANTHROPIC_"))}
    env |= {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    env["TRIAGE_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result = run_triage(*command, env=env)
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("Error: cannot reach Redis") and "TRIAGE_REDIS_URL" in line
