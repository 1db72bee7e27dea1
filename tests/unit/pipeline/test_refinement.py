"""Target-DPO refinement steps (pipeline.refinement) over canned ProblemStates: no Ray, no Docker.

Each step is fed the state the previous one would hand on, with the sandbox's part (the
statuses, errors and outputs of each program) written in by hand.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from pipeline.config import JobSpec, parse_job_spec
from pipeline.line_diff import line_diff
from pipeline.parsing import fenced_solution
from pipeline.problem_state import ProblemState
from pipeline.prompts import code_prompt
from pipeline.records import (
    Candidates,
    CellStatus,
    CodeCandidate,
    GenerationInfo,
    LineSpan,
    PairMethod,
    PreferencePair,
    Problem,
    PromptStyle,
    SkipReason,
    TestCandidate,
    TestsOrigin,
    Trajectory,
    Version,
)
from pipeline.refinement import (
    TARGET_DPO_RANKER,
    begin,
    collect_round,
    estimated_tokens,
    finish,
    parse_round,
    pending_programs,
    plan_round,
    record_round,
    trajectory_pair,
)
from pipeline.sampling import SampleRequest, SampleResult, SampleRole
from pipeline.seeding import derive_seed

P, F, E = CellStatus.PASSED, CellStatus.FAILED, CellStatus.ERROR
JOB = "job-1"

PROMPT = 'def inc(x):\n    """Return x + 1."""\n'
TESTS = ["assert inc(1) == 2", "assert inc(0) == 1"]
CHECK = (
    "METADATA = {'author': 'jt'}\n\n\n"
    "def check(candidate):\n"
    "    assert candidate(1) == 2\n"
    "    assert candidate(0) == 1\n"
)
OWN = Problem(problem_id="P/own", prompt=PROMPT, entry_point="inc", tests=TESTS)
BARE = Problem(problem_id="P/bare", prompt=PROMPT, entry_point="inc")
INSTRUCTED = Problem(
    problem_id="P/instr",
    prompt="Write inc(x) that returns x + 1.",
    entry_point="inc",
    style=PromptStyle.INSTRUCTION,
    tests=TESTS,
)

WRONG = "    return x - 1\n"
WRONG2 = "    return x + 2\n"
RIGHT = "    return x + 1\n"


def spec(k: int | None = None, prompt_mode: str = "separate", **pairs: Any) -> JobSpec:
    sampler: dict[str, Any] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:1/v1",
        "model": "m",
        "prompt_mode": prompt_mode,
    }
    if k is not None:
        sampler["k"] = k
    return parse_job_spec(
        {
            "source": {"path": "in.jsonl"},
            "sampler": sampler,
            "output": {"uri": "/tmp/out"},
            "pairs": {"method": "target_dpo", **pairs},
        }
    )


def version(round_: int, completion: str, statuses: list[CellStatus], **kw: Any) -> Version:
    """A completion-style version of OWN's prompt."""
    return Version(
        round=round_, completion=completion, program=PROMPT + completion, statuses=statuses, **kw
    )


def refining(*trajectories: Trajectory, problem: Problem = OWN, **update: Any) -> ProblemState:
    """A problem between rounds: parsed, with verified tests and the given trajectories."""
    code = CodeCandidate(completion=WRONG, program=PROMPT + WRONG, count=1, first_sample=0)
    tests = [TestCandidate(source=t, count=1, first_sample=0) for t in TESTS]
    return ProblemState(
        index=0,
        problem=problem,
        code_completions=[WRONG],
        candidates=Candidates(problem_id=problem.problem_id, codes=[code], tests=tests),
        status=[[F, P]],
        verified_tests=TESTS,
        tests_origin=TestsOrigin.PROBLEM,
        trajectories=list(trajectories),
        **update,
    )


def run_trajectory(index: int = 0) -> Trajectory:
    """A trajectory whose last version (v0) fails, with its feedback."""
    return Trajectory(index=index, versions=[version(0, WRONG, [F, P], feedback="FEEDBACK-0")])


def request(index: int, role: SampleRole = SampleRole.REFINE, problem: str = "P/own") -> Any:
    return SampleRequest(problem_id=problem, role=role, index=index, prompt="p", seed=1)


# ---------------------------------------------------------------- plan_round


def test_round_0_with_own_tests_asks_only_for_code():
    config = spec(k=3).sampler
    requests = plan_round(ProblemState(index=0, problem=OWN), config, JOB, 0)
    assert [(r.role, r.index) for r in requests] == [(SampleRole.CODE, i) for i in range(3)]
    assert all(r.prompt == code_prompt(OWN) for r in requests)


def test_round_0_without_tests_asks_for_code_and_tests_or_joint_answers():
    state = ProblemState(index=0, problem=BARE)
    separate = plan_round(state, spec(k=2).sampler, JOB, 0)
    assert sorted((r.role.value, r.index) for r in separate) == [
        ("code", 0),
        ("code", 1),
        ("test", 0),
        ("test", 1),
    ]
    joint = plan_round(state, spec(k=2, prompt_mode="joint").sampler, JOB, 0)
    assert [(r.role, r.index) for r in joint] == [(SampleRole.JOINT, 0), (SampleRole.JOINT, 1)]


def test_round_r_asks_one_refinement_per_failing_running_trajectory():
    passed = Trajectory(index=1, versions=[version(0, RIGHT, [P, P])])
    stopped = run_trajectory(2).model_copy(update={"stopped": "no code"})
    state = refining(run_trajectory(0), passed, stopped, run_trajectory(3))
    requests = plan_round(state, spec(k=4).sampler, JOB, 1)
    assert [(r.role, r.index) for r in requests] == [(SampleRole.REFINE, 0), (SampleRole.REFINE, 3)]
    assert all(r.problem_id == "P/own" for r in requests)


def test_refinement_seeds_differ_per_trajectory_and_round_and_are_stable():
    state = refining(run_trajectory(0), run_trajectory(1))
    config = spec(k=2).sampler
    round1 = plan_round(state, config, JOB, 1)
    round2 = plan_round(state, config, JOB, 2)
    seeds = [r.seed for r in round1 + round2]
    assert len(set(seeds)) == 4
    assert [r.seed for r in plan_round(state, config, JOB, 1)] == [r.seed for r in round1]
    other_job = plan_round(state, config, "job-2", 1)
    assert [r.seed for r in other_job] != [r.seed for r in round1]


def test_refinement_request_carries_code_and_feedback_as_three_turns():
    (req,) = plan_round(refining(run_trajectory(0)), spec().sampler, JOB, 1)
    roles = [role for role, _ in req.messages]
    assert roles == ["user", "assistant", "user"]
    assert WRONG.strip() in req.messages[1][1]
    assert "FEEDBACK-0" in req.messages[2][1]
    assert "FEEDBACK-0" in req.prompt and WRONG.strip() in req.prompt
    assert [m["role"] for m in req.chat()] == roles


def test_round_r_asks_nothing_when_every_trajectory_passed_or_stopped():
    passed = Trajectory(index=0, versions=[version(0, WRONG, [F, P]), version(1, RIGHT, [P, P])])
    stopped = run_trajectory(1).model_copy(update={"stopped": "request failed"})
    assert plan_round(refining(passed, stopped), spec(k=2).sampler, JOB, 2) == []


# ---------------------------------------------------------------- collect_round


def test_collect_round_r_sets_pending_text_and_stops_failed_requests():
    state = refining(run_trajectory(0), run_trajectory(1), run_trajectory(2))
    results = [
        SampleResult(request(0), text="```python\nx\n```"),
        SampleResult(request(1), error="HTTP 500 after 5 retries"),
        SampleResult(request(7), text="for nobody"),
    ]
    out = collect_round(state, spec(k=3).sampler, results, continuation=False, round_=2)
    first, second, third = out.trajectories
    assert first.pending == "```python\nx\n```" and first.stopped is None
    assert second.pending is None
    assert second.stopped is not None
    assert "HTTP 500 after 5 retries" in second.stopped and "round 2" in second.stopped
    assert third == state.trajectories[2]
    assert [t.index for t in out.trajectories] == [0, 1, 2]


def test_collect_round_0_assembles_code_samples_in_index_order():
    state = ProblemState(index=0, problem=OWN)
    results = [
        SampleResult(request(1, SampleRole.CODE), text=RIGHT),
        SampleResult(request(0, SampleRole.CODE), text=WRONG),
        SampleResult(request(2, SampleRole.CODE), error="timeout"),
    ]
    out = collect_round(state, spec(k=3).sampler, results, continuation=True, round_=0)
    assert out.code_completions == [WRONG, RIGHT]
    assert not out.test_completions and out.completions is None
    assert len(out.sampler_errors) == 1 and "timeout" in out.sampler_errors[0]


# ---------------------------------------------------------------- parse_round, round 0


@pytest.mark.parametrize("tests", [TESTS, CHECK], ids=["assert_list", "humaneval_check"])
def test_round_0_with_own_tests_keeps_codes_and_the_verified_tests(tests):
    problem = OWN.model_copy(update={"tests": tests})
    state = ProblemState(index=0, problem=problem, code_completions=[WRONG, RIGHT, WRONG])
    out = parse_round(state, 0)
    assert out.skip is None
    assert out.tests_origin is TestsOrigin.PROBLEM
    assert out.verified_tests == TESTS
    assert out.candidates is not None
    assert [t.source for t in out.candidates.tests] == TESTS
    assert [(c.completion, c.count) for c in out.candidates.codes] == [(WRONG, 2), (RIGHT, 1)]
    assert out.candidates.codes[0].program == PROMPT + WRONG


@pytest.mark.parametrize("tests", [["x = 1"], [], "def helper():\n    pass\n"])
def test_round_0_with_unusable_own_tests_skips_as_bad_tests(tests):
    problem = OWN.model_copy(update={"tests": tests})
    out = parse_round(ProblemState(index=0, problem=problem, code_completions=[RIGHT]), 0)
    assert out.skip is SkipReason.BAD_TESTS
    assert out.error
    assert out.verified_tests is None


def test_round_0_without_tests_parses_sampled_codes_and_tests_as_focused_dpo_does():
    state = ProblemState(
        index=0,
        problem=BARE,
        code_completions=[WRONG, RIGHT],
        test_completions=["assert inc(1) == 2\n", "assert inc(3) == 4\n"],
    )
    out = parse_round(state, 0)
    assert out.candidates is not None
    assert [c.completion for c in out.candidates.codes] == [WRONG, RIGHT]
    assert [t.source for t in out.candidates.tests] == ["assert inc(1) == 2", "assert inc(3) == 4"]
    assert out.verified_tests is None and out.tests_origin is None


def test_round_0_without_samples_is_passed_on():
    state = ProblemState(index=0, problem=OWN, sampler_errors=["code sample 0: boom"])
    assert parse_round(state, 0) == state


# ---------------------------------------------------------------- parse_round, round r


def pending(answer: str, problem: Problem = OWN) -> ProblemState:
    return refining(run_trajectory(0).model_copy(update={"pending": answer}), problem=problem)


def test_fenced_answer_becomes_the_next_version_awaiting_execution():
    problem = INSTRUCTED
    v0 = Version(
        round=0,
        completion="```python\ndef inc(x):\n    return x\n```",
        program="def inc(x):\n    return x\n",
        statuses=[F, F],
        feedback="fb",
    )
    answer = "Here:\n```python\ndef inc(x):\n    return x + 1\n```\nDone."
    state = refining(Trajectory(index=0, versions=[v0], pending=answer), problem=problem)
    (trajectory,) = parse_round(state, 1).trajectories
    assert trajectory.pending is None and trajectory.stopped is None
    assert trajectory.versions[0] == v0
    new = trajectory.versions[1]
    assert new.round == 1 and new.statuses == [] and new.feedback == ""
    assert new.program == "def inc(x):\n    return x + 1\n"
    assert new.completion == "```python\ndef inc(x):\n    return x + 1\n```"


def test_bare_python_answer_is_accepted():
    (trajectory,) = parse_round(pending("def inc(x):\n    return x + 1\n"), 3).trajectories
    assert trajectory.stopped is None
    assert trajectory.versions[-1].round == 3
    assert trajectory.versions[-1].program == "def inc(x):\n    return x + 1\n"


@pytest.mark.parametrize(
    "answer",
    [
        "I am not sure what is wrong with this code, sorry.",
        "Run this:\n```bash\npip install numpy\n```\n",
        "```python\n\n```",
    ],
    ids=["prose", "other_language", "empty_block"],
)
def test_answer_without_python_code_stops_the_trajectory(answer):
    state = pending(answer)
    (trajectory,) = parse_round(state, 2).trajectories
    assert trajectory.pending is None
    assert trajectory.stopped is not None and "round 2" in trajectory.stopped
    assert trajectory.versions == state.trajectories[0].versions


def test_completion_answer_repeating_the_header_keeps_prompt_plus_continuation():
    answer = f"```python\n{PROMPT}    y = x\n    return y + 1\n```"
    (trajectory,) = parse_round(pending(answer), 1).trajectories
    new = trajectory.versions[-1]
    assert new.completion == "    y = x\n    return y + 1\n"
    assert new.program == PROMPT + new.completion


def test_completion_answer_without_the_header_is_a_fenced_solution():
    answer = "```python\ndef inc(x):\n    return x + 1\n```"
    (trajectory,) = parse_round(pending(answer), 1).trajectories
    new = trajectory.versions[-1]
    assert new.completion == fenced_solution("def inc(x):\n    return x + 1")
    assert new.program == "def inc(x):\n    return x + 1\n"


def test_completion_prompt_ending_in_indentation_gives_the_model_program():
    problem = OWN.model_copy(update={"prompt": "def inc(x):\n    "})
    code = "def inc(x):\n    y = x\n    return y + 1"
    (trajectory,) = parse_round(pending(f"```python\n{code}\n```", problem), 1).trajectories
    new = trajectory.versions[-1]
    assert new.program == code + "\n"
    ast.parse(new.program)


def test_trajectories_without_a_pending_answer_are_left_alone():
    passed = Trajectory(index=1, versions=[version(0, RIGHT, [P, P])])
    state = refining(
        run_trajectory(0).model_copy(update={"pending": "```python\npass\n```"}), passed
    )
    out = parse_round(state, 1)
    assert out.trajectories[1] == passed
    assert len(out.trajectories[0].versions) == 2


# ---------------------------------------------------------------- begin


def executed_own(
    status: list[list[CellStatus]],
    codes: list[str],
    errors: list[list[str]] | None = None,
    outputs: list[list[str]] | None = None,
) -> ProblemState:
    state = parse_round(ProblemState(index=0, problem=OWN, code_completions=codes), 0)
    return state.model_copy(
        update={"status": status, "cell_errors": errors, "cell_outputs": outputs}
    )


def test_begin_with_own_tests_starts_one_trajectory_per_code_with_v0_statuses():
    state = executed_own(
        [[F, E], [P, P], [F, P]],
        [WRONG, RIGHT, WRONG2],
        errors=[["AssertionError: got 0", "NameError: nope"], ["", ""], ["AssertionError", ""]],
        outputs=[["printed-by-wrong", ""], ["", ""], ["", ""]],
    )
    out = begin(state, spec(k=3))
    assert out.skip is None
    assert [t.index for t in out.trajectories] == [0, 1, 2]
    v0s = [t.versions[0] for t in out.trajectories]
    assert [v.statuses for v in v0s] == [[F, E], [P, P], [F, P]]
    assert [v.completion for v in v0s] == [WRONG, RIGHT, WRONG2]
    assert all(v.round == 0 and v.program == PROMPT + v.completion for v in v0s)
    assert v0s[1].feedback == ""
    assert "AssertionError: got 0" in v0s[0].feedback
    assert "NameError: nope" in v0s[0].feedback
    assert "printed-by-wrong" in v0s[0].feedback
    assert TESTS[0] in v0s[0].feedback
    assert TESTS[0] in v0s[2].feedback and TESTS[1] not in v0s[2].feedback
    assert out.cell_errors is None and out.cell_outputs is None
    assert out.verified_tests == TESTS and out.tests_origin is TestsOrigin.PROBLEM


def test_begin_starts_at_most_k_trajectories():
    state = executed_own([[F, F], [F, P], [P, P]], [WRONG, WRONG2, RIGHT])
    assert len(begin(state, spec(k=2)).trajectories) == 2


def test_begin_without_captured_feedback_still_describes_failing_tests():
    (trajectory,) = begin(executed_own([[F, P]], [WRONG]), spec()).trajectories
    assert TESTS[0] in trajectory.versions[0].feedback


def ranked(status: list[list[CellStatus]]) -> ProblemState:
    """BARE with codes WRONG, RIGHT, RIGHT and three sampled tests, executed."""
    state = ProblemState(
        index=0,
        problem=BARE,
        code_completions=[WRONG, RIGHT, RIGHT],
        test_completions=["assert inc(1) == 2\n", "assert inc(0) == 1\n", "assert inc(5) == 0\n"],
    )
    return parse_round(state, 0).model_copy(update={"status": status})


def test_begin_without_own_tests_verifies_the_tests_the_top_ranked_code_passes():
    # WRONG passes only the bad test; RIGHT (two samples) passes the two good ones.
    out = begin(ranked([[F, F, P], [P, P, F]]), spec(k=3))
    assert out.skip is None
    assert out.ranking is not None and out.ranking.order[0] == 1
    assert out.tests_origin is TestsOrigin.RANKING
    assert out.verified_tests == ["assert inc(1) == 2", "assert inc(0) == 1"]
    assert [t.versions[0].statuses for t in out.trajectories] == [[F, F], [P, P]]
    assert "assert inc(5) == 0" not in out.trajectories[0].versions[0].feedback


def test_begin_without_enough_ground_truth_tests_skips():
    out = begin(ranked([[F, F, P], [P, P, F]]), spec(k=3, min_ground_truth_tests=3))
    assert out.skip is SkipReason.NO_GROUND_TRUTH
    assert out.ranking is not None
    assert out.trajectories == []


def test_begin_without_codes_or_tests_skips():
    empty = Candidates(problem_id="P/bare", codes=[], tests=[])
    no_codes = ProblemState(index=0, problem=BARE, candidates=empty, status=[])
    assert begin(no_codes, spec()).skip is SkipReason.NO_CODES
    code = CodeCandidate(completion=RIGHT, program=PROMPT + RIGHT, count=1, first_sample=0)
    no_tests = no_codes.model_copy(
        update={"candidates": empty.model_copy(update={"codes": [code]}), "status": [[]]}
    )
    assert begin(no_tests, spec()).skip is SkipReason.NO_TESTS


def test_begin_passes_on_a_problem_already_skipped():
    state = parse_round(
        ProblemState(
            index=0, problem=OWN.model_copy(update={"tests": []}), code_completions=[RIGHT]
        ),
        0,
    )
    assert begin(state, spec()) == state


# ---------------------------------------------------------------- pending_programs, record_round


def test_record_round_lands_statuses_and_feedback_on_the_pending_versions():
    fresh = Version(round=1, completion=WRONG2, program=PROMPT + WRONG2, statuses=[])
    fixed = Version(round=1, completion=RIGHT, program=PROMPT + RIGHT, statuses=[])
    first = run_trajectory(0)
    state = refining(
        first.model_copy(update={"versions": [*first.versions, fresh]}),
        Trajectory(index=1, versions=[version(0, RIGHT, [P, P])]),
        run_trajectory(2).model_copy(update={"stopped": "request failed"}),
        run_trajectory(3).model_copy(update={"versions": [*run_trajectory(3).versions, fixed]}),
    )
    assert pending_programs(state) == [PROMPT + WRONG2, PROMPT + RIGHT]
    out = record_round(
        state,
        [[P, F], [P, P]],
        [["", "AssertionError: off by two"], ["", ""]],
        [["", "debug-out"], ["", ""]],
        spec().pairs,
    )
    t0, t1, t2, t3 = out.trajectories
    assert t0.versions[-1].statuses == [P, F]
    assert "off by two" in t0.versions[-1].feedback and "debug-out" in t0.versions[-1].feedback
    assert TESTS[1] in t0.versions[-1].feedback
    assert t0.versions[0] == state.trajectories[0].versions[0]
    assert t1 == state.trajectories[1] and t2 == state.trajectories[2]
    assert t3.versions[-1].statuses == [P, P] and t3.versions[-1].feedback == ""
    assert t3.passed and not t0.passed
    assert pending_programs(out) == []


def test_record_round_bounds_feedback_by_the_pairs_config():
    fresh = Version(round=1, completion=WRONG2, program=PROMPT + WRONG2, statuses=[])
    t = run_trajectory(0)
    state = refining(t.model_copy(update={"versions": [*t.versions, fresh]}))
    out = record_round(
        state, [[F, F]], [["x" * 5000, "y" * 5000]], [], spec(feedback_chars=300).pairs
    )
    feedback = out.trajectories[0].versions[-1].feedback
    assert 0 < len(feedback) <= 300


# ---------------------------------------------------------------- finish, trajectory_pair

GEN = GenerationInfo(model="m", sampler="openai")


def refined(*completions: str, index: int = 0) -> Trajectory:
    """Versions with these completions; all fail but the last, which passes."""
    n = len(completions)
    return Trajectory(
        index=index,
        versions=[
            version(r, c, [P, P] if r == n - 1 else [F, P], feedback="" if r == n - 1 else "fb")
            for r, c in enumerate(completions)
        ],
    )


def pair_of(trajectory: Trajectory, seed: int = 0, **pairs: Any) -> PreferencePair | SkipReason:
    return trajectory_pair(
        refining(trajectory), trajectory, spec(**pairs).pairs, seed=seed, job_id=JOB, generation=GEN
    )


def text_of(text: str, span: LineSpan) -> str:
    return text[span.start : span.end]


def test_pair_chooses_the_passing_version_and_marks_its_lines():
    trajectory = refined(WRONG, RIGHT)
    pair = pair_of(trajectory)
    assert isinstance(pair, PreferencePair)
    assert pair.method is PairMethod.TARGET_DPO and pair.ranker == TARGET_DPO_RANKER
    assert (pair.prompt, pair.chosen, pair.rejected) == (PROMPT, RIGHT, WRONG)
    assert (pair.chosen_index, pair.rejected_index) == (1, 0)
    assert (pair.chosen_round, pair.rejected_round, pair.trajectory) == (1, 0, 0)
    assert (pair.chosen_score, pair.rejected_score) == (1.0, 0.0)
    assert pair.generation == GEN and pair.job_id == JOB and pair.problem_id == "P/own"


def test_line_spans_are_the_line_diff_of_the_stored_strings():
    chosen = "    y = x\n    z = y + 1\n    return z\n"
    rejected = "    y = x\n    z = y - 1\n    w = z\n    return w\n"
    pair = pair_of(refined(rejected, chosen))
    assert isinstance(pair, PreferencePair)
    assert (pair.chosen_lines, pair.rejected_lines) == line_diff(pair.chosen, pair.rejected)
    assert pair.chosen_lines and pair.rejected_lines
    chosen_lines = pair.chosen.splitlines(keepends=True)
    rejected_lines = pair.rejected.splitlines(keepends=True)
    for span in pair.chosen_lines:
        assert text_of(pair.chosen, span) == chosen_lines[span.line]
    for span in pair.rejected_lines:
        assert text_of(pair.rejected, span) == rejected_lines[span.line]
    assert [text_of(pair.rejected, s) for s in pair.rejected_lines] == [
        "    z = y - 1\n",
        "    w = z\n",
        "    return w\n",
    ]


def test_rejected_draw_is_seeded_and_uniform_over_earlier_versions():
    trajectory = refined(WRONG, WRONG2, RIGHT)
    draws = set()
    for problem in range(40):
        state = refining(trajectory, problem=OWN.model_copy(update={"problem_id": f"P/{problem}"}))
        job = spec()
        first = finish(state, job, job_id=JOB)
        again = finish(state, job, job_id=JOB)
        assert first.pairs == again.pairs
        (pair,) = first.pairs
        assert pair.rejected == trajectory.versions[pair.rejected_index].completion
        assert pair.rejected_round == pair.rejected_index
        draws.add(pair.rejected_index)
    assert draws == {0, 1}


def test_rejected_draw_varies_across_trajectories_of_one_problem():
    trajectories = [refined(WRONG, WRONG2, RIGHT, index=i) for i in range(40)]
    out = finish(refining(*trajectories), spec(k=40), job_id=JOB)
    assert len(out.pairs) == 40
    assert {p.rejected_index for p in out.pairs} == {0, 1}
    assert [p.trajectory for p in out.pairs] == list(range(40))


def test_comment_only_difference_is_skipped():
    rejected = "    # add one\n    return x + 1\n"
    assert pair_of(refined(rejected, RIGHT)) is SkipReason.COMMENT_ONLY


def test_more_differing_lines_than_max_diff_lines_is_skipped():
    rejected = "    a = x\n    b = a\n    c = b\n    return c - 1\n"
    assert pair_of(refined(rejected, RIGHT), max_diff_lines=3) is SkipReason.TOO_MANY_LINES
    assert isinstance(pair_of(refined(rejected, RIGHT), max_diff_lines=4), PreferencePair)


def test_formatting_only_difference_is_skipped_as_identical_ast():
    v0 = Version(
        round=0,
        completion=fenced_solution("def inc(x):\n    return (x+1)"),
        program="def inc(x):\n    return (x+1)\n",
        statuses=[F, P],
        feedback="fb",
    )
    v1 = Version(
        round=1,
        completion=fenced_solution("def inc(x):\n    return x + 1"),
        program="def inc(x):\n    return x + 1\n",
        statuses=[P, P],
    )
    trajectory = Trajectory(index=0, versions=[v0, v1])
    pair = trajectory_pair(
        refining(trajectory, problem=INSTRUCTED),
        trajectory,
        spec().pairs,
        seed=0,
        job_id=JOB,
        generation=GEN,
    )
    assert pair is SkipReason.IDENTICAL_AST


def test_formatting_only_difference_of_continuations_is_skipped_as_identical_ast():
    assert pair_of(refined("    return (x+1)\n", RIGHT)) is SkipReason.IDENTICAL_AST


def test_side_longer_than_max_tokens_is_skipped():
    assert estimated_tokens(RIGHT) <= 8 and estimated_tokens(WRONG) <= 8
    assert isinstance(pair_of(refined(WRONG, RIGHT), max_tokens=8), PreferencePair)
    long_wrong = "    return x - 1  " + "+ 0 " * 20 + "\n"
    assert pair_of(refined(long_wrong, RIGHT), max_tokens=8) is SkipReason.TOO_LONG


def test_pure_insertion_fix_is_kept_unless_empty_diffs_are_dropped():
    rejected = "    y = x + 1\n"
    chosen = "    y = x + 1\n    return y\n"
    pair = pair_of(refined(rejected, chosen))
    assert isinstance(pair, PreferencePair)
    assert pair.rejected_lines == [] and [s.line for s in pair.chosen_lines or []] == [1]
    assert pair_of(refined(rejected, chosen), empty_diff="drop") is SkipReason.EMPTY_DIFF


def test_trajectory_that_never_passed_or_passed_at_once_gives_no_pair():
    assert pair_of(run_trajectory(0)) is SkipReason.NOT_REFINED
    stopped = run_trajectory(0).model_copy(update={"stopped": "no code"})
    assert pair_of(stopped) is SkipReason.NOT_REFINED
    assert pair_of(refined(RIGHT)) is SkipReason.NO_INCORRECT


def test_finish_skip_reasons():
    job = spec(k=3)
    never = finish(refining(run_trajectory(0), run_trajectory(1)), job, job_id=JOB)
    assert never.pairs == [] and never.outcome is not None
    assert never.outcome.skip_reason is SkipReason.NOT_REFINED
    at_once = finish(refining(refined(RIGHT), run_trajectory(1)), job, job_id=JOB)
    assert at_once.outcome is not None and at_once.outcome.skip_reason is SkipReason.NO_INCORRECT
    filtered = refining(
        run_trajectory(0),
        refined(RIGHT, index=1),
        refined("    # one\n    return x + 1\n", RIGHT, index=2),
        refined("    a = x\n    b = a\n    c = b\n    return c - 1\n", RIGHT, index=3),
    )
    # Trajectory ends come first, then the first filter that dropped a pair.
    out = finish(filtered, spec(k=4, max_diff_lines=3), job_id=JOB)
    assert out.outcome is not None and out.outcome.skip_reason is SkipReason.COMMENT_ONLY
    reordered = filtered.model_copy(update={"trajectories": filtered.trajectories[::-1]})
    out = finish(reordered, spec(k=4, max_diff_lines=3), job_id=JOB)
    assert out.outcome is not None and out.outcome.skip_reason is SkipReason.TOO_MANY_LINES
    early = refining(skip=SkipReason.NO_GROUND_TRUTH, error="top code passes 0 tests")
    out = finish(early, job, job_id=JOB)
    assert out.outcome is not None
    assert out.outcome.skip_reason is SkipReason.NO_GROUND_TRUTH
    assert out.outcome.error == "top code passes 0 tests"
    unsampled = ProblemState(index=0, problem=OWN, sampler_errors=["code sample 0: boom"])
    out = finish(unsampled, job, job_id=JOB)
    assert out.outcome is not None and out.outcome.skip_reason is SkipReason.SAMPLER_ERROR


def test_finish_with_a_pair_has_no_skip_and_keeps_trajectories_without_pending():
    kept = refined(WRONG, RIGHT, index=0)
    left = run_trajectory(1).model_copy(update={"pending": "a stray answer"})
    state = refining(kept, left)
    out = finish(state, spec(k=2), job_id=JOB)
    outcome = out.outcome
    assert outcome is not None
    assert outcome.skip_reason is None and outcome.pairs_emitted == 1 == len(out.pairs)
    assert [t.index for t in outcome.trajectories] == [0, 1]
    assert all(t.pending is None for t in outcome.trajectories)
    assert outcome.trajectories[0] == kept
    assert outcome.trajectories[1].versions == left.versions
    assert outcome.verified_tests == TESTS and outcome.tests_origin is TestsOrigin.PROBLEM
    (pair,) = out.pairs
    assert pair.generation.seed == derive_seed(JOB, 0, "P/own")
    assert pair.generation.model == "m" and pair.generation.sampler == "openai"
    assert pair.generation.k == 2


def test_completion_style_continuations_keep_the_problem_prompt():
    (pair,) = finish(refining(refined(WRONG, RIGHT)), spec(), job_id=JOB).pairs
    assert pair.prompt == OWN.prompt
    assert pair.prompt + pair.chosen == PROMPT + RIGHT


def test_one_fenced_version_puts_both_sides_in_python_blocks_after_the_instruction():
    fixed_code = "def inc(x):\n    return x + 1"
    fixed = Version(
        round=1,
        completion=fenced_solution(fixed_code),
        program=fixed_code + "\n",
        statuses=[P, P],
    )
    trajectory = Trajectory(index=0, versions=[version(0, WRONG, [F, P], feedback="fb"), fixed])
    (pair,) = finish(refining(trajectory), spec(), job_id=JOB).pairs
    instruction = code_prompt(OWN.model_copy(update={"style": PromptStyle.INSTRUCTION}))
    assert pair.prompt == instruction
    assert pair.chosen == fenced_solution(fixed_code)
    assert pair.rejected == fenced_solution(PROMPT + WRONG)
    assert pair.chosen.startswith("```python\n") and pair.rejected.startswith("```python\n")
    assert pair.chosen.endswith("\n```") and pair.rejected.endswith("\n```")
    assert (pair.chosen_lines, pair.rejected_lines) == line_diff(pair.chosen, pair.rejected)
    # The fix dropped the docstring, so it differs as well as the return line.
    assert [text_of(pair.rejected, s) for s in pair.rejected_lines or []] == [
        '    """Return x + 1."""\n',
        WRONG,
    ]
    assert [text_of(pair.chosen, s) for s in pair.chosen_lines or []] == [RIGHT]


def test_instruction_style_pairs_are_fenced_blocks():
    v0 = Version(
        round=0,
        completion=fenced_solution("def inc(x):\n    return x"),
        program="def inc(x):\n    return x\n",
        statuses=[F, F],
        feedback="fb",
    )
    v1 = Version(
        round=1,
        completion=fenced_solution("def inc(x):\n    return x + 1"),
        program="def inc(x):\n    return x + 1\n",
        statuses=[P, P],
    )
    state = refining(Trajectory(index=0, versions=[v0, v1]), problem=INSTRUCTED)
    (pair,) = finish(state, spec(), job_id=JOB).pairs
    assert pair.prompt == code_prompt(INSTRUCTED)
    assert (pair.chosen, pair.rejected) == (v1.completion, v0.completion)
    assert [text_of(pair.chosen, s) for s in pair.chosen_lines or []] == ["    return x + 1\n"]


# ---------------------------------------------------------------- estimated_tokens


def test_estimated_tokens_counts_utf8_bytes_over_three_rounded_up():
    assert estimated_tokens("") == 0
    assert estimated_tokens("abc") == 1
    assert estimated_tokens("abcd") == 2
    assert estimated_tokens("é") == 1  # two bytes
    assert estimated_tokens("日本") == 2  # six bytes
    assert estimated_tokens("x" * 6144) == 2048


def test_round_0_reads_a_chat_answer_to_a_completion_prompt_as_a_whole_solution():
    # A chat model answers the bare function prompt with prose and a fenced solution that
    # need not repeat the docstring: it is a solution, not a continuation to cut.
    answer = "Here is the solution:\n```python\ndef inc(x):\n    return x + 1\n```\nHope it helps."
    state = ProblemState(index=0, problem=OWN, code_completions=[answer, RIGHT, "Sorry."])
    out = parse_round(state, 0)
    assert out.candidates is not None
    chat, plain = out.candidates.codes
    assert chat.program == "def inc(x):\n    return x + 1\n"
    assert chat.completion == "```python\ndef inc(x):\n    return x + 1\n```"
    assert plain.completion == RIGHT and plain.program == PROMPT + RIGHT
    assert out.candidates.parse_stats == {"no_code_block": 1}
