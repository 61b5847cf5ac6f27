"""What the "model" reads about the customer besides the topic: language, priority, sentiment.

All deterministic keyword tables, case-insensitive, on word boundaries (a typographic
apostrophe counts as `'`):

- Language: each word of the user text found in a language's table of common function words
  (en, de, fr, es) scores one, and so does each letter only that language uses (ä ö ü ß; à â ç è ê
  ë î ï ô ù û œ; ñ á í ó ú ¿ ¡); French elisions (j'ai, c'est, l'…) score for fr, English
  contractions (isn't, I'm, it's…) for en. Most points wins, ties in the order en, de, fr, es;
  no point at all is `und` (undetermined, BCP 47). Words two languages share (la, que, es, du…)
  are in neither table.
- Sentiment: negative and positive lexicons (with "not happy"-style phrases counted negative,
  and courtesy such as "thanks" counted as nothing); negative when it has at least as many hits
  as positive, positive when it has more, else neutral.
- Priority, first rule that applies: a "not urgent" phrase -> low; an urgent phrase ("urgent",
  "asap", "immediately", "locked out", "charged twice", …) -> urgent; a blocking phrase ("can't",
  "still", "not working", …) or a negative sentiment -> high; a low phrase ("question",
  "feedback", "no rush", …) -> low; otherwise normal.

The clarifying question is written in the detected language for de, fr and es, in English
otherwise; `summary` is one English sentence for the agent quoting the sentence that decided.

Most of the module's length is those word tables (one place to extend a language).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LANGUAGE_ORDER: tuple[str, ...] = ("en", "de", "fr", "es")
UNDETERMINED = "und"
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish"}


def _table(words: str) -> frozenset[str]:
    return frozenset(words.split())


FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _table(
        "the and is are were my i you your it to of this that have has not please can could "
        "would with for but hi hello thank thanks we our what why how did does do been any just "
        "still be at from they there sorry mean month twice again get got when where anyone "
        "yesterday today dear regards cheers"
    ),
    "de": _table(
        "der die das und ist ich nicht mein meine meinen meiner mit bitte danke hallo ein eine "
        "einen wurde wurden habe haben sie kann können auf für zu noch wir uns mir mich dem den "
        "von bei aber auch schon leider immer wieder keine kein warum wie wo ihr ihre ihnen sehr "
        "geehrte geehrter damen herren grüße gruß freundlichen guten tag zweimal monat diesen "
        "diese dieser seit heute jetzt nach ob oder funktioniert geht"
    ),
    "fr": _table(
        "le les et est je ne pas mon ma avec merci bonjour une pour vous votre vos nous "
        "notre qui mais sur dans au aux il elle avez suis été toujours encore depuis pourquoi "
        "comment où très cordialement madame monsieur fois mois ce cette sont ont fait rien "
        "chose marche fonctionne"
    ),
    "es": _table(
        "el los las y mi mis con gracias hola una por para usted pero está estoy han muy qué "
        "cómo dónde del al lo su sus nuestro hace todavía aún desde porque cuando ya buenos "
        "días saludos atentamente señor señora pedido dos veces este esta esto tengo tiene "
        "puedo funciona nada cosa ayuda ayudar"
    ),
}
LANGUAGE_LETTERS: dict[str, str] = {"de": "äöüß", "fr": "àâçèêëîïôùûœ", "es": "ñáíóú¿¡"}
FRENCH_ELISIONS = frozenset({"j", "l", "d", "n", "c", "qu", "s", "m", "t"})
ENGLISH_CONTRACTIONS = frozenset({"t", "s", "m", "re", "ve", "ll", "d"})

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").lower()


def detect_language(text: str) -> str:
    """BCP 47 code of the text's language: en, de, fr, es, or `und` when nothing matches."""
    lowered = _normalise(text)
    points = dict.fromkeys(LANGUAGE_ORDER, 0)
    for word in _WORD.findall(lowered):
        head, apostrophe, tail = word.partition("'")
        if apostrophe:
            if head in FRENCH_ELISIONS:
                points["fr"] += 1
            elif tail in ENGLISH_CONTRACTIONS:
                points["en"] += 1
            continue
        for language in LANGUAGE_ORDER:
            if word in FUNCTION_WORDS[language]:
                points[language] += 1
    for language, letters in LANGUAGE_LETTERS.items():
        points[language] += sum(lowered.count(letter) for letter in letters)
    best = max(LANGUAGE_ORDER, key=lambda language: points[language])  # first on a tie
    return best if points[best] > 0 else UNDETERMINED


CLARIFY_QUESTIONS: dict[str, str] = {
    "en": (
        "Could you tell me a bit more about what is going wrong — is it about a payment, "
        "a delivery, or a technical problem with our product?"
    ),
    "de": (
        "Könnten Sie uns bitte etwas genauer beschreiben, worum es geht \u2013 um eine Zahlung, "
        "eine Lieferung oder ein technisches Problem mit unserem Produkt?"
    ),
    "fr": (
        "Pourriez-vous nous en dire un peu plus sur ce qui ne va pas : s'agit-il d'un paiement, "
        "d'une livraison ou d'un problème technique avec notre produit ?"
    ),
    "es": (
        "¿Podría contarnos un poco más sobre lo que ocurre: se trata de un pago, de una entrega "
        "o de un problema técnico con nuestro producto?"
    ),
}


def clarify_question(language: str) -> str:
    """The clarifying question in `language` (de, fr, es), English for anything else."""
    return CLARIFY_QUESTIONS.get(language, CLARIFY_QUESTIONS["en"])


PRIORITY_PHRASES: dict[str, tuple[str, ...]] = {
    "not_urgent": (
        "not urgent",
        "no rush",
        "no hurry",
        "whenever you can",
        "whenever you have time",
        "nicht dringend",
        "keine eile",
        "pas urgent",
        "rien d'urgent",
        "pas pressé",
        "no es urgente",
        "sin prisa",
    ),
    "urgent": (
        # English
        "urgent",
        "urgently",
        "asap",
        "as soon as possible",
        "immediately",
        "right away",
        "emergency",
        "critical",
        "locked out",
        "hacked",
        "fraud",
        "fraudulent",
        "charged twice",
        "double charged",
        # German
        "dringend",
        "sofort",
        "umgehend",
        "notfall",
        "ausgesperrt",
        "gehackt",
        "betrug",
        "so schnell wie möglich",
        "zweimal abgebucht",
        # French
        "urgente",
        "urgence",
        "immédiatement",
        "tout de suite",
        "au plus vite",
        "dès que possible",
        "compte bloqué",
        "piraté",
        "fraude",
        "débité deux fois",
        # Spanish
        "urgentemente",
        "urgencia",
        "inmediatamente",
        "de inmediato",
        "cuanto antes",
        "lo antes posible",
        "cuenta bloqueada",
        "hackeado",
        "hackeada",
        "cobraron dos veces",
    ),
    "high": (
        # English
        "can't",
        "cannot",
        "can not",
        "unable",
        "blocked",
        "stuck",
        "still",
        "not working",
        "isn't working",
        "doesn't work",
        "broken",
        "no response",
        # German
        "kann nicht",
        "funktioniert nicht",
        "geht nicht",
        "immer noch",
        "schon wieder",
        "blockiert",
        # French
        "ne peux pas",
        "impossible",
        "ne fonctionne pas",
        "ne marche pas",
        "toujours pas",
        "encore une fois",
        "bloqué",
        "bloquée",
        # Spanish
        "no puedo",
        "no funciona",
        "sigue sin",
        "otra vez",
        "de nuevo",
        "imposible",
        "bloqueado",
        "bloqueada",
    ),
    "low": (
        "question",
        "just wondering",
        "wondering",
        "curious",
        "feedback",
        "suggestion",
        "fyi",
        "frage",
        "vorschlag",
        "anregung",
        "remarque",
        "pregunta",
        "sugerencia",
        "curiosidad",
    ),
}
SENTIMENT_PHRASES: dict[str, tuple[str, ...]] = {
    "negative": (
        # English
        "angry",
        "annoyed",
        "annoying",
        "frustrated",
        "frustrating",
        "disappointed",
        "disappointing",
        "terrible",
        "awful",
        "horrible",
        "worst",
        "unacceptable",
        "ridiculous",
        "furious",
        "upset",
        "useless",
        "scam",
        "rip-off",
        "hate",
        "fed up",
        "unhappy",
        "not happy",
        "not satisfied",
        "complaint",
        "outraged",
        "disgusted",
        # German
        "verärgert",
        "ärgerlich",
        "enttäuscht",
        "enttäuschend",
        "schrecklich",
        "furchtbar",
        "frustriert",
        "inakzeptabel",
        "unverschämt",
        "katastrophe",
        "wütend",
        "unzufrieden",
        "nicht zufrieden",
        "beschwerde",
        # French
        "déçu",
        "déçue",
        "furieux",
        "furieuse",
        "inacceptable",
        "énervé",
        "énervée",
        "mécontent",
        "mécontente",
        "scandaleux",
        "inadmissible",
        "pas content",
        "pas satisfait",
        "plainte",
        "honteux",
        # Spanish
        "enfadado",
        "enfadada",
        "molesto",
        "molesta",
        "decepcionado",
        "decepcionada",
        "inaceptable",
        "harto",
        "harta",
        "indignado",
        "indignada",
        "vergüenza",
        "furioso",
        "furiosa",
        "queja",
        "no estoy contento",
        "no estoy contenta",
    ),
    "positive": (
        # English
        "great",
        "love",
        "happy",
        "excellent",
        "appreciate",
        "wonderful",
        "awesome",
        "pleased",
        "perfect",
        "fantastic",
        "amazing",
        "delighted",
        # German
        "super",
        "toll",
        "zufrieden",
        "großartig",
        "prima",
        "hervorragend",
        "begeistert",
        # French
        "génial",
        "ravi",
        "ravie",
        "parfait",
        "formidable",
        "contente",
        # Spanish
        "genial",
        "encantado",
        "encantada",
        "perfecto",
        "excelente",
        "estupendo",
        "contento",
        "contenta",
    ),
}


def _tagged_pattern(table: dict[str, tuple[str, ...]]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One pattern over every phrase (longest first, so "not happy" beats "happy")."""
    tag_of: dict[str, str] = {}
    for tag, phrases in table.items():
        for phrase in phrases:
            tag_of.setdefault(phrase, tag)
    ordered = sorted(tag_of, key=len, reverse=True)
    alternatives = "|".join(re.escape(phrase) for phrase in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)"), tag_of


_PRIORITY_PATTERN, _PRIORITY_TAG = _tagged_pattern(PRIORITY_PHRASES)
_SENTIMENT_PATTERN, _SENTIMENT_TAG = _tagged_pattern(SENTIMENT_PHRASES)


def _tags(pattern: re.Pattern[str], tag_of: dict[str, str], text: str) -> list[str]:
    return [tag_of[match.group(0)] for match in pattern.finditer(_normalise(text))]


def detect_sentiment(text: str) -> str:
    """negative, neutral or positive, from the lexicons."""
    tags = _tags(_SENTIMENT_PATTERN, _SENTIMENT_TAG, text)
    negative, positive = tags.count("negative"), tags.count("positive")
    if negative and negative >= positive:
        return "negative"
    return "positive" if positive > negative else "neutral"


def detect_priority(text: str, sentiment: str = "neutral") -> str:
    """urgent, high, normal or low, by the first rule that applies (see the module docstring)."""
    tags = set(_tags(_PRIORITY_PATTERN, _PRIORITY_TAG, text))
    if "not_urgent" in tags:
        return "low"
    if "urgent" in tags:
        return "urgent"
    if "high" in tags or sentiment == "negative":
        return "high"
    return "low" if "low" in tags else "normal"


SUMMARY_EXCERPT_CHARS = 120
TOPIC_PHRASES = {"TECHNICAL": "a technical problem"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_SUBJECT = re.compile(r"^\s*subject:\s*", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    """The text's sentences and lines, whitespace collapsed, `Subject:` labels dropped."""
    found = (" ".join(_SUBJECT.sub("", part).split()) for part in _SENTENCE_END.split(text))
    return [sentence for sentence in found if sentence]


def excerpt(text: str, words: Iterable[str] = ()) -> str:
    """The first sentence holding one of `words`, else the first of three words or more."""
    candidates = sentences(text)
    if not candidates:
        return ""
    lowered = [_normalise(word) for word in words]
    chosen = next(
        (s for s in candidates if any(w and w in _normalise(s) for w in lowered)),
        next((s for s in candidates if len(s.split()) >= 3), candidates[0]),
    )
    chosen = chosen.replace('"', "'")
    if len(chosen) > SUMMARY_EXCERPT_CHARS:
        chosen = chosen[: SUMMARY_EXCERPT_CHARS - 1].rstrip() + "…"
    return chosen


def summary(text: str, language: str, topic: str | None, words: Iterable[str] = ()) -> str:
    """One English sentence for the agent: who writes, about what, quoting the deciding line."""
    opening = "Customer writes"
    if language in LANGUAGE_NAMES:
        opening += f" in {LANGUAGE_NAMES[language]}"
    if topic is None:
        opening += " without saying what the problem is"
    else:
        opening += " about " + TOPIC_PHRASES.get(topic.upper(), topic.lower().replace("_", " "))
    quoted = excerpt(text, words)
    return f'{opening}: "{quoted}"' if quoted else f"{opening}."
