"""What a run covers, written to the run's records before anything is spent (`todo`, `input`).

Two sources, both read with flat memory (chunks of a few hundred):

- Stored threads: every thread in `triage:threads` (ZSCAN, so threads that move during planning
  are still seen once), or `--thread` ids; filtered by the time of their last update (`since`,
  `until`), their status and their category, read without writing (`ThreadStore.peek`, packed
  threads decoded, not restored). The plan keeps the thread's version and email count; the
  thread is read again when it is decided.
- A backlog PATH: read by the producers' own sources and parsing (`producers.sources`,
  `producers.enqueue.Previewer`, which resolves threads against the live Message-ID index
  without writing). An email already seen live joins its live thread (it is *not* dropped as a
  duplicate: dedupe is per run); a reply the live thread it cites would refuse (its sender takes
  no part there) is a thread of its own; a reply to an email of the same backlog joins that
  email's thread (and when that is a live thread, only under the same rule); anything else is a
  thread of its own,
  named as the producers would name it. The run's
  own index (`msgids`) drops an email the PATH holds twice (same Message-ID and sender). Each
  thread's emails are kept compressed in the run's records until the run finishes.
Rejected emails (the producers' reasons) and bounces of our replies are counted, not decided;
nothing goes to the dead-letter stream.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, BinaryIO

import redis

from common import keys
from common.connections import as_text
from common.contract import EmailPayload
from producers.enqueue import Previewer, Rejected
from producers.membership import membership
from producers.parse import ParsedEmail
from producers.sources import iter_items, resolve_inputs
from producers.submit import MODE_JOIN_REFUSED, payload_json, sender_digest, thread_id_for
from worker.decide.conversation import user_turn
from worker.decide.prompt import build_request
from worker.decide.pruning import turn_bytes
from worker.decide.ratelimit import estimate_input_tokens
from worker.decide.rerun import RunSpec
from worker.state.compaction import Compactor
from worker.state.runs import RunStore, pack_emails
from worker.state.snapshot import Snapshot
from worker.state.store import ThreadStore

CHUNK = 200
KIND_THREAD = "thread"
KIND_BACKLOG = "backlog"
#: Resolutions that settle an email's thread: a live one (seen, or answering one), or its own
#: when its sender may not join the thread it cites (`producers.membership`).
LIVE_MODES = ("duplicate", "reply", MODE_JOIN_REFUSED)
#: An email of a backlog, the thread it goes to, how it was resolved, its sender's digest.
Placed = tuple[ParsedEmail, str, str, str]
#: Per email in a backlog estimate: the `Subject:` line and the block around the text.
EMAIL_OVERHEAD_BYTES = 40


@dataclass(frozen=True)
class Selection:
    """Which stored threads a run re-decides (all of them when nothing is given)."""

    thread_ids: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    limit: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "threads": list(self.thread_ids),
            "since": self.since,
            "until": self.until,
            "statuses": list(self.statuses),
            "categories": list(self.categories),
            "limit": self.limit,
        }

    @classmethod
    def from_description(cls, data: dict[str, Any]) -> Selection:
        return cls(
            tuple(data.get("threads") or ()),
            data.get("since"),
            data.get("until"),
            tuple(data.get("statuses") or ()),
            tuple(data.get("categories") or ()),
            data.get("limit"),
        )

    def keeps(self, updated: float | None, snapshot: Snapshot) -> bool:
        if not snapshot.meta:
            return False
        if self.since is not None and (updated is None or updated < self.since):
            return False
        if self.until is not None and (updated is None or updated > self.until):
            return False
        if self.statuses and snapshot.status not in self.statuses:
            return False
        return not self.categories or snapshot.meta.get("category") in self.categories


@dataclass
class Totals:
    """What a plan covers: items (threads), emails, estimated input tokens, and what it left out
    and why."""

    items: int = 0
    emails: int = 0
    input_tokens: int = 0
    seen_live: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "emails": self.emails,
            "input_tokens": self.input_tokens,
            "seen_live": self.seen_live,
            "skipped": dict(self.skipped),
        }


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Planner:
    def __init__(
        self, name: str, runs: RunStore, threads: ThreadStore, client: redis.Redis, spec: RunSpec
    ) -> None:
        self._name = name
        self._runs = runs
        self._threads = threads
        self._redis = client
        self._spec = spec
        self._compactor = Compactor(client)
        settings = spec.settings
        empty = build_request(settings, spec.template, [], True, settings.max_tokens)
        #: Tokens of a request before its messages: system prompt, schema (the estimate's base).
        self.base_tokens = estimate_input_tokens(empty)

    # --- stored threads ----------------------------------------------------------------------

    def _candidates(self, selection: Selection) -> Iterator[list[tuple[str, float | None]]]:
        if selection.thread_ids:
            scores: list[Any] = self._redis.zmscore(keys.THREADS, list(selection.thread_ids))
            pairs = [
                (thread_id, None if score is None else float(score))
                for thread_id, score in zip(selection.thread_ids, scores, strict=True)
            ]
            yield from chunked(pairs, CHUNK)
            return
        scanned = (
            (as_text(member), float(score))
            for member, score in self._redis.zscan_iter(keys.THREADS, count=CHUNK)
        )
        yield from chunked(scanned, CHUNK)

    def stored(self, selection: Selection) -> Totals:
        """Plan the selected stored threads; returns what the plan covers."""
        totals = Totals()
        for chunk in self._candidates(selection):
            kept: list[tuple[str, Snapshot]] = []
            for thread_id, updated in chunk:
                snapshot = self._threads.peek(thread_id)
                if not selection.keeps(updated, snapshot):
                    totals.skipped["not_selected"] += 1
                    continue
                if selection.limit is not None and totals.items + len(kept) >= selection.limit:
                    totals.skipped["over_limit"] += 1
                    continue
                kept.append((thread_id, snapshot))
            plans: dict[str, dict[str, Any]] = {}
            for (thread_id, snapshot), email_ids in zip(
                kept, applied_ids(self._redis, self._compactor, [t for t, _ in kept]), strict=True
            ):
                users = [turn for turn in snapshot.messages if turn.get("role") == "user"]
                if not users:
                    totals.skipped["no_customer_email"] += 1
                    continue
                blocks = sum(
                    len(t["content"]) if isinstance(t.get("content"), list) else 1 for t in users
                )
                tokens = self.base_tokens + sum(turn_bytes(t) for t in users) // 4
                plans[thread_id] = {
                    "kind": KIND_THREAD,
                    "version": snapshot.version,
                    "emails": len(email_ids) or blocks,
                    "tokens": tokens,
                }
                totals.items += 1
                totals.emails += plans[thread_id]["emails"]
                totals.input_tokens += tokens
            self._runs.add_todo(self._name, plans)
        totals.seen_live = totals.emails
        return totals

    # --- a backlog PATH ----------------------------------------------------------------------

    def backlog(self, paths: list[str], stdin: BinaryIO | None = None) -> Totals:
        """Plan a backlog (see the module docstring); returns what the plan covers."""
        settings = self._spec.settings
        inputs = resolve_inputs(paths)
        if stdin is None and any(i.path is None for i in inputs):
            stdin = sys.stdin.buffer
        previewer = Previewer(settings, self._redis)
        totals = Totals()
        items = iter_items(inputs, settings.max_email_bytes, stdin)
        for chunk in chunked(previewer.preview_items(items, CHUNK), CHUNK):
            self._backlog_chunk(chunk, totals)
        for plans in self._runs.scan_todo(self._name):
            for _, plan in plans:
                totals.items += 1
                totals.emails += int(plan["emails"])
                totals.input_tokens += int(plan["tokens"])
        return totals

    def _backlog_chunk(self, chunk: list[tuple[Any, Any, Any]], totals: Totals) -> None:
        emails: list[tuple[ParsedEmail, str, str]] = []  # email, thread, how it was resolved
        for _, parsed, resolution in chunk:
            if isinstance(parsed, Rejected):
                totals.skipped[f"rejected:{parsed.reason}"] += 1
                continue
            if resolution is None or resolution.mode == "reply_bounced":
                totals.skipped["bounce_of_our_reply"] += 1
                continue
            emails.append((parsed, resolution.thread_id, resolution.mode))
        # Threading inside the backlog: a new email answering one of this run's emails.
        fresh = [email for email, _, mode in emails if mode not in LIVE_MODES]
        parents = sorted({parent for email in fresh for parent in _up(email)})
        owners = dict(zip(parents, self._runs.owners(self._name, parents), strict=True))
        local: dict[str, str] = {}
        placed: list[Placed] = []
        joined: list[int] = []  # which of `placed` joined a thread through the backlog
        for email, thread, mode in emails:
            if mode not in LIVE_MODES:
                for parent in _up(email):
                    owner = local.get(parent) or owners.get(parent)
                    if owner:
                        thread = owner.split("\0", 1)[0]
                        joined.append(len(placed))
                        break
            sender = sender_digest(email.from_addr)
            local.setdefault(email.message_id, f"{thread}\0{sender}")
            placed.append((email, thread, mode, sender))
        placed = self._admitted(placed, joined)
        # The run's own dedupe: an email is part of a run once (same Message-ID and sender).
        pipe = self._redis.pipeline(transaction=False)
        for email, thread, _, sender in placed:
            pipe.hsetnx(keys.run_msgids(self._name), email.message_id, f"{thread}\0{sender}")
        claimed = pipe.execute() if placed else []
        refused = [p[0].message_id for p, ok in zip(placed, claimed, strict=True) if not ok]
        earlier = iter(self._runs.owners(self._name, refused))
        buffer: dict[str, list[str]] = {}
        for (email, thread, mode, sender), ok in zip(placed, claimed, strict=True):
            if not ok:
                owner = next(earlier) or ""
                if owner.split("\0", 1)[-1] == sender:
                    totals.skipped["duplicate_in_run"] += 1  # this email, once more
                    continue
                # The same Message-ID from another sender: another email, in a thread of its
                # own, as the producers do it.
                thread = thread_id_for(email.message_id, email.from_addr)
            totals.seen_live += mode == "duplicate"
            buffer.setdefault(thread, []).append(payload_json(email, thread))
        self._flush(buffer)

    def _admitted(self, placed: list[Placed], joined: list[int]) -> list[Placed]:
        """Emails threaded through the backlog into a *live* thread face the producers' rule
        (`producers.membership`): a sender who takes no part there gets a thread of its own.
        A thread only this run knows (no participants, no meta) admits every reply."""
        if not joined:
            return placed
        pipe = self._redis.pipeline(transaction=False)
        claims = []
        for index in joined:
            email, thread, _, _ = placed[index]
            claims.append(membership(email.from_addr, email.reply_to, self._spec.settings))
            pipe.get(keys.thread_participants(thread))
            pipe.hget(keys.thread_meta(thread), "customer")
            pipe.exists(keys.thread_meta(thread))
        answers = iter(pipe.execute())
        admitted = list(placed)
        for index, claim in zip(joined, claims, strict=True):
            participants, customer, live = next(answers), next(answers), next(answers)
            if participants is None and not live:
                continue  # a thread only this run knows
            if claim.may_join(
                as_text(participants) if participants is not None else None,
                as_text(customer) if customer else None,
            ):
                continue
            email, _, mode, sender = placed[index]
            admitted[index] = (
                email,
                thread_id_for(email.message_id, email.from_addr),
                mode,
                sender,
            )
        return admitted

    def _flush(self, buffer: dict[str, list[str]]) -> None:
        if not buffer:
            return
        items = list(buffer)
        existing = self._runs.inputs(self._name, items)
        plans: dict[str, dict[str, Any]] = {}
        packed: dict[str, bytes] = {}
        for item, before in zip(items, existing, strict=True):
            payloads = [*(before or []), *buffer[item]]
            packed[item] = pack_emails(payloads)
            plans[item] = {
                "kind": KIND_BACKLOG,
                "emails": len(payloads),
                "tokens": self.base_tokens + _turn_tokens(payloads, self._spec),
            }
        self._runs.add_todo(self._name, plans, packed)


def applied_ids(
    client: redis.Redis, compactor: Compactor, thread_ids: list[str]
) -> list[list[str]]:
    """The Message-IDs applied to each thread (one round trip; packed threads decoded)."""
    pipe = client.pipeline(transaction=False)
    for thread_id in thread_ids:
        pipe.smembers(keys.thread_applied(thread_id))
    found = pipe.execute() if thread_ids else []
    result = []
    for thread_id, members in zip(thread_ids, found, strict=True):
        if not members:
            packed = compactor.peek(thread_id)
            members = (packed or {}).get("applied") or []
        result.append(sorted(as_text(m) for m in members))
    return result


def _up(email: ParsedEmail) -> list[str]:
    """The ids an email answers, nearest first (In-Reply-To, then References newest first)."""
    parents = [email.in_reply_to] if email.in_reply_to else []
    return parents + [ref for ref in reversed(email.references) if ref not in parents]


def backlog_emails(payloads: list[str]) -> list[EmailPayload]:
    """The emails of a backlog item, as the worker's payloads."""
    return [EmailPayload.model_validate_json(p) for p in payloads]


def _turn_tokens(payloads: list[str], spec: RunSpec) -> int:
    turn = user_turn(backlog_emails(payloads), spec.settings.max_turn_chars)
    return turn_bytes(turn) // 4
