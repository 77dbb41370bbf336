"""Loading BPMN definitions: hardened XML, the BPMN schema, size limits, script pre-checks.

Every definition that reaches the engine (shipped in `bpmn/`, uploaded by an admin, or checked by
`ezd bpmn check`) goes through `parse_definition`, which refuses with a `DefinitionRefused` that
names the problem. The parse result keeps the SpiffWorkflow specs of every executable process, so
the runtime never parses the same version twice (see `SpecCache`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.spiff.parser.process import VALIDATOR as SPIFF_VALIDATOR
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from workflow.errors import ValidationFailed
from workflow.xmlsafe import XmlRefused, parse_untrusted_xml

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}

# Flow nodes counted against the size limit (SpiffWorkflow's parser recurses along flows and
# hits RecursionError near 500 chained elements).
FLOW_NODE_TAGS = frozenset(
    f"{{{BPMN_NS}}}{t}"
    for t in [
        "task",
        "userTask",
        "manualTask",
        "scriptTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
        "startEvent",
        "endEvent",
        "intermediateCatchEvent",
        "intermediateThrowEvent",
        "boundaryEvent",
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
    ]
)

ScriptMode = Literal["eval", "exec"]
ScriptChecker = Callable[[str, ScriptMode], None]


class DefinitionRefused(ValidationFailed):
    code = "bpmn_refused"


@dataclass(frozen=True)
class ScriptSource:
    element_id: str
    kind: str  # script, condition, timer, parameter, ...
    mode: ScriptMode
    source: str


@dataclass(frozen=True)
class ProcessInfo:
    id: str
    name: str | None
    executable: bool


@dataclass
class ParsedDefinition:
    """A BPMN document that passed every check; `specs` holds the executable processes."""

    root: etree._Element
    flavour: Literal["spiff", "camunda"]
    processes: list[ProcessInfo]
    specs: dict[str, BpmnProcessSpec] = field(default_factory=dict)
    subprocess_specs: dict[str, dict[str, BpmnProcessSpec]] = field(default_factory=dict)
    scripts: list[ScriptSource] = field(default_factory=list)
    lanes: dict[str, str] = field(default_factory=dict)  # flow node id -> lane name
    forms: dict[str, str] = field(default_factory=dict)  # user task id -> form file name
    messages: list[str] = field(default_factory=list)

    @property
    def executable_ids(self) -> list[str]:
        return [p.id for p in self.processes if p.executable]


def _refuse(pl: str, en: str, **details: Any) -> DefinitionRefused:
    return DefinitionRefused(pl, en, details=details or None)


_validator_lock = threading.Lock()
_plain_validator: BpmnValidator | None = None


def _schema_validator(flavour: str) -> BpmnValidator:
    global _plain_validator
    if flavour == "spiff":
        return SPIFF_VALIDATOR
    with _validator_lock:
        if _plain_validator is None:
            _plain_validator = BpmnValidator()
        return _plain_validator


def _text(el: etree._Element) -> str:
    return "".join(el.itertext()).strip()


def _owner_id(el: etree._Element) -> str:
    node: etree._Element | None = el
    while node is not None:
        ident = node.get("id")
        if ident and node.tag != f"{{{BPMN_NS}}}conditionExpression":
            return str(ident)
        node = node.getparent()
    return "?"


def collect_scripts(root: etree._Element) -> list[ScriptSource]:
    """Every piece of Python a definition carries, with the mode it will run in."""
    found: list[ScriptSource] = []

    def add(xpath: str, kind: str, mode: ScriptMode) -> None:
        for el in root.xpath(xpath, namespaces=NS):
            # An attribute XPath gives lxml "smart strings" that know their element.
            src = str(el) if isinstance(el, str) else _text(el)
            owner = el.getparent() if hasattr(el, "getparent") else el
            if str(src).strip():
                found.append(ScriptSource(_owner_id(owner), kind, mode, str(src)))

    add(".//bpmn:scriptTask/bpmn:script", "script", "exec")
    add(".//spiffworkflow:preScript", "pre_script", "exec")
    add(".//spiffworkflow:postScript", "post_script", "exec")
    add(".//bpmn:conditionExpression", "condition", "eval")
    add(".//bpmn:completionCondition", "condition", "eval")
    add(".//bpmn:loopCardinality", "cardinality", "eval")
    add(".//bpmn:timeDate", "timer", "eval")
    add(".//bpmn:timeDuration", "timer", "eval")
    add(".//bpmn:timeCycle", "timer", "eval")
    add(".//spiffworkflow:parameter/@value", "parameter", "eval")
    add(
        ".//bpmn:correlationPropertyRetrievalExpression/bpmn:formalExpression",
        "correlation",
        "eval",
    )
    add(".//bpmn:correlationPropertyRetrievalExpression/bpmn:messagePath", "correlation", "eval")
    return found


def _flavour(root: etree._Element) -> Literal["spiff", "camunda"]:
    nsmap_values = set(root.nsmap.values())
    if CAMUNDA_NS in nsmap_values:
        return "camunda"
    return "spiff"


def parse_definition(
    data: bytes,
    *,
    filename: str = "definition.bpmn",
    max_bytes: int = 5_000_000,
    max_flow_nodes: int = 400,
    check_script: ScriptChecker | None = None,
    others: Iterable[etree._Element] = (),
    require_executable: bool = True,
) -> ParsedDefinition:
    """Parse and validate one BPMN document (plus `others` for call activities it uses).

    Raises `DefinitionRefused` (or `XmlRefused`) with a clear message; never returns a definition
    that the engine would fail to load.
    """
    root = parse_untrusted_xml(
        data, max_bytes=max_bytes, max_elements=max_flow_nodes * 60, what="BPMN"
    )
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise _refuse(
            "To nie jest plik BPMN 2.0 (brak elementu bpmn:definitions).",
            "This is not a BPMN 2.0 file (no bpmn:definitions root element).",
            root=str(root.tag),
        )
    nodes = sum(1 for el in root.iter() if el.tag in FLOW_NODE_TAGS)
    if nodes > max_flow_nodes:
        raise DefinitionRefused(
            f"Definicja ma {nodes} elementów przepływu; limit to {max_flow_nodes}.",
            f"The definition has {nodes} flow elements; the limit is {max_flow_nodes}.",
            code="bpmn_too_large",
            status=413,
        )
    flavour = _flavour(root)
    try:
        _schema_validator(flavour).validate(root, filename)
    except ValidationException as e:
        raise _refuse(
            f"Plik nie jest zgodny ze schematem BPMN 2.0: {e}",
            f"The file does not conform to the BPMN 2.0 schema: {e}",
        ) from e

    processes = [
        ProcessInfo(p.get("id", ""), p.get("name"), p.get("isExecutable", "true") == "true")
        for p in root.xpath(".//bpmn:process", namespaces=NS)
    ]
    if not processes:
        raise _refuse("Plik nie zawiera żadnego procesu.", "The file contains no process.")
    parsed = ParsedDefinition(root=root, flavour=flavour, processes=processes)
    parsed.scripts = collect_scripts(root)
    if check_script is not None:
        for s in parsed.scripts:
            try:
                check_script(s.source, s.mode)
            except Exception as e:
                raise DefinitionRefused(
                    f"Niedozwolony kod w elemencie {s.element_id} ({s.kind}): {e}",
                    f"Code not allowed in element {s.element_id} ({s.kind}): {e}",
                    code="bpmn_script_refused",
                    details={"element": s.element_id, "kind": s.kind},
                ) from e

    parser = CamundaParser() if flavour == "camunda" else SpiffBpmnParser()
    try:
        for other in others:
            parser.add_bpmn_xml(other)
        parser.add_bpmn_xml(root, filename)
        for pid in parsed.executable_ids:
            parsed.specs[pid] = parser.get_spec(pid)
            parsed.subprocess_specs[pid] = parser.get_subprocess_specs(pid)
    except ValidationException as e:
        raise _refuse(
            f"Definicja procesu jest niepoprawna: {e}", f"The process definition is invalid: {e}"
        ) from e
    except RecursionError as e:
        raise DefinitionRefused(
            "Definicja jest zbyt głęboko zagnieżdżona.",
            "The definition is nested too deeply.",
            code="bpmn_too_large",
            status=413,
        ) from e
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise _refuse(
            f"Nie można wczytać definicji: {type(e).__name__}: {e}",
            f"The definition cannot be loaded: {type(e).__name__}: {e}",
        ) from e
    if require_executable and not parsed.specs:
        raise _refuse(
            'Plik nie zawiera procesu wykonywalnego (isExecutable="true").',
            'The file contains no executable process (isExecutable="true").',
        )
    parsed.lanes = dict(parser.get_document_lanes(root))
    for task in root.xpath(".//bpmn:userTask", namespaces=NS):
        for prop in task.xpath(
            "bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property"
            "[@name='formJsonSchemaFilename']",
            namespaces=NS,
        ):
            parsed.forms[task.get("id", "")] = prop.get("value", "")
    parsed.messages = sorted(parser.messages.values()) if parser.messages else []
    return parsed


def required_forms(parsed: ParsedDefinition, forms: Mapping[str, Any]) -> None:
    """Every form a user task names must come with the definition, and be a JSON Schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    for task_id, name in parsed.forms.items():
        if name not in forms:
            raise DefinitionRefused(
                f"Brak formularza {name} dla zadania {task_id}.",
                f"The form {name} for task {task_id} is missing.",
                code="bpmn_form_missing",
            )
        try:
            Draft202012Validator.check_schema(forms[name])
        except SchemaError as e:
            raise DefinitionRefused(
                f"Formularz {name} nie jest poprawnym JSON Schema: {e.message}",
                f"The form {name} is not a valid JSON Schema: {e.message}",
                code="bpmn_form_invalid",
            ) from e


def load_form(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise DefinitionRefused(
            f"Formularz {name} nie jest poprawnym JSON: {e}",
            f"The form {name} is not valid JSON: {e}",
            code="bpmn_form_invalid",
        ) from e


__all__ = [
    "DefinitionRefused",
    "ParsedDefinition",
    "ProcessInfo",
    "ScriptSource",
    "XmlRefused",
    "collect_scripts",
    "load_form",
    "parse_definition",
    "required_forms",
]
