"""`ezd bpmn check FILE...`: does each BPMN model load in ezd's engine (SpiffWorkflow)?

Prints one JSON object per file and line:
`{"file", "ok", "executable", "processes", "error", "warnings"}` where `processes` lists the ids
of the processes found, `executable` says whether at least one executable process loaded, `error`
is null or the reason the file is refused, and `warnings` lists what the check let through.
The exit code is 0 when every file is ok, 1 otherwise.

Rules
- Models are loaded with `parse_interchange` (see `parsing.py`): the hardened XML parser, the
  BPMN 2.0 schema, then SpiffWorkflow's parser in a lenient interchange mode. Parts a model leaves
  to its execution platform (data store implementations, plain service tasks, multi-instance
  counts, empty sub-processes, business rule tasks without a decision, data associations to
  process data inputs) become placeholders that fail only when reached; each one is a warning.
  A process without `isExecutable` counts as executable (as in SpiffWorkflow and deployment).
- A model whose processes are all `isExecutable="false"` is a description, not a program: it
  loads as `ok: true, executable: false` (BPMN MIWG interchange models) - unless it names a target
  execution platform (Camunda Modeler's `modeler:executionPlatform` on `bpmn:definitions`). Such a
  model was drawn to be run, so having no executable process is an error:
  "Process P is not executable." (what SpiffWorkflow says when asked for that process).
- The files are checked together: a call activity's process is looked up in the other files.
  A called process that no file defines, or that several files define, is an error, as is a
  business rule task whose decision is in no given `.dmn` file: the set of files is incomplete
  and the model could not be deployed as it stands. DMN files may be given with the models.
- Scripts and expressions of executable processes are checked against ezd's script sandbox
  policy; code the sandbox would refuse (a host function, another expression language) is a
  warning here and an error at deployment.
- Elements SpiffWorkflow cannot represent at all (compensation events, for one) are errors.
Directories are searched (recursively) for *.bpmn, *.bpmn20.xml and *.dmn files.

`compile_for_run` loads a file (with the same cross-file resolution) for running its processes
through `Engine`, which is how the conformance tests run SpiffWorkflow's own scenarios.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from workflow.engine.parsing import (
    BPMN_NS,
    NS,
    DefinitionRefused,
    ParsedDefinition,
    ScriptChecker,
    decision_ref,
    parse_definition,
    parse_interchange,
)
from workflow.engine.runtime import CompiledProcess
from workflow.engine.sandbox import ScriptSandbox, default_sandbox
from workflow.errors import DomainError
from workflow.xmlsafe import parse_untrusted_xml

MODELER_NS = "http://camunda.org/schema/modeler/1.0"
BPMN_SUFFIXES = (".bpmn", ".bpmn20.xml")
DMN_SUFFIXES = (".dmn",)
MAX_BYTES = 20_000_000
MAX_FLOW_NODES = 2_000
MAX_ELEMENTS = MAX_FLOW_NODES * 60

CHECK_HELP = """\
Check that BPMN models load in ezd's engine (SpiffWorkflow). Prints one JSON object per file and
line: {"file", "ok", "executable", "processes", "error", "warnings"}; exits 0 when every file is
ok, 1 otherwise. Give all the files of a model set together (or a directory): call activities and
business rule tasks are resolved across them (DMN files may be given too); a called process or
decision that no file defines, or that several files define, is an error. Models are loaded
leniently: what a model leaves to its platform (data store implementations, plain service tasks,
multi-instance counts, empty sub-processes) becomes a placeholder that fails only when run, listed
in "warnings". A model whose processes are all isExecutable="false" loads as executable: false,
unless it names a target platform (modeler:executionPlatform, as Camunda Modeler writes): then it
is refused with "Process P is not executable.". Scripts that ezd's sandbox would refuse are
warnings here and errors at deployment.
"""


@dataclass
class _Source:
    path: Path
    kind: str  # "bpmn" | "dmn"
    data: bytes = b""
    root: etree._Element | None = None
    error: str | None = None
    processes: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Resolution:
    others: list[_Source]
    decisions: list[_Source]
    problems: list[str]
    warnings: list[str]


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(BPMN_SUFFIXES):
        return "bpmn"
    if name.endswith(DMN_SUFFIXES):
        return "dmn"
    return None


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories replaced by the BPMN and DMN files under them (sorted).
    A file named twice is checked once."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and _kind(p)))
        else:
            found.append(path)
    seen: set[Path] = set()
    unique: list[Path] = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _load(path: Path) -> _Source:
    kind = _kind(path) or "bpmn"
    src = _Source(path, kind)
    try:
        src.data = path.read_bytes()
        src.root = parse_untrusted_xml(
            src.data, max_bytes=MAX_BYTES, max_elements=MAX_ELEMENTS, what=kind.upper()
        )
    except OSError as e:
        src.error = f"The file cannot be read: {e.strerror or e}"
        return src
    except DomainError as e:
        src.error = e.message_en
        return src
    if kind == "bpmn":
        src.processes = [
            str(p.get("id", "")) for p in src.root.xpath(".//bpmn:process", namespaces=NS)
        ]
    else:
        src.decisions = [str(i) for i in src.root.xpath(".//*[local-name()='decision']/@id")]
    return src


def _executable_processes(root: etree._Element) -> list[etree._Element]:
    return [
        p
        for p in root.xpath(".//bpmn:process", namespaces=NS)
        if p.get("isExecutable", "true") == "true"
    ]


def _calls(root: etree._Element) -> list[tuple[etree._Element, str]]:
    """(process, called element) for the call activities of executable processes."""
    return [
        (process, str(call.get("calledElement", "")))
        for process in _executable_processes(root)
        for call in process.iter(f"{{{BPMN_NS}}}callActivity")
        if call.get("calledElement")
    ]


def _resolve(src: _Source, sources: Sequence[_Source]) -> _Resolution:
    """The other files `src` needs (transitively), or what is missing."""
    problems: list[str] = []
    warnings: list[str] = []
    others: list[_Source] = []
    included = [src]
    pending = [src]
    while pending:
        current = pending.pop(0)
        assert current.root is not None
        local = set(current.processes)
        for _, called in _calls(current.root):
            if called in local or any(called in s.processes for s in included):
                continue
            providers = [s for s in sources if s.root is not None and called in s.processes]
            call_ids = [
                str(c.get("id"))
                for c in current.root.xpath(
                    ".//bpmn:callActivity[@calledElement=$ref]", namespaces=NS, ref=called
                )
            ]
            where = f"call activity {', '.join(call_ids)}" + (
                f" in {current.path.name}" if current is not src else ""
            )
            if not providers:
                problems.append(
                    f"{where} calls process '{called}', which none of the given files defines"
                )
            elif len(providers) > 1:
                names = ", ".join(s.path.name for s in providers)
                problems.append(
                    f"{where} calls process '{called}', which several given files define ({names})"
                )
            else:
                others.append(providers[0])
                included.append(providers[0])
                pending.append(providers[0])
    decisions: list[_Source] = []
    for current in included:
        assert current.root is not None
        for process in _executable_processes(current.root):
            for task in process.iter(f"{{{BPMN_NS}}}businessRuleTask"):
                ref = decision_ref(task)
                if ref is None:
                    continue  # a placeholder in interchange mode
                providers = [s for s in sources if ref in s.decisions]
                where = f"business rule task {task.get('id')}" + (
                    f" in {current.path.name}" if current is not src else ""
                )
                if not providers:
                    problems.append(
                        f"{where} calls decision '{ref}', which no given DMN file defines"
                    )
                elif len(providers) > 1:
                    names = ", ".join(s.path.name for s in providers)
                    problems.append(
                        f"{where} calls decision '{ref}', which several DMN files define ({names})"
                    )
                elif providers[0] not in decisions:
                    decisions.append(providers[0])
    warnings.extend(_recursion_warnings(included))
    return _Resolution(others, decisions, problems, warnings)


def _recursion_warnings(included: Sequence[_Source]) -> list[str]:
    graph: dict[str, set[str]] = {}
    for s in included:
        assert s.root is not None
        for process, called in _calls(s.root):
            graph.setdefault(str(process.get("id")), set()).add(called)
    found: list[str] = []
    for start in sorted(graph):
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            node = stack.pop()
            if node == start:
                found.append(
                    f"process {start} calls itself (through call activities); unless a "
                    "condition stops the recursion, an instance never ends"
                )
                break
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
    return found


def _script_warnings(parsed: ParsedDefinition, check: ScriptChecker) -> list[str]:
    inside: set[str] = set()
    for process in _executable_processes(parsed.root):
        inside.update(str(el.get("id")) for el in process.iter() if el.get("id"))
    warnings: list[str] = []
    for script in parsed.scripts:
        if script.element_id not in inside:
            continue
        try:
            check(script.source, script.mode)
        except Exception as e:
            warnings.append(
                f"{script.kind} in {script.element_id} would be refused at deployment by ezd's "
                f"script sandbox: {e}"
            )
    return warnings


def _error_text(e: DomainError) -> str:
    text = e.message_en
    details = e.details or {}
    where = [
        str(details[k])
        for k in ("tag", "element")
        if details.get(k) and str(details[k]) not in text
    ]
    if details.get("line"):
        where.append(f"line {details['line']}")
    return f"{text} [{' '.join(where)}]" if where else text


def _platform(root: etree._Element) -> str | None:
    value = root.get(f"{{{MODELER_NS}}}executionPlatform")
    return str(value) if value else None


def _check_one(src: _Source, sources: Sequence[_Source], check: ScriptChecker) -> dict[str, Any]:
    result: dict[str, Any] = {
        "file": str(src.path),
        "ok": False,
        "executable": False,
        "processes": list(src.processes),
        "error": None,
        "warnings": [],
    }
    if src.error is not None or src.root is None:
        result["error"] = src.error or "The file cannot be read."
        return result
    if src.kind == "dmn":
        result["decisions"] = list(src.decisions)
        if not src.decisions:
            result["error"] = "The DMN file defines no decision."
        else:
            result["ok"] = True
        return result
    resolution = _resolve(src, sources)
    result["warnings"].extend(resolution.warnings)
    if resolution.problems:
        result["error"] = "Unresolved references: " + "; ".join(resolution.problems) + "."
        return result
    try:
        parsed = parse_interchange(
            src.data,
            filename=src.path.name,
            max_bytes=MAX_BYTES,
            max_flow_nodes=MAX_FLOW_NODES,
            others=[s.root for s in resolution.others if s.root is not None],
            decisions=[s.root for s in resolution.decisions if s.root is not None],
        )
    except DomainError as e:
        result["error"] = _error_text(e)
        return result
    result["processes"] = [p.id for p in parsed.processes]
    platform = _platform(parsed.root)
    if platform and not parsed.executable_ids:
        result["error"] = (
            " ".join(f"Process {p.id} is not executable." for p in parsed.processes)
            + f' The model targets an execution platform (modeler:executionPlatform="{platform}")'
            ' but declares no process isExecutable="true".'
        )
        return result
    result["ok"] = True
    result["executable"] = bool(parsed.specs)
    if parsed.specs:  # nothing of a description runs, so its placeholders do not matter
        result["warnings"].extend(f"placeholder: {p}" for p in parsed.placeholders)
    result["warnings"].extend(_script_warnings(parsed, check))
    return result


def check_files(
    paths: Sequence[Path], *, sandbox: ScriptSandbox | None = None
) -> list[dict[str, Any]]:
    """One result per file (directories expanded), checked together; see the module docstring."""
    sources = [_load(p) for p in expand_paths(paths)]
    checker = (sandbox or default_sandbox()).check
    return [_check_one(src, sources, checker) for src in sources]


def main(argv: list[str]) -> int:
    """`ezd bpmn check FILE...`: prints the JSON lines; 0 when every file is ok, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="ezd bpmn check",
        description=CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="BPMN/DMN file or dir")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    results = check_files(args.files)
    for result in results:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0 if results and all(r["ok"] for r in results) else 1


def compile_for_run(
    paths: Sequence[Path],
    file: str | Path,
    *,
    lenient: bool = False,
    check_script: ScriptChecker | None = None,
) -> dict[str, CompiledProcess]:
    """The executable processes of `file` (found by name among `paths`), ready for `Engine`.

    Called processes and decisions are looked up among `paths` as `check_files` does. By default
    the file goes through `parse_definition`, as a deployment does (pass `check_script` to apply
    the sandbox policy too); `lenient` uses the interchange mode instead."""
    sources = [_load(p) for p in expand_paths(paths)]
    name = Path(file).name
    matches = [s for s in sources if s.path.name == name or s.path == Path(file)]
    if len(matches) != 1:
        raise FileNotFoundError(f"{name}: {len(matches)} matching files among the given paths")
    src = matches[0]
    if src.root is None:
        raise DefinitionRefused(None, src.error)
    resolution = _resolve(src, sources)
    if resolution.problems:
        raise DefinitionRefused(None, "Unresolved references: " + "; ".join(resolution.problems))
    others = [s.root for s in resolution.others if s.root is not None]
    if lenient:
        parsed = parse_interchange(
            src.data,
            filename=name,
            others=others,
            decisions=[s.root for s in resolution.decisions if s.root is not None],
        )
    else:
        parsed = parse_definition(src.data, filename=name, others=others, check_script=check_script)
    version = uuid.uuid5(uuid.NAMESPACE_URL, f"ezd-conformance:{src.path.resolve()}")
    return {
        pid: CompiledProcess(
            version,
            pid,
            parsed.specs[pid],
            parsed.subprocess_specs.get(pid, {}),
            parsed.flavour,
            parsed.lanes,
            parsed.forms,
        )
        for pid in parsed.specs
    }


__all__ = ["CHECK_HELP", "check_files", "compile_for_run", "expand_paths", "main"]
