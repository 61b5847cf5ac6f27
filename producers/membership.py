"""Who takes part in a thread, and who may join one by citing it (pure).

A reply joins the thread its In-Reply-To / References name only when its sender already takes
part in that thread. Without this rule anyone who has seen (or guessed) a customer's Message-ID
could join the customer's thread, become its customer, and be asked questions about the
customer's data ("thread hijack"); a refused email starts a thread of its own instead, and its
events say `thread_join_refused`.

The participants of a thread are, for every email accepted into it, its From and the address a
question about it would go to (`common.recipient.choose_recipient`: From, a same-domain Reply-To,
or the customer behind a form relay), so the customer's answer to our question always joins;
and the registrable domains of both, except shared providers (two gmail.com mailboxes are two
people). With `TRIAGE_THREAD_JOIN_SAME_DOMAIN` (off by default: the shared-provider list is
short) a sender of a participant's domain may join too: a colleague taking the conversation
over. A contact form's mail counts as its customer's (Reply-To): the form's own address takes
part in no thread, or anyone forging it could join every form thread. Members are stored as
digests (`a:` address, `d:` domain), never as addresses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from common.recipient import (
    REPLY_TO_FORM_RELAY,
    SHARED_PROVIDERS,
    choose_recipient,
    registrable_domain,
    valid_address,
)
from common.settings import Settings


def sender_digest(sender: str) -> str:
    """Senders are compared lower-cased and stored as a short digest (no address in the key)."""
    return hashlib.sha256(sender.strip().lower().encode()).hexdigest()[:16]


def address_member(address: str) -> str:
    """The member an address takes part as (syntax normalised first when it is valid)."""
    return "a:" + sender_digest(valid_address(address) or address)


def domain_member(address: str | None) -> str | None:
    """The member an address's registrable domain takes part as; None for an invalid address or
    a shared mail provider's domain."""
    valid = valid_address(address)
    if valid is None:
        return None
    domain = registrable_domain(valid.rpartition("@")[2])
    return None if domain in SHARED_PROVIDERS else "d:" + sender_digest(domain)


@dataclass(frozen=True)
class Membership:
    """An email's claims to take part in a thread it cites, and what it adds once accepted."""

    #: The sender's address member; "" when it may join nothing (a contact form's own address).
    address: str
    #: The sender's domain member, or "" when same-domain joining is off or does not apply.
    domain: str
    #: Where a question about it would go, as a member, when that is not the sender ("" else):
    #: it must take part too, or a forged From with a Reply-To of the forger's would join and
    #: have the next question sent to the forger.
    recipient: str
    #: The recipient's domain member when same-domain joining is on ("" else).
    recipient_domain: str
    #: The address a question would go to, lower-case ("" when none): a thread from before
    #: participants were recorded (or whose participants expired) admits only its customer.
    customer: str
    #: Members an accepted email adds to its thread.
    members: tuple[str, ...]

    def may_join(self, participants: str | None, customer: str | None) -> bool:
        """The submit script's rule (`producers/scripts/submit.lua`), for the dry run and
        reprocessing: `participants` is the thread's value (None: it has none), `customer`
        its meta's customer."""
        if participants is None:
            return bool(customer) and str(customer).lower() == self.customer
        listed = set(participants.split())

        def takes_part(address: str, domain: str) -> bool:
            return bool(address and address in listed) or bool(domain and domain in listed)

        return takes_part(self.address, self.domain) and (
            not self.recipient or takes_part(self.recipient, self.recipient_domain)
        )


def membership(from_addr: str, reply_to: str | None, settings: Settings) -> Membership:
    """The claims and members of an email from `from_addr` (with `reply_to`).

    A contact form's mail is its customer's (in Reply-To): the customer takes part, never the
    form's own address, which every form thread would otherwise share (anyone forging it could
    join any of them); a form's mail without a valid Reply-To takes part in nothing."""
    recipient = choose_recipient(
        from_addr, reply_to, settings.form_relay_senders, [settings.support_address]
    )
    relays = {a.lower() for a in map(valid_address, settings.form_relay_senders) if a}
    if recipient.reason == REPLY_TO_FORM_RELAY and recipient.address:
        sender = recipient.address
    elif (valid_address(from_addr) or "").lower() in relays:
        return Membership("", "", "", "", "", ())
    else:
        sender = from_addr
    members = [address_member(sender)]
    for address in (sender, recipient.address):
        if address is None:
            continue
        members.append(address_member(address))
        domain = domain_member(address)
        if domain is not None:
            members.append(domain)
    target = recipient.address
    elsewhere = target if target and address_member(target) != members[0] else None

    def domain_claim(address: str | None) -> str:
        joins = address is not None and settings.thread_join_same_domain
        return (domain_member(address) or "") if joins else ""

    return Membership(
        address=members[0],
        domain=domain_claim(sender),
        recipient=address_member(elsewhere) if elsewhere else "",
        recipient_domain=domain_claim(elsewhere),
        customer=(target or "").lower(),
        members=tuple(dict.fromkeys(members)),
    )


__all__ = ["Membership", "address_member", "domain_member", "membership", "sender_digest"]
