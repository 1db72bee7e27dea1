"""The job store: one row per pairforge job, in a real database through SQLAlchemy 2.

SQLite file by default (``sqlite:///./pairforge.db``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). The service keeps here everything it needs to find
its jobs again after a restart; live progress stays in the build's ``progress.json`` and is
copied into ``progress_json`` when the service reconciles.

    store = JobStore("sqlite:///./pairforge.db")
    store.add(NewJob(id="pf-1a2b", name="demo", spec_json="{...}", output_dir="/srv/runs/x"))
    store.get("pf-1a2b").state       # JobState.QUEUED

A job whose spec hands off to training (``NewJob(..., training=True)``) also carries the
state of that training job (``TrainingState``), kept apart from the build's own state: a
training job that fails never changes the build's.

The table is created when missing; columns added by later versions are added to an older
table at start-up (``_ADDED_COLUMNS``), so a service upgraded in place keeps its jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePath
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Text,
    case,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from pipeline.errors import JobChanged, OutputInUse, StorageError
from pipeline.ports import JobState

logger = logging.getLogger(__name__)


class TrainingState(StrEnum):
    """Where a build's hand-off to its training job stands.

    ``waiting`` until the build succeeds (a failed or cancelled build never submits; a
    resumed one that succeeds does), ``submitting`` from the moment the service decided to
    submit until Ray confirms, then the training Ray Job's own state.
    """

    WAITING = "waiting"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True once the training job cannot change state by itself any more."""
        return self in (TrainingState.SUCCEEDED, TrainingState.FAILED, TrainingState.CANCELLED)


class _Base(DeclarativeBase):
    pass


class _JobRow(_Base):
    __tablename__ = "pairforge_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    # Unique: two jobs writing one directory would interleave shards and manifests (a
    # directory nested in another's is refused by ``JobStore.add``).
    output_dir: Mapped[str] = mapped_column(String(4096), unique=True)
    submission_id: Mapped[str] = mapped_column(String(80), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    progress_json: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Added after the first release (see _ADDED_COLUMNS): server defaults, so rows written
    # by an older version, or by hand, read as "no hand-off".
    training_id: Mapped[str] = mapped_column(String(80), default="", server_default="")
    training_state: Mapped[str] = mapped_column(String(16), default="", server_default="")
    training_error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)


_ADDED_COLUMNS = ("training_id", "training_state", "training_error")
"""Columns an older table may lack; ``JobStore`` adds them when it opens the database."""


@dataclasses.dataclass(frozen=True)
class NewJob:
    """What the service knows about a job before it is submitted."""

    id: str
    name: str
    spec_json: str
    output_dir: str
    training: bool = False
    """The spec hands off to a training job once the build succeeds."""


@dataclasses.dataclass(frozen=True)
class StoredJob:
    """A job as stored; timestamps are timezone-aware UTC."""

    id: str
    name: str
    state: JobState
    spec_json: str
    output_dir: str
    submission_id: str
    attempts: int
    error: str | None
    progress_json: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    damage: str | None = None
    """Why the stored row could not be read as written, when it could not; such a job is
    shown as failed (with the reason as its error) and never resumed."""
    training_id: str = ""
    """Ray submission id of the training job, once the service decided to submit it."""
    training_state: TrainingState | None = None
    """Where the hand-off stands; None when the job hands off nothing."""
    training_error: str | None = None
    """Why submitting the training job failed, or why it failed."""


_UPDATABLE = frozenset(
    {
        "state",
        "submission_id",
        "attempts",
        "error",
        "progress_json",
        "started_at",
        "finished_at",
        "name",
    }
)

_TRAINING_UPDATABLE = frozenset({"training_id", "training_state", "training_error"})

OPEN_HANDOFFS = (
    TrainingState.WAITING,
    TrainingState.SUBMITTING,
    TrainingState.QUEUED,
    TrainingState.RUNNING,
)
"""Hand-off states that may still change."""


def utcnow() -> datetime:
    return datetime.now(UTC)


_EPOCH = datetime.fromtimestamp(0, UTC)
"""Shown for a damaged record's missing creation or update time."""

# Rows are read back as stored, past SQLAlchemy's conversions (a malformed timestamp makes
# its DateTime type raise while fetching): one row that a hand edit or an older version
# left malformed is listed as damaged instead of failing every listing.
_RAW_COLUMNS = (
    _JobRow.id,
    _JobRow.name,
    _JobRow.state,
    _JobRow.spec_json,
    _JobRow.output_dir,
    _JobRow.submission_id,
    type_coerce(_JobRow.attempts, String).label("attempts"),
    _JobRow.error,
    _JobRow.progress_json,
    *(
        type_coerce(getattr(_JobRow, name), String).label(name)
        for name in ("created_at", "updated_at", "started_at", "finished_at")
    ),
    _JobRow.training_id,
    _JobRow.training_state,
    _JobRow.training_error,
)


def _when(values: Mapping[str, Any], name: str, damage: list[str]) -> datetime | None:
    value = values[name]
    if value is None or isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            damage.append(f"{name} {str(value)[:40]!r} is not a time")
            return None
    # SQLite keeps no time zone; every timestamp we write is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _stored(row: Any) -> StoredJob:
    """A job from a row of ``_RAW_COLUMNS``, damaged columns named in ``damage``."""
    values: Mapping[str, Any] = row._mapping
    job_id = _text(values["id"])
    damage: list[str] = []
    try:
        state = JobState(values["state"])
    except ValueError:
        damage.append(f"state {_text(values['state'])[:40]!r} is not a job state")
        state = JobState.FAILED
    try:
        attempts = int(values["attempts"])
    except (TypeError, ValueError):
        damage.append(f"attempts {_text(values['attempts'])[:40]!r} is not a number")
        attempts = 0
    created, updated, started, finished = (
        _when(values, name, damage)
        for name in ("created_at", "updated_at", "started_at", "finished_at")
    )
    error = None if values["error"] is None else _text(values["error"])
    progress = values["progress_json"]
    training_state: TrainingState | None = None
    training_error = None if values["training_error"] is None else _text(values["training_error"])
    if _text(values["training_state"]):
        try:
            training_state = TrainingState(values["training_state"])
        except ValueError:
            # Only the hand-off is unreadable: the build's own record stays usable.
            shown_state = _text(values["training_state"])[:40]
            training_state = TrainingState.FAILED
            training_error = (
                f"the stored hand-off state {shown_state!r} of job {job_id} is damaged; no "
                "training job will be submitted for it"
            )
    if damage:
        shown = "; ".join(damage)
        state = JobState.FAILED
        error = (
            f"the stored record of job {job_id} is damaged ({shown}); it is shown as failed "
            "and cannot be resumed: submit the job again"
        )
    return StoredJob(
        id=job_id,
        name=_text(values["name"]),
        state=state,
        spec_json=_text(values["spec_json"]),
        output_dir=_text(values["output_dir"]),
        submission_id=_text(values["submission_id"]),
        attempts=attempts,
        error=error,
        progress_json=None if progress is None else _text(progress),
        created_at=created or _EPOCH,
        updated_at=updated or created or _EPOCH,
        started_at=started,
        finished_at=finished,
        damage="; ".join(damage) or None,
        training_id=_text(values["training_id"]),
        training_state=training_state,
        training_error=training_error,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets status reads proceed while a submission writes; busy_timeout makes
    # concurrent writers wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class JobStore:
    """Jobs in a SQL database; every method opens and closes its own transaction.

    Raises ``StorageError`` when the database fails, ``KeyError`` for an unknown job id.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        engine_args: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine_args["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self._engine: Engine = create_engine(url, **engine_args)
        if url.startswith("sqlite"):
            event.listen(self._engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        # The overlap check and the insert must not interleave with another add's in this
        # process; the UNIQUE column still guards exact duplicates across processes.
        self._add_lock = threading.Lock()
        try:
            _Base.metadata.create_all(self._engine)
            self._add_missing_columns()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the job database {self._shown()}: {exc}") from exc

    def _add_missing_columns(self) -> None:
        """Bring a table made by an older version up to date (``ALTER TABLE ... ADD``)."""
        present = {c["name"] for c in inspect(self._engine).get_columns(_JobRow.__tablename__)}
        preparer = self._engine.dialect.identifier_preparer
        for name in _ADDED_COLUMNS:
            if name in present:
                continue
            column = _JobRow.__table__.c[name]
            kind = column.type.compile(dialect=self._engine.dialect)
            default = " NOT NULL DEFAULT ''" if column.server_default is not None else ""
            statement = (
                f"ALTER TABLE {preparer.quote(_JobRow.__tablename__)} "
                f"ADD COLUMN {preparer.quote(name)} {kind}{default}"
            )
            try:
                with self._engine.begin() as connection:
                    connection.exec_driver_sql(statement)
            except OperationalError:
                # Another service process on this database added it first.
                again = inspect(self._engine).get_columns(_JobRow.__tablename__)
                if name not in {c["name"] for c in again}:
                    raise
            logger.info("job database: added column %s to %s", name, _JobRow.__tablename__)

    def _shown(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def add(self, job: NewJob) -> StoredJob:
        """Insert a queued job.

        ``job.output_dir`` must be absolute and resolved: it is compared with the other jobs'
        directories component by component, whatever their state.

        Raises:
            OutputInUse: another job's output directory is this one, is inside it or
                contains it.
        """
        now = utcnow()
        row = _JobRow(
            id=job.id,
            name=job.name,
            state=JobState.QUEUED.value,
            spec_json=job.spec_json,
            output_dir=job.output_dir,
            submission_id="",
            attempts=0,
            created_at=now,
            updated_at=now,
            training_id="",
            training_state=TrainingState.WAITING.value if job.training else "",
        )
        try:
            with self._add_lock, self._sessions.begin() as session:
                clash = self._overlapping(session, job.output_dir)
                if clash is not None:
                    raise OutputInUse(job.output_dir, *clash)
                session.add(row)
        except IntegrityError as exc:
            # Another process inserted the same directory between our check and insert.
            raise OutputInUse(job.output_dir, *self._owner_of(job.output_dir)) from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot store job {job.id}: {exc}") from exc
        return StoredJob(
            id=job.id,
            name=job.name,
            state=JobState.QUEUED,
            spec_json=job.spec_json,
            output_dir=job.output_dir,
            submission_id="",
            attempts=0,
            error=None,
            progress_json=None,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
            training_state=TrainingState.WAITING if job.training else None,
        )

    @staticmethod
    def _overlapping(session: Session, output_dir: str) -> tuple[str, str] | None:
        """Id and directory of a job whose output is, contains or is inside ``output_dir``."""
        path = PurePath(output_dir)
        ancestors_and_self = [str(path), *(str(p) for p in path.parents)]
        # Descendants share the prefix up to a separator; substr, unlike LIKE, has no
        # wildcards to escape (`_` and `%` are legal in directory names).
        prefix = str(path).rstrip("/") + "/"
        found = session.execute(
            select(_JobRow.id, _JobRow.output_dir)
            .where(
                or_(
                    _JobRow.output_dir.in_(ancestors_and_self),
                    func.substr(_JobRow.output_dir, 1, len(prefix)) == prefix,
                )
            )
            .order_by(_JobRow.created_at)
            .limit(1)
        ).first()
        return None if found is None else (found[0], found[1])

    def _owner_of(self, output_dir: str) -> tuple[str | None, str | None]:
        try:
            with self._sessions() as session:
                return self._overlapping(session, output_dir) or (None, None)
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot look up which job owns output directory {output_dir}: {exc}"
            ) from exc

    def get(self, job_id: str) -> StoredJob:
        try:
            with self._sessions() as session:
                return self._read(session, job_id)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read job {job_id}: {exc}") from exc

    @staticmethod
    def _read(session: Session, job_id: str) -> StoredJob:
        row = session.execute(select(*_RAW_COLUMNS).where(_JobRow.id == job_id)).first()
        if row is None:
            raise KeyError(job_id)
        return _stored(row)

    def update(self, job_id: str, *, read: StoredJob | None = None, **changes: Any) -> StoredJob:
        """Change some columns (``state``, ``error``, ...), and ``updated_at`` if one differs.

        With ``read``, the change is made only if the row still has the state, submission
        id and attempt count of that earlier read (one atomic ``UPDATE ... WHERE``), so a
        decision taken on a stale read never overwrites a cancel or a resume made meanwhile.

        Raises:
            KeyError: no job with this id.
            JobChanged: ``read`` is stale; nothing was changed.
        """
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}; updatable: {sorted(_UPDATABLE)}")
        if isinstance(changes.get("state"), JobState):
            changes["state"] = changes["state"].value
        statement = update(_JobRow).where(_JobRow.id == job_id)
        if read is not None:
            statement = statement.where(
                _JobRow.state == read.state.value,
                _JobRow.submission_id == read.submission_id,
                _JobRow.attempts == read.attempts,
            )
        # Decided inside the UPDATE (SET sees the old values), so a refresh that finds
        # nothing new leaves "when the service last changed this record" alone.
        differs = [getattr(_JobRow, name).is_distinct_from(v) for name, v in changes.items()]
        updated_at = (
            case((or_(*differs), utcnow()), else_=_JobRow.updated_at)
            if differs
            else _JobRow.updated_at
        )
        try:
            with self._sessions.begin() as session:
                # Core UPDATE on the session's connection: its result counts matched rows.
                matched = (
                    session.connection()
                    .execute(statement.values(**changes, updated_at=updated_at))
                    .rowcount
                )
                now = self._read(session, job_id)
                if not matched:
                    raise JobChanged(
                        f"job {job_id} changed meanwhile: it is now {now.state.value} "
                        f"(run {now.submission_id or 'none'}, attempt {now.attempts})",
                        job_id=job_id,
                    )
                return now
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot update job {job_id}: {exc}") from exc

    def update_training(self, job_id: str, *, expect: TrainingState, **changes: Any) -> StoredJob:
        """Change the hand-off columns if its state is still ``expect`` (atomically).

        ``training_state`` may be given as a ``TrainingState``. A hand-off only moves from
        ``waiting`` once the build is stored as succeeded, so a cancel stored first wins.

        Raises:
            KeyError: no job with this id.
            JobChanged: the hand-off (or, from ``waiting``, the build) changed meanwhile;
                nothing was changed.
        """
        unknown = set(changes) - _TRAINING_UPDATABLE
        if unknown:
            raise ValueError(
                f"cannot update {sorted(unknown)}; updatable: {sorted(_TRAINING_UPDATABLE)}"
            )
        if isinstance(changes.get("training_state"), TrainingState):
            changes["training_state"] = changes["training_state"].value
        statement = update(_JobRow).where(
            _JobRow.id == job_id, _JobRow.training_state == expect.value
        )
        if expect is TrainingState.WAITING:
            statement = statement.where(_JobRow.state == JobState.SUCCEEDED.value)
        try:
            with self._sessions.begin() as session:
                matched = (
                    session.connection()
                    .execute(statement.values(**changes, updated_at=utcnow()))
                    .rowcount
                )
                now = self._read(session, job_id)
                if not matched:
                    shown = now.training_state.value if now.training_state else "none"
                    raise JobChanged(
                        f"job {job_id}'s hand-off changed meanwhile: it is now {shown} "
                        f"(build {now.state.value})",
                        job_id=job_id,
                    )
                return now
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot update the hand-off of job {job_id}: {exc}") from exc

    def open_handoffs(self) -> list[StoredJob]:
        """Jobs whose hand-off may still change and whose build has not failed or stopped."""
        builds = [JobState.QUEUED.value, JobState.RUNNING.value, JobState.SUCCEEDED.value]
        query = select(*_RAW_COLUMNS).where(
            _JobRow.training_state.in_([s.value for s in OPEN_HANDOFFS]),
            _JobRow.state.in_(builds),
        )
        try:
            with self._sessions() as session:
                return [_stored(r) for r in session.execute(query).all()]
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot list open hand-offs: {exc}") from exc

    def page(
        self, *, offset: int = 0, limit: int = 100, state: JobState | None = None
    ) -> tuple[list[StoredJob], int]:
        """A page of jobs, newest first, and how many jobs match in all."""
        query = select(*_RAW_COLUMNS)
        counted = select(func.count()).select_from(_JobRow)
        if state is not None:
            query = query.where(_JobRow.state == state.value)
            counted = counted.where(_JobRow.state == state.value)
        query = query.order_by(_JobRow.created_at.desc(), _JobRow.id).offset(offset).limit(limit)
        try:
            with self._sessions() as session:
                rows = session.execute(query).all()
                total = session.scalar(counted) or 0
                return [_stored(r) for r in rows], int(total)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot list jobs: {exc}") from exc

    def unfinished(self) -> list[StoredJob]:
        """Jobs whose state can still change (queued or running)."""
        live = [JobState.QUEUED.value, JobState.RUNNING.value]
        try:
            with self._sessions() as session:
                rows = session.execute(select(*_RAW_COLUMNS).where(_JobRow.state.in_(live))).all()
                return [_stored(r) for r in rows]
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot list unfinished jobs: {exc}") from exc

    def live_or_finished_since(self, since: datetime, *, limit: int) -> list[StoredJob]:
        """Queued and running jobs, and jobs that finished at or after ``since``.

        At most ``limit`` of them, the most recently changed first.
        """
        live = [JobState.QUEUED.value, JobState.RUNNING.value]
        query = (
            select(*_RAW_COLUMNS)
            .where(or_(_JobRow.state.in_(live), _JobRow.finished_at >= since))
            .order_by(_JobRow.updated_at.desc(), _JobRow.id)
            .limit(limit)
        )
        try:
            with self._sessions() as session:
                return [_stored(r) for r in session.execute(query).all()]
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot list recent jobs: {exc}") from exc

    def count_by_state(self) -> dict[JobState, int]:
        """Number of jobs in each state (every state present, zero included)."""
        counts = dict.fromkeys(JobState, 0)
        try:
            with self._sessions() as session:
                rows: Sequence[Any] = session.execute(
                    select(_JobRow.state, func.count()).group_by(_JobRow.state)
                ).all()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot count jobs: {exc}") from exc
        for state, n in rows:
            try:
                counts[JobState(state)] += int(n)
            except ValueError:  # a damaged record, shown as failed
                counts[JobState.FAILED] += int(n)
        return counts

    def all_progress(self) -> list[str]:
        """The stored progress snapshots of every job that has one."""
        try:
            with self._sessions() as session:
                found = session.scalars(
                    select(_JobRow.progress_json).where(_JobRow.progress_json.is_not(None))
                ).all()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot read job progress: {exc}") from exc
        return [p for p in found if p is not None]
