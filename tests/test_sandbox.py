"""The script sandbox (invariant 8): user scripts, conditions and timer expressions run under
RestrictedPython with guarded access; anything beyond a trivial expression runs in a worker
process with CPU, memory and wall-time limits; attacks are refused with the right error kind and
the host is unaffected."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from workflow.engine.sandbox import ScriptError, ScriptSandbox, default_sandbox

CTX: dict[str, Any] = {
    "decision": "approve",
    "amount": 12000,
    "urgent": False,
    "items": [1, 2, 3],
    "applicant": {"name": "Anna", "age": 17},
    "due": date(2024, 1, 31),
    "fee": Decimal("12.50"),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ScriptSandbox]:
    """For well-behaved scripts: a generous time limit, so a loaded machine does not flake."""
    with ScriptSandbox(time_limit_s=5.0, memory_limit_mb=128, processes=2) as sb:
        yield sb


@pytest.fixture(scope="module")
def strict() -> Iterator[ScriptSandbox]:
    """For attacks: short time limit, small memory."""
    with ScriptSandbox(time_limit_s=0.4, memory_limit_mb=64, processes=2) as sb:
        yield sb


def script_error(func: Any, *args: Any) -> ScriptError:
    with pytest.raises(ScriptError) as info:
        func(*args)
    return info.value


def wait_until_dead(pid: int) -> None:
    """Until the process is gone or a zombie (killed, not yet reaped by its parent)."""
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


# --------------------------------------------------------------------------- normal results


def test_simple_conditions_take_the_fast_path_without_a_worker() -> None:
    sb = ScriptSandbox()
    try:
        assert sb.evaluate('decision == "approve"', CTX) is True
        assert sb.evaluate("amount > 10000 and not urgent", CTX) is True
        assert sb.evaluate("amount > 10000 and urgent", CTX) is False
        assert sb.evaluate("decision in ['approve', 'reject']", CTX) is True
        assert sb.evaluate("applicant['age'] < 18", CTX) is True
        assert sb.evaluate("items[-1] == 3", CTX) is True
        assert sb.evaluate("(amount - 2000) / 2 >= 5000", CTX) is True
        assert sb.evaluate("fee * 2 == 25", CTX) is True
        assert sb.evaluate("due - due == due - due", CTX) is True
        assert sb.evaluate("1 < amount <= 12000", CTX) is True
        assert sb.evaluate("'high' if amount > 100 else 'low'", CTX) == "high"
        assert sb.evaluate("urgent or decision", CTX) == "approve"
        assert sb.evaluate("[amount, (1, 2)]", CTX) == [12000, [1, 2]]
        assert sb.evaluate("date == 'x'", {"date": "x"}) is True  # task data shadows a builtin
        assert sb.fast_path_evaluations == 14
        assert sb.child_calls == 0
        assert sb.children_started == 0
        assert sb.worker_pids() == []
    finally:
        sb.close()


def test_fast_path_errors_are_runtime_errors_with_a_line() -> None:
    sb = ScriptSandbox()
    try:
        err = script_error(sb.evaluate, "amount / 0 > 1", CTX)
        assert (err.kind, err.message, err.line) == (
            "runtime",
            "ZeroDivisionError: division by zero",
            1,
        )
        err = script_error(sb.evaluate, "missing == 1", CTX)
        assert (err.kind, err.message) == ("runtime", "NameError: name 'missing' is not defined")
        err = script_error(sb.evaluate, "applicant['nope']", CTX)
        assert (err.kind, err.message) == ("runtime", "KeyError: 'nope'")
        assert sb.children_started == 0
    finally:
        sb.close()


@pytest.mark.parametrize(
    "expression",
    [
        'decision == "approve"',
        "amount > 10000 and not urgent",
        "amount // 7 + amount % 7 - amount / 3",
        "fee * 3 + 1",
        "due - due",  # a timedelta is not data
        "[amount, (1, 2), applicant]",
        "items[5]",
        "decision < 1",
        "applicant['age'] * 1.5",
        "-amount if urgent else +amount",
    ],
)
def test_fast_path_agrees_with_the_worker(sandbox: ScriptSandbox, expression: str) -> None:
    def outcome(func: Any) -> Any:
        try:
            return ("ok", func())
        except ScriptError as err:
            return (err.kind, err.message)

    fast = outcome(lambda: sandbox.evaluate(expression, CTX))
    worker = outcome(lambda: sandbox._call("eval", expression, CTX))
    assert fast == worker


def test_other_expressions_run_in_a_worker(sandbox: ScriptSandbox) -> None:
    before = sandbox.child_calls
    assert sandbox.evaluate("len(items) > 1", CTX) is True
    assert sandbox.evaluate("due.year == 2024 and max(amount, 5) == amount", CTX) is True
    assert sandbox.evaluate("due + timedelta(days=1)", CTX) == date(2024, 2, 1)
    assert sandbox.evaluate("[i * 2 for i in items if i > 1]", CTX) == [4, 6]
    assert sandbox.child_calls == before + 4
    # Too deep for the in-process interpreter: a worker evaluates it.
    assert sandbox.evaluate("+".join(["a"] * 40), {"a": 1}) == 40
    assert sandbox.child_calls == before + 5


def test_execute_returns_the_new_task_data(sandbox: ScriptSandbox) -> None:
    aware = datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=1)))
    context = {
        **CTX,
        "when": datetime(2024, 1, 2, 3, 4, 5, 678),
        "aware": aware,
        "tricky": {"$type": "date", "v": "not a date"},
        "_private": 1,
        "helper": len,
    }
    script = """
next_day = due + timedelta(days=1)
total = fee * 2 + Decimal("0.25")
later = when + timedelta(hours=1)
items.append(4)
applicant["age"] += 1
counts = {}
for i in items:
    counts[i % 2] = counts.get(i % 2, 0) + 1
pair = (1, "a")
def double(x):
    return x * 2
doubled = [double(i) for i in items]
seen = {1, 2}
del urgent
print("debug output goes nowhere")
"""
    result = sandbox.execute(script, context)
    assert result["next_day"] == date(2024, 2, 1)
    assert result["total"] == Decimal("25.25")
    assert isinstance(result["total"], Decimal)
    assert result["later"] == datetime(2024, 1, 2, 4, 4, 5, 678)
    assert result["aware"] == aware
    assert result["items"] == [1, 2, 3, 4]
    assert result["applicant"] == {"name": "Anna", "age": 18}
    assert result["counts"] == {"1": 2, "0": 2}  # keys become strings, as in JSON
    assert result["pair"] == [1, "a"]
    assert result["doubled"] == [2, 4, 6, 8]
    assert result["tricky"] == {"$type": "date", "v": "not a date"}
    assert result["decision"] == "approve"
    # Dropped: functions, sets, deleted and underscore names, non-data context.
    for gone in ("double", "seen", "urgent", "_private", "helper"):
        assert gone not in result
    # The caller's data is not modified in place.
    assert CTX["items"] == [1, 2, 3]
    assert CTX["applicant"]["age"] == 17


def test_runtime_error_has_kind_message_and_line(sandbox: ScriptSandbox) -> None:
    err = script_error(sandbox.execute, "x = 1\n\ny = x / 0\n", {})
    assert (err.kind, err.message, err.line) == (
        "runtime",
        "ZeroDivisionError: division by zero",
        3,
    )
    err = script_error(sandbox.execute, "def f(a):\n    return a['k']\n\nz = f({})", {})
    assert (err.kind, err.message, err.line) == ("runtime", "KeyError: 'k'", 2)
    err = script_error(sandbox.execute, "raise ValueError('bad input')", {})
    assert (err.kind, err.message, err.line) == ("runtime", "ValueError: bad input", 1)
    err = script_error(sandbox.execute, "y = undefined_name + 1", {})
    assert err.message == "NameError: name 'undefined_name' is not defined"
    assert sandbox.execute(
        "try:\n    y = 1 / 0\nexcept ZeroDivisionError as e:\n    y = -1", {}
    ) == {"y": -1}


def test_syntax_errors(sandbox: ScriptSandbox) -> None:
    err = script_error(sandbox.check, "x = (", "exec")
    assert err.kind == "syntax" and err.line == 1
    err = script_error(sandbox.check, "x = 1\nreturn x", "exec")
    assert (err.kind, err.line) == ("syntax", 2)
    err = script_error(sandbox.check, "x = 1", "eval")
    assert err.kind == "syntax"
    err = script_error(sandbox.execute, "if True\n  pass", {})
    assert err.kind == "syntax"
    err = script_error(sandbox.check, "1+" * 50_000 + "1", "eval")
    assert err.kind in ("syntax", "forbidden")


def test_eval_mode_allows_only_a_few_pure_helpers(sandbox: ScriptSandbox) -> None:
    for allowed in (
        "len(items) > 1",
        "abs(amount) >= 0",
        "min(1, 2) < max(3, 4)",
        "round(fee, 1) > 0",
        "int(x) + float(y) > 0 and str(z) and bool(w)",
        "due + timedelta(days=3) > date(2024, 1, 1)",
        "Decimal('1.5') < fee",
        "due.year == 2024",
        "[i for i in items if i > 1]",
    ):
        sandbox.check(allowed, "eval")
    for refused in (
        "foo()",
        "decision.lower() == 'approve'",
        "(lambda: 1)()",
        "sum(items) > 1",
        "sorted(items)",
        "os.system('ls')",
        "[f() for f in fs]",
        "(y := 1)",
    ):
        assert script_error(sandbox.check, refused, "eval").kind == "forbidden", refused
    sandbox.check("decision.lower() == 'approve'", "exec")  # statements may call methods
    err = script_error(sandbox.evaluate, "decision.lower() == 'approve'", CTX)
    assert err.kind == "forbidden"


# --------------------------------------------------------------------------- attacks


ATTACKS: list[tuple[str, str, str | None, str]] = [
    # (source, mode, kind at check() or None if it passes, kind at run)
    ("import os", "exec", "forbidden", "forbidden"),
    ("from os import system", "exec", "forbidden", "forbidden"),
    ("__import__('os')", "eval", "forbidden", "forbidden"),
    ("x = __import__('os')", "exec", "forbidden", "forbidden"),
    ("().__class__.__base__.__subclasses__()", "eval", "forbidden", "forbidden"),
    ("y = ().__class__.__base__.__subclasses__()", "exec", "forbidden", "forbidden"),
    ("(lambda: 0).__globals__", "eval", "forbidden", "forbidden"),
    ("g = (lambda: 0).__globals__", "exec", "forbidden", "forbidden"),
    ("getattr(decision, '__class__')", "eval", "forbidden", "forbidden"),
    ("y = getattr(decision, '__class__')", "exec", "forbidden", "forbidden"),
    ("y = type(decision)", "exec", "forbidden", "forbidden"),
    ("y = vars()", "exec", "forbidden", "forbidden"),
    ("y = globals()", "exec", "forbidden", "forbidden"),
    ("y = dir()", "exec", "forbidden", "forbidden"),
    ("y = eval('1')", "exec", "forbidden", "forbidden"),
    ("exec('y = 1')", "exec", "forbidden", "forbidden"),
    ("y = compile('1', 'f', 'eval')", "exec", "forbidden", "forbidden"),
    ("g = (i for i in [1])\ny = g.gi_frame", "exec", "forbidden", "forbidden"),
    ("y = f'{decision.__class__}'", "exec", "forbidden", "forbidden"),
    ("class A:\n    pass", "exec", "forbidden", "forbidden"),
    ("try:\n    y = 1\nexcept:\n    pass", "exec", "forbidden", "forbidden"),
    ("sum(range(10**11))", "eval", "forbidden", "forbidden"),
    ("y = sum(range(10**11))", "exec", None, "forbidden"),
    ("10**10**10", "eval", None, "memory"),
    ("y = 10**10**10", "exec", None, "memory"),
    ("y = 2\ny **= 10**10", "exec", None, "memory"),
    ("y = 1 << 10**10", "exec", None, "memory"),
    ("'a'*10**10", "eval", None, "memory"),
    ("y = 'a'*10**10", "exec", None, "memory"),
    ("[0]*10**9", "eval", None, "memory"),
    ("y = [0]\ny *= 10**9", "exec", None, "memory"),
    ("d = {'k': 'a'}\nd['k'] *= 10**9", "exec", None, "memory"),
    ("'x'.ljust(10**10)", "eval", "forbidden", "forbidden"),
    ("y = 'x'.ljust(10**10)", "exec", None, "memory"),
    ("y = 'x'.center(10**10)", "exec", None, "memory"),
    ("y = 'x'.zfill(10**10)", "exec", None, "memory"),
    ("y = 'a\\tb'.expandtabs(10**10)", "exec", None, "memory"),
    ('"{0.__class__}".format(decision)', "eval", "forbidden", "forbidden"),
    ('y = "{0.__class__}".format(decision)', "exec", None, "forbidden"),
    ('y = "{x}".format_map({"x": 1})', "exec", None, "forbidden"),
    ("os.system('true')", "eval", "forbidden", "forbidden"),
    ("os.system('true')", "exec", None, "runtime"),  # NameError: there is no `os`
    ("y = Exception.mro()", "exec", None, "forbidden"),
    ("y = isinstance(1, decision)", "exec", None, "forbidden"),
    ("f = len\ny = f.__self__", "exec", "forbidden", "forbidden"),
    # A guard refusal cannot be swallowed by the script.
    ("try:\n    y = 'a' * 10**10\nexcept Exception:\n    y = 0", "exec", None, "memory"),
]


@pytest.mark.parametrize(("source", "mode", "at_check", "at_run"), ATTACKS)
def test_attacks_are_refused(
    strict: ScriptSandbox, source: str, mode: str, at_check: str | None, at_run: str
) -> None:
    if at_check is None:
        strict.check(source, "eval" if mode == "eval" else "exec")
    else:
        assert script_error(strict.check, source, mode).kind == at_check
    context = {"decision": "approve"}
    run = strict.evaluate if mode == "eval" else strict.execute
    err = script_error(run, source, context)
    assert err.kind == at_run, err
    assert "/work" not in err.message and ".py" not in err.message


def test_no_file_is_written_and_no_process_is_started(
    strict: ScriptSandbox, tmp_path: Path
) -> None:
    target = tmp_path / "pwned.txt"
    assert script_error(strict.check, f"open({str(target)!r}, 'w')", "exec").kind == "forbidden"
    for script in (
        f"f = open({str(target)!r}, 'w')\nf.write('x')",
        f"o = open\nf = o({str(target)!r}, 'w')",
        f"import os\nos.system('touch {target}')",
        f"__builtins__['open']({str(target)!r}, 'w')",
        "y = print.__self__",
    ):
        with pytest.raises(ScriptError):
            strict.execute(script, {})
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_worker_limits_are_in_place(strict: ScriptSandbox) -> None:
    strict.warm_up()
    for pid in strict.worker_pids():
        limits = Path(f"/proc/{pid}/limits").read_text()
        rows = {line[:26].strip(): line[26:].split() for line in limits.splitlines()[1:]}
        assert rows["Max processes"][:2] == ["0", "0"]
        assert rows["Max file size"][:2] == ["0", "0"]
        assert int(rows["Max open files"][0]) <= 8
        assert int(rows["Max address space"][0]) <= (64 + 64) * 1024 * 1024
        assert rows["Max cpu time"][0] != "unlimited"


def test_a_script_cannot_affect_the_next_one(sandbox: ScriptSandbox) -> None:
    sandbox.execute("len = None\nmarker = 1\nDecimal = 5", {})
    for _ in range(4):  # whichever worker runs it
        result = sandbox.execute("n = len([1, 2])\nd = Decimal('1')", {})
        assert result == {"n": 2, "d": Decimal("1")}
        assert "marker" not in result


# --------------------------------------------------------------------------- limits


def test_endless_loop_times_out_and_the_sandbox_keeps_working(strict: ScriptSandbox) -> None:
    started = time.monotonic()
    err = script_error(strict.execute, "while True:\n    pass", {})
    assert err.kind == "timeout"
    assert time.monotonic() - started < 3.0
    assert strict.execute("y = 1 + 1", {}) == {"y": 2}
    assert strict.evaluate("len(items)", {"items": [1]}) == 1


def test_a_single_long_c_call_is_killed(strict: ScriptSandbox) -> None:
    # int() of a huge Decimal is one C call of ~40 s that no guard sees: only the kill stops it.
    err = script_error(strict.execute, "y = int(Decimal('1e999999'))", {})
    assert err.kind == "timeout"
    assert strict.execute("y = 2", {}) == {"y": 2}


def test_memory_bomb(strict: ScriptSandbox) -> None:
    script = "hog = []\nwhile True:\n    hog.append([0] * 100000)"
    err = script_error(strict.execute, script, {})
    assert err.kind in ("memory", "timeout")
    assert strict.execute("y = 3", {}) == {"y": 3}


def test_a_killed_worker_is_replaced(sandbox: ScriptSandbox) -> None:
    sandbox.warm_up()
    pids = sandbox.worker_pids()
    started = sandbox.children_started
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        wait_until_dead(pid)
    assert sandbox.execute("y = 4", {}) == {"y": 4}
    assert sandbox.children_started > started
    assert not set(sandbox.worker_pids()) & set(pids)


def test_a_worker_dying_mid_call_is_reported() -> None:
    with ScriptSandbox(time_limit_s=10.0, processes=1) as sb:
        sb.warm_up()
        (pid,) = sb.worker_pids()
        outcome: list[ScriptError] = []

        def run() -> None:
            try:
                sb.execute("while True:\n    pass", {})
            except ScriptError as err:
                outcome.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        thread.join(5.0)
        assert [e.kind for e in outcome] == ["memory"]
        assert sb.execute("y = 5", {}) == {"y": 5}


def test_threads_run_scripts_concurrently(strict: ScriptSandbox) -> None:
    strict.warm_up()
    errors: list[ScriptError] = []

    def runaway() -> None:
        try:
            strict.execute("while True:\n    pass", {})
        except ScriptError as err:
            errors.append(err)

    slow = threading.Thread(target=runaway)
    slow.start()
    time.sleep(0.05)
    # While one worker spins, the other serves this thread.
    assert strict.execute("y = x * 2", {"x": 21}) == {"x": 21, "y": 42}
    assert slow.is_alive()
    slow.join(5.0)
    assert [e.kind for e in errors] == ["timeout"]
    assert strict.peak_busy_children == 2

    results: dict[int, Any] = {}
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                out = strict.execute("y = x * 2 + i", {"x": n, "i": i})
                assert out["y"] == n * 2 + i
            results[n] = strict.evaluate("len(s) + x", {"s": "ab", "x": n})
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30.0)
    assert failures == []
    assert results == {n: n + 2 for n in range(8)}
    assert len(strict.worker_pids()) <= 2


def test_close_kills_the_workers() -> None:
    sb = ScriptSandbox(processes=2)
    sb.warm_up()
    pids = sb.worker_pids()
    assert len(pids) == 2
    sb.close()
    sb.close()  # twice is fine
    for pid in pids:
        wait_until_dead(pid)
    assert sb.worker_pids() == []
    assert sb.evaluate("a == 1", {"a": 1}) is True  # the fast path needs no worker
    with pytest.raises(RuntimeError):
        sb.execute("y = 1", {})


def test_messages_carry_no_host_paths(strict: ScriptSandbox) -> None:
    # A codec lookup opens files: refused by the descriptor limit, reported without the path.
    err = script_error(strict.execute, "y = 'abc'.encode('rot13')", {})
    assert err.kind == "runtime"
    assert "/" not in err.message


def test_default_sandbox_is_a_singleton() -> None:
    assert default_sandbox() is default_sandbox()
    assert default_sandbox().evaluate("a > 1", {"a": 2}) is True


def test_script_error_pickles() -> None:
    err = ScriptError("runtime", "ZeroDivisionError: division by zero", 3)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.kind, copy.message, copy.line) == ("runtime", err.message, 3)
    assert str(copy) == str(err)
