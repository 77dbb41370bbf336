"""The restricted script engine every workflow runs with, and service-task dispatch.

SpiffWorkflow evaluates conditions, timer expressions and scripts through a script engine; ours
sends them to the RestrictedPython sandbox (`sandbox.py`), which runs anything beyond a trivial
expression in a child process with CPU and memory limits. A restored workflow comes back with
SpiffWorkflow's default, unrestricted engine, so `runtime.py` sets this one every time.

Service tasks never run code from the definition: their operator names a domain operation that
the host registered (`ServiceCall`); parameters are expressions evaluated in the sandbox.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from workflow.engine.sandbox import ScriptError, ScriptSandbox

_DATA = (str, int, float, bool, type(None), list, dict, date, datetime, Decimal)


class ServiceCaller(Protocol):
    def __call__(self, operation: str, params: dict[str, Any], data: Mapping[str, Any]) -> Any: ...


class UnknownOperation(Exception):
    pass


_service_caller: contextvars.ContextVar[ServiceCaller | None] = contextvars.ContextVar(
    "ezd_service_caller", default=None
)


def with_service_caller(caller: ServiceCaller | None) -> contextvars.Token[ServiceCaller | None]:
    return _service_caller.set(caller)


def reset_service_caller(token: contextvars.Token[ServiceCaller | None]) -> None:
    _service_caller.reset(token)


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Evaluates and executes in the sandbox; task data goes in and comes back as plain data."""

    def __init__(self, sandbox: ScriptSandbox) -> None:
        super().__init__({})
        self.sandbox = sandbox

    def evaluate(
        self,
        expression: str,
        context: dict[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> Any:
        scope = {**(external_context or {}), **context}
        return self.sandbox.evaluate(expression, scope)

    def execute(
        self,
        script: str,
        context: dict[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> bool:
        scope = {**(external_context or {}), **context}
        result = self.sandbox.execute(script, scope)
        # The sandbox passes only data (not "_" keys or other objects); a data key missing from
        # the result was deleted by the script.
        for k in list(context):
            if k not in result and not k.startswith("_") and isinstance(context[k], _DATA):
                del context[k]
        for k, v in result.items():
            if external_context is None or k not in external_context:
                context[k] = v
        return True

    def call_service(
        self,
        context: dict[str, Any],
        operation_name: str | None = None,
        operation_params: dict[str, Any] | None = None,
        task_data: Any = None,
        **_: Any,
    ) -> str:
        caller = _service_caller.get()
        if caller is None or not operation_name:
            raise UnknownOperation(f"service operation {operation_name!r} is not available here")
        params = {
            name: (p.get("value") if isinstance(p, dict) else p)
            for name, p in (operation_params or {}).items()
        }
        result = caller(operation_name, params, context)
        # SpiffWorkflow json-decodes a service result into the task's result variable.
        return json.dumps(result, default=str)


class RestrictedScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    def __init__(self, sandbox: ScriptSandbox) -> None:
        super().__init__(environment=RestrictedEnvironment(sandbox))
        self.sandbox = sandbox

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        # SpiffWorkflow 3.2's own call_service names an undefined `script` when the service
        # fails, so the incident would read "name 'script' is not defined", not the reason.
        try:
            return self.environment.call_service(task.data, **kwargs)
        except Exception as err:
            raise WorkflowTaskException(str(err), task=task, exception=err) from err

    def validate(self, expression: str) -> None:
        # SpiffWorkflow's DMN engine probes cells with validate() and expects SyntaxError.
        try:
            self.sandbox.check(expression, "eval")
        except ScriptError as e:
            if e.kind == "syntax":
                raise SyntaxError(e.message) from e
            raise


def is_script_failure(exc: BaseException) -> bool:
    """True when an engine error comes from user code (an incident), not from ezd itself."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ScriptError | UnknownOperation):
            return True
        e = getattr(e, "exception", None) or e.__cause__ or e.__context__
    return False


ServiceRegistry = Mapping[str, Callable[..., Any]]
