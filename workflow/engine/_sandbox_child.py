"""The restricted runtime for user scripts, and the entry point of the sandbox worker process.

This module is self-contained (standard library and RestrictedPython only) because the worker runs
it as a script (`python -I -B _sandbox_child.py MEMORY_MB TIME_LIMIT_S`), without the project on
`sys.path`. The parent (`sandbox.py`) imports it for the compile policy, the guards and the codec,
so that `check()`, the in-process fast path and the worker apply the very same rules.

Layers, from the outside in:
- the worker process: a resource-limited child (address space, CPU seconds, no new processes, no
  file writes, no new file descriptors) that the parent kills on its wall-time limit;
- the compile policy: RestrictedPython plus our rules (no imports, classes, generators, `with`,
  bare `except`; calls only to whitelisted or script-defined names; in eval mode calls only to a
  few pure helpers); `**`, `*`, `<<` become size-checked helpers;
- the run-time guards: attribute access only on data types, with an allowlist on the few exposed
  classes, no `format`, bounded padding methods, bounded `range`, writes only into dicts and lists.

Transport is length-prefixed JSON (never pickle); dates, datetimes and Decimals travel as tagged
objects, and a dict that happens to hold the tag key is escaped, so any JSON data round-trips.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import re
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from types import CodeType, TracebackType
from typing import Any, Literal, NoReturn, cast

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import (
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

Mode = Literal["eval", "exec"]

SCRIPT_FILENAME = "<script>"
MAX_SOURCE_CHARS = 100_000
MAX_INT_BITS = 4096  # results of **, * and << on ints
MAX_SEQUENCE = 1_000_000  # items or characters made by repetition or padding
MAX_RANGE = 100_000
MAX_DEPTH = 100  # nesting of data crossing the process boundary
MAX_DECIMAL_EXPONENT = 1000  # int(Decimal("1e999999")) alone takes ~40 s
MAX_MESSAGE_CHARS = 500
MAX_FRAME_BYTES = 64 * 1024 * 1024
TAG = "$type"

# Callable names allowed in an expression (gateway condition, timer expression, DMN cell).
EVAL_HELPERS = frozenset(
    [
        "len",
        "abs",
        "min",
        "max",
        "round",
        "int",
        "float",
        "str",
        "bool",
        "Decimal",
        "date",
        "datetime",
        "timedelta",
    ]
)


class SandboxFailure(Exception):
    """A refusal or a failure to report to the caller (`sandbox.ScriptError` in the parent)."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line


class Refused(BaseException):
    """Raised by a run-time guard. Not an `Exception`, so `except Exception` cannot swallow it
    (bare `except:` is refused at compile time and `BaseException` is not exposed)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class NotData(Exception):
    """A value that cannot cross the process boundary."""


def _refuse(kind: str, message: str) -> NoReturn:
    raise Refused(kind, message)


# --------------------------------------------------------------------------- compile policy


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the script binds anywhere (conservatively, ignoring scopes)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Pow: "_pow_",
    ast.Mult: "_mul_",
    ast.LShift: "_lshift_",
}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's transformer plus the rules of this project."""

    eval_mode = False
    known_callables: frozenset[str] = frozenset()

    def __init__(
        self,
        errors: list[str] | None = None,
        warnings: list[str] | None = None,
        used_names: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(errors, warnings, used_names)
        self.bound: set[str] = set()

    # Whole-tree entry points: collect the names the script defines before visiting.
    def visit_Module(self, node: ast.Module) -> Any:
        self.bound = _bound_names(node)
        return super().visit_Module(node)

    def visit_Expression(self, node: ast.Expression) -> Any:
        self.bound = _bound_names(node)
        return super().visit_Expression(node)

    def visit_Interactive(self, node: ast.Interactive) -> Any:
        self.not_allowed(node)

    def visit_Import(self, node: ast.Import) -> Any:
        self.error(node, "import statements are not allowed")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        self.error(node, "import statements are not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, "class definitions are not allowed")

    def visit_Yield(self, node: ast.Yield) -> Any:
        self.error(node, "generators (yield) are not allowed")

    def visit_YieldFrom(self, node: ast.YieldFrom) -> Any:
        self.error(node, "generators (yield) are not allowed")

    def visit_With(self, node: ast.With) -> Any:
        self.error(node, "with statements are not allowed")

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        if node.type is None:
            self.error(node, "a bare 'except:' is not allowed; name the exception")
        return super().visit_ExceptHandler(node)

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        if self.eval_mode:
            self.error(node, "lambda is not allowed in an expression")
        return super().visit_Lambda(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> Any:
        if self.eval_mode:
            self.error(node, "assignment expressions are not allowed in an expression")
        return super().visit_NamedExpr(node)

    def visit_Call(self, node: ast.Call) -> Any:
        func = node.func
        if self.eval_mode:
            if not (isinstance(func, ast.Name) and func.id in EVAL_HELPERS):
                shown = func.id if isinstance(func, ast.Name) else ast.unparse(func)[:60]
                self.error(
                    node,
                    f"calling '{shown}' is not allowed in an expression; only "
                    + ", ".join(sorted(EVAL_HELPERS))
                    + " may be called",
                )
        elif (
            isinstance(func, ast.Name)
            and func.id not in self.known_callables
            and func.id not in self.bound
        ):
            self.error(node, f"call to unknown function '{func.id}'")
        return super().visit_Call(node)

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        helper = _GUARDED_BINOPS.get(type(node.op))
        if helper is None:
            return node
        new_node = ast.Call(
            func=ast.Name(helper, ast.Load()), args=[node.left, node.right], keywords=[]
        )
        copy_locations(new_node, node)
        return new_node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        # `d[k] += v` (refused by RestrictedPython) becomes `_augitem_(_write_(d), k, "+=", v)`.
        target = node.target
        if isinstance(target, ast.Subscript) and not isinstance(target.slice, ast.Slice):
            node = self.node_contents_visit(node)
            target = node.target
            assert isinstance(target, ast.Subscript)
            call = ast.Call(
                func=ast.Name("_augitem_", ast.Load()),
                args=[
                    target.value,
                    target.slice,
                    ast.Constant(IOPERATOR_TO_STR[type(node.op)]),
                    node.value,
                ],
                keywords=[],
            )
            new_node = ast.Expr(value=call)
            copy_locations(new_node, node)
            copy_locations(call, node)
            return new_node
        return super().visit_AugAssign(node)


_LINE_RE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


def _split_error(error: str) -> tuple[str, int | None]:
    match = _LINE_RE.match(error)
    if match is None:
        return error, None
    line = match.group(1)
    return match.group(2), (int(line) if line != "None" else None)


def compile_script(source: str, mode: Mode) -> CodeType:
    """Parse, check and compile `source`; raises SandboxFailure("syntax" | "forbidden")."""
    if not isinstance(source, str):
        raise SandboxFailure("syntax", "the script must be text")
    if len(source) > MAX_SOURCE_CHARS:
        raise SandboxFailure(
            "forbidden", f"the script is longer than {MAX_SOURCE_CHARS} characters"
        )
    try:
        tree = cast(ast.Module | ast.Expression, ast.parse(source, SCRIPT_FILENAME, mode))
    except SyntaxError as exc:
        raise SandboxFailure("syntax", f"SyntaxError: {exc.msg}", exc.lineno) from None
    except ValueError as exc:  # e.g. a NUL character
        raise SandboxFailure("syntax", f"SyntaxError: {exc}") from None
    except (MemoryError, RecursionError):
        raise SandboxFailure("forbidden", "the script is nested too deeply") from None
    policy = _EvalPolicy if mode == "eval" else _ExecPolicy
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(tree, filename=SCRIPT_FILENAME, policy=policy)
    except SyntaxError as exc:  # from the final compile(), e.g. 'return' outside a function
        raise SandboxFailure("syntax", f"SyntaxError: {exc.msg}", exc.lineno) from None
    except (MemoryError, RecursionError):
        raise SandboxFailure("forbidden", "the script is nested too deeply") from None
    if result.errors or result.code is None:
        message, line = _split_error(result.errors[0] if result.errors else "not allowed")
        raise SandboxFailure("forbidden", message, line)
    return result.code


@lru_cache(maxsize=512)
def compile_cached(source: str, mode: Mode) -> CodeType:
    return compile_script(source, mode)


# --------------------------------------------------------------------------- run-time guards


def guarded_pow(base: Any, exp: Any) -> Any:
    if (
        isinstance(base, int)
        and isinstance(exp, int)
        and exp > 0
        and abs(base) > 1
        and exp * math.log2(abs(base)) > MAX_INT_BITS
    ):
        _refuse("memory", f"the result of ** would exceed {MAX_INT_BITS} bits")
    return base**exp


def _check_repeat(seq: Any, times: Any, op: str) -> None:
    if (
        isinstance(times, int)
        and isinstance(seq, str | bytes | bytearray | list | tuple)
        and len(seq) * times > MAX_SEQUENCE
    ):
        _refuse("memory", f"the result of {op} would exceed {MAX_SEQUENCE} items")


def _check_mul(a: Any, b: Any) -> None:
    if isinstance(a, int) and isinstance(b, int):
        if a and b and a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
            _refuse("memory", f"the result of * would exceed {MAX_INT_BITS} bits")
        return
    _check_repeat(a, b, "*")
    _check_repeat(b, a, "*")


def guarded_mul(a: Any, b: Any) -> Any:
    _check_mul(a, b)
    return a * b


def _check_lshift(a: Any, b: Any) -> None:
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and a
        and b > 0
        and a.bit_length() + b > MAX_INT_BITS
    ):
        _refuse("memory", f"the result of << would exceed {MAX_INT_BITS} bits")


def guarded_lshift(a: Any, b: Any) -> Any:
    _check_lshift(a, b)
    return a << b


def _ipow(a: Any, b: Any) -> Any:
    return guarded_pow(a, b)


def _imul(a: Any, b: Any) -> Any:
    _check_mul(a, b)
    a *= b
    return a


def _ilshift(a: Any, b: Any) -> Any:
    _check_lshift(a, b)
    a <<= b
    return a


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": _imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": _ipow,
    "<<=": _ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
}


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    func = _INPLACE.get(op)
    if func is None:
        _refuse("forbidden", f"the operator {op} is not allowed")
    return func(target, value)


def guarded_write(ob: Any) -> Any:
    if type(ob) is dict or type(ob) is list:
        return ob
    _refuse("forbidden", f"'{type(ob).__name__}' objects cannot be modified")


def guarded_augitem(container: Any, key: Any, op: str, value: Any) -> None:
    container = guarded_write(container)
    container[key] = guarded_inplacevar(op, container[key], value)


_SUBSCRIPTABLE = (str, bytes, list, tuple, dict, range)


def guarded_getitem(ob: Any, index: Any) -> Any:
    if isinstance(ob, _SUBSCRIPTABLE):  # tuple subclasses: date.isocalendar()
        return ob[index]
    raise TypeError(f"'{type(ob).__name__}' object is not subscriptable")


def guarded_getiter(ob: Any) -> Iterator[Any]:
    return iter(ob)


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def bounded_range(*args: int) -> range:
    r = range(*args)
    try:
        size = len(r)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        _refuse("forbidden", f"range() is limited to {MAX_RANGE} elements")
    return r


# Exact types whose public attributes a script may read (methods of data values).
_ATTR_TYPES: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        list,
        tuple,
        dict,
        set,
        frozenset,
        date,
        datetime,
        timedelta,
        timezone,
        Decimal,
        range,
        type({}.keys()),
        type({}.values()),
        type({}.items()),
    }
)

# The exposed classes and the class attributes a script may read.
_CLASS_ATTRS: dict[type, frozenset[str]] = {
    date: frozenset({"today", "fromisoformat", "fromordinal", "fromisocalendar", "min", "max"}),
    datetime: frozenset(
        {"now", "today", "fromisoformat", "strptime", "combine", "fromordinal", "min", "max"}
    ),
    timedelta: frozenset({"min", "max", "resolution"}),
    timezone: frozenset({"utc"}),
    dict: frozenset({"fromkeys"}),
}

_DENIED_ATTRS = frozenset({"format", "format_map", "mro"})


def _bounded_width(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(width: Any, *args: Any) -> Any:
        if isinstance(width, int) and width > MAX_SEQUENCE:
            _refuse("memory", f"{name}() is limited to {MAX_SEQUENCE} characters")
        return method(width, *args)

    return call


def _bounded_expandtabs(text: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(tabsize: Any = 8) -> Any:
        if isinstance(tabsize, int) and tabsize > 1:
            tabs = text.count("\t" if isinstance(text, str) else b"\t")
            if len(text) + tabs * tabsize > MAX_SEQUENCE:
                _refuse("memory", f"expandtabs() is limited to {MAX_SEQUENCE} characters")
        return method(tabsize)

    return call


def _bounded_to_bytes(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(length: Any = 1, *args: Any, **kwargs: Any) -> Any:
        if isinstance(length, int) and length > MAX_SEQUENCE:
            _refuse("memory", f"to_bytes() is limited to {MAX_SEQUENCE} bytes")
        return method(length, *args, **kwargs)

    return call


_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


def guarded_getattr(ob: Any, name: str) -> Any:
    """`_getattr_`: public attributes of data values and a few class attributes, nothing else."""
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in _DENIED_ATTRS:
        _refuse("forbidden", f"access to attribute '{name}' is not allowed")
    kind = type(ob)
    if kind in _ATTR_TYPES:
        value = getattr(ob, name)
        if kind is str or kind is bytes:
            if name in _WIDTH_METHODS:
                return _bounded_width(value, name)
            if name == "expandtabs":
                return _bounded_expandtabs(ob, value)
        elif kind is int and name == "to_bytes":
            return _bounded_to_bytes(value)
        return value
    if isinstance(ob, tuple):  # named tuples: date.isocalendar().week
        return getattr(ob, name)
    if isinstance(ob, BaseException) and name == "args":
        return ob.args
    if isinstance(ob, type) and name in _CLASS_ATTRS.get(ob, ()):
        return getattr(ob, name)
    _refuse("forbidden", f"access to attribute '{name}' of '{kind.__name__}' is not allowed")


_ISINSTANCE_TYPES = frozenset(
    {bool, int, float, str, list, dict, set, tuple, date, datetime, timedelta, Decimal}
)


def safe_isinstance(ob: Any, types: Any) -> bool:
    candidates = types if type(types) is tuple else (types,)
    for t in candidates:
        if t not in _ISINSTANCE_TYPES:
            _refuse("forbidden", "isinstance() accepts only the built-in data types")
    return isinstance(ob, types)


SAFE_BUILTINS: dict[str, Any] = {
    "len": len,
    "min": min,
    "max": max,
    "sum": sum,
    "abs": abs,
    "round": round,
    "sorted": sorted,
    "reversed": reversed,
    "any": any,
    "all": all,
    "divmod": divmod,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "set": set,
    "tuple": tuple,
    "enumerate": enumerate,
    "zip": zip,
    "range": bounded_range,
    "isinstance": safe_isinstance,
    "date": date,
    "datetime": datetime,
    "timedelta": timedelta,
    "timezone": timezone,
    "Decimal": Decimal,
    "Exception": Exception,
    "ArithmeticError": ArithmeticError,
    "LookupError": LookupError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "KeyError": KeyError,
    "IndexError": IndexError,
    "ZeroDivisionError": ZeroDivisionError,
}

# C code (date.strftime, datetime.strptime…) imports helper modules through the `__import__` of
# the running frame's builtins. Scripts cannot name it (leading underscore); it hands out only
# modules that are already loaded and on this list.
_INTERNAL_IMPORTS = frozenset({"time", "_strptime", "datetime", "_datetime", "decimal", "locale"})


def internal_import(name: str, *args: Any, **kwargs: Any) -> Any:
    module = sys.modules.get(name) if name in _INTERNAL_IMPORTS else None
    if module is None:
        raise ImportError(f"import of {name!r} is not allowed")
    return module


_GUARDS: dict[str, Any] = {
    "__import__": internal_import,
    "_getattr_": guarded_getattr,
    "_getitem_": guarded_getitem,
    "_getiter_": guarded_getiter,
    "_write_": guarded_write,
    "_inplacevar_": guarded_inplacevar,
    "_augitem_": guarded_augitem,
    "_pow_": guarded_pow,
    "_mul_": guarded_mul,
    "_lshift_": guarded_lshift,
    "_apply_": guarded_apply,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_print_": PrintCollector,
}


class _ExecPolicy(_Policy):
    eval_mode = False
    known_callables = frozenset(SAFE_BUILTINS) | {"print"}


class _EvalPolicy(_Policy):
    eval_mode = True
    known_callables = EVAL_HELPERS


# --------------------------------------------------------------------------- codec


def _check_decimal(value: Decimal) -> Decimal:
    if not value.is_finite() or abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise NotData(f"Decimal out of range: exponent beyond ±{MAX_DECIMAL_EXPONENT}")
    return value


_MAX_JSON_INT = 10**4000  # json.loads refuses ints beyond sys.int_max_str_digits (4300)


def _json_key(key: Any) -> str:
    """Dict keys as `json.dumps` writes them."""
    if type(key) is str:
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int) and -_MAX_JSON_INT < key < _MAX_JSON_INT:
        return int.__repr__(key)
    if isinstance(key, float):
        return json.dumps(float(key))
    if isinstance(key, str):
        return str.__str__(key)
    raise NotData(f"dict keys must be strings or numbers, not {type(key).__name__}")


def _tagged_map(out: dict[str, Any]) -> Any:
    if TAG in out:  # a user dict holding the tag key travels as a list of pairs
        return {TAG: "map", "v": [[k, v] for k, v in out.items()]}
    return out


def encode(value: Any, depth: int = 0) -> Any:
    """Data → JSON-ready structure with tags. Raises NotData for anything else.

    Data is what `json.dumps` accepts (tuples become lists, number keys become strings) plus
    date, datetime and Decimal (finite, exponent within ±1000)."""
    kind = type(value)
    if value is None or kind is bool or kind is float or kind is str:
        return value
    if kind is int:
        if not -_MAX_JSON_INT < value < _MAX_JSON_INT:
            raise NotData("integer too large")
        return value
    if depth >= MAX_DEPTH:
        raise NotData(f"data nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        return [encode(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return _tagged_map({_json_key(k): encode(v, depth + 1) for k, v in value.items()})
    if kind is datetime:
        return {TAG: "datetime", "v": value.isoformat()}
    if kind is date:
        return {TAG: "date", "v": value.isoformat()}
    if kind is Decimal:
        return {TAG: "decimal", "v": str(_check_decimal(value))}
    if isinstance(value, str):  # str subclasses (e.g. StrEnum) travel as plain strings
        return str.__str__(value)
    if isinstance(value, int):
        return encode(int.__index__(value), depth)
    if isinstance(value, float):
        return float(value)
    raise NotData(f"'{kind.__name__}' is not data")


def decode_hook(obj: dict[str, Any]) -> Any:
    """`json.loads(object_hook=...)`: tagged objects back to values; ValueError if malformed."""
    tag = obj.get(TAG)
    if tag is None:
        return obj
    value = obj.get("v")
    if len(obj) != 2:
        raise ValueError("malformed tagged value")
    if tag == "map" and type(value) is list:
        out: dict[str, Any] = {}
        for pair in value:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ValueError("malformed tagged map")
            out[pair[0]] = pair[1]
        return out
    if type(value) is not str:
        raise ValueError("malformed tagged value")
    if tag == "date":
        return date.fromisoformat(value)
    if tag == "datetime":
        return datetime.fromisoformat(value)
    if tag == "decimal":
        try:
            return _check_decimal(Decimal(value))
        except NotData as exc:
            raise ValueError(str(exc)) from None
        except ArithmeticError:
            raise ValueError("malformed Decimal") from None
    raise ValueError("unknown tag")


def dumps(obj: Any) -> bytes:
    """JSON for an already encoded structure (ASCII: lone surrogates survive)."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


_TAG_KEY = json.dumps(TAG) + ":"


def dumps_data(obj: Any) -> bytes:
    """JSON for data; raises NotData. The C encoder does the work, the tags come from its
    `default` hook; if a user dict holds the tag key (or anything else is unusual) the
    structure is encoded again by `encode`, which escapes it."""
    tags = 0

    def default(value: Any) -> Any:
        nonlocal tags
        kind = type(value)
        if kind is datetime:
            tags += 1
            return {TAG: "datetime", "v": value.isoformat()}
        if kind is date:
            tags += 1
            return {TAG: "date", "v": value.isoformat()}
        if kind is Decimal:
            tags += 1
            return {TAG: "decimal", "v": str(_check_decimal(value))}
        raise NotData(f"'{kind.__name__}' is not data")

    try:
        text = json.dumps(obj, default=default, separators=(",", ":"))
    except (NotData, TypeError, ValueError, RecursionError):
        text = None
    if text is None or text.count(_TAG_KEY) != tags:
        text = json.dumps(encode(obj), separators=(",", ":"))
    return text.encode("ascii")


def loads(data: bytes) -> Any:
    return json.loads(data, object_hook=decode_hook)


def data_only(variables: Mapping[Any, Any]) -> dict[str, Any]:
    """The top-level variables that are data; others (callables, `_names`, non-data) dropped."""
    out: dict[str, Any] = {}
    for key, value in variables.items():
        if type(key) is not str or key.startswith("_"):
            continue
        try:
            encode(value)
        except NotData:
            continue
        out[key] = value
    return out


def dumps_variables(envelope: dict[str, Any], key: str) -> bytes:
    """`dumps_data(envelope)`, where `envelope[key]` holds variables: those that are not data
    are dropped rather than failing the whole message."""
    variables = envelope[key]
    envelope[key] = {k: v for k, v in variables.items() if type(k) is str and not k.startswith("_")}
    try:
        return dumps_data(envelope)
    except NotData:
        envelope[key] = data_only(variables)
        return dumps_data(envelope)


# --------------------------------------------------------------------------- running


def _script_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _host_paths() -> list[str]:
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(os.path.abspath(__file__)),
        os.path.dirname(os.__file__),
        os.path.expanduser("~"),
    }
    return sorted((p for p in paths if len(p) > 1), key=len, reverse=True)


_HOST_PATHS = _host_paths()


def describe(exc: BaseException) -> str:
    """'ExcType: message', short, without host paths."""
    name = type(exc).__name__
    try:
        text = (exc.strerror or "") if isinstance(exc, OSError) else str(exc)
    except Exception:
        text = ""
    for path in _HOST_PATHS:
        if path in text:
            text = text.replace(path, "…")
    message = f"{name}: {text}" if text else name
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return message


def new_globals(context: Mapping[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = {
        k: v for k, v in context.items() if type(k) is str and not k.startswith("_")
    }
    builtins = dict(SAFE_BUILTINS)
    builtins.update(_GUARDS)
    scope["__builtins__"] = builtins
    return scope


def _failure(kind: str, message: str, line: int | None) -> bytes:
    return dumps({"ok": False, "kind": kind, "message": message, "line": line})


_MEMORY_FAILURE = _failure("memory", "", None)[:28]  # b'{"ok":false,"kind":"memory"'


def run(op: str, source: str, context: Mapping[str, Any]) -> bytes:
    """Runs one request; returns the response message."""
    mode: Mode = "eval" if op == "eval" else "exec"
    try:
        code = compile_cached(source, mode)
    except SandboxFailure as failure:
        return _failure(failure.kind, failure.message, failure.line)
    scope = new_globals(context)
    try:
        if mode == "eval":
            value = eval(code, scope)
            try:
                return dumps_data({"ok": True, "value": value})
            except NotData as exc:
                message = f"TypeError: the value of the expression is not data ({exc})"
                return _failure("runtime", message, None)
        exec(code, scope)
        return dumps_variables({"ok": True, "value": scope}, "value")
    except Refused as refusal:
        return _failure(refusal.kind, refusal.message, _script_line(refusal.__traceback__))
    except MemoryError as exc:
        line = _script_line(exc.__traceback__)
        scope.clear()
        return _failure("memory", "MemoryError: the script exceeded the memory limit", line)
    except BaseException as exc:
        return _failure("runtime", describe(exc), _script_line(exc.__traceback__))


# --------------------------------------------------------------------------- worker process


_PROTOCOL_FDS: list[int] = []


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, payload: bytes) -> None:
    view = memoryview(struct.pack(">I", len(payload)) + payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _warm_up() -> None:
    """Import lazily loaded modules and fill caches before the limits close the door."""
    import importlib

    for name in sorted(_INTERNAL_IMPORTS):
        importlib.import_module(name)
    sample = (
        "d = date(2024, 1, 31) + timedelta(days=1)\nx = datetime.strptime('2024', '%Y')\n"
        "now = datetime.now()\ntoday = date.today()\ns = today.strftime('%Y-%m-%d %a %b')\n"
        "y = Decimal('1.50') * 2\nz = [i for i in range(3)]\nprint(z)\n"
    )
    responses = [
        run("exec", sample, {"_": None, "k": {TAG: 1}}),
        run("eval", "len(a) > 1 and b == 'x'", {"a": [1, 2], "b": "x"}),
    ]
    for response in responses:
        if not response.startswith(b'{"ok":true'):
            raise RuntimeError(f"sandbox self-test failed: {response!r}")
    dumps_variables({"v": {"d": date(2024, 1, 1), "n": Decimal("1.5"), "f": len}}, "v")
    loads(b'{"d":{"$type":"date","v":"2024-01-01"}}')
    describe(ZeroDivisionError("division by zero"))


def _apply_limits(memory_mb: int, time_limit_s: float) -> None:
    import resource

    base = 0
    try:
        with open("/proc/self/statm", "rb") as statm:
            base = int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        base = 0
    address_space = base + memory_mb * 1024 * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        address_space = min(address_space, hard)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    if os.getuid() == 0:  # defence in depth: RLIMIT_NPROC does not bind root
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        except OSError:
            pass
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    # Only stdin/stdout/stderr and the two protocol descriptors stay open; no new ones.
    highest = max(_PROTOCOL_FDS) + 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest, highest))
    _set_cpu_limit(time_limit_s)


def _set_cpu_limit(time_limit_s: float) -> None:
    """RLIMIT_CPU counts the whole life of the process: re-arm it before every request as a
    backstop should the parent fail to kill a runaway script (SIGXCPU ends the worker)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + time_limit_s) + 2
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def main(argv: list[str]) -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    memory_mb = int(argv[1])
    time_limit_s = float(argv[2])
    # Keep the protocol on private descriptors; fds 0-2 point at /dev/null so nothing a script
    # could print reaches the parent's stream.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    _PROTOCOL_FDS[:] = [proto_in, proto_out]
    _warm_up()
    _apply_limits(memory_mb, time_limit_s)
    _send(proto_out, dumps({"ready": True}))
    while True:
        header = _read_exact(proto_in, 4)
        if header is None:
            return 0
        (size,) = struct.unpack(">I", header)
        if size > MAX_FRAME_BYTES:
            return 2
        body = _read_exact(proto_in, size)
        if body is None:
            return 0
        restart = False
        try:
            _set_cpu_limit(time_limit_s)
            request = loads(body)
            del body
            payload = run(str(request["op"]), str(request["src"]), request["ctx"])
            del request
            restart = payload.startswith(_MEMORY_FAILURE)
        except MemoryError:
            payload = dumps({"ok": False, "kind": "memory", "message": "MemoryError", "line": None})
            restart = True
        except BaseException as exc:  # malformed request, unencodable result…
            payload = dumps(
                {"ok": False, "kind": "runtime", "message": describe(exc), "line": None}
            )
        if len(payload) > MAX_FRAME_BYTES:
            payload = dumps(
                {
                    "ok": False,
                    "kind": "memory",
                    "message": "the script's result is too large",
                    "line": None,
                }
            )
        _send(proto_out, payload)
        if restart:
            return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
