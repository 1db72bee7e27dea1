"""One HTTP answer per domain error class, registered on the app by ``install_error_handlers``.

``ConfigError`` → 422 (``JobSpecError`` lists each bad field in ``problems``),
``OutputInUse`` → 409, ``InfrastructureError`` → 503, any other ``PairforgeError`` → 500.
Routes raise domain errors; ``HTTPException`` is kept for pure HTTP concerns (404, 401, 413).
Every error body has the ``ErrorBody`` shape: ``{"detail": str, "problems": [str]}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pipeline.errors import (
    ConfigError,
    InfrastructureError,
    JobSpecError,
    OutputInUse,
    PairforgeError,
)
from services.api.schemas import ErrorBody

logger = logging.getLogger(__name__)


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
    return _answer(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return _answer(422, "invalid request: " + "; ".join(problems), problems)


async def _config_error(_request: Request, exc: Exception) -> JSONResponse:
    problems = exc.problems if isinstance(exc, JobSpecError) else []
    return _answer(422, exc, problems)


async def _output_in_use(_request: Request, exc: Exception) -> JSONResponse:
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
    app.add_exception_handler(OutputInUse, _output_in_use)
    app.add_exception_handler(InfrastructureError, _infrastructure_error)
    app.add_exception_handler(PairforgeError, _pairforge_error)
