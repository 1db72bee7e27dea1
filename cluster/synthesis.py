"""Problem synthesis against an OpenAI-compatible endpoint, and builds that start from it.

    synthesis = run_synthesis(config)              # files -> seeds -> requests -> problems
    write_problems(synthesis.problems, "problems.jsonl")
    spec = materialize_source(spec)                # in run_build, before the source is scanned

The domain rules (which functions, the prompt, the checks, dedup and decontamination) are
``pipeline.synthesis``; this module reads the files, sends the requests through the
``openai`` sampler's client (``OpenAISampler.request``: bounded concurrency, retries with
backoff) and writes the results. Answers are untrusted text: they are parsed with ``ast``
and never executed or evaluated here.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import tokenize
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pyarrow.fs as pafs

from cluster.samplers.openai_http import OpenAISampler
from cluster.shard_store import ShardStore
from cluster.storage import read_text, resolve_uri, write_text
from pipeline.config import JobSpec, SamplerConfig, SamplerKind, SynthesizeConfig, parse_job_spec
from pipeline.errors import ConfigError, JobSpecError, SamplerUnavailable
from pipeline.records import Problem
from pipeline.sampling import SampleRequest, SampleRole
from pipeline.seeding import derive_seed
from pipeline.synthesis import (
    BenchmarkIndex,
    SeedFunction,
    SynthesisReport,
    is_test_file,
    load_benchmark_prompts,
    pick_functions,
    synthesis_prompt,
)

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 20
"""Larger Python files are generated tables or vendored bundles, not code to learn from."""

SYNTHESIZED_DIR = "synthesized"
PROBLEMS_FILE = f"{SYNTHESIZED_DIR}/problems.jsonl"
REPORT_FILE = f"{SYNTHESIZED_DIR}/report.json"
"""Written after the problems, with the config that made them: a resumed build whose
``synthesize`` section is unchanged reuses the problems instead of asking the model again
(a model's answers differ between runs, and the units already written name their problems)."""

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class SourceFile:
    """A Python file of the corpus and its label in problem ids (relative to the corpus)."""

    path: Path
    label: str


@dataclass(frozen=True)
class Synthesis:
    """The problems kept, in file order, and the counts of the run."""

    problems: list[Problem]
    report: SynthesisReport


def list_source_files(source: str) -> list[SourceFile]:
    """The ``.py`` files a ``synthesize.source`` names, sorted by label.

    A directory is searched recursively; a glob (``**`` allowed) is matched as written. A
    file's label starts with the name of the directory the source names (the part of a
    glob before its first wildcard, a file's own directory): ``json/decoder.py`` for
    ``/usr/lib/python3.11/json``, its glob ``.../json/*.py`` and ``.../json/decoder.py``.

    Files found in a directory or by a glob must lie in that directory once symlinks and
    ``..`` are resolved, so a corpus never reaches outside the tree it names (a service
    confines that tree to its input roots), and a file reached twice is listed once; a
    file named itself is read wherever it points.

    Raises:
        ConfigError: nothing there, or no Python file among what is there.
    """
    parts = Path(source).expanduser().parts
    magic = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), None)
    if magic is not None:
        tree = Path(*parts[:magic]) if magic else Path()
        found = tree.glob("/".join(parts[magic:]))
    elif (tree := Path(*parts)).is_dir():
        found = tree.rglob("*.py")
    elif tree.is_file():
        named = tree.absolute()
        if not _is_python_file(named):
            _no_python(source)
        return [SourceFile(named, f"{named.parent.name}/{named.name}")]
    else:
        raise ConfigError(
            f"synthesize.source {source!r}: no such file or directory; expected a directory "
            "of Python files, a glob such as `src/**/*.py`, or one .py file"
        )
    root = tree.resolve()
    files: dict[Path, SourceFile] = {}
    for path in found:
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            logger.info("synthesis: skipped %s: it lies outside %s", path, root)
        elif _is_python_file(resolved) and resolved not in files:
            files[resolved] = SourceFile(resolved, resolved.relative_to(root.parent).as_posix())
    if not files:
        _no_python(source)
    return sorted(files.values(), key=lambda f: f.label)


def _no_python(source: str) -> NoReturn:
    raise ConfigError(f"synthesize.source {source!r}: no .py files there")


def _is_python_file(path: Path) -> bool:
    return path.suffix == ".py" and path.is_file()


def _read_source(path: Path) -> str:
    """The text of a Python file, decoded as its coding cookie says (PEP 263)."""
    data = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def pick_seeds(
    files: Sequence[SourceFile], limit: int | None
) -> tuple[list[SeedFunction], SynthesisReport]:
    """Seeds from the files in order, reading no more files than ``limit`` seeds need."""
    report = SynthesisReport()
    files_skipped: Counter[str] = Counter()
    functions_skipped: Counter[str] = Counter()
    seeds: list[SeedFunction] = []
    for file in files:
        if limit is not None and len(seeds) >= limit:
            break
        if is_test_file(file.label):
            files_skipped["test_file"] += 1
            continue
        try:
            if file.path.stat().st_size > MAX_FILE_BYTES:
                files_skipped["too_large"] += 1
                continue
            text = _read_source(file.path)
        except (OSError, UnicodeDecodeError, SyntaxError) as exc:  # SyntaxError: bad cookie
            logger.info("synthesis: skipped %s: %s", file.path, exc)
            files_skipped["unreadable"] += 1
            continue
        picked = pick_functions(
            text, file.label, limit=None if limit is None else limit - len(seeds)
        )
        if picked.error is not None:
            logger.info("synthesis: skipped %s: %s", file.path, picked.error)
            files_skipped["not_python"] += 1
            continue
        report.files_read += 1
        seeds.extend(picked.seeds)
        functions_skipped.update(picked.skipped)
    report.files_skipped = dict(files_skipped)
    report.functions_skipped = dict(functions_skipped)
    report.functions_picked = len(seeds)
    return seeds, report


def _sampler_config(config: SynthesizeConfig) -> SamplerConfig:
    return SamplerConfig(
        kind=SamplerKind.OPENAI,
        model=config.model,
        k=1,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        seed=config.seed,
        base_url=config.base_url,
        endpoint=config.endpoint,
        api_key_env=config.api_key_env,
        max_concurrency=config.max_concurrency,
        max_retries=config.max_retries,
        request_timeout_s=config.request_timeout_s,
    )


async def _ask(
    config: SynthesizeConfig,
    seeds: Sequence[SeedFunction],
    transport: httpx.AsyncBaseTransport | None,
) -> tuple[list[str | None], list[str]]:
    """Each seed's answer (None when its request failed), and the failures' messages."""
    sampler = OpenAISampler(_sampler_config(config), "synthesis", transport=transport)
    continuation = config.endpoint == "completions"
    done = 0

    async def ask(seed: SeedFunction) -> tuple[str | None, str | None]:
        nonlocal done
        # The sampler's request needs a role; only its prompt and seed reach the endpoint.
        request = SampleRequest(
            problem_id=seed.problem_id,
            role=SampleRole.CODE,
            index=0,
            prompt=synthesis_prompt(seed, continuation=continuation),
            seed=derive_seed("synthesize", config.seed, seed.problem_id),
        )
        result = await sampler.request(request)
        done += 1
        if done % 10 == 0 or done == len(seeds):
            logger.info("synthesis: %d of %d answers", done, len(seeds))
        return result.text, result.error

    try:
        results = await asyncio.gather(*(ask(seed) for seed in seeds))
    finally:
        await sampler.aclose()
    return [text for text, _ in results], [error for _, error in results if error]


def load_benchmark(uri: str) -> BenchmarkIndex:
    """The benchmark prompts of a decontamination file (local path or pyarrow URI).

    Raises:
        ConfigError: the file is missing or malformed (``InputFormatError`` names the line).
    """
    fs, path = resolve_uri(uri)
    text = read_text(fs, path)
    if text is None:
        raise ConfigError(
            f"synthesize.decontaminate {uri!r}: no such file; expected JSONL benchmark "
            "prompts (a `prompt` field per row)"
        )
    return BenchmarkIndex(load_benchmark_prompts(text.splitlines(), source=uri))


def run_synthesis(
    config: SynthesizeConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> Synthesis:
    """Synthesise problems from the files ``config.source`` names.

    A bad answer is counted by reason and dropped; so is a request that failed after its
    retries, unless every request failed.

    Args:
        transport: an httpx transport to use instead of the network (tests, proxies).

    Raises:
        ConfigError: the source names no Python file, or the decontamination file is
            missing or malformed.
        SamplerUnavailable: every request failed (the endpoint is down or refuses them).
    """
    # Deduplication loads datasketch and scipy (about 0.5 s): only when synthesising, not
    # in every build that imports the driver.
    from pipeline.synthesis.screening import screen_answers

    started = time.monotonic()
    benchmark = load_benchmark(config.decontaminate) if config.decontaminate else None
    seeds, report = pick_seeds(list_source_files(config.source), config.limit)
    logger.info(
        "synthesis: %d functions from %d files; asking %s at %s",
        len(seeds),
        report.files_read,
        config.model,
        config.base_url,
    )
    answers, errors = asyncio.run(_ask(config, seeds, transport)) if seeds else ([], [])
    if seeds and len(errors) == len(seeds):
        raise SamplerUnavailable(
            f"synthesis: all {len(seeds)} requests to {config.base_url} failed; first: {errors[0]}"
        )
    screened = screen_answers(
        list(zip(seeds, answers, strict=True)),
        model=config.model,
        benchmark=benchmark,
        dedup_threshold=config.dedup_threshold,
    )
    report.problems_kept = len(screened.problems)
    report.dropped = dict(screened.dropped)
    report.wall_s = time.monotonic() - started
    if errors:
        logger.warning(
            "synthesis: %d of %d requests failed; first: %s", len(errors), len(seeds), errors[0]
        )
    return Synthesis(problems=screened.problems, report=report)


def write_problems(problems: Sequence[Problem], uri: str) -> None:
    """Write problems as JSONL, atomically, to a local path or pyarrow URI."""
    fs, path = resolve_uri(uri)
    write_text(fs, path, "".join(problem.model_dump_json() + "\n" for problem in problems))


def synthesized_problems_uri(output_uri: str) -> str:
    """Where a build with ``source.synthesize`` writes its problems."""
    if "://" in output_uri:
        return f"{output_uri.rstrip('/')}/{PROBLEMS_FILE}"
    return ShardStore(output_uri).path(PROBLEMS_FILE)


def materialize_source(
    spec: JobSpec, *, transport: httpx.AsyncBaseTransport | None = None
) -> JobSpec:
    """The spec to build: with ``source.synthesize``, its problems synthesised first.

    The problems go to ``<output.uri>/synthesized/problems.jsonl`` and the returned spec
    reads them (``source.path``), keeping its ``synthesize`` section as provenance in the
    manifest. Problems that a run with the same ``synthesize`` section already wrote there
    are reused, so a resumed build reads the problems its units were built from. A spec
    without ``synthesize`` is returned as it is.

    Raises:
        JobSpecError: ``source.path`` names another file (with ``synthesize`` it is set
            by the build).
        ConfigError: the synthesis kept no problem, or its source or decontamination
            file is unusable.
        SamplerUnavailable: every request to the endpoint failed.
    """
    config = spec.source.synthesize
    if config is None:
        return spec
    target = synthesized_problems_uri(spec.output.uri)
    if spec.source.path and spec.source.path != target:
        problem = (
            f"source.path {spec.source.path!r}: with source.synthesize the build writes the "
            f"problems to {target} and reads them from there; remove source.path"
        )
        raise JobSpecError(problem, [problem])
    store = ShardStore(spec.output.uri)
    made = {"config": config.model_dump(mode="json")}
    earlier = store.read_json(REPORT_FILE)
    exists = store.fs.get_file_info(store.path(PROBLEMS_FILE)).type == pafs.FileType.File
    if isinstance(earlier, dict) and earlier.get("config") == made["config"] and exists:
        report = SynthesisReport.model_validate(earlier["report"])
        logger.info("synthesis: reusing the %d problems in %s", report.problems_kept, target)
    else:
        synthesis = run_synthesis(config, transport=transport)
        report = synthesis.report
        write_problems(synthesis.problems, target)
        store.write_text(
            REPORT_FILE, json.dumps({**made, "report": report.model_dump(mode="json")}, indent=2)
        )
        logger.info("synthesis:\n%s", report.summary())
    if report.problems_kept == 0:
        raise ConfigError(
            f"synthesis kept no problem from {report.functions_picked} functions in "
            f"{config.source} (dropped: {report.dropped or 'none'}; functions passed over: "
            f"{report.functions_skipped or 'none'}); see {spec.output.uri}/{REPORT_FILE}"
        )
    data = spec.model_dump(mode="json")
    data["source"]["path"] = target
    return parse_job_spec(data)


__all__ = [
    "SourceFile",
    "Synthesis",
    "list_source_files",
    "load_benchmark",
    "materialize_source",
    "pick_seeds",
    "run_synthesis",
    "synthesized_problems_uri",
    "write_problems",
]
