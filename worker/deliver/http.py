"""The only module that speaks HTTP for webhooks: one POST, and every failure translated into
`common.errors`: `RetryLater` (timeout, connection error, 408, 429, 5xx; with the answer's
`Retry-After`) or `Permanent` (any other answer, a URL that cannot be used). Reasons are
`timeout`, `connection`, `http_<status>` and `bad_url`; messages carry the start of the
receiver's answer, never our body or secret.

httpx2 (the HTTP client the anthropic SDK ships with), one connection pool for every lane of a
process. Redirects are not followed (3xx is permanent: fix the URL, then replay). httpx's timeout
bounds each phase (connect, send, every read), not the whole request, so the answer's body is
read only up to `MAX_ANSWER_BYTES` and until one timeout after its headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx2

from common.errors import Permanent, RetryLater
from worker.deliver.policy import classify, parse_retry_after

#: Bytes of a receiver's answer read at most.
MAX_ANSWER_BYTES = 64 * 1024
SNIPPET_CHARS = 200


@dataclass(frozen=True)
class Answer:
    """A receiver's 2xx answer."""

    status: int
    snippet: str


def snippet(raw: bytes) -> str:
    """The start of an answer, on one line, for dead letters and `triage webhooks test`."""
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


class HttpSender:
    """POSTs webhook requests; thread-safe (lanes share it)."""

    def __init__(self, max_connections: int = 100) -> None:
        self._client = httpx2.Client(
            follow_redirects=False,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Answer:
        """One attempt. Returns the 2xx answer; raises RetryLater or Permanent otherwise."""
        try:
            with self._client.stream(
                "POST", url, content=body, headers=dict(headers), timeout=timeout
            ) as response:
                try:
                    raw = self._read(response, time.monotonic() + timeout)
                except httpx2.TransportError:
                    raw = b""  # the status has arrived: it decides, the body is a courtesy
        except httpx2.TimeoutException as exc:
            raise RetryLater(
                f"no answer within {timeout:g}s ({type(exc).__name__})", reason="timeout"
            ) from None
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise Permanent(f"cannot use the URL: {exc}", reason="bad_url") from None
        except httpx2.TransportError as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}", reason="connection") from None
        status = response.status_code
        verdict = classify(status)
        if verdict == "delivered":
            return Answer(status, snippet(raw))
        message = f"HTTP {status}: {snippet(raw)}".rstrip(": ")
        if verdict == "retry":
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            raise RetryLater(message, reason=f"http_{status}", retry_after=retry_after)
        raise Permanent(message, reason=f"http_{status}")

    @staticmethod
    def _read(response: httpx2.Response, deadline: float) -> bytes:
        """The answer's body, up to MAX_ANSWER_BYTES and the deadline (the rest is dropped)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ANSWER_BYTES or time.monotonic() > deadline:
                break
        return b"".join(chunks)[:MAX_ANSWER_BYTES]

    def close(self) -> None:
        self._client.close()
