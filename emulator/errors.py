"""The API's error envelope as an exception, so any layer can abort a request the real way."""

from __future__ import annotations

from typing import Any

ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
RETRYABLE_STATUS = frozenset({429, 500, 529})


class ApiError(Exception):
    """An error response: HTTP status, `error.type`, `error.message` and extra headers."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else ERROR_STATUS[error_type]
        self.headers = dict(headers or {})

    def envelope(self, request_id: str) -> dict[str, Any]:
        """The JSON body the real API sends for this error."""
        return {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
            "request_id": request_id,
        }


def invalid(message: str) -> ApiError:
    """Shorthand for the commonest error: 400 invalid_request_error."""
    return ApiError("invalid_request_error", message)
