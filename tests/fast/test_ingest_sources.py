"""Reading sources: streaming mbox (bounded memory, ">From " unescaping), Maildir, JSONL,
directories and stdin sniffing. Pure file I/O, no Redis."""

from __future__ import annotations

import io
import mailbox
import tracemalloc
from email import message_from_bytes, policy

from helpers import jsonl_line, message, raw_email, write_maildir, write_mbox

from producers.sources import Item, iter_items, read_mbox, read_stream, resolve_inputs

LIMIT = 1024 * 1024


def items(paths, fmt="auto", limit=LIMIT, stdin=None) -> list[Item]:
    return list(iter_items(resolve_inputs(paths, fmt), limit, stdin))


def test_streaming_mbox_matches_the_stdlib(tmp_path):
    body = "Where is my parcel?\nFrom here it looks lost.\n>From the depot too.\n"
    path = write_mbox(tmp_path / "s.mbox", [message(f"<m{i}@example.org>", body) for i in range(5)])
    found = items([path])
    box = mailbox.mbox(path, create=False)
    reference = list(box)
    box.close()
    assert [i.position for i in found] == [f"message {n}" for n in range(1, 6)]
    for item, expected in zip(found, reference, strict=True):
        parsed = message_from_bytes(item.data, policy=policy.default)
        assert parsed["Message-ID"] == expected["Message-ID"]
        # mailbox writes "From " lines as ">From " (and leaves ">From " as is): one ">" goes
        assert (
            parsed.get_content()
            == "Where is my parcel?\nFrom here it looks lost.\nFrom the depot too.\n"
        )


def test_streaming_mbox_memory_stays_bounded(tmp_path):
    count = 2000
    path = tmp_path / "big.mbox"
    with path.open("wb") as out:
        for i in range(count):
            out.write(b"From dana@example.org Mon Mar  2 10:00:00 2026\n")
            out.write(raw_email(f"<big{i}@example.org>", "word " * 1000).replace(b"\r\n", b"\n"))
            out.write(b"\n")
    assert path.stat().st_size > 10_000_000
    tracemalloc.start()
    seen = 0
    for item in iter_items(resolve_inputs([path]), LIMIT):
        assert item.kind == "email" and item.size > 5000
        seen += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == count
    assert peak < 1_000_000, peak  # a few messages' worth, not the 10 MB file


def test_mbox_from_lines_only_after_a_blank_line_and_oversize_messages():
    raw = (
        b"From a@example.org Mon Mar  2 10:00:00 2026\n"
        + raw_email("<a@example.org>", "one")
        + b"\nFrom b@example.org Mon Mar  2 10:00:00 2026\n"
        + raw_email("<b@example.org>", "two\nFrom inside a paragraph stays\n" + "y" * 5000)
        + b"\nFrom c@example.org Mon Mar  2 10:00:00 2026\n"
        + raw_email("<c@example.org>", "three")
    )
    found = list(read_mbox(io.BytesIO(raw), "box", 4096))
    assert [(i.position, i.kind) for i in found] == [
        ("message 1", "email"),
        ("message 2", "oversize"),
        ("message 3", "email"),
    ]
    assert found[1].size > 5000 and len(found[1].data) <= 64 * 1024
    assert b"<c@example.org>" in found[2].data


def test_maildir_reads_new_and_cur_not_tmp(tmp_path):
    root = write_maildir(tmp_path / "Mail", [message(f"<md{i}@example.org>") for i in range(3)])
    (root / "tmp" / "partial").write_bytes(b"From: half")
    found = items([root])
    assert len(found) == 3 and all(i.kind == "email" for i in found)
    assert all(i.position.startswith(("new/", "cur/")) for i in found)


def test_directory_mixes_formats_and_ignores_other_files(tmp_path):
    (tmp_path / "a.eml").write_bytes(raw_email("<d1@example.org>"))
    (tmp_path / "notes.txt").write_text("not mail")
    write_mbox(
        tmp_path / "sub" / "box.mbox", [message("<d2@example.org>"), message("<d3@example.org>")]
    )
    (tmp_path / "feed.jsonl").write_text(jsonl_line() + "\n\n" + jsonl_line(subject="x") + "\n")
    write_maildir(tmp_path / "sub" / "Maildir", [message("<d4@example.org>")])
    found = items([tmp_path])
    kinds = sorted((i.kind, i.position.split("/")[0]) for i in found)
    assert kinds == [
        ("email", ""),
        ("email", "message 1"),
        ("email", "message 2"),
        ("email", "new"),
        ("jsonl", "line 1"),
        ("jsonl", "line 3"),
    ]


def test_jsonl_lines_are_numbered_and_long_lines_are_oversize(tmp_path):
    path = tmp_path / "in.ndjson"
    path.write_text(jsonl_line() + "\n" + jsonl_line(text="z" * 5000) + "\n" + jsonl_line())
    found = items([path], limit=2048)
    assert [(i.position, i.kind) for i in found] == [
        ("line 1", "jsonl"),
        ("line 2", "oversize"),
        ("line 3", "jsonl"),
    ]


def test_stdin_is_sniffed(tmp_path):
    eml = raw_email("<s1@example.org>")
    mbox = b"From x Mon Mar  2 10:00:00 2026\n" + eml + b"\nFrom y Mon Mar  2 10:00:00 2026\n" + eml
    jsonl = (jsonl_line() + "\n" + jsonl_line() + "\n").encode()
    assert [i.kind for i in read_stream(io.BytesIO(eml), "-", "auto", LIMIT)] == ["email"]
    assert [i.kind for i in read_stream(io.BytesIO(mbox), "-", "auto", LIMIT)] == ["email"] * 2
    assert [i.kind for i in read_stream(io.BytesIO(jsonl), "-", "auto", LIMIT)] == ["jsonl"] * 2
    found = items(["-"], stdin=io.BytesIO(eml))
    assert found[0].source == "-" and found[0].data == eml


def test_forced_format_and_unreadable_files(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text(jsonl_line() + "\n")
    assert [i.kind for i in items([path], fmt="jsonl")] == ["jsonl"]
    assert [i.kind for i in items([path])] == ["jsonl"]  # sniffed: starts with "{"
    locked = tmp_path / "locked.eml"
    locked.write_bytes(b"x")
    locked.chmod(0)
    try:
        found = items([locked])
    finally:
        locked.chmod(0o644)
    assert found[0].kind in ("unreadable", "email")  # root can read anything
