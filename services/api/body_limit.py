"""``BodySizeLimit``: ASGI middleware answering 413 to a request body over the service's limit.

A body that declares a larger ``Content-Length`` is refused before a byte of it is read; one
that does not (chunked) is counted as it arrives and refused once it passes the limit, so
memory never holds more than the limit. The answer has the ``ErrorBody`` shape of every
other error. (FastAPI's own ``max_body_size`` answers a declared-too-large body in plain
text, replacing the app's answer, so clients would have to parse two formats.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.schemas import ErrorBody


class BodySizeLimit:
    """Refuse request bodies larger than ``max_bytes`` with HTTP 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"request body is larger than this service's limit of {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            body = ErrorBody(detail=self.detail).model_dump()
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read: the app's handlers answer it.
                    raise HTTPException(status_code=413, detail=self.detail)
            return message

        await self.app(scope, counted, send)
