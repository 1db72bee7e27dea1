"""Turn a ``POST /jobs`` body into a JobSpec the service will run, or refuse it clearly.

FastAPI has already validated the body as ``JobCreate``. Then, in order and before anything
is stored: the output location (under the output root, usable by the file system), the
source (a regular file under an input root), what this version can run and the operator's
limits (``pipeline.job_limits``), and finally the input file itself, validated in full as
``pairforge build`` validates it, in a thread with a time limit, so a bad input is refused
here (HTTP 422, the CLI's messages) instead of failing inside the Ray Job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from pipeline.config import JobSpec
from pipeline.errors import InfrastructureError, JobSpecError
from pipeline.job_limits import JobLimits, require_runnable, sample_count_problem
from services.api.schemas import JobCreate
from services.input_roots import confine_source
from services.output_root import default_output_dir, resolve_output_dir

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where jobs may read and write, all absolute and resolved.

    A relative ``output.uri`` is relative to the output root and a relative
    ``source.path`` to the first input root, never to the service's working directory:
    a caller cannot know where the service was started.
    """

    output_root: Path
    input_roots: Sequence[Path]
    private: Collection[Path] = ()
    """Files under an input root that are never inputs (the job database)."""

    def source(self, path: str) -> Path:
        """``source.path`` confined to the input roots (``JobSpecError`` otherwise)."""
        return confine_source(path, self.input_roots, private=self.private)

    def output(self, uri: str) -> Path:
        """``output.uri`` as a usable directory under the output root."""
        return resolve_output_dir(uri, self.output_root)


def prepare_spec(create: JobCreate, *, job_id: str, where: Locations, limits: JobLimits) -> JobSpec:
    """The JobSpec to run: local paths absolute and checked, limits and feasibility checked.

    Raises:
        OutputLocationError: ``output.uri`` is not a usable directory under the root.
        JobSpecError: the source is not allowed, or the job asks for more than ``limits``
            or for something this version cannot run (``problems`` names each).
    """
    if create.source.synthesize is not None:
        # Its source is a tree of files; the service confines single input files only.
        raise JobSpecError(
            "source.synthesize is not accepted by the service yet",
            [
                "source.synthesize: synthesis runs through `pairforge synthesize SRC --out "
                "problems.jsonl` or `pairforge build`; submit the problems file it writes as "
                "source.path"
            ],
        )
    uri = create.output.uri or str(default_output_dir(where.output_root, job_id))
    output_dir = where.output(uri)
    source = where.source(create.source.path)
    spec = create.to_spec(output_uri=str(output_dir), source_path=str(source))
    require_runnable(spec, limits)
    return spec


class InputChecker:
    """Validates input files in threads: a bounded number at once, each within a time limit.

    A thread cannot be stopped, so one past its time limit keeps its slot until its file is
    read to the end (the reader's memory is bounded by the row size limit). A submission
    waits up to the time limit for a free slot, then is answered "busy".
    """

    def __init__(self, *, timeout_s: float, at_once: int) -> None:
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(at_once)

    def count_problems(self, spec: JobSpec, limits: JobLimits) -> int:
        """Validate the whole input of ``spec``; the exact number of problems it holds.

        Raises:
            InputFormatError: the input is malformed (every bad line listed, with its number).
            JobSpecError: the input could not be validated within ``timeout_s``, or holds
                more problems than ``limits.max_samples_per_job`` allows at this k.
            InfrastructureError: no validation slot came free within ``timeout_s``.
        """
        from cluster.sources import scan_source  # pyarrow and the row models, loaded on use

        if not self._slots.acquire(timeout=self.timeout_s):
            raise InfrastructureError(
                "this service is validating as many input files as it may at once; retry "
                "the submission in a few seconds"
            )
        counted: Future[int] = Future()

        def scan() -> None:
            try:
                counted.set_result(
                    scan_source(spec.source, spec.sampler.kind, max_row_bytes=limits.max_row_bytes)
                )
            except BaseException as exc:  # handed to the waiting request, whatever it is
                counted.set_exception(exc)
            finally:
                self._slots.release()

        threading.Thread(target=scan, name="pairforge-input-check", daemon=True).start()
        try:
            problems = counted.result(timeout=self.timeout_s)
        except FutureTimeout:
            logger.warning(
                "validating %s took over %.3g s; refused", spec.source.path, self.timeout_s
            )
            problem = (
                f"source.path: the input is too large to validate within {self.timeout_s:g} s "
                "here; split it into several jobs, or run `pairforge build` on it directly"
            )
            raise JobSpecError(problem, [problem]) from None
        too_many = sample_count_problem(problems, spec, limits)
        if too_many is not None:
            raise JobSpecError(too_many, [too_many])
        return problems
