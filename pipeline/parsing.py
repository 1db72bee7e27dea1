"""Completion parsing: raw model text to distinct codes and single-assert tests.

Implements DESIGN.md §3.3 and ALGORITHMS.md §3.2 (CodeT's ``solution_extract`` and
``test_case_extract``). Pure text processing: no I/O, nothing executed (test candidates are
only compiled). Garbage never raises; whatever parsing drops or alters is counted in
``Candidates.parse_stats`` under these stable keys (only non-zero counts are present):

- ``not_text``: a completion was not a string; skipped.
- ``oversize``: a completion was longer than ``max_completion_chars`` and was cut.
- ``bad_unicode``: a completion held text UTF-8 cannot encode (lone surrogates); replaced.
- ``no_code_block``: an instruction-style answer had no python (or bare) fenced block.
- ``empty_code``: the extracted code was empty or whitespace only; dropped.
- ``fenced_continuation``: a completion-style answer came as a fenced block repeating the
  prompt (a chat model's way); the code after the prompt was taken as the continuation.
- ``no_test_block``: a joint instruction-style answer had no test block.
- ``duplicate_code`` / ``duplicate_test``: merged into an earlier identical candidate.
- ``test_empty``: an ``assert`` with nothing after it (CodeT's ``assert \\n`` samples).
- ``test_no_entry_point``: an assert that does not mention the entry point.
- ``test_syntax_error``: an assert that does not compile.
- ``test_trimmed``: an assert followed by more statements, cut to the assert alone.
- ``test_over_limit``: a valid assert beyond the first ``max_tests_per_sample`` of a sample.
- ``sampler_errors``: set by the build's parse stage (``cluster.stages``), not here:
  samples the sampler failed to produce after its retries.

A code that does not compile is kept: a syntax error is a real failure of that code, which
the sandbox reports.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import NamedTuple

from pipeline.prompts import SOLUTION_FILE
from pipeline.records import (
    Candidates,
    CodeCandidate,
    Problem,
    PromptStyle,
    ReplayRow,
    TestCandidate,
)

STOP_SEQUENCES: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif ", "\nprint", "\n#", "\n```")
"""Where a completion-style code completion ends (DESIGN.md §3.3).

The completion continues a function body, so a new top-level statement ends it. These are
CodeT's solution stop tokens (``\\nclass``, ``\\ndef``, ``\\n#``, ``\\nif``, ``\\nprint``)
with a space after the keywords, so that a column-0 name such as ``classes = ...`` is not
taken for a keyword, plus a closing code fence. On the 8,200 code completions of the shared
``dev-k100`` split this cuts every completion at exactly the same place as CodeT's tokens.
"""

MAX_TESTS_PER_SAMPLE = 5
"""Asserts kept from one test sample: CodeT's ``--test_case_limit`` (ALGORITHMS.md §3.2)."""

TEST_STOP_TOKENS: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""CodeT's stop tokens for a single assert (``src/postprocess.py``), kept verbatim."""

_PYTHON_LANGUAGES = frozenset({"", "python", "py", "python3", "py3"})
_FILE_TAG = re.compile(r"<file>\s*([^<>\n]+?)\s*</file>")
_FILE_HEADER = re.compile(r"#\s*([\w./-]+\.py)\s*$")


def truncate_completion(text: str) -> str:
    """Cut a completion-style code completion at its first stop sequence.

    >>> truncate_completion("    return a + b\\n\\n\\ndef main():\\n    pass\\n")
    '    return a + b\\n\\n'
    """
    cut = len(text)
    for stop in STOP_SEQUENCES:
        at = text.find(stop, 0, cut)
        if at >= 0:
            cut = at
    return text[:cut]


class _Block(NamedTuple):
    language: str
    code: str
    file_name: str | None


def _fenced_blocks(text: str) -> list[_Block]:
    """Every fenced block, in order, with its language and file name (if tagged).

    An opening fence is a line starting with ``` and an optional info string; a block closes
    at a bare fence line, or at a line ending in ``` (models often close on the code line),
    or at the end of the text (unterminated). A ``<file>name</file>`` tag between the
    previous block and the opening fence, or a ``# name.py`` first line inside the block,
    names the block.
    """
    blocks: list[_Block] = []
    gap: list[str] = []
    body: list[str] = []
    language: str | None = None
    tag: str | None = None

    def close() -> None:
        header = _FILE_HEADER.match(body[0].strip()) if body else None
        name = tag or (header.group(1) if header else None)
        blocks.append(_Block(language or "", "".join(body).rstrip(), name))

    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if language is None:
            if stripped.startswith("```"):
                info = stripped.lstrip("`").strip()
                language = info.split()[0].lower() if info else ""
                tags = _FILE_TAG.findall("".join(gap) + line)
                tag = tags[-1] if tags else None
                body, gap = [], []
            else:
                gap.append(line)
        elif stripped.startswith("```"):
            if stripped.strip("`").strip():
                body.append(line)  # an opening fence inside a block is content
            else:
                close()
                language = None
        elif stripped.endswith("```"):
            body.append(line.rstrip()[:-3] + "\n")
            close()
            language = None
        else:
            body.append(line)
    if language is not None:
        close()
    return blocks


def _python_blocks(text: str) -> list[_Block]:
    return [b for b in _fenced_blocks(text) if b.language in _PYTHON_LANGUAGES]


def _same_file(name: str | None, wanted: str) -> bool:
    return name is not None and PurePosixPath(name).name == PurePosixPath(wanted).name


def extract_fenced_code(text: str, *, prefer_file: str | None = None) -> str | None:
    """Code of the first python (or bare) fenced block, or of the block tagged ``prefer_file``.

    Blocks in other languages (```bash, ```json) are skipped. With ``prefer_file`` the block
    tagged ``<file>prefer_file</file>`` (or starting with a ``# prefer_file`` line) wins; if
    no block carries that name the first python block is returned. An unterminated block runs
    to the end of the text. Trailing whitespace of the code is removed.

    Returns:
        The code inside the fences, or None when the text holds no python or bare block.

    >>> extract_fenced_code("Sure:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1'
    """
    blocks = _python_blocks(text)
    if not blocks:
        return None
    if prefer_file is not None:
        for block in blocks:
            if _same_file(block.file_name, prefer_file):
                return block.code
    return blocks[0].code


def _in_try_block(candidate: str) -> str:
    # CodeT's validity check: the assert must compile as the body of a try block.
    return "try:\n    " + candidate.replace("\n", "\n    ") + "\nexcept:\n    pass\n"


def _statement_count(candidate: str) -> int | None:
    """Statements in ``candidate`` if it compiles inside a try block, else None."""
    try:
        # compile() warns about e.g. `assert (x, "msg")`; those asserts are still valid.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(_in_try_block(candidate))
            compile(tree, "<test>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None
    first = tree.body[0]
    return len(first.body) if isinstance(first, ast.Try) else None


def _first_statement(candidate: str) -> str | None:
    """The text of the first logical line of ``candidate`` (up to a NEWLINE or ``;``).

    Reads tokens only as far as that line ends, so garbage costs time linear in the length
    of its first statement. None when the first statement never ends cleanly.
    """
    readline = io.StringIO(candidate).readline
    line_starts = [0]
    try:
        for token in tokenize.generate_tokens(readline):
            if token.type == tokenize.NEWLINE or (
                token.type == tokenize.OP and token.string == ";"
            ):
                row, col = token.start
                while len(line_starts) < row:
                    line_starts.append(candidate.index("\n", line_starts[-1]) + 1)
                return candidate[: line_starts[row - 1] + col].rstrip()
            if token.type == tokenize.ENDMARKER:
                return candidate
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    return candidate


def _single_assert(candidate: str) -> str | None:
    """``candidate`` if it compiles as one statement; else its first statement if that does."""
    count = _statement_count(candidate)
    if count == 1:
        return candidate
    first = _first_statement(candidate)
    if first is not None and first != candidate and _statement_count(first) == 1:
        return first
    return None


def split_asserts(
    text: str, entry_point: str | None, *, limit: int = MAX_TESTS_PER_SAMPLE
) -> tuple[list[str], Counter[str]]:
    """Split test text into single, compilable assert statements (ALGORITHMS.md §3.2).

    CodeT's ``test_case_extract`` rules, applied to ``text`` as stored (starting with
    ``assert ``, see ``pipeline.prompts.TEST_COMPLETION_PREFIX``):

    1. split on ``'assert '``; the text before the first ``assert `` is a preamble and is
       ignored (for a stored CodeT sample it is empty; for a test file it holds the imports
       and ``def test():``);
    2. keep non-empty parts that mention ``entry_point`` (when given), re-prefix ``assert ``
       and strip;
    3. cut each at the first of CodeT's stop tokens (``TEST_STOP_TOKENS``) and strip;
    4. keep those that compile inside ``try:\\n    <assert>\\nexcept:\\n    pass``;
    5. keep the first ``limit`` of them.

    Two additions, so that test files from joint answers yield standalone asserts: the
    entry point must still appear after step 3 and after any trimming, and a candidate that
    holds more than one statement (the next lines of a ``def test():`` body, a trailing
    ``test()`` call or import) is cut to its first statement, which is kept if it compiles
    alone. Stripping in step 2 already dedents an assert indented inside a function. On the
    shared ``dev-k100`` split trimming cuts trailing code such as ``import torch`` (which
    would make the test error for every code) off kept asserts, and the entry-point check
    after it drops the 2 blanks (``assert _____``) whose name match was in the cut-off
    ``from __future__ import ...``; extraction gives 55.30 asserts per task, as CodeT's rules
    alone, and 50.45 unique ones (CodeT: 50.52; trimming merges asserts that differed only
    in what was cut).

    Args:
        text: test text: a stored test completion, or a test file.
        entry_point: name the asserts must mention; None keeps every assert.
        limit: asserts kept at most (CodeT's ``--test_case_limit``).

    Returns:
        The kept asserts in order, and a counter of drop reasons (``test_empty``,
        ``test_no_entry_point``, ``test_syntax_error``, ``test_over_limit``) and of
        ``test_trimmed``.

    >>> split_asserts("assert f(1) == 2\\nassert g(0)\\nassert f(", "f")
    (['assert f(1) == 2'], Counter({'test_no_entry_point': 1, 'test_syntax_error': 1}))
    """
    name = entry_point.strip() if entry_point else ""
    kept: list[str] = []
    drops: Counter[str] = Counter()
    for part in text.split("assert ")[1:]:
        if not part.strip():
            drops["test_empty"] += 1
            continue
        if name not in part:
            drops["test_no_entry_point"] += 1
            continue
        candidate = f"assert {part}".strip()
        for stop in TEST_STOP_TOKENS:
            candidate = candidate.split(stop, 1)[0]
        candidate = candidate.strip()
        if name not in candidate:
            drops["test_no_entry_point"] += 1
            continue
        single = _single_assert(candidate)
        if single is None:
            drops["test_syntax_error"] += 1
            continue
        if name not in single:  # the name was only in the statements trimming cut off
            drops["test_no_entry_point"] += 1
            continue
        if single != candidate:
            drops["test_trimmed"] += 1
        if len(kept) >= limit:
            drops["test_over_limit"] += 1
        else:
            kept.append(single)
    return kept, drops


class _Collector:
    """Distinct codes and tests in first-seen order, with multiplicities."""

    def __init__(self) -> None:
        self.codes: dict[str, CodeCandidate] = {}
        self.tests: dict[str, TestCandidate] = {}
        self.stats: Counter[str] = Counter()

    def clean(self, raw: object, max_chars: int) -> str | None:
        """``raw`` cut to ``max_chars`` and made UTF-8 encodable, or None if not text."""
        if not isinstance(raw, str):
            self.stats["not_text"] += 1
            return None
        text = raw
        if len(text) > max_chars:
            text = text[:max_chars]
            self.stats["oversize"] += 1
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = text.encode("utf-8", "replace").decode("utf-8")
                self.stats["bad_unicode"] += 1
        return text

    def add_code(self, completion: str, program: str, sample: int) -> None:
        if not completion.strip():
            self.stats["empty_code"] += 1
            return
        seen = self.codes.get(completion)
        if seen is None:
            self.codes[completion] = CodeCandidate(
                completion=completion, program=program, count=1, first_sample=sample
            )
        else:
            self.stats["duplicate_code"] += 1
            self.codes[completion] = seen.model_copy(update={"count": seen.count + 1})

    def add_tests(self, text: str, entry_point: str | None, limit: int, sample: int) -> None:
        asserts, drops = split_asserts(text, entry_point, limit=limit)
        self.stats.update(drops)
        for source in asserts:
            seen = self.tests.get(source)
            if seen is None:
                self.tests[source] = TestCandidate(source=source, count=1, first_sample=sample)
            else:
                self.stats["duplicate_test"] += 1
                self.tests[source] = seen.model_copy(update={"count": seen.count + 1})

    def candidates(self, problem_id: str) -> Candidates:
        return Candidates(
            problem_id=problem_id,
            codes=list(self.codes.values()),
            tests=list(self.tests.values()),
            parse_stats={key: n for key, n in sorted(self.stats.items()) if n > 0},
        )


def fenced_solution(code: str) -> str:
    """A whole solution as Target-DPO's trainer expects it: one ```python block (§2.2)."""
    return f"```python\n{code.rstrip()}\n```"


def starts_as_continuation(raw: str) -> bool:
    """Whether a completion-style answer continues the prompt: its first line is indented,
    as a function body is (a chat answer starts with prose or a fence instead)."""
    first_line = next((line for line in raw.splitlines() if line.strip()), "")
    return first_line[:1].isspace()


def continuation_of(prompt: str, code: str) -> str | None:
    """What follows ``prompt`` in a whole solution that repeats it verbatim, else None."""
    program = code + "\n"
    continuation = program[len(prompt) :]
    if program.startswith(prompt) and continuation.strip():
        return continuation
    return None


def _fenced_continuation(problem: Problem, raw: str) -> str | None:
    """The continuation inside a chat answer to a completion-style prompt, or None.

    A chat model answers the bare function prompt with prose and a fenced block that
    repeats the prompt; what follows the prompt in the block is the continuation. Only
    when the answer does not itself start as a continuation (an indented body line).
    """
    if starts_as_continuation(raw) or "```" not in raw:
        return None
    block = extract_fenced_code(raw)
    return None if block is None else continuation_of(problem.prompt, block)


def _add_code_sample(collector: _Collector, problem: Problem, raw: str, sample: int) -> None:
    if problem.style is PromptStyle.COMPLETION:
        fenced = _fenced_continuation(problem, raw)
        if fenced is not None:
            collector.stats["fenced_continuation"] += 1
        code = fenced if fenced is not None else truncate_completion(raw)
        collector.add_code(code, problem.prompt + code, sample)
        return
    block = extract_fenced_code(raw)
    if block is None:
        collector.stats["no_code_block"] += 1
    elif not block.strip():
        collector.stats["empty_code"] += 1
    else:
        collector.add_code(fenced_solution(block), block + "\n", sample)


def parse_candidates(
    problem: Problem,
    code_completions: Sequence[str],
    test_completions: Sequence[str],
    *,
    max_tests_per_sample: int = MAX_TESTS_PER_SAMPLE,
    max_completion_chars: int = 100_000,
) -> Candidates:
    """Candidates from separately sampled codes and tests (CodeT style).

    Completion style: ``completion = truncate_completion(raw)`` and
    ``program = prompt + completion``. Instruction style: the first python fenced block;
    ``completion`` is that block re-fenced as ```` ```python\\n<code>\\n``` ```` (what the model
    should produce after the prompt, in Target-DPO's layout) and ``program`` is the code.
    Test completions go through ``split_asserts`` (for instruction style, the first python
    block when there is one, else the raw text). Identical codes (by completion) and asserts
    are merged, keeping ``count`` and the lowest ``first_sample``, in first-seen order.

    Example: codes ``["    return 1\\n", "    return 1\\n", "   \\n"]`` give one code with
    ``count=2, first_sample=0`` and ``parse_stats == {"duplicate_code": 1, "empty_code": 1}``.
    """
    collector = _Collector()
    for sample, raw in enumerate(code_completions):
        text = collector.clean(raw, max_completion_chars)
        if text is not None:
            _add_code_sample(collector, problem, text, sample)
    for sample, raw in enumerate(test_completions):
        text = collector.clean(raw, max_completion_chars)
        if text is None:
            continue
        if problem.style is PromptStyle.INSTRUCTION:
            text = extract_fenced_code(text) or text
        collector.add_tests(text, problem.entry_point, max_tests_per_sample, sample)
    return collector.candidates(problem.problem_id)


def _is_test_file(name: str | None) -> bool:
    if name is None:
        return False
    stem = PurePosixPath(name).stem
    return stem.startswith("test") or stem.endswith("_test")


def _split_joint_answer(blocks: list[_Block]) -> tuple[_Block | None, _Block | None]:
    """(solution block, test block) of a joint instruction-style answer."""
    tests = next((b for b in blocks if _is_test_file(b.file_name)), None)
    if tests is None and len(blocks) >= 2:
        tests = blocks[1]
    rest = [b for b in blocks if b is not tests]
    solution = next((b for b in rest if _same_file(b.file_name, SOLUTION_FILE)), None)
    return solution or (rest[0] if rest else None), tests


def parse_joint(
    problem: Problem,
    completions: Sequence[str],
    *,
    max_tests_per_sample: int = MAX_TESTS_PER_SAMPLE,
    max_completion_chars: int = 100_000,
) -> Candidates:
    """Candidates from joint completions, each holding a code and its tests.

    Instruction style (``pipeline.prompts.joint_prompt``): the test block is the first
    python block tagged as a test file (``test*.py`` or ``*_test.py``), else the second
    block; the solution is the block tagged ``solution.py``, else the first other block.
    Import lines of the test file need no special care: they sit in the preamble before the
    first ``assert`` (or are cut off an assert as extra statements) in ``split_asserts``.
    An answer without a test block still yields its code (counted ``no_test_block``).

    Completion style: the code is ``truncate_completion(raw)``; the tests are the asserts
    in the rest of the text after the cut (a ``# tests`` section, ``if __name__ ...:``
    block or ``def test():`` function), split by ``split_asserts``. Asserts in a HumanEval
    style ``def check(candidate)`` call ``candidate``, not the entry point, so they are
    dropped as ``test_no_entry_point``.

    Codes and tests of sample ``i`` both get ``first_sample = i``.
    """
    collector = _Collector()
    for sample, raw in enumerate(completions):
        text = collector.clean(raw, max_completion_chars)
        if text is None:
            continue
        if problem.style is PromptStyle.COMPLETION:
            code = truncate_completion(text)
            collector.add_code(code, problem.prompt + code, sample)
            rest = text[len(code) :]
            collector.add_tests(rest, problem.entry_point, max_tests_per_sample, sample)
            continue
        solution, tests = _split_joint_answer(_python_blocks(text))
        if solution is None:
            collector.stats["no_code_block"] += 1
        elif not solution.code.strip():
            collector.stats["empty_code"] += 1
        else:
            code = solution.code
            collector.add_code(fenced_solution(code), code + "\n", sample)
        if tests is None:
            collector.stats["no_test_block"] += 1
        else:
            collector.add_tests(tests.code, problem.entry_point, max_tests_per_sample, sample)
    return collector.candidates(problem.problem_id)


def parse_replay_row(
    row: ReplayRow, *, max_tests_per_sample: int = MAX_TESTS_PER_SAMPLE
) -> Candidates:
    """Candidates of a replay row: separate sampling if it has code and test completions,
    else joint completions. A row with both uses the separate ones."""
    problem = row.problem()
    if row.code_completions is not None and row.test_completions is not None:
        return parse_candidates(
            problem,
            row.code_completions,
            row.test_completions,
            max_tests_per_sample=max_tests_per_sample,
        )
    return parse_joint(problem, row.completions or [], max_tests_per_sample=max_tests_per_sample)
