"""What a synthesis run read, picked, kept and dropped, by reason.

Every picked function ends as exactly one kept problem or one drop reason, so
``problems_kept + sum(dropped.values()) == functions_picked`` (``accounted``). Pure data.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SynthesisReport(BaseModel):
    """Counts of one synthesis run."""

    model_config = ConfigDict(extra="forbid")

    files_read: int = Field(default=0, description="Python files read and parsed.")
    files_skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Files not used, by reason (`test_file`, `too_large`, `unreadable`, "
        "`not_python`).",
    )
    functions_picked: int = Field(default=0, description="Functions the model was asked about.")
    functions_skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Top-level functions passed over, by reason (`private`, `test`, `async`, "
        "`short`, `long`, `redefined`).",
    )
    problems_kept: int = Field(default=0, description="Problems written.")
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="Picked functions that gave no problem, by reason "
        "(`pipeline.synthesis.answer.DropReason`).",
    )
    wall_s: float = Field(default=0.0, description="Wall time of the run, in seconds.")

    @property
    def accounted(self) -> bool:
        """Whether every picked function is either kept or dropped with a reason."""
        return self.problems_kept + sum(self.dropped.values()) == self.functions_picked

    def summary(self) -> str:
        """A few lines for a person.

        >>> print(SynthesisReport(files_read=2, functions_picked=3, problems_kept=1,
        ...                       dropped={"syntax_error": 2}).summary())
        files read       2
        functions picked 3
        problems kept    1
        dropped          2 (syntax_error 2)
        wall time        0.0 s
        """

        def reasons(counts: dict[str, int]) -> str:
            listed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
            return f" ({listed})" if listed else ""

        rows = [
            ("files read", f"{self.files_read}{reasons(self.files_skipped)}"),
            ("functions picked", f"{self.functions_picked}{reasons(self.functions_skipped)}"),
            ("problems kept", f"{self.problems_kept}"),
            ("dropped", f"{sum(self.dropped.values())}{reasons(self.dropped)}"),
            ("wall time", f"{self.wall_s:.1f} s"),
        ]
        return "\n".join(f"{label:<17}{value}" for label, value in rows)
