"""One HTTP answer per domain error class, registered on the app by ``install_error_handlers``.

``ConfigError`` → 422 (``JobSpecError`` lists each bad field in ``problems``, an
``InputFormatError`` each bad line), ``OutputInUse`` and ``JobChanged`` → 409,
``InfrastructureError`` → 503, any other ``PairforgeError`` → 500. Routes raise domain
errors; ``HTTPException`` is kept for pure HTTP concerns (404, 401, 413). Every error body
has the ``ErrorBody`` shape: ``{"detail": str, "problems": [str]}``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pipeline.errors import (
    ConfigError,
    InfrastructureError,
    InputFormatError,
    JobChanged,
    JobSpecError,
    OutputInUse,
    PairforgeError,
)
from pipeline.validation_errors import describe_validation_errors
from services.api.schemas import ErrorBody

logger = logging.getLogger(__name__)

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token (when one is set)."}
}
"""The documented answer of every route behind ``require_token``."""


def _answer(
    status: int,
    exc: Exception | str,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(detail=str(exc), problems=problems or [])
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    # Same body shape as every other error, so clients parse one format.
    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # FastAPI answers 400 for a body json.loads cannot take (bad UTF-8, deep nesting);
        # for the caller it is one more way of sending an unusable body.
        problem = f"body: not usable JSON: {exc.__cause__}"
        return _answer(422, f"invalid request: {problem}", [problem])
    return _answer(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


class _BodyRelative:
    """A request's validation errors with locations inside the body written as the user
    writes them (``sampler.k``), not FastAPI's ``body.sampler.k``."""

    def __init__(self, exc: RequestValidationError) -> None:
        self._errors = exc.errors()

    def errors(self) -> Sequence[Any]:
        relative = []
        for error in self._errors:
            loc = tuple(error.get("loc", ()))
            if error.get("type") == "json_invalid":
                error = {
                    **error,
                    "type": "value_error",
                    "msg": f"not valid JSON: {error.get('ctx', {}).get('error', 'malformed')} "
                    f"at character {loc[-1] if len(loc) > 1 else 0}",
                    "input": {},  # a mapping: nothing to quote back
                }
                loc = ("body",)
            elif loc == ("body",) and error.get("type") == "missing":
                error = {**error, "type": "value_error", "msg": "the request has no body; "
                         "send a JobSpec as JSON", "input": {}}  # fmt: skip
            elif len(loc) > 1 and loc[0] == "body":
                loc = loc[1:]
            relative.append({**error, "loc": loc})
        return relative


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    problems = describe_validation_errors(_BodyRelative(exc))
    return _answer(422, "invalid request: " + "; ".join(problems), problems)


async def _config_error(_request: Request, exc: Exception) -> JSONResponse:
    problems: list[str] = []
    if isinstance(exc, JobSpecError):
        problems = exc.problems
    elif isinstance(exc, InputFormatError):
        # One problem per listed bad line, as `pairforge build` prints them.
        problems = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
    return _answer(422, exc, problems)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return _answer(409, exc)


async def _infrastructure_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return _answer(503, exc)


async def _pairforge_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return _answer(500, exc)


def install_error_handlers(app: FastAPI) -> None:
    # Starlette picks the handler of the most specific class in the exception's MRO.
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(OutputInUse, _conflict)
    app.add_exception_handler(JobChanged, _conflict)
    app.add_exception_handler(InfrastructureError, _infrastructure_error)
    app.add_exception_handler(PairforgeError, _pairforge_error)
