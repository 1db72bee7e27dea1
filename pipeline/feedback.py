"""Execution feedback for a refinement prompt: the failing tests, bounded and inert.

Target-DPO (ALGORITHMS.md §2.1) asks the model for a new version of failing code given
"interpreter feedback and runtime error information". ``build_feedback`` writes that
text from one version's row of the status matrix: one block per failing test, in test
order, with the test, its status, the error (the END of a traceback survives cuts: the
exception line is there) and the captured output::

    Test 2 (failed: the assertion was false):
        assert add(2, 2) == 4
    Error:
        Traceback (most recent call last):
          File "<test>", line 1, in <module>
        AssertionError
    Output:
        adding 2 and 2

    Test 5 (timeout: ran past the time limit):
        assert add(10**9, 1) == 10**9 + 1

    ... and 3 more failing tests

Everything but the headers and labels is untrusted (model-written code and tests, what
the program printed) and goes through ``inert`` first. Every untrusted line is then
indented by four spaces, so untrusted text can never start a line of its own: it cannot
forge a header (``Test 1 (passed)``) or a label, and, because CommonMark closes a code
fence only with a fence indented by at most three spaces, it cannot close the fence the
prompt puts the feedback in either. The result is at most ``max_chars`` characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

from pipeline.errors import ContractViolation
from pipeline.records import CellStatus

__all__ = ["build_feedback", "inert"]

INDENT = "    "
"""Prefix of every untrusted line (four spaces: see the module docstring)."""

CUT = "..."
"""Marks text left out of a cut."""

_STATUS_GLOSS = {
    CellStatus.FAILED: "the assertion was false",
    CellStatus.ERROR: "an exception was raised or the program died",
    CellStatus.TIMEOUT: "ran past the time limit",
    CellStatus.MEMORY: "ran out of memory",
    CellStatus.SANDBOX_ERROR: "the sandbox failed, not necessarily the code",
}

# CSI (ESC [ params final), OSC (ESC ] ... BEL or ESC \), then every other escape
# (ESC, intermediates, final: ESC c, ESC ( B, ...), as ECMA-48 defines them.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]")
_FENCE_RUN = re.compile(r"`{3,}")
_GRAVE_LOOKALIKE = "\u02cb"
"""MODIFIER LETTER GRAVE ACCENT (ˋ): looks like a backtick to a reader, closes no fence."""
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029]")

_WINDOW_FACTOR = 4
"""inert cleans at most this many times ``limit`` characters from each end of a text:
a program that prints megabytes costs no more than one that prints ``limit`` worth
(cleaning only shrinks text, so 4x leaves room for ANSI-heavy output)."""

_LABELS: dict[str, str | None] = {"test": None, "error": "Error:", "output": "Output:"}
"""The line above each untrusted part of a block (the test sits right under the header)."""

Policy = Literal["middle", "start"]
"""Where a too-long piece loses text: its middle (head and tail kept) or its start."""


def inert(text: str, limit: int) -> str:
    """Make untrusted text safe to place in a prompt, at most ``limit`` characters.

    - line breaks (``\\r\\n``, ``\\r``, U+2028, U+2029) become ``\\n``;
    - ANSI escape sequences are removed whole, then every other control character
      (Unicode category Cc) except ``\\n`` and ``\\t``, format characters (Cf:
      zero-width and bidirectional overrides, which can make text read differently from
      what it is) and lone surrogates (Cs: they cannot be encoded to send a prompt);
    - in every run of three or more backticks each backtick becomes U+02CB (ˋ), so the
      text cannot close a markdown fence (runs of one or two, inline code, are kept);
      tildes are left alone: Python tracebacks underline errors with ``~~~^^^``;
    - text longer than ``limit`` loses its middle, marked ``...``.

    Example:
        >>> inert("\\x1b[31mred\\x1b[0m\\r\\n```done", 100)
        'red\\nˋˋˋdone'

    Args:
        text: untrusted text (program output, an error message, model-written code).
        limit: the most characters the result may have (>= 0).

    Returns:
        The cleaned text, ``len(result) <= limit``.
    """
    if limit < 0:
        raise ValueError(f"limit: expected a number of characters >= 0, got {limit}")
    window = _WINDOW_FACTOR * limit + len(CUT)
    if len(text) > 2 * window:
        # Each end is cleaned on its own: an escape sequence cut in two at a window's edge
        # must not swallow the marker between them.
        text = _clean(text[:window]) + CUT + _clean(text[-window:])
    else:
        text = _clean(text)
    return _cut(text, limit, "middle")


def _clean(text: str) -> str:
    text = _LINE_BREAKS.sub("\n", text)
    text = _ANSI.sub("", text)
    text = "".join(char for char in text if _kept(char))
    # After the control characters are gone: "``\x00`" is a fence once the NUL is dropped.
    return _FENCE_RUN.sub(lambda run: _GRAVE_LOOKALIKE * len(run.group()), text)


def build_feedback(
    tests: Sequence[str],
    statuses: Sequence[str],
    errors: Sequence[str],
    outputs: Sequence[str],
    *,
    max_chars: int = 2000,
    max_tests: int = 5,
) -> str:
    """The execution feedback of one version: its failing tests, at most ``max_chars``.

    Args:
        tests: the verified tests, in order.
        statuses: ``CellStatus`` values, one per test; a test fails unless ``passed``.
        errors: one error text (message or traceback) per test, ``""`` when none; or an
            empty sequence when errors were not captured (then no ``Error:`` parts).
        outputs: one captured stdout/stderr per test, likewise.
        max_chars: hard cap on the result's length.
        max_tests: the most failing tests shown; the rest are counted in a last line.

    Returns:
        The feedback text (see the module docstring), ``""`` when no test failed. When
        the cap is tight, small parts are kept whole and the long ones share what is
        left equally (tests and outputs lose their middle, errors their start); when it
        cannot hold even the headers, fewer tests are shown, and when it cannot hold one,
        only ``"N failing tests"`` (or ``""`` below that).

    Raises:
        ValueError: ``max_chars`` or ``max_tests`` below 1.
        ContractViolation: lengths that do not match, or a status that is not a
            ``CellStatus`` value (the caller's bug, not bad input).
    """
    if max_chars < 1 or max_tests < 1:
        raise ValueError(
            f"max_chars and max_tests: expected >= 1, got max_chars={max_chars}, "
            f"max_tests={max_tests}"
        )
    for name, column in (("statuses", statuses), ("errors", errors), ("outputs", outputs)):
        if len(column) != len(tests) and (name == "statuses" or column):
            raise ContractViolation(
                f"build_feedback: expected {name} to have one entry per test ({len(tests)}), "
                f"got {len(column)}" + ("" if name == "statuses" else " (or none at all)")
            )
    failing = [
        (index, _status(status)) for index, status in enumerate(statuses) if status != "passed"
    ]
    if not failing:
        return ""
    blocks = [
        _Block(
            header=f"Test {index + 1} ({status.value}: {_STATUS_GLOSS[status]}):",
            test=_piece(tests[index], max_chars),
            error=_piece(errors[index], max_chars) if errors else "",
            output=_piece(outputs[index], max_chars) if outputs else "",
        )
        for index, status in failing[:max_tests]
    ]
    while blocks:
        more = len(failing) - len(blocks)
        trailer = f"{CUT} and {more} more failing test{'s' if more > 1 else ''}" if more else ""
        skeleton = _join([block.render(None) for block in blocks], trailer)
        if len(skeleton) <= max_chars:
            break
        blocks.pop()
    else:
        summary = f"{len(failing)} failing test{'s' if len(failing) > 1 else ''}"
        return summary if len(summary) <= max_chars else ""
    budgets = _share(
        [len(_indented(text)) for block in blocks for text in block.parts().values()],
        max_chars - len(skeleton),
    )
    rendered: list[str] = []
    for block in blocks:
        parts = block.parts()
        mine, budgets = budgets[: len(parts)], budgets[len(parts) :]
        rendered.append(
            block.render(
                {
                    name: _cut_indented(text, budget, "start" if name == "error" else "middle")
                    for (name, text), budget in zip(parts.items(), mine, strict=True)
                }
            )
        )
    return _join(rendered, trailer)


class _Block:
    """One failing test's header and its present (non-empty) untrusted parts."""

    def __init__(self, header: str, test: str, error: str, output: str) -> None:
        self.header = header
        self._parts = {"test": test, "error": error, "output": output}

    def parts(self) -> dict[str, str]:
        return {name: text for name, text in self._parts.items() if text}

    def render(self, cut: dict[str, str] | None) -> str:
        """The block with each present part replaced by ``cut[name]``.

        ``render(None)`` is the skeleton: every line the block can have, with its parts
        empty, so its length is the block's fixed cost. A part cut down to "" loses its
        label line too, which only makes the block shorter.
        """
        lines = [self.header]
        for name in self.parts():
            text = "" if cut is None else cut[name]
            if text or cut is None:
                label = _LABELS[name]
                lines.extend([text] if label is None else [label, text])
        return "\n".join(lines)


def _piece(text: str, limit: int) -> str:
    # Outer blank lines (the newline every print ends with) would only cost budget.
    return inert(text, limit).rstrip().lstrip("\n")


def _join(blocks: list[str], trailer: str) -> str:
    return "\n\n".join([*blocks, trailer] if trailer else blocks)


def _share(needs: list[int], total: int) -> list[int]:
    """Split ``total`` over parts: small needs are met in full, the rest share equally."""
    shares = [0] * len(needs)
    left = total
    order = sorted(range(len(needs)), key=lambda index: needs[index])
    for position, index in enumerate(order):
        shares[index] = min(needs[index], left // (len(order) - position))
        left -= shares[index]
    return shares


def _indented(text: str) -> str:
    return "\n".join(INDENT + line for line in text.split("\n"))


def _cut_indented(text: str, budget: int, policy: Policy) -> str:
    """``text`` indented, cut (per ``policy``) to at most ``budget`` characters, or "".

    Indenting adds four characters a line, so the number of characters of ``text`` that
    fit depends on where the cut falls; the longest fitting cut is found by bisection
    (the indented length only grows with the characters kept).
    """
    whole = _indented(text)
    if len(whole) <= budget:
        return whole
    low, high = -1, len(text) - 1  # characters kept; -1 stands for "nothing fits"
    while low < high:
        middle = (low + high + 1) // 2
        if len(_indented(_cut(text, middle + len(CUT), policy))) <= budget:
            low = middle
        else:
            high = middle - 1
    return "" if low < 0 else _indented(_cut(text, low + len(CUT), policy))


def _cut(text: str, limit: int, policy: Policy) -> str:
    """``text`` in at most ``limit`` characters, losing its middle or start to ``...``."""
    if len(text) <= limit:
        return text
    if limit < len(CUT):
        return text[-limit:] if policy == "start" and limit else text[:limit]
    keep = limit - len(CUT)
    if policy == "start":
        return CUT + text[len(text) - keep :]
    head = (keep + 1) // 2
    tail = keep - head
    return text[:head] + CUT + (text[len(text) - tail :] if tail else "")


def _kept(char: str) -> bool:
    if char in "\n\t":
        return True
    return unicodedata.category(char) not in ("Cc", "Cf", "Cs")


def _status(value: str) -> CellStatus:
    try:
        return CellStatus(value)
    except ValueError as exc:
        known = ", ".join(status.value for status in CellStatus)
        raise ContractViolation(
            f"build_feedback: expected statuses among {known}, got {value!r}"
        ) from exc
