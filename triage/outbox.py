"""`triage outbox`: the replies we delivered (outbox transport) or sent (SMTP), newest last.

Each stored entry holds the rendered email (quoted-printable and all, as it went out); this
command decodes it: a table by default, headers and the plain-text body with `--full`, one JSON
object per line with `--json`.
"""

from __future__ import annotations

import json
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

import click

HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References")


def decode(entry: dict[str, Any]) -> dict[str, Any]:
    """An outbox entry with its email decoded: headers and the plain-text body."""
    raw = str(entry.get("message", ""))
    message = message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain",))
    try:
        body = part.get_content() if part is not None else ""
    except (LookupError, ValueError):
        body = raw
    headers = {name: str(message[name]) for name in HEADERS if message[name] is not None}
    return {
        "id": entry.get("id"),
        "reply_id": entry.get("reply_id"),
        "thread_id": entry.get("thread_id"),
        "transport": entry.get("transport", "outbox"),
        "to": entry.get("to"),
        "message_id": entry.get("message_id"),
        "subject": headers.get("Subject", ""),
        "in_reply_to": headers.get("In-Reply-To"),
        "headers": headers,
        "body": body,
    }


def table_line(reply: dict[str, Any]) -> str:
    return (
        f"{reply['id']:<16} {reply['transport']:<9} {reply['thread_id']:<22} "
        f"{reply['to']:<28} {reply['subject']}"
    )


@click.command("outbox")
@click.option("--full", is_flag=True, help="Also print each email: headers and decoded body.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (body decoded).")
def outbox_command(full: bool, as_json: bool) -> None:
    """List the replies delivered to the outbox transport or sent by SMTP, newest last."""
    from triage.resources import read_outbox, settings_or_exit

    replies = [decode(entry) for entry in read_outbox(settings_or_exit())]
    if not replies and not as_json:
        click.echo("no replies sent yet", err=True)
        return
    if not as_json:
        click.echo(f"{'ID':<16} {'TRANSPORT':<9} {'THREAD':<22} {'TO':<28} SUBJECT")
    for reply in replies:
        if as_json:
            click.echo(json.dumps(reply, ensure_ascii=False))
            continue
        click.echo(table_line(reply))
        if full:
            for name, value in reply["headers"].items():
                click.echo(f"    {name}: {value}")
            click.echo("")
            for line in reply["body"].rstrip().splitlines():
                click.echo(f"    {line}".rstrip())
            click.echo("")
