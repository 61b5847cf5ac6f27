"""Email headers read without the standard library's header parser, in bounded linear time.

The stdlib's modern (`policy.default`) header parser is super-linear on hostile input (a Subject
of 100,000 encoded words took 22 GB), its address parser recurses once per "(" (100,000 of them
overflow the stack) and it cuts Message-IDs at ":" or ",". So headers are split, unfolded and
decoded here: the header block is bounded before anything reads it, RFC 2047 encoded words are
decoded up to a limit per header, addresses are tokenised without recursion up to a limit per
header, and Message-IDs are kept as written. Every function is pure and never raises on content.
"""

from __future__ import annotations

import binascii
import hashlib
import re

from common.recipient import valid_address

#: Cut-off marker for a header value decoded only in part (too many encoded words).
ELLIPSIS = " […]"
#: Longest Message-ID kept as written (RFC 5322 lines are at most 998 characters).
MAX_MESSAGE_ID = 998
#: Comments nest deeper than this only in hostile headers.
MAX_COMMENT_DEPTH = 50
#: References kept: the first and the newest (RFC 5322 allows trimming the middle).
MAX_REFERENCES = 50

_BLANK_LINE = re.compile(rb"\n\r?\n")
#: One field and its continuation lines (each must start with white space: no backtracking).
_FIELD_LINE = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?\s]*)\?=")
_SPACE = re.compile(r"[ \t]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")
_FOLD = re.compile(r"\r?\n[ \t]*")
_MSGID = re.compile(r"<([^<>]{1,2000})>")
_PARAM_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|;|[^";]+', re.DOTALL)
_ADDR_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|\\.|[(),<>:;]|[^"\\(),<>:;]+', re.DOTALL)
_ADDR_SPEC = re.compile(r"^[^\s@<>(),;:\"]{1,64}@[^\s@<>(),;:\"]{1,255}$")
_ANGLE_ADDR = re.compile(r"<\s*([^\s<>@]{1,64}@[^\s<>@]{1,255})\s*>")
_BARE_ADDR = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")


class HeaderLimitError(ValueError):
    """The header block is over its size limit; `reason` names the limit."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Headers:
    """The fields of one header block, names lower-cased, values raw (folded, undecoded)."""

    __slots__ = ("_first", "body_offset", "fields")

    def __init__(self, fields: list[tuple[str, bytes]] | None = None, body_offset: int = 0) -> None:
        #: (lower-cased name, raw value): values are decoded only when asked for.
        self.fields = fields or []
        #: Offset of the body in the bytes the block was read from.
        self.body_offset = body_offset
        self._first: dict[str, bytes] = {}
        for key, value in reversed(self.fields):
            self._first[key] = value

    def get(self, name: str) -> str | None:
        """The first field of that name (decoded, unfolded), None when absent."""
        value = self._first.get(name.lower())
        return None if value is None else unfold(decode_bytes(value))

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [unfold(decode_bytes(value)) for key, value in self.fields if key == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first


def decode_bytes(raw: bytes) -> str:
    """UTF-8 (RFC 6532), else cp1252, never an exception."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def split_headers(raw: bytes, max_bytes: int, start: int = 0, end: int | None = None) -> Headers:
    """The header block of `raw[start:end]`, read only if it ends within `max_bytes`.

    The block ends at the first empty line or at the first line that is not a field (as the
    stdlib treats it); an mbox "From " envelope line at the very top is skipped. Nothing is
    copied but the block itself.
    """
    end = len(raw) if end is None else end
    if raw.startswith(b"From ", start, end):
        newline = raw.find(b"\n", start, end)
        start = end if newline < 0 else newline + 1
    if raw.startswith(b"\n", start, end) or raw.startswith(b"\r\n", start, end):
        return Headers([], raw.find(b"\n", start, end) + 1)
    blank = _BLANK_LINE.search(raw, start, min(end, start + max_bytes + 4))
    if blank is None and end - start > max_bytes:
        raise HeaderLimitError("headers_too_large", f"the header block is over {max_bytes} bytes")
    block_end = end if blank is None else blank.start() + 1
    block = raw[start:block_end]
    fields: list[tuple[str, bytes]] = []
    position = 0
    for match in _FIELD_LINE.finditer(block):
        if match.start() != position:  # a line that is not a field: the body starts there
            return Headers(fields, start + position)
        name, value = match.groups()
        fields.append((name.decode("ascii").lower(), value))
        position = match.end() + 1
    if position < len(block) and block[position:].strip():
        return Headers(fields, start + position)
    return Headers(fields, end if blank is None else blank.end())


def unfold(value: str) -> str:
    return _FOLD.sub(" ", value).strip() if "\n" in value else value.strip()


def clean(text: str) -> str:
    """Control characters (CR, LF, NUL, ...) become spaces; spaces are collapsed."""
    if text.isprintable() and "  " not in text:
        return text.strip()
    return _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()


def _decode_word(charset: str, encoding: str, text: str) -> bytes:
    data = text.encode("ascii", "replace")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    data = data.rstrip(b"=")
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""


def _decode_charset(data: bytes, charset: str) -> str:
    charset = charset.split("*", 1)[0].strip().lower()  # RFC 2231 language suffix
    for candidate in (charset, "utf-8", "cp1252"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def decode_words(value: str, max_words: int) -> tuple[str, bool]:
    """RFC 2047 decoding of at most `max_words` encoded words; (text, truncated).

    Adjacent words in the same charset are decoded together (a character may be split over
    two words); white space between encoded words is dropped, as the RFC says. Past the limit
    the rest of the value is dropped and marked with `ELLIPSIS`.
    """
    if "=?" not in value:
        return clean(value), False
    pieces: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    position = 0
    truncated = False

    def flush() -> None:
        if pending:
            pieces.append(_decode_charset(b"".join(pending), pending_charset))
            pending.clear()

    for words, match in enumerate(_ENCODED_WORD.finditer(value)):
        if words >= max_words:
            truncated = True
            position = -1
            break
        between = value[position : match.start()]
        charset = match.group(1)
        if between.strip() or (pending and charset.lower() != pending_charset.lower()):
            flush()
            if between.strip():
                pieces.append(between)
        pending_charset = charset
        pending.append(_decode_word(charset, match.group(2), match.group(3)))
        position = match.end()
    flush()
    if position >= 0:
        pieces.append(value[position:])
    text = clean("".join(pieces))
    return (text + ELLIPSIS if truncated else text), truncated


def addresses(value: str, max_count: int) -> tuple[list[tuple[str, str]], bool]:
    """(display name, address) pairs of an address header, at most `max_count`; (list, cut).

    A tokeniser without recursion: quoted strings, comments (nested to any depth), angle
    addresses, groups ("undisclosed-recipients:;"). A pair's address is "" when it has none.
    """
    result: list[tuple[str, str]] = []
    depth = 0
    in_angle = False
    phrase: list[str] = []
    angle: list[str] = []
    found_angle: str | None = None

    def finish() -> None:
        nonlocal found_angle
        name = clean("".join(phrase)).strip('"').strip()
        address = found_angle if found_angle is not None else clean("".join(phrase))
        if found_angle is None:
            name = ""
        if address and _ADDR_SPEC.match(address):
            result.append((name, address))
        elif name or address:
            result.append((name or address, ""))
        phrase.clear()
        found_angle = None

    for match in _ADDR_TOKEN.finditer(value):
        token = match.group(0)
        if depth:
            depth += 1 if token == "(" else -1 if token == ")" else 0
            if depth > MAX_COMMENT_DEPTH:  # not an address list: `first_address` falls back
                return result, False
            continue
        if token == "(":
            depth = 1
            continue
        if in_angle:
            if token == ">":
                in_angle = False
                spec = "".join(angle).strip()
                found_angle = spec.rsplit(":", 1)[-1].strip()  # obsolete route "@a,@b:x@y"
                angle.clear()
            else:
                angle.append(token)
            continue
        if token == "<":
            in_angle = True
            continue
        if token in (",", ";"):
            if phrase or found_angle is not None:
                finish()
                if len(result) >= max_count:
                    return result, True
            continue
        if token == ":":  # a group's display name
            phrase.clear()
            continue
        phrase.append(token)
    if phrase or found_angle is not None:
        finish()
    return result[:max_count], len(result) > max_count


def first_address(value: str) -> tuple[str, str]:
    """The From header's (display name, address); ("", "") when it has none.

    When the tokeniser finds no address (unbalanced comments, garbage), the first `<x@y>` or
    bare `x@y` in the value is taken, so a malformed From still names its sender.
    """
    pairs, _ = addresses(value, 1)
    if pairs and pairs[0][1]:
        return pairs[0]
    angle = _ANGLE_ADDR.search(value)
    if angle:
        return "", angle.group(1)
    bare = _BARE_ADDR.search(value)
    return ("", bare.group(0)) if bare else ("", "")


#: Characters of a From kept as written when it is no single address (`sender_address`).
MAX_UNREAD_SENDER = 512


def sender_address(values: list[str]) -> str:
    """The address of the email's one sender (`values`: its From headers; Reply-To is read the
    same way), when there is exactly one header naming exactly one mailbox that this tokeniser
    and the standard library's parser (through `common.recipient.valid_address`) read alike;
    "" when no address can be found at all.

    Otherwise the header as written (cleaned, bounded), which is no address: the email is still
    triaged, but is asked nothing and joins no thread by citing it. Where two readings differ,
    a receiving MTA's DMARC check and we would judge different senders: `"victim@bank.com"@evil
    .com`, `victim@bank.com@evil.com` or `<victim@bank.com>@evil.com` pass DMARC for evil.com,
    and a question to the address inside would relay the attacker's email to the victim.
    """
    if len(values) == 1:  # the common case is read once; the fallback only when it fails
        pairs, _ = addresses(values[0], 2)
        if len(pairs) == 1 and pairs[0][1]:
            agreed = valid_address(pairs[0][1])
            if agreed and valid_address(clean(values[0])) == agreed:
                return pairs[0][1]
    if not any(first_address(value)[1] for value in values):
        return ""
    return clean(", ".join(values))[:MAX_UNREAD_SENDER]


def _normal_id(inner: str) -> str | None:
    inner = inner.strip()
    if '"' not in inner:
        inner = "".join(inner.split())  # obsolete syntax allows CFWS around the parts
    return f"<{inner}>" if inner else None


def message_ids(value: str | None, limit: int = MAX_REFERENCES) -> list[str]:
    """The `<...>` ids of a References / In-Reply-To value, as written; at most `limit`."""
    if not value:
        return []
    ids: list[str] = []
    for match in _MSGID.finditer(value):
        normal = _normal_id(match.group(1))
        if normal and len(normal) <= MAX_MESSAGE_ID:
            ids.append(normal)
    if len(ids) > limit:
        ids = [ids[0], *ids[-(limit - 1) :]]
    return ids


def message_id(value: str | None) -> str | None:
    """The Message-ID as written (RFC 5322 `<id-left@id-right>`), None when there is none.

    Never cut at punctuation: `<order:1001@shop.example>` stays what it is. A bare id gets angle
    brackets; comments around it are dropped; an id longer than `MAX_MESSAGE_ID` is replaced by
    a stable digest of itself (a key that long is an attack, not an id).
    """
    if not value:
        return None
    ids = message_ids(value, 1)
    if ids:
        return ids[0]
    if "<" in value:
        long_id = _MSGID.search(value)
        if long_id is None:
            return None
        return digest_id(long_id.group(1))
    bare = clean(re.sub(r"\([^()]*\)", " ", value)).strip("<> ")
    if not bare:
        return None
    normal = _normal_id(bare)
    if normal is None or len(normal) > MAX_MESSAGE_ID:
        return digest_id(bare)
    return normal


def digest_id(*parts: str | bytes) -> str:
    """A stable id from the parts (also the synthetic id of an email without a Message-ID)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "replace") if isinstance(part, str) else part)
        digest.update(b"\0")
    return f"<synthetic.{digest.hexdigest()[:32]}@triage.invalid>"


def content_type(headers: Headers) -> tuple[str, dict[str, str]]:
    """(type/subtype lower-cased, parameters) of a Content-Type, "text/plain" by default."""
    value = headers.get("content-type")
    if not value:
        return "text/plain", {}
    main, params = parse_parameters(value)
    main = main.lower()
    if "/" not in main:
        return "text/plain", params
    return main, params


def parse_parameters(value: str, limit: int = 4096) -> tuple[str, dict[str, str]]:
    """`value; a=b; c="d"` -> ("value", {"a": "b", "c": "d"}); RFC 2231 `name*=` and `name*0*=`.

    Only the first `limit` characters are read (a parameter list is short in honest mail).
    """
    value = value[:limit]
    parts = _split_params(value)
    head = parts[0].strip() if parts else ""
    plain: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for part in parts[1:]:
        if "=" not in part:
            continue
        key, _, raw = part.partition("=")
        key = key.strip().lower()
        raw = raw.strip()
        if raw.startswith('"'):
            raw = raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:]
            raw = raw.replace('\\"', '"').replace("\\\\", "\\")
        if "*" in key:
            name, _, rest = key.partition("*")
            encoded = rest.endswith("*") or rest == ""
            number = rest.rstrip("*")
            index = int(number) if number.isdigit() else 0
            extended.setdefault(name, []).append((index, encoded, raw))
        else:
            plain.setdefault(key, raw)
    for name, pieces in extended.items():
        plain[name] = _rfc2231(sorted(pieces))
    return head, plain


def _split_params(value: str) -> list[str]:
    """Split at ";" outside quoted strings (one regular-expression pass, no backtracking)."""
    if '"' not in value:
        return value.split(";")
    parts: list[str] = []
    current: list[str] = []
    for token in _PARAM_TOKEN.findall(value):
        if token == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(token)
    parts.append("".join(current))
    return parts


def _rfc2231(pieces: list[tuple[int, bool, str]]) -> str:
    from urllib.parse import unquote_to_bytes

    charset = "utf-8"
    data = b""
    for position, (_, encoded, raw) in enumerate(pieces):
        if encoded and position == 0 and raw.count("'") >= 2:
            charset, _, raw = raw.split("'", 2)
            charset = charset or "utf-8"
        data += unquote_to_bytes(raw) if encoded else raw.encode("utf-8", "replace")
    return _decode_charset(data, charset)
