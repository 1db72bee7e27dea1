"""One wording for pydantic validation errors, wherever a user's input is checked.

The JobSpec (``pairforge build``, ``POST /jobs``) and the source rows (replay files,
problem files) are validated by pydantic; its raw messages name neither the field in a
form a user types nor the value that was seen. ``describe_validation_errors`` turns each
error into one line saying where, what was expected and what was seen:

    >>> from pydantic import BaseModel, ConfigDict, Field, ValidationError
    >>> class Sampler(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     k: int = Field(ge=1)
    >>> try:
    ...     Sampler.model_validate({"k": 0, "n": 2})
    ... except ValidationError as exc:
    ...     describe_validation_errors(exc)
    ['k: Input should be greater than or equal to 1 (got 0)', 'n: unknown field']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

#: Longest rendering of a seen value; longer ones are cut and end in "...".
MAX_SEEN_CHARS = 80

# pydantic prefixes the message of a validator that raised; the user wrote no validator.
_RULE_PREFIX = "Value error, "


class HasErrors(Protocol):
    """What carries pydantic error details: ``ValidationError`` and FastAPI's
    ``RequestValidationError`` both do."""

    def errors(self) -> Sequence[Any]: ...


def describe_validation_errors(exc: HasErrors) -> list[str]:
    """One human-readable line per invalid field of ``exc``, in pydantic's order.

    ``sampler.k: Input should be greater than or equal to 1 (got 0)``,
    ``code_completions: unknown field``, ``source: required field is missing``; a rule
    about a whole model (a ``model_validator``) gives its own message, prefixed by the
    model's location when it is nested.
    """
    return [_describe_error(error) for error in exc.errors()]


def _describe_error(error: Mapping[str, Any]) -> str:
    """One line for one pydantic error detail (a dict of ``loc``, ``type``, ``msg``, ``input``)."""
    where = ".".join(str(part) for part in error.get("loc", ()))
    kind = error.get("type")
    if kind == "extra_forbidden":
        what = "unknown field"
    elif kind == "missing":
        what = "required field is missing"
    else:
        what = str(error.get("msg", "invalid value")).removeprefix(_RULE_PREFIX)
        seen = error.get("input")
        # A whole-model rule sees the whole model; repeating it would bury the message.
        if not isinstance(seen, Mapping):
            what = f"{what} (got {_shorten(repr(seen))})"
    return f"{where}: {what}" if where else what


def _shorten(text: str) -> str:
    if len(text) <= MAX_SEEN_CHARS:
        return text
    return text[: MAX_SEEN_CHARS - 3] + "..."
