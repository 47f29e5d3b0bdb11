"""Errors in the shape of OpenAI's API: `{"error": {"message", "type", "param", "code"}}` with a 4xx
status for what the client sent wrong, 5xx for what the server cannot do now."""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """A request that gets an error response: `status` (HTTP), a message naming what is wrong,
    the request field it concerns (`param`), a short machine-readable `code`, and any headers
    (Retry-After) the response needs."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body of the response."""
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(
    message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object: `kind` is its `type` (invalid_request_error, server_error, ...)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
