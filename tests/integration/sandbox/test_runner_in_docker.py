"""The runner in a real sandbox container: statuses, and the adversarial suite.

Every adversarial case runs as one request whose first test is the attack and whose next
test is a normal cell that must still pass (and, where it matters, checks that nothing of
the attack survived: processes, files, network). One pool serves the whole module.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from textwrap import dedent
from typing import cast

import pytest

from sandbox.docker_backend import CELL_UIDS, WarmContainer
from sandbox.limits import PoolConfig, SandboxLimits
from sandbox.pool import ContainerPool
from sandbox.types import CellMode, CellStatus, ExecutionRequest, Isolation
from tests.conftest import SANDBOX_IMAGE, requires_sandbox_image

pytestmark = [requires_sandbox_image, pytest.mark.docker]

PROGRAM = "def inc(x):\n    return x + 1\n"
NORMAL = "assert inc(1) == 2"
# The next cell sees no process of its uid but itself, and besides it only the runner's
# own three: the runner (PID 1) and the template (root), and the judge (the uid after the
# cells')...
NO_OTHER_PROCESS = (
    dedent("""\
    import os
    def uid_of(pid):
        with open(f'/proc/{pid}/status') as status:
            return next(int(l.split()[1]) for l in status if l.startswith('Uid:'))
    others = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]
    uids = sorted(uid_of(pid) for pid in others)
    assert uids == [0, 0, os.getuid() + 1], uids
""")
    + NORMAL
)
# ... and nothing left in any writable place, nor in System V IPC.
NOTHING_LEFT = (
    dedent("""\
    import os
    left = {d: os.listdir(d) for d in ('/work', '/tmp', '/dev/shm') if os.listdir(d)}
    assert left == {}, left
    for kind in ('shm', 'msg', 'sem'):
        with open('/proc/sysvipc/' + kind) as table:
            assert len(table.read().splitlines()) == 1, kind  # the header only
""")
    + NORMAL
)
PASSED, FAILED, ERROR = CellStatus.PASSED, CellStatus.FAILED, CellStatus.ERROR
TIMEOUT, MEMORY = CellStatus.TIMEOUT, CellStatus.MEMORY


@pytest.fixture(scope="module")
def pool() -> Iterator[ContainerPool]:
    config = PoolConfig(image=SANDBOX_IMAGE, workers=2, limits=SandboxLimits(memory_mb=256))
    with ContainerPool(config) as started:
        yield started


def run(pool: ContainerPool, tests: list[str], timeout_s: float = 0.5, **kwargs: object):
    return pool.run(ExecutionRequest(program=PROGRAM, tests=tests, timeout_s=timeout_s, **kwargs))


def test_each_status_is_reported(pool: ContainerPool) -> None:
    result = run(
        pool,
        [
            NORMAL,
            "assert inc(1) == 3",
            "inc(None)",
            "while True:\n    pass",
            "hog = bytearray(4 * 1024 ** 3)",
            "syntax error here",
        ],
    )
    assert result.statuses == [PASSED, FAILED, ERROR, TIMEOUT, MEMORY, ERROR]
    assert result.details[0] == ""
    assert result.details[1] == "AssertionError"
    assert result.details[2].startswith("TypeError")
    assert result.details[4] == "MemoryError"
    assert result.details[5].startswith("SyntaxError")


def test_tests_that_exhaust_the_judge_are_theirs_to_answer_for(pool: ContainerPool) -> None:
    # Split tests evaluate their own parts in the judge: a huge value there is the test's
    # MemoryError, and endless arithmetic its timeout; the judge is replaced, nothing else.
    result = run(
        pool,
        [
            "assert inc(1) == [0] * 10 ** 10",
            "assert inc(1) == 9 ** 9 ** 9",
            NORMAL,
            "assert inc(1) == [0] * 10 ** 10",
            NORMAL,
        ],
    )
    assert result.statuses == [MEMORY, TIMEOUT, PASSED, MEMORY, PASSED], result.details
    assert result.modes == [CellMode.SPLIT] * 5
    assert result.attempts == 1


def test_program_errors_fail_every_test(pool: ContainerPool) -> None:
    result = pool.run(ExecutionRequest(program="def broken(:\n", tests=[NORMAL, "pass"]))
    assert result.statuses == [ERROR, ERROR]


def test_cells_run_as_an_unprivileged_user_in_a_read_only_box(pool: ContainerPool) -> None:
    # Each container has its own cell uid (gid the same), drawn from CELL_UIDS.
    uids = sorted(cast(WarmContainer, box).cell_uid for box in pool.live_containers())
    assert len(set(uids)) == 2 and all(uid in CELL_UIDS for uid in uids)
    checks = [
        f"import os\nassert os.getuid() == os.getgid() and os.getuid() in {uids}, os.getuid()",
        # No capabilities at all in the effective, permitted or bounding-inherited sets.
        "caps = dict(l.split(':') for l in open('/proc/self/status') if l.startswith('Cap'))\n"
        "assert int(caps['CapEff'], 16) == 0 and int(caps['CapPrm'], 16) == 0",
        "open('/etc/pwned', 'w')",
        "open('/opt/pairforge/runner.py', 'a')",
        "import os\nos.setuid(0)",
    ]
    assert run(pool, checks).statuses == [PASSED, PASSED, ERROR, ERROR, ERROR]


ADVERSARIAL = {
    "infinite loop": ("while True:\n    pass", {TIMEOUT}),
    "fork bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {TIMEOUT, ERROR},
    ),
    "memory bomb": ("hog = []\nwhile True:\n    hog.append(bytearray(1 << 24))", {MEMORY}),
    "forked memory bomb": (
        "import os\nfor _ in range(3):\n    os.fork()\nhog = []\n"
        "while True:\n    hog.append(bytearray(1 << 24))",
        {MEMORY, TIMEOUT},
    ),
    "1 GB to stdout": (
        "import os, sys\nblock = 'x' * (1 << 20)\nfor _ in range(1024):\n"
        "    sys.stdout.write(block)\nos.write(2, block.encode())\nassert inc(1) == 3",
        {FAILED, TIMEOUT},
    ),
    "kill the parent": ("import os\nos.kill(os.getppid(), 9)\n" + NORMAL, {ERROR}),
    "kill everything": (
        "import os, time\nif os.fork() == 0:\n    time.sleep(5)\nos.kill(-1, 9)\ntime.sleep(0.2)\n"
        "assert inc(1) == 3",
        {FAILED},
    ),
    "ignore SIGTERM": (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True:\n    time.sleep(0.01)",
        {TIMEOUT},
    ),
    "sys.exit(0) before the asserts": ("import sys\nsys.exit(0)\nassert inc(1) == 3", {ERROR}),
    "os._exit(0) before the asserts": ("import os\nos._exit(0)\nassert inc(1) == 3", {ERROR}),
    "fake protocol output": (
        dedent("""\
            import json, os
            fake = {'id': 1, 'statuses': ['passed'], 'details': [''], 'retire': False}
            print(json.dumps(fake))
            print(json.dumps({'ready': True, 'protocol': 1}))
            record = ('0' * 32 + f' {os.getpid()} 0 passed ').encode() + b'\\n'
            for fd in range(3, 10):
                try:
                    os.write(fd, record)
                except OSError:
                    pass
            os._exit(0)
        """),
        {ERROR},
    ),
    "daemon outliving its test": (
        dedent("""\
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    while True:
                        open('/tmp/alive', 'w').close()
                        time.sleep(0.01)
                os._exit(0)
            time.sleep(0.05)
        """)
        + NORMAL,
        {PASSED},
    ),
    "files left behind": (
        dedent("""\
            import os
            open('left.txt', 'w').write('x')
            open('/tmp/left.txt', 'w').write('x')
            open('/dev/shm/left', 'w').write('x')
            os.makedirs('deep/er/est')
            open('deep/er/est/f', 'w').close()
            os.chmod('deep/er', 0)
            os.chmod('deep', 0)
        """)
        + NORMAL,
        {PASSED},
    ),
    "System V IPC left behind": (
        dedent("""\
            import ctypes
            libc = ctypes.CDLL(None)
            created = 0o1000 | 0o666
            shm = libc.shmget(1234, 4096, created)
            msg = libc.msgget(1234, created)
            sem = libc.semget(1234, 1, created)
            assert shm >= 0 and msg == -1 and sem == -1, (shm, msg, sem)
        """)
        + NORMAL,
        {PASSED},
    ),
    "connect to the host": (
        "import socket\nsocket.create_connection(('172.17.0.1', 2375), timeout=0.3)",
        {ERROR},
    ),
    "segfault through ctypes": ("import ctypes\nctypes.string_at(0)", {ERROR}),
}


@pytest.mark.parametrize("case", list(ADVERSARIAL), ids=list(ADVERSARIAL))
def test_adversarial_cell_is_contained(pool: ContainerPool, case: str) -> None:
    attack, allowed = ADVERSARIAL[case]
    result = run(pool, [attack, NO_OTHER_PROCESS, NOTHING_LEFT, NORMAL])
    assert result.statuses[0] in allowed, result.details[0]
    assert result.statuses[1:] == [PASSED, PASSED, PASSED], result.details
    assert result.attempts == 1  # the runner survived: no container was lost


def test_network_is_absent(pool: ContainerPool) -> None:
    probe = (
        "import socket\ntry:\n    socket.create_connection(('8.8.8.8', 53), timeout=0.3)\n"
        "    reached = True\nexcept OSError:\n    reached = False\nassert not reached\n"
        "import os\nassert sorted(os.listdir('/sys/class/net')) == ['lo']"
    )
    assert run(pool, [probe]).statuses == [PASSED]


def test_signal_details_name_the_signal(pool: ContainerPool) -> None:
    result = run(pool, ["import ctypes\nctypes.string_at(0)"])
    assert result.details == ["killed by signal SIGSEGV"]


def test_shared_isolation_runs_the_program_once(pool: ContainerPool) -> None:
    program = "calls = []\ndef inc(x):\n    calls.append(x)\n    return x + 1\n"
    tests = [
        "assert inc(1) == 2",
        "assert len(calls) == 2",  # sees the first test's call: one shared process
        "import os\nos._exit(0)",
        "assert inc(1) == 3",
        "while True:\n    pass",
        "assert calls == [1]",  # a fresh process after the timeout re-ran the program
    ]
    request = ExecutionRequest(
        program=program, tests=tests, timeout_s=0.5, isolation=Isolation.SHARED
    )
    result = pool.run(request)
    assert result.statuses == [PASSED, FAILED, ERROR, FAILED, TIMEOUT, FAILED]


def test_budget_stops_starting_tests(pool: ContainerPool) -> None:
    tests = ["import time\ntime.sleep(0.3)"] * 10
    result = run(pool, tests, timeout_s=1.0, budget_s=0.5)
    assert result.budget_exceeded
    assert result.statuses[:2] == [PASSED, PASSED]
    assert CellStatus.SANDBOX_ERROR in result.statuses
    assert all(
        detail.startswith("not run")
        for status, detail in zip(result.statuses, result.details, strict=True)
        if status is CellStatus.SANDBOX_ERROR
    )


def test_budget_stops_starting_tests_in_shared_mode(pool: ContainerPool) -> None:
    # One shared child would run all 20 tests (2 s) past a 0.5 s budget: the runner must
    # stop it between tests, as it stops starting children in process mode.
    tests = ["import time\ntime.sleep(0.1)"] * 20
    result = run(pool, tests, timeout_s=1.0, budget_s=0.5, isolation=Isolation.SHARED)
    assert result.budget_exceeded
    assert result.attempts == 1
    assert result.statuses[:3] == [PASSED] * 3
    not_run = [i for i, status in enumerate(result.statuses) if status is CellStatus.SANDBOX_ERROR]
    assert not_run and not_run[-1] == len(tests) - 1
    assert result.statuses[: not_run[0]] == [PASSED] * not_run[0]
    assert all(result.details[i].startswith("not run") for i in not_run)


def test_many_records_in_shared_mode_are_all_read(pool: ContainerPool) -> None:
    # 1000 failing tests with ~180-character details make ~220 KB of records, far more
    # than a pipe holds: every record must still be read as it comes (no false timeout).
    tests = ["assert inc(1) == 3, 'x' * 150"] * 1000
    result = run(pool, tests, timeout_s=0.5, isolation=Isolation.SHARED)
    assert result.statuses == [FAILED] * 1000
    assert result.details[-1] == "AssertionError: " + "x" * 150


def test_an_oom_kill_in_one_test_is_not_blamed_on_a_later_one(pool: ContainerPool) -> None:
    # The first test's forked hogs (3 x ~190 MB in a 256 MB box) get OOM-killed, yet the
    # test itself passes; the second dies by a SIGKILL of its own, not for memory.
    oom_in_children = dedent("""\
        import os
        hogs = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                hog = []
                try:
                    while True:
                        hog.append(bytearray(1 << 24))
                finally:  # a MemoryError must not reach the harness (it would record it)
                    os._exit(1)
            hogs.append(pid)
        ends = [os.waitpid(pid, 0)[1] for pid in hogs]
        assert any(os.WIFSIGNALED(end) and os.WTERMSIG(end) == 9 for end in ends), ends
    """)
    suicide = "import os\nos.kill(os.getpid(), 9)"
    result = run(pool, [oom_in_children, suicide], timeout_s=5.0)
    assert result.statuses == [PASSED, ERROR], result.details
    assert result.details[1] == "killed by signal SIGKILL"


@pytest.mark.parametrize("uid", ["0", "65534", "999", "abc", "-5", "4294967295"])
def test_the_runner_refuses_an_unsafe_cell_uid(uid: str) -> None:
    done = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", "-e", f"PAIRFORGE_CELL_UID={uid}",
         SANDBOX_IMAGE],
        input=b"", capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert b"PAIRFORGE_CELL_UID must be a uid in" in done.stderr


def test_a_judge_that_waited_on_a_timed_out_cell_is_kept() -> None:
    # Restarting the judge costs tens of milliseconds; one that was only waiting for the
    # killed cell's answer is ready for the next test at once. Cells can see its pid (the
    # one process of the uid after theirs) and report it in their failure detail.
    judge_pid = (
        "import os\n"
        "def uid(p):\n"
        "    with open(f'/proc/{p}/status') as s:\n"
        "        return next(int(l.split()[1]) for l in s if l.startswith('Uid:'))\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit() and uid(p) == os.getuid() + 1]\n"
        "assert False, pids"
    )
    config = PoolConfig(image=SANDBOX_IMAGE, workers=1, limits=SandboxLimits(memory_mb=256))
    with ContainerPool(config) as pool:
        before = pool.run(ExecutionRequest(program=PROGRAM, tests=[judge_pid]))
        result = run(pool, ["while True:\n    pass", judge_pid, "assert inc(1) == 2 ** 10 ** 9"])
    assert before.statuses == [FAILED] and result.statuses[:2] == [TIMEOUT, FAILED]
    assert result.details[1] == before.details[0], "the judge was replaced after the timeout"
    # A judge busy with the test's own parts at the deadline is replaced, and serves on.
    assert result.statuses[2] is TIMEOUT
    assert result.attempts == 1
