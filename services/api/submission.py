"""Turn a ``POST /jobs`` body into a JobSpec the service will run, or refuse it clearly.

The body is a JobSpec, or ``{"spec": JobSpec, "name": str}``. Checks, in order: the shape
(unknown fields are named), the JobSpec itself, the output location (under the output
root), the source file (a local one must exist), and the k × problems limit.

Problems are counted from the source file when it is local (non-blank JSONL lines, or the
Parquet row count), capped by ``source.limit``. A remote source (``s3://...``) is counted as
``source.limit`` when one is given and is not checked otherwise: counting it would mean
downloading it in the request.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq

from pipeline.config import JobSpec, parse_job_spec
from pipeline.errors import JobSpecError
from services.output_root import default_output_dir, resolve_output_dir

logger = logging.getLogger(__name__)

_ENVELOPE_KEYS = frozenset({"spec", "name"})


@dataclasses.dataclass(frozen=True)
class Submission:
    """A validated job: its spec with absolute local paths, its name and output directory."""

    spec: JobSpec
    name: str
    output_dir: Path


def _split_envelope(payload: object) -> tuple[object, str]:
    if not isinstance(payload, Mapping):
        raise JobSpecError(
            f'the body must be a JSON object (a JobSpec or {{"spec": ..., "name": ...}}), '
            f"got {type(payload).__name__}",
            [f"(body): expected an object, got {type(payload).__name__}"],
        )
    if "spec" not in payload:
        return payload, ""
    unknown = sorted(str(k) for k in payload if k not in _ENVELOPE_KEYS)
    if unknown:
        problems = [
            f"{k}: unknown field (the envelope has only `spec` and `name`)" for k in unknown
        ]
        raise JobSpecError("invalid job request:\n  " + "\n  ".join(problems), problems)
    name = payload.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        problem = "name: expected a string of at most 200 characters"
        raise JobSpecError(f"invalid job request: {problem}", [problem])
    return payload["spec"], name


def _with_default_output(spec: object, default: Path) -> object:
    if not isinstance(spec, Mapping):
        return spec
    output = spec.get("output")
    if output is None:
        return {**spec, "output": {"uri": str(default)}}
    if isinstance(output, Mapping) and "uri" not in output:
        return {**spec, "output": {**output, "uri": str(default)}}
    return spec


def _is_local(path: str) -> bool:
    return len(urlsplit(path).scheme) <= 1


def _local_source(path: str, cwd: Path) -> Path:
    local = urlsplit(path).path if path.startswith("file://") else path
    try:
        if "\x00" in local:
            raise ValueError("it contains a NUL byte")
        return (cwd / local).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        problem = f"source.path: cannot resolve {path!r}: {exc}"
        raise JobSpecError(problem, [problem]) from exc


def count_problems(path: Path, file_format: str, *, stop_after: int) -> int:
    """Problems in a local source file, counting at most ``stop_after`` (then stopping).

    Raises:
        OSError: the file cannot be read.
    """
    is_parquet = file_format == "parquet" or (
        file_format == "auto" and path.suffix.lower() in {".parquet", ".pq"}
    )
    if is_parquet:
        return int(pq.read_metadata(path).num_rows)
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                count += 1
                if count > stop_after:
                    break
    return count


def parse_submission(
    payload: object, *, job_id: str, root: Path, cwd: Path, max_samples: int
) -> Submission:
    """Validate a job request and make its local paths absolute.

    Raises:
        JobSpecError: the body is not a JobSpec (``problems`` names each bad field) or the
            job exceeds ``max_samples`` (k × problems).
        OutputLocationError: ``output.uri`` is not under ``root``.
    """
    raw_spec, name = _split_envelope(payload)
    spec = parse_job_spec(_with_default_output(raw_spec, default_output_dir(root, job_id)))
    output_dir = resolve_output_dir(spec.output.uri, root, cwd=cwd)

    source = spec.source
    problems: int | None = source.limit
    if _is_local(source.path):
        source_path = _local_source(source.path, cwd)
        if not source_path.is_file():
            problem = f"source.path: no file at {source_path} (relative paths are from {cwd})"
            raise JobSpecError(problem, [problem])
        stop_after = max_samples // spec.sampler.k + 1
        try:
            in_file = count_problems(source_path, source.format, stop_after=stop_after)
        except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid, a ValueError
            problem = f"source.path: cannot read {source_path}: {exc}"
            raise JobSpecError(problem, [problem]) from exc
        problems = in_file if problems is None else min(problems, in_file)
        source = source.model_copy(update={"path": str(source_path)})
    else:
        logger.info("not counting the problems of remote source %s", source.path)

    if problems is not None and problems * spec.sampler.k > max_samples:
        problem = (
            f"sampler.k: {problems} problems × k={spec.sampler.k} = "
            f"{problems * spec.sampler.k} samples, over this service's limit of {max_samples} "
            "per job; lower sampler.k, set source.limit, or split the job"
        )
        raise JobSpecError(problem, [problem])

    spec = spec.model_copy(
        update={
            "source": source,
            "output": spec.output.model_copy(update={"uri": str(output_dir)}),
            "name": spec.name or name,
        }
    )
    return Submission(spec=spec, name=name or spec.name or job_id, output_dir=output_dir)
