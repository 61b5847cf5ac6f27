"""The deterministic "model": clarify a vague request, classify a clear one.

Rules, in order:

1. Read the text of every *user* turn (string content or text blocks). Assistant turns are ignored
   (they are our own questions), and so is `system`: prompts usually list every category's
   keywords, which would drown the customer's words.
2. Count keyword hits per topic, case-insensitive, on word boundaries. Tables cover English plus
   some German, French and Spanish. Vague words ("thing", "working", "help", "issue", "problem")
   are deliberately not keywords. A custom label from the schema's category enum (e.g. REFUNDS)
   also scores when the user writes that word ("refunds"; ACCOUNT_ACCESS: "account access").
   Only an enum property named like a category (category, label, topic, ...) offers labels
   when the schema has one; priority, sentiment and extra-field enums never do.
3. The highest count wins; on a tie, a label the schema's enum offers beats one it does not, then
   the first topic in TOPIC_ORDER, then custom labels in schema order.
4. No hit: clarify with CLARIFY_QUESTION (in the customer's language, see 6), unless the output
   schema only allows classifying, in which case classify as OTHER with confidence 0.3.
5. A hit: classify; confidence 0.9 for one topic, lower when several topics were seen; the reason
   names the keywords seen.
6. Whatever the action, `emulator.traits` reads the language (en/de/fr/es keyword tables, `und`
   when none matches), the sentiment and the priority, and writes a one-sentence summary. The
   clarifying question is asked in the customer's language for de, fr and es (English otherwise).

Seed conversation: "Hi, my thing isn't working. Can you help?" -> clarify; adding "Sorry, I mean I
was charged twice for my subscription this month." -> BILLING (charged, subscription).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from emulator import traits

CLARIFY_QUESTION = traits.CLARIFY_QUESTIONS["en"]
FALLBACK_CONFIDENCE = 0.3
SINGLE_TOPIC_CONFIDENCE = 0.9

TOPIC_ORDER: tuple[str, ...] = ("BILLING", "SHIPPING", "TECHNICAL")
KEYWORDS: dict[str, tuple[str, ...]] = {
    "BILLING": (
        # English
        "charged",
        "charge",
        "charges",
        "overcharged",
        "invoice",
        "invoices",
        "refund",
        "refunds",
        "refunded",
        "payment",
        "payments",
        "paid",
        "pay",
        "subscription",
        "subscriptions",
        "billed",
        "billing",
        "bill",
        "price",
        "pricing",
        "receipt",
        "credit card",
        "debit card",
        "card declined",
        "fee",
        "fees",
        "money back",
        "cancel my subscription",
        "renewal",
        "discount",
        "coupon",
        # German
        "rechnung",
        "zahlung",
        "abbuchung",
        "abgebucht",
        "erstattung",
        "rückerstattung",
        "abonnement",
        "abo",
        "kreditkarte",
        "bezahlt",
        "gebühr",
        "preis",
        # French
        "facture",
        "paiement",
        "remboursement",
        "abonnement",
        "prélèvement",
        "carte bancaire",
        "facturé",
        "débité",
        "prix",
        # Spanish
        "factura",
        "pago",
        "reembolso",
        "suscripción",
        "cobro",
        "cobrado",
        "cobraron",
        "tarjeta de crédito",
        "precio",
    ),
    "SHIPPING": (
        # English
        "delivery",
        "deliver",
        "delivered",
        "shipped",
        "shipping",
        "shipment",
        "ship",
        "package",
        "parcel",
        "tracking",
        "tracking number",
        "courier",
        "arrived",
        "arrive",
        "hasn't arrived",
        "hasn\u2019t arrived",
        "not arrived",
        "never arrived",
        "dispatch",
        "dispatched",
        "postage",
        "lost in the mail",
        "carrier",
        "out for delivery",
        # German
        "lieferung",
        "geliefert",
        "versand",
        "versendet",
        "paket",
        "sendung",
        "zustellung",
        "angekommen",
        "sendungsverfolgung",
        # French
        "livraison",
        "livré",
        "colis",
        "expédition",
        "expédié",
        "suivi",
        "transporteur",
        "arrivé",
        # Spanish
        "entrega",
        "envío",
        "enviado",
        "paquete",
        "pedido no ha llegado",
        "llegado",
        "seguimiento",
        "mensajero",
    ),
    "TECHNICAL": (
        # English
        "error",
        "errors",
        "error message",
        "crash",
        "crashes",
        "crashed",
        "crashing",
        "bug",
        "bugs",
        "login",
        "log in",
        "logged out",
        "sign in",
        "password",
        "app",
        "install",
        "installed",
        "installation",
        "website",
        "upload",
        "download",
        "freezes",
        "frozen",
        "timeout",
        "server",
        "browser",
        "reset link",
        "2fa",
        "two-factor",
        # German
        "fehler",
        "fehlermeldung",
        "absturz",
        "abgestürzt",
        "anmelden",
        "anmeldung",
        "passwort",
        "installieren",
        "webseite",
        "hochladen",
        # French
        "erreur",
        "plantage",
        "plante",
        "connexion",
        "mot de passe",
        "installer",
        "site web",
        "télécharger",
        # Spanish
        "fallo",
        "contraseña",
        "iniciar sesión",
        "instalar",
        "sitio web",
        "aplicación",
        "se bloquea",
    ),
}
NOT_KEYWORDS = frozenset({"thing", "working", "help", "issue", "problem"})


def _pattern(words: Iterable[str]) -> re.Pattern[str]:
    ordered = sorted(set(words), key=len, reverse=True)  # longest phrase wins at a position
    alternatives = "|".join(re.escape(word) for word in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


_TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {
    topic: _pattern(words) for topic, words in KEYWORDS.items()
}


@dataclass(frozen=True)
class Decision:
    """What the model decided: `category` is a topic/custom label, or None when unknown."""

    action: str  # "clarify" | "classify"
    category: str | None
    confidence: float
    reason: str
    question: str
    priority: str = "normal"  # urgent | high | normal | low
    language: str = traits.UNDETERMINED  # BCP 47
    sentiment: str = "neutral"  # negative | neutral | positive
    summary: str = ""

    @property
    def is_clarify(self) -> bool:
        return self.action == "clarify"


def user_text(messages: Sequence[Any]) -> str:
    """Concatenate the text of every user turn, in order."""
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                block["text"]
                for block in content
                if isinstance(block, dict) and isinstance(block.get("text"), str)
            )
    return "\n".join(parts)


def score_topics(text: str, custom_labels: Sequence[str] = ()) -> dict[str, list[str]]:
    """Keyword hits per topic (only topics with hits), in tie-break order."""
    hits: dict[str, list[str]] = {}
    for topic in TOPIC_ORDER:
        found = [match.group(0).lower() for match in _TOPIC_PATTERNS[topic].finditer(text)]
        if found:
            hits[topic] = found
    for label in custom_labels:
        if label.upper() in hits or label.upper() in TOPIC_ORDER or label.lower() in NOT_KEYWORDS:
            continue
        spoken = label.replace("_", " ")  # ACCOUNT_ACCESS also scores for "account access"
        found = [m.group(0).lower() for m in _pattern([label, spoken]).finditer(text)]
        if found:
            hits[label] = found
    return hits


def _unique(words: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(words))


def decide(text: str, *, custom_labels: Sequence[str] = (), can_clarify: bool = True) -> Decision:
    """Clarify or classify `text` (the user turns), deterministically."""
    hits = score_topics(text, custom_labels)
    decision = _topic_decision(hits, custom_labels, can_clarify)
    language = traits.detect_language(text)
    sentiment = traits.detect_sentiment(text)
    words = hits.get(decision.category or "", [])
    return replace(
        decision,
        question=traits.clarify_question(language) if decision.is_clarify else "",
        priority=traits.detect_priority(text, sentiment),
        language=language,
        sentiment=sentiment,
        summary=traits.summary(text, language, decision.category, words),
    )


def _topic_decision(
    hits: dict[str, list[str]], custom_labels: Sequence[str], can_clarify: bool
) -> Decision:
    if not hits:
        if can_clarify:
            return Decision(
                "clarify",
                None,
                FALLBACK_CONFIDENCE,
                "No topic keywords found; the request is too vague to classify.",
                CLARIFY_QUESTION,
            )
        return Decision(
            "classify",
            None,
            FALLBACK_CONFIDENCE,
            "No topic keywords found; defaulting to the fallback category.",
            "",
        )
    order = list(hits)
    offered = {label.upper() for label in custom_labels}

    def rank(topic: str) -> tuple[int, bool, int]:
        # more hits first; on a tie, a label the schema offers beats one it does not
        return len(hits[topic]), not offered or topic.upper() in offered, -order.index(topic)

    best = max(order, key=rank)
    total = sum(len(found) for found in hits.values())
    share = len(hits[best]) / total
    confidence = SINGLE_TOPIC_CONFIDENCE if share == 1 else round(0.5 + 0.4 * share, 2)
    seen = ", ".join(_unique(hits[best]))
    reason = f"Mentions {best.lower()} keywords: {seen}."
    others = [topic for topic in order if topic != best]
    if others:
        reason += f" Also saw {', '.join(topic.lower() for topic in others)} keywords."
    return Decision("classify", best, confidence, reason, "")
