"""Runs user-supplied Python (BPMN scripts, gateway conditions, timer expressions, DMN cells).

Process definitions are code uploaded by admins (DESIGN.md invariant 8). Everything here is
compiled by RestrictedPython with our policy (`_sandbox_child.py`) and runs either

- in-process, for expressions in a tiny safe subset (names, constants, comparisons, `and`/`or`/
  `not`, `+ - * / // %` on numbers, subscripts by a constant, list/tuple literals, `x if c else
  y`): a small interpreter walks the AST, no `eval`, no IPC. Most gateway conditions look like
  `decision == "approve"` or `amount > 10000 and not urgent`;
- or in a pool of long-lived worker processes (`python -I -B _sandbox_child.py`, started with
  `subprocess`, never forked from this process's Python state) with an address-space limit, a CPU
  limit, no new processes, files or descriptors. The parent enforces the wall-time limit per call
  and SIGKILLs a worker that overruns it; a single long C call (`sum(range(10**11))`,
  `10**10**10`) cannot stop the host. Requests and responses are length-prefixed JSON, never
  pickle, so a compromised worker cannot run code here.

Data in and out is JSON data plus `datetime.date`, `datetime.datetime` and `decimal.Decimal`;
context entries that are not data or whose names start with "_" are not passed to a script.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import decimal
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from workflow.engine import _sandbox_child as rt

__all__ = ["ScriptError", "ScriptErrorKind", "ScriptSandbox", "default_sandbox"]

ScriptErrorKind = Literal["syntax", "forbidden", "timeout", "memory", "runtime"]
_KINDS: frozenset[str] = frozenset({"syntax", "forbidden", "timeout", "memory", "runtime"})

_CHILD_SCRIPT = str(Path(__file__).with_name("_sandbox_child.py"))
_STARTUP_TIMEOUT_S = 30.0


class ScriptError(Exception):
    """A script or expression was refused or failed.

    kind: "syntax" | "forbidden" (refused by the policy or a guard) | "timeout" | "memory" |
    "runtime" (an exception raised by the script); message: English, no host paths;
    line: the script line, when known.
    """

    kind: ScriptErrorKind
    message: str
    line: int | None

    def __init__(self, kind: ScriptErrorKind, message: str, line: int | None = None) -> None:
        super().__init__(f"{kind}: {message}" + (f" (line {line})" if line is not None else ""))
        self.kind = kind
        self.message = message
        self.line = line

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message, self.line))


def _kind(value: object) -> ScriptErrorKind:
    if value == "syntax":
        return "syntax"
    if value == "forbidden":
        return "forbidden"
    if value == "timeout":
        return "timeout"
    if value == "memory":
        return "memory"
    return "runtime"


def _from_failure(failure: rt.SandboxFailure) -> ScriptError:
    return ScriptError(_kind(failure.kind), failure.message, failure.line)


# --------------------------------------------------------------------------- fast path


class _NotFast(Exception):
    """The value at hand is outside the fast path's types; let a worker evaluate it."""


class _FastError(Exception):
    def __init__(self, exc: BaseException, line: int | None) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.line = line


_FAST_TYPES: frozenset[type] = frozenset(
    {type(None), bool, int, float, str, Decimal, date, datetime, timedelta, list, tuple, dict}
)
_NUMBER_TYPES: frozenset[type] = frozenset({bool, int, float, Decimal})
_DECIMAL_CONTEXT = decimal.Context()  # the worker's default context, whatever the host set

_Eval = Callable[[Mapping[str, Any]], Any]
_MISSING = object()

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}


def _checked(value: Any) -> Any:
    if type(value) not in _FAST_TYPES:
        raise _NotFast
    return value


def _number_op(op: type[ast.operator], left: Any, right: Any) -> Any:
    if op is ast.Mult:
        return rt.guarded_mul(left, right)
    if op is ast.Div:
        return left / right
    if op is ast.FloorDiv:
        return left // right
    return left % right


def _binop(op: type[ast.operator], left: Any, right: Any) -> Any:
    if op is ast.Add or op is ast.Sub:
        if type(left) is Decimal or type(right) is Decimal:
            with decimal.localcontext(_DECIMAL_CONTEXT):
                return left + right if op is ast.Add else left - right
        return left + right if op is ast.Add else left - right
    # * / // % only between numbers (no repetition, no %-formatting, no huge ints in-process).
    if type(left) not in _NUMBER_TYPES or type(right) not in _NUMBER_TYPES:
        raise _NotFast
    if type(left) is Decimal or type(right) is Decimal:
        with decimal.localcontext(_DECIMAL_CONTEXT):
            return _number_op(op, left, right)
    return _number_op(op, left, right)


_MAX_FAST_DEPTH = 32  # deeper expressions go to a worker (no RecursionError in the host)
_FAST_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_RESERVED_NAMES = frozenset({"print", "printed"})


def _fast_compile(node: ast.AST, depth: int = 0) -> _Eval | None:
    """A closure evaluating `node`, or None if the node is outside the fast subset."""
    if depth > _MAX_FAST_DEPTH:
        return None
    depth += 1
    line = getattr(node, "lineno", None)
    if isinstance(node, ast.Constant):
        value = node.value
        if type(value) not in (type(None), bool, int, float, str):
            return None
        if type(value) is int and value.bit_length() > rt.MAX_INT_BITS:
            return None
        return lambda ctx: value
    if isinstance(node, ast.Name):
        name = node.id
        if (
            not isinstance(node.ctx, ast.Load)
            or name.startswith("_")
            or name.endswith("__roles__")
            or name in _RESERVED_NAMES
        ):
            return None

        def load(ctx: Mapping[str, Any]) -> Any:
            value = ctx.get(name, _MISSING)  # .get: a defaultdict must not grow
            if value is _MISSING:
                if name in rt.SAFE_BUILTINS:  # e.g. `date`: a builtin unless task data has it
                    raise _NotFast
                raise _FastError(NameError(f"name '{name}' is not defined"), line)
            return _checked(value)

        return load
    if isinstance(node, ast.BoolOp):
        parts = [_fast_compile(v, depth) for v in node.values]
        if any(p is None for p in parts):
            return None
        funcs: list[_Eval] = [p for p in parts if p is not None]
        if isinstance(node.op, ast.And):

            def and_(ctx: Mapping[str, Any]) -> Any:
                value: Any = None
                for f in funcs:
                    value = f(ctx)
                    if not value:
                        return value
                return value

            return and_

        def or_(ctx: Mapping[str, Any]) -> Any:
            value: Any = None
            for f in funcs:
                value = f(ctx)
                if value:
                    return value
            return value

        return or_
    if isinstance(node, ast.UnaryOp):
        operand = _fast_compile(node.operand, depth)
        if operand is None:
            return None
        if isinstance(node.op, ast.Not):
            return lambda ctx: not operand(ctx)
        if isinstance(node.op, ast.USub | ast.UAdd):
            negate = isinstance(node.op, ast.USub)

            def sign(ctx: Mapping[str, Any]) -> Any:
                value = operand(ctx)
                if type(value) not in _NUMBER_TYPES and type(value) is not timedelta:
                    raise _NotFast
                try:
                    return -value if negate else +value
                except Exception as exc:
                    raise _FastError(exc, line) from None

            return sign
        return None
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, _FAST_BINOPS):
            return None
        left, right = _fast_compile(node.left, depth), _fast_compile(node.right, depth)
        if left is None or right is None:
            return None
        op = type(node.op)

        def binop(ctx: Mapping[str, Any]) -> Any:
            a, b = left(ctx), right(ctx)
            try:
                return _checked(_binop(op, a, b))
            except (_NotFast, rt.Refused):
                raise _NotFast from None
            except Exception as exc:
                raise _FastError(exc, line) from None

        return binop
    if isinstance(node, ast.Compare):
        first = _fast_compile(node.left, depth)
        rest = [_fast_compile(c, depth) for c in node.comparators]
        if first is None or any(r is None for r in rest):
            return None
        ops = [_COMPARE.get(type(o)) for o in node.ops]
        if any(o is None for o in ops):
            return None
        pairs = [(o, r) for o, r in zip(ops, rest, strict=True) if o is not None and r is not None]

        def compare(ctx: Mapping[str, Any]) -> Any:
            a = first(ctx)
            for cmp, get in pairs:
                b = get(ctx)
                try:
                    result = cmp(a, b)
                except Exception as exc:
                    raise _FastError(exc, line) from None
                if not result:
                    return result
                a = b
            return result

        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = (
            _fast_compile(node.test, depth),
            _fast_compile(node.body, depth),
            _fast_compile(node.orelse, depth),
        )
        if test is None or body is None or orelse is None:
            return None
        return lambda ctx: body(ctx) if test(ctx) else orelse(ctx)
    if isinstance(node, ast.List | ast.Tuple):
        if not isinstance(node.ctx, ast.Load) or any(isinstance(e, ast.Starred) for e in node.elts):
            return None
        items = [_fast_compile(e, depth) for e in node.elts]
        if any(i is None for i in items):
            return None
        getters = [i for i in items if i is not None]
        if isinstance(node, ast.List):
            return lambda ctx: [g(ctx) for g in getters]
        return lambda ctx: tuple(g(ctx) for g in getters)
    if isinstance(node, ast.Subscript):
        key_node = node.slice
        key: Any
        if isinstance(key_node, ast.Constant) and type(key_node.value) in (int, str):
            key = key_node.value
        elif (
            isinstance(key_node, ast.UnaryOp)
            and isinstance(key_node.op, ast.USub)
            and isinstance(key_node.operand, ast.Constant)
            and type(key_node.operand.value) is int
        ):
            key = -key_node.operand.value
        else:
            return None
        container = _fast_compile(node.value, depth)
        if container is None or not isinstance(node.ctx, ast.Load):
            return None

        def subscript(ctx: Mapping[str, Any]) -> Any:
            value = container(ctx)
            if type(value) not in (list, tuple, dict, str):
                raise _NotFast
            try:
                item = value[key]
            except Exception as exc:
                raise _FastError(exc, line) from None
            return _checked(item)

        return subscript
    return None


@lru_cache(maxsize=2048)
def _fast_plan(expression: str) -> _Eval | None:
    if len(expression) > 2000:
        return None
    try:
        tree = ast.parse(expression, rt.SCRIPT_FILENAME, "eval")
        return _fast_compile(tree.body)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _fast_result(value: Any) -> Any:
    """The value as a worker would return it (tuples become lists, containers are copied)."""
    kind = type(value)
    if kind is bool or kind is int or kind is float or kind is str or value is None:
        return value
    try:
        return rt.loads(rt.dumps_data(value))
    except rt.NotData as exc:
        raise ScriptError(
            "runtime", f"TypeError: the value of the expression is not data ({exc})"
        ) from None


# --------------------------------------------------------------------------- workers


class _WorkerDied(Exception):
    def __init__(self, before_request: bool) -> None:
        super().__init__("worker died")
        self.before_request = before_request


class _WorkerTimeout(Exception):
    pass


class _Worker:
    """One child process; used by one thread at a time."""

    def __init__(self, argv: list[str]) -> None:
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            cwd="/",
            env={},
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self._rpoll = select.poll()
        self._rpoll.register(self.rfd, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(self.wfd, select.POLLOUT)
        self.pid = self.proc.pid

    def wait_ready(self) -> None:
        frame = self._read_frame(time.monotonic() + _STARTUP_TIMEOUT_S)
        if rt.loads(frame) != {"ready": True}:
            raise _WorkerDied(before_request=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, payload: bytes, deadline: float) -> bytes:
        self._write_all(struct.pack(">I", len(payload)) + payload, deadline)
        return self._read_frame(deadline)

    def _wait(self, poller: select.poll, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
            raise _WorkerTimeout

    def _write_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.wfd, view)
            except BlockingIOError:
                written = 0
            except (BrokenPipeError, OSError):
                raise _WorkerDied(before_request=True) from None
            view = view[written:]
            if view:
                self._wait(self._wpoll, deadline)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            try:
                chunk = os.read(self.rfd, min(remaining, 1 << 20))
            except BlockingIOError:
                self._wait(self._rpoll, deadline)
                continue
            if not chunk:
                raise _WorkerDied(before_request=False)
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = struct.unpack(">I", self._read_exact(4, deadline))
        if size > rt.MAX_FRAME_BYTES:
            raise _WorkerDied(before_request=False)
        return self._read_exact(size, deadline)

    def death_kind(self) -> ScriptErrorKind:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return "memory"
        return "timeout" if code == -signal.SIGXCPU else "memory"

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _forget_after_fork(pool: weakref.ref[_Pool]) -> None:
    live = pool()
    if live is not None:
        live.forget()


class _Pool:
    """At most `size` workers; each call borrows one exclusively. Dead workers are replaced on
    demand. Holds no reference to the sandbox, so a finalizer can close it."""

    def __init__(self, size: int, argv: list[str]) -> None:
        self.size = size
        self.argv = argv
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.workers: set[_Worker] = set()
        self.reserved = 0  # workers being started
        self.busy = 0
        self.peak_busy = 0
        self.started = 0
        self.closed = False
        pool = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_after_fork(pool))

    def forget(self) -> None:
        """In a forked child: the workers belong to the parent; start afresh, kill nothing."""
        self.cond = threading.Condition()
        self.idle = []
        self.workers = set()
        self.reserved = 0
        self.busy = 0

    def borrow(self) -> _Worker:
        while True:
            with self.cond:
                while not self.idle and len(self.workers) + self.reserved >= self.size:
                    if self.closed:
                        raise RuntimeError("the script sandbox is closed")
                    self.cond.wait()
                if self.closed:
                    raise RuntimeError("the script sandbox is closed")
                if not self.idle:
                    self.reserved += 1
                    break
                worker = self.idle.pop()
                if worker.alive():
                    self._mark_busy()
                    return worker
                # Died while idle (OOM killer, external kill): reap it and look again.
                self.workers.discard(worker)
                self.cond.notify()
            worker.kill()
        return self._start()

    def fill(self) -> None:
        """Starts workers until there are `size` of them."""
        started: list[_Worker] = []
        try:
            while True:
                with self.cond:
                    if self.closed or len(self.workers) + self.reserved >= self.size:
                        break
                    self.reserved += 1
                started.append(self._start())
        finally:
            for worker in started:
                self.give_back(worker, healthy=True)

    def _mark_busy(self) -> None:
        self.busy += 1
        self.peak_busy = max(self.peak_busy, self.busy)

    def _start(self) -> _Worker:
        worker: _Worker | None = None
        try:
            worker = _Worker(self.argv)
            worker.wait_ready()
        except BaseException as exc:
            if worker is not None:
                worker.kill()
            with self.cond:
                self.reserved -= 1
                self.cond.notify()
            if isinstance(exc, _WorkerDied | _WorkerTimeout | OSError | ValueError):
                raise RuntimeError("the script sandbox worker could not be started") from None
            raise
        with self.cond:
            self.reserved -= 1
            self.started += 1
            self.workers.add(worker)
            self._mark_busy()
            closed = self.closed
        if closed:
            self.give_back(worker, healthy=False)
            raise RuntimeError("the script sandbox is closed")
        return worker

    def give_back(self, worker: _Worker, *, healthy: bool) -> None:
        with self.cond:
            self.busy -= 1
            if healthy and not self.closed and worker in self.workers:
                self.idle.append(worker)
                self.cond.notify()
                return
            self.workers.discard(worker)
            self.cond.notify()
        worker.kill()

    def pids(self) -> list[int]:
        with self.cond:
            return sorted(w.pid for w in self.workers)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            workers = list(self.workers)
            self.workers.clear()
            self.idle.clear()
            self.cond.notify_all()
        for worker in workers:
            worker.kill()


# --------------------------------------------------------------------------- public API


class ScriptSandbox:
    """Checks, evaluates and executes user scripts; thread-safe; one instance per process is
    enough (`default_sandbox()`). Counters: `fast_path_evaluations` (in-process), `child_calls`
    (round trips to a worker), `children_started`."""

    def __init__(
        self, *, time_limit_s: float = 1.0, memory_limit_mb: int = 256, processes: int = 2
    ) -> None:
        if not time_limit_s > 0:
            raise ValueError("time_limit_s must be positive")
        if memory_limit_mb < 16:
            raise ValueError("memory_limit_mb must be at least 16")
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.time_limit_s = float(time_limit_s)
        self.memory_limit_mb = int(memory_limit_mb)
        self.processes = int(processes)
        argv = [
            sys.executable,
            "-I",
            "-B",
            _CHILD_SCRIPT,
            str(self.memory_limit_mb),
            repr(self.time_limit_s),
        ]
        self._pool = _Pool(self.processes, argv)
        self._finalizer = weakref.finalize(self, self._pool.close)
        self._stats = threading.Lock()
        self.fast_path_evaluations = 0
        self.child_calls = 0

    # -- compile-only validation

    def check(self, source: str, mode: Literal["eval", "exec"]) -> None:
        """Validates a script ("exec") or an expression ("eval") without running it: raises
        ScriptError("syntax" | "forbidden"). In "eval" mode the only calls allowed are to
        len, abs, min, max, round, int, float, str, bool, Decimal, date, datetime, timedelta."""
        if mode not in ("eval", "exec"):
            raise ValueError("mode must be 'eval' or 'exec'")
        try:
            rt.compile_cached(source, mode)
        except rt.SandboxFailure as failure:
            raise _from_failure(failure) from None

    # -- running

    def evaluate(self, expression: str, context: Mapping[str, Any]) -> Any:
        """The value of `expression` (same rules as check(..., "eval")) over `context`."""
        plan = _fast_plan(expression) if type(expression) is str else None
        if plan is not None:
            try:
                value = plan(context)
            except _NotFast:
                pass
            except _FastError as error:
                raise ScriptError("runtime", rt.describe(error.exc), error.line) from None
            else:
                with self._stats:
                    self.fast_path_evaluations += 1
                return _fast_result(value)
        return self._call("eval", expression, context)

    def execute(self, script: str, context: Mapping[str, Any]) -> dict[str, Any]:
        """Runs `script` with `context` as its variables; returns the variables it left that
        are data (new task data). Callables, modules, sets and other non-data are dropped."""
        result = self._call("exec", script, context)
        if type(result) is not dict:
            raise ScriptError("runtime", "invalid response from the sandbox worker")
        return result

    def _call(self, op: str, source: str, context: Mapping[str, Any]) -> Any:
        if type(source) is not str:
            raise ScriptError("syntax", "the script must be text")
        body = rt.dumps_variables({"op": op, "src": source, "ctx": context}, "ctx")
        if len(body) > rt.MAX_FRAME_BYTES:
            raise ScriptError("memory", "the task data is too large for the sandbox")
        with self._stats:
            self.child_calls += 1
        for attempt in (1, 2):
            worker = self._pool.borrow()
            healthy = False
            try:
                raw = worker.call(body, time.monotonic() + self.time_limit_s)
                response = rt.loads(raw)
                if type(response) is not dict:
                    raise ValueError("not an object")
                if response.get("ok") is True:
                    healthy = True
                    return response.get("value")
                kind = _kind(response.get("kind"))
                message = str(response.get("message", ""))[: rt.MAX_MESSAGE_CHARS]
                line = response.get("line")
                healthy = kind != "memory"
                raise ScriptError(kind, message, line if type(line) is int else None)
            except _WorkerTimeout:
                raise ScriptError(
                    "timeout", f"the script did not finish within {self.time_limit_s:g} s"
                ) from None
            except _WorkerDied as died:
                if self._pool.closed:
                    raise RuntimeError("the script sandbox is closed") from None
                if died.before_request and attempt == 1:
                    continue  # the worker never saw the request: retry on a fresh one
                kind = worker.death_kind()
                message = (
                    "the script exceeded the CPU time limit"
                    if kind == "timeout"
                    else "the script was stopped: memory limit exceeded or the worker crashed"
                )
                raise ScriptError(kind, message) from None
            except (ValueError, RecursionError, UnicodeDecodeError):
                raise ScriptError("runtime", "invalid response from the sandbox worker") from None
            finally:
                self._pool.give_back(worker, healthy=healthy)
        raise ScriptError("memory", "the sandbox worker died")  # pragma: no cover

    # -- management

    @property
    def children_started(self) -> int:
        return self._pool.started

    @property
    def peak_busy_children(self) -> int:
        return self._pool.peak_busy

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        return self._pool.pids()

    def warm_up(self) -> None:
        """Starts all `processes` workers now rather than on first use."""
        self._pool.fill()

    def close(self) -> None:
        """Kills the workers. Safe to call twice; also runs at interpreter exit."""
        self._finalizer()

    def __enter__(self) -> ScriptSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: ScriptSandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> ScriptSandbox:
    """The process-wide sandbox (default limits), created on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ScriptSandbox()
            atexit.register(_default.close)
        return _default
