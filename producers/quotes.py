"""Quoted history, signatures and list footers out of a reply, every line the customer wrote kept.

A line scanner written for untrusted input, in linear time: a line longer than `MAX_MARKER_LINE`
is never a marker, an attribution is joined over at most `ATTRIBUTION_LINES` lines, and no
pattern can backtrack beyond that window (the reply-parsing libraries on PyPI are quadratic on a
long "On ..." line). What it recognises:

- `>` quoted lines are dropped wherever they are; text between and after them (inline and
  bottom-posted answers) is kept. Two exceptions, both only before any attribution or dropped
  quote: a block of single "> " lines introduced by the customer's line ending with a colon
  ("but:", "Steps:") and followed by more of their text is their own bullets or steps, kept;
  a first quote that opens with a forward marker (Apple Mail's "> Begin forwarded message:") is
  the forwarded email, kept without its `>`.
- Attributions ("On ... wrote:", date-first "2015-01-05 10:00 GMT+01:00 Name <a@b>:", "wrote"
  without a colon, on the same line as the reply) in English, German, French, Spanish,
  Portuguese, Italian, Dutch, Polish, Czech, Danish, Norwegian, Swedish, Finnish, Hungarian,
  Russian, Ukrainian, Turkish, Vietnamese, Chinese and Japanese. Followed by `>` lines, only the
  attribution is dropped; followed by unquoted text, that text is quoted history and is cut, but
  only when the attribution names an address or a time ("On 2 March, your colleague Tom wrote:"
  followed by the customer's text is their sentence, kept). A separator line right above an
  attribution goes with it.
- Separators ("-----Original Message-----", "-----Reply Message-----", "-----Oprindelig
  meddelelse-----", ...) and mail clients' header blocks (From/Sent/To/Subject and the localised
  Fra/Sendt/Til/Emne, Från/Skickat, От/Отправлено, ..., also opened by the Sent field as GMX's
  "Gesendet:"; a rule above one, "* * *" for an HTML <hr>, goes too): everything after them is
  cut.
- Signatures ("-- "), mobile footers ("Sent from my iPhone") and mailing-list footers (Mailman,
  Google Groups) are dropped up to the next quoted block.

Nothing is cut before the customer has said something: a header block or separator at the very
top is a pasted or forwarded email, which is new to the thread and kept. A forwarded message
marker ("---------- Forwarded message ---------") keeps everything after it as well.
"""

from __future__ import annotations

import re

#: Lines longer than this are never attribution lines, separators or signatures.
MAX_MARKER_LINE = 400
#: How many lines an attribution ("On …, X <x@y> wrote:") may be wrapped over.
ATTRIBUTION_LINES = 3
#: Mobile footers ("Sent from my iPhone") are short.
MOBILE_FOOTER_LINE = 80
#: How many lines of a client's header block are looked at for a second header field.
HEADER_BLOCK_LINES = 6

_I = re.IGNORECASE

_VERB = re.compile(
    r"(?:\bwrote|\bwrites|\bsent(?=\s*[:：]?\s*$)|\bschrieb|\bgeschrieben|\ba\s+[ée]crit|\bescribi[óo]"
    r"|\bescreveu|\bha\s+scritto|\bscrisse|\bschreef|\bgeschreven|\bnapisa[łl](?:a|\(a\))?"
    r"|\bnapsal(?:a|\(a\))?|\bskrev|\bskriver|\bkirjoitti|\bírta|\bнаписал(?:а|\(а\))?"
    r"|\bписал|\bнаписав(?:ла)?|\byazdı|đã\s+viết|\bviết|写道|寫道|のメッセージ|\bkirjutas"
    r"|\brašė|\bnapísal(?:a|\(a\))?|\bpisze|\bпише|\bпишет)",
    _I,
)
_VERB_LOWER = re.compile(_VERB.pattern)
#: Literal stems of `_VERB`: a cheap substring test before the regular expression runs.
_VERB_STEMS = (
    "wrote",
    "writes",
    "sent",
    "schrieb",
    "geschrieben",
    "crit",
    "escribi",
    "escreveu",
    "scritto",
    "scrisse",
    "schreef",
    "geschreven",
    "napisa",
    "napsal",
    "skrev",
    "skriver",
    "kirjoitti",
    "írta",
    "написа",
    "писал",
    "yazdı",
    "viết",
    "写道",
    "寫道",
    "のメッセージ",
    "kirjutas",
    "rašė",
    "napísal",
    "pisze",
    "пише",
)


def _find_verb(text: str) -> re.Match[str] | None:
    """The verb of an attribution in `text`, matched on the lower-cased text (much faster than
    a case-insensitive pattern; a position may shift by a character for a few letters)."""
    lower = text.lower()
    if not any(stem in lower for stem in _VERB_STEMS):
        return None
    return _VERB_LOWER.search(lower)


#: Words that start an attribution in one language or another ("On", "Am", "Le", "W dniu", ...).
_STARTER = re.compile(
    r"(?:^|(?<=[\s\-]))(?:On|Am|Le|El|Il giorno|Il|Op|Em|Den|På|W dniu|Dnia|Dne|Vào|В|Пн|Вт|Ср"
    r"|Чт|Пт|Сб|Вс)\s",
)
_EMAIL = re.compile(r"[^\s<>()\[\]@]{1,64}@[^\s<>()\[\]@]{1,255}")
_DIGIT = re.compile(r"\d")
_DATE_FIRST = re.compile(
    r"^(?:\d|\w{1,4}\.?,\s|(?:mon|tue|wed|thu|fri|sat|sun|ma|ti|on|to|fr|lø|sø|må|ons|tor|fre|lör"
    r"|sön|ma|di|wo|do|vr|za|zo|lun|mar|mer|jeu|ven|sam|dim|пн|вт|ср|чт|пт|сб|вс)\b)",
    _I,
)

_SEPARATOR = re.compile(
    r"^[-=_*\s]{2,}\s*(?:Original Message|Reply Message|Original|Ursprüngliche Nachricht"
    r"|Antwort Nachricht|Originalnachricht|Oprindelig meddelelse|Opprinnelig melding"
    r"|Ursprungligt meddelande|Alkuperäinen viesti|Oryginalna wiadomość|Wiadomość oryginalna"
    r"|Původní zpráva|Pôvodná správa|Eredeti üzenet|Исходное сообщение|Оригинальное сообщение"
    r"|Вихідне повідомлення|Messaggio originale|Message d'origine|Mensaje original"
    r"|Mensagem original|Oorspronkelijk bericht|Origineel bericht|Orijinal Mesaj|Thư gốc"
    r"|Tin nhắn gốc|原始邮件|原始郵件|元のメッセージ)\s*[-=_*\s]{2,}$",
    _I,
)
#: A horizontal rule; "* * *" is an HTML <hr> as html2text writes it.
_RULE = re.compile(r"^(?:_{10,}|-{10,}|—{5,}|\*(?: \*){2,})$")

_FROM_KEYS = (
    r"From|Von|De|Da|Van|Fra|Från|Frá|Od|Feladó|Lähettäjä|От|Від|Kimden|Từ|发件人|寄件者|差出人"
    r"|Afzender|Remitente|Expéditeur|Mittente|Nadawca|Odesílatel|Avsändare|Avsender|Afsender"
)
_OTHER_KEYS = (
    r"Sent|Date|Gesendet|Datum|Envoyé|Enviado|Enviada em|Inviato|Data|Verzonden|Sendt|Skickat"
    r"|Wysłano|Wysłane|Odesláno|Elküldve|Lähetetty|Отправлено|Дата|Надіслано|Gönderildi|Tarih"
    r"|Đã gửi|Ngày|发送时间|日期|送信日時|日時"
    r"|To|An|À|A|Para|Aan|Til|Till|Do|Címzett|Vastaanottaja|Кому|Komu|Kime|Đến|收件人|宛先"
    r"|Subject|Betreff|Objet|Asunto|Assunto|Oggetto|Onderwerp|Emne|Ämne|Temat|Předmět|Tárgy"
    r"|Aihe|Тема|Konu|Chủ đề|主题|主旨|件名"
    r"|Cc|Kopie|Copie|Kopia|Kopio|Копия|Reply-To|Antwort an|Répondre à|Responder a"
)
_HEADER_KEY = re.compile(
    rf"^[\s>]*\*{{0,2}}(?P<key>{_FROM_KEYS}|{_OTHER_KEYS})\s?\*{{0,2}}\s?[:：]", _I
)
#: Words for "Sent" that may open a header block (GMX: "Gesendet:" above "Von:").
_SENT_KEYS = (
    r"Date|Sent|Gesendet|Envoyé|Enviado|Inviato|Verzonden|Sendt|Skickat|Wysłano|Wysłane"
    r"|Odesláno|Elküldve|Lähetetty|Отправлено|Надіслано|Gönderildi|Đã gửi|发送时间|送信日時"
)
_HEADER_FROM = re.compile(rf"^[\s>]*\*{{0,2}}(?:{_FROM_KEYS}|{_SENT_KEYS})\s?\*{{0,2}}\s?[:：]", _I)
_SUBJECT_KEY = re.compile(
    r"^[\s>]*\*{0,2}(?:Subject|Betreff|Objet|Asunto|Assunto|Oggetto|Onderwerp|Emne|Ämne|Temat"
    r"|Předmět|Tárgy|Aihe|Тема|Konu|Chủ đề|主题|主旨|件名)\s?\*{0,2}\s?[:：]\s*\*{0,2}\s*"
    r"(?P<v>.*)$",
    _I,
)
_FROM_ONLY = re.compile(rf"^[\s>]*\*{{0,2}}(?:{_FROM_KEYS})\s?\*{{0,2}}\s?[:：]", _I)
#: A single-line header block ("Date: ... From: ... To: ... Subject: ...").
_INLINE_KEYS = re.compile(r"\b(?:From|To|Subject|Sent|Date|Cc)\s?:", _I)
_FORWARD_PREFIX = re.compile(r"^(?:fwd?|wg|tr|rv|vb|vl|enc|i|pd|doorst|továbbítás)\s*[:：]", _I)

_FORWARDED = re.compile(
    r"^(?:[-=\s]{2,}\s*(?:Forwarded message|Forwarded Message|Weitergeleitete Nachricht"
    r"|Message transféré|Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht"
    r"|Videresendt meddelelse|Videresendt melding|Vidarebefordrat meddelande|Välitetty viesti"
    r"|Пересылаемое сообщение|Przekazana wiadomość|Přeposlaná zpráva|Továbbított üzenet"
    r"|Mensagem encaminhada|Tin nhắn được chuyển tiếp|转发的邮件|転送されたメッセージ)\s*[-=\s]{2,}"
    r"|(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|Début du message réexpédié"
    r"|Inicio del mensaje reenviado|Inizio messaggio inoltrato|Begin doorgestuurd bericht"
    r"|Início da mensagem reencaminhada)\s?:)$",
    _I,
)
_MOBILE_FOOTER = re.compile(
    r"^(?:Sent from (?:my )?|Sent with |Get |Von meinem |Envoyé de mon |Envoyé depuis |Enviado "
    r"desde mi |Enviado do meu |Inviato da(?:l mio)? |Verzonden (?:vanaf|met) (?:mijn )?"
    r"|Skickat från (?:min )?|Sendt fra (?:min )?|Wysłane z |Отправлено с |Lähetetty |Gửi từ )"
    r"[\w'’ .-]{2,40}$",
    _I,
)
_LIST_FOOTER = re.compile(
    r"(?:mailing list|listinfo|mailman|unsubscribe|abbestellen|désabonner|You received this "
    r"message because you are subscribed|To unsubscribe from this group)",
    _I,
)
_LIST_FOOTER_START = re.compile(
    r"^(?:You received this message because you are subscribed to|To unsubscribe from this "
    r"group and stop receiving emails from it)",
    _I,
)


def _ends_attribution(text: str) -> bool:
    """Does `text` end like an attribution (":", "wrote", "<address>", "(address)")?"""
    end = text.rstrip(" \t-")
    return end.endswith((":", "：", ">", ")")) or end[-5:].lower() == "wrote"


def _has_key(marker: str) -> bool:
    """Could this line be a header field ("From: …", "*Van:* …")? A cheap test first."""
    head = marker[:40]
    return ":" in head or "：" in head


def _marker(line: str) -> str:
    """The line stripped for marker tests, or "" when it is too long to be a marker."""
    return "" if len(line) > MAX_MARKER_LINE else line.strip()


def _quoted(line: str) -> bool:
    return line[:MAX_MARKER_LINE].lstrip().startswith(">")


def _is_attribution(text: str, first: str) -> int:
    """Where the attribution starts in `text` (joined lines), or -1 when it is none.

    With a verb ("wrote", "schrieb", "napisał", ...): the text ends like an attribution and names
    a date or an address. Without a verb (date-first Gmail forms, "Name <a@b>:"): it starts with
    a date or weekday and holds an address; the caller also wants `>` lines after it.
    """
    stripped = text.strip().strip("-").strip()
    if not stripped or not _ends_attribution(stripped):
        return -1
    has_verb = _find_verb(stripped) is not None
    if has_verb and (_DIGIT.search(stripped) or "@" in stripped):
        verb = _find_verb(text)
        assert verb is not None
        # the last starter before the verb opens the attribution ("Thanks! On Mon, ... wrote:")
        start = 0
        for starter in _STARTER.finditer(text, 0, verb.start()):
            start = starter.start()
        return start
    if not has_verb and _EMAIL.search(stripped) and _DATE_FIRST.match(first.strip()):
        return 0
    return -1


def _weak_attribution(text: str) -> bool:
    """A starter, a verb and a colon, but neither date nor address ("On Mon, Bob wrote:")."""
    text = text.strip()
    return bool(_STARTER.match(text) and _find_verb(text) and text.endswith((":", "：")))


def _attribution_at(lines: list[str], index: int) -> tuple[int, int, int] | None:
    """An attribution starting in `lines[index]`: (lines it spans, line and column it starts at).

    The longest span whose first line can start one is preferred; a prefix on the same line
    ("Thanks! On Mon, ... wrote:") is the customer's and is kept by the caller.
    """
    window: list[str] = []
    for offset in range(ATTRIBUTION_LINES):
        position = index + offset
        if position >= len(lines):
            break
        line = _marker(lines[position])
        if not line or _quoted(lines[position]):
            break
        window.append(line)
    for span in range(len(window), 0, -1):
        if not _ends_attribution(window[span - 1]):
            continue
        joined = " ".join(window[:span])
        start = _is_attribution(joined, window[0])
        if start < 0 and _weak_attribution(joined) and _quoted_after(lines, index + span):
            start = 0  # "On Monday, Support wrote:" with quoted lines after it
        if start < 0:
            continue
        verbless = _find_verb(joined) is None
        if verbless and not _quoted_after(lines, index + span):
            continue
        # which line the attribution starts in, and where
        consumed = 0
        for line_offset, line in enumerate(window[:span]):
            if start < consumed + len(line) + 1:
                column = start - consumed
                if line_offset > 0 or column > 0 or span == 1 or _can_start(window[0]):
                    return span, index + line_offset, column
                break
            consumed += len(line) + 1
    return None


def _can_start(line: str) -> bool:
    """Can an attribution wrapped over several lines start with this line?"""
    return bool(_STARTER.match(line) or _DATE_FIRST.match(line) or "<" in line or "@" in line)


def _quoted_after(lines: list[str], index: int) -> bool:
    """Is the next non-blank line from `index` a `>` quoted line?"""
    for line in lines[index : index + 4]:
        if line.strip():
            return _quoted(line)
    return False


def _header_block_at(lines: list[str], index: int) -> bool:
    """Does a mail client's header block (From: + Sent:/To:/Subject: …) start at `index`?"""
    first = _marker(lines[index])
    if not first or not _has_key(first) or not _HEADER_FROM.match(first):
        return False
    if len(_INLINE_KEYS.findall(first)) >= 3:
        return True
    found = 1
    for line in lines[index + 1 : index + HEADER_BLOCK_LINES]:
        marker = _marker(line)
        if not marker:
            break
        if _HEADER_KEY.match(marker):
            found += 1
            if found >= 2:
                return True
    return False


def _forwarded_block(lines: list[str], index: int) -> bool:
    """Is the header block at `index` a forwarded email (Subject: FW: ...)?"""
    for line in lines[index : index + HEADER_BLOCK_LINES + 2]:
        subject = _SUBJECT_KEY.match(_marker(line))
        if subject:
            return bool(_FORWARD_PREFIX.match(subject.group("v").strip()))
    return False


def _list_footer_at(lines: list[str], index: int) -> bool:
    line = _marker(lines[index])
    if not line:
        return False
    if _LIST_FOOTER_START.match(line):
        return True
    if _RULE.match(line) and line.startswith("_"):
        return any(_LIST_FOOTER.search(_marker(x)) for x in lines[index + 1 : index + 4])
    return False


def _quote_starts(lines: list[str], index: int) -> bool:
    """Does quoted history of any kind start at `index` (used to end a signature)?"""
    line = _marker(lines[index])
    if _quoted(lines[index]):
        return True
    if not line:
        return False
    return bool(
        _SEPARATOR.match(line)
        or _header_block_at(lines, index)
        or _attribution_at(lines, index) is not None
    )


def strip_quoted(text: str, *, forwarded: bool = False) -> str:
    """The customer's own lines of a reply; see the module docstring for what is removed.

    `forwarded` (the email's subject says Fwd:/FW:) keeps a header block after the customer's
    comment: it opens the forwarded email, which is new to the thread.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    said = False  # has the customer written anything yet?
    history = False  # has an attribution introduced quoted history?
    dropped = False  # has a `>` line with text been dropped?
    last_kept = -1  # the last non-blank line kept as the customer's text
    index = 0
    count = len(lines)
    while index < count:
        line = lines[index]
        marker = _marker(line)
        if _quoted(line):
            if not history and not dropped:
                if _FORWARDED.match(marker[1:].strip()):  # Apple Mail: "> Begin forwarded message:"
                    kept.extend(_unquoted(x) for x in lines[index:])
                    break
                end = _own_quote_block(lines, index, last_kept) if said else -1
                if end > index:  # the customer's own "> " bullets or steps
                    kept.extend(lines[index:end])
                    last_kept, index = end - 1, end
                    continue
            dropped = dropped or bool(marker[1:].strip())
            index += 1
            continue
        if marker:
            first = marker[0]
            if (first in "-=" or marker[-1] in ":：") and _FORWARDED.match(marker):
                kept.extend(lines[index:])
                break
            if marker == "--" or (first in "_YTyt" and _list_footer_at(lines, index)):
                index += 1
                while index < count and not _quote_starts(lines, index):
                    index += 1
                continue
            if len(marker) <= MOBILE_FOOTER_LINE and _MOBILE_FOOTER.match(marker):
                index += 1
                continue
            if _has_key(marker) and _header_block_at(lines, index):
                if not said:  # pasted or forwarded at the top: content, kept as it is
                    end = index
                    while end < count and lines[end].strip():
                        end += 1
                    kept.extend(lines[index:end])
                    said, index = True, end
                    continue
                if forwarded or _forwarded_block(lines, index):
                    kept.extend(lines[index:])
                break
            attribution = _attribution_at(lines, index)
            if attribution is not None:
                span, start_line, column = attribution
                quoted_after = _quoted_after(lines, index + span)
                # "On 2 March, your colleague Tom wrote:" and the customer's own text after it,
                # no `>` quote, no address, no time: the customer's sentence, kept below
                if (
                    quoted_after
                    or _names_address_or_time(lines, start_line, column, index + span)
                    or _next_text(lines, index + span) < 0
                ):
                    # a separator right above the attribution ("--- Original Message ---") goes
                    before = [
                        x for x in lines[index:start_line] if not _SEPARATOR.match(_marker(x))
                    ]
                    kept.extend(before)
                    prefix = lines[start_line][:column].rstrip(" -")
                    if prefix.strip():
                        kept.append(prefix)
                    said = said or any(x.strip() for x in before) or bool(prefix)
                    # quoted lines follow (they are dropped, what comes after them is kept), or
                    # nothing was written yet (what follows is not history): go on after it
                    if quoted_after or not said:
                        history, index = True, index + span
                        continue
                    break
            separator = first in "-=_* " and (
                _SEPARATOR.match(marker)
                or (_RULE.match(marker) and index + 1 < count and _header_soon(lines, index + 1))
            )
            if separator and said:
                break
        if not _link_tail(lines, index):
            kept.append(line)
            if not _blank(line):
                said, last_kept = True, index
        index += 1
    return "\n".join(kept)


def _blank(line: str) -> bool:
    return not line or line.isspace()


def _next_text(lines: list[str], index: int) -> int:
    """The first line from `index` that is not blank, or -1."""
    while index < len(lines):
        if not _blank(lines[index]):
            return index
        index += 1
    return -1


#: A time of day in an attribution ("10:00", "kl. 10.00", "10h30").
_TIME = re.compile(r"\d{1,2}[:.h]\d{2}")


def _names_address_or_time(lines: list[str], start_line: int, column: int, end: int) -> bool:
    """Does the attribution in `lines[start_line:end]` (from `column`) name an address or a time?

    A client's attribution does; a customer's own "On 2 March, your colleague Tom wrote:" does not.
    """
    text = " ".join(
        [_marker(lines[start_line])[column:], *map(_marker, lines[start_line + 1 : end])]
    )
    return "@" in text or _TIME.search(text) is not None


def _unquoted(line: str) -> str:
    """`line` without its first `>` and the space after it."""
    if not _quoted(line):
        return line
    rest = line.lstrip()[1:]
    return rest[1:] if rest.startswith(" ") else rest


def _own_quote_block(lines: list[str], index: int, last_kept: int) -> int:
    """Where the `>` block at `index` ends when it is the customer's own text, else -1.

    The caller knows the customer has written something and no attribution or dropped quote came
    before. The block is the customer's ("> " bullets or steps) when their own line introduces it
    (the last line above was kept as theirs and ends with a colon: "but:", "Steps:"), each of its
    lines is one "> " with text, and their own text follows it (not a signature, a footer or
    quoted history).
    """
    above = index - 1
    while above >= 0 and _blank(lines[above]):
        above -= 1
    if above < 0 or above != last_kept:
        return -1
    if not _marker(lines[above]).endswith((":", "：")):
        return -1
    end = index
    while end < len(lines) and _quoted(lines[end]):
        text = _marker(lines[end])[1:].strip()
        if not text or text.startswith(">"):
            return -1
        end += 1
    after = _next_text(lines, end)
    if after < 0 or _quoted(lines[after]):
        return -1
    marker = _marker(lines[after])
    if (
        not marker
        or marker == "--"
        or _FORWARDED.match(marker)
        or (len(marker) <= MOBILE_FOOTER_LINE and _MOBILE_FOOTER.match(marker))
        or _list_footer_at(lines, after)
        or _quote_starts(lines, after)
    ):
        return -1
    return end


def _link_tail(lines: list[str], index: int) -> bool:
    """The end of a link wrapped out of a quoted line ("(http://x/y) >", "_nonce=3d)")."""
    line = _marker(lines[index])
    if not line or index == 0 or not _quoted(lines[index - 1]):
        return False
    if line.endswith(">") and "://" in line and line.startswith("("):
        return True
    previous = lines[index - 1][:MAX_MARKER_LINE]
    opened = previous.rfind("(")
    return (
        opened > previous.rfind(")")
        and "://" in previous[opened:]
        and line.endswith(")")
        and " " not in line
    )


def _header_soon(lines: list[str], index: int) -> bool:
    """A header block within the next two non-blank lines (after a horizontal rule)."""
    seen = 0
    for position in range(index, min(index + 4, len(lines))):
        if not lines[position].strip():
            continue
        if _header_block_at(lines, position) or _FROM_ONLY.match(_marker(lines[position])):
            return True
        seen += 1
        if seen >= 2:
            break
    return False
