"""Loading BPMN definitions: hardened XML, the BPMN schema, size limits, script pre-checks.

Every definition that reaches the engine (shipped in `bpmn/`, uploaded by an admin, or checked by
`ezd bpmn check`) goes through `parse_definition`, which refuses with a `DefinitionRefused` that
names the problem. The parse result keeps the SpiffWorkflow specs of every executable process, so
the runtime never parses the same version twice (see `SpecCache`).

`parse_interchange` is the lenient variant behind `ezd bpmn check` (`conformance.py`), never used
for deployment. It loads models drawn for other platforms where SpiffWorkflow can represent them,
following the BPMN 2.0 text where SpiffWorkflow is stricter and standing in for what the model
leaves to its execution platform with placeholders that fail only when they are reached:

- a data store without an implementation, or a data association that resolves to no data
  object or store (e.g. to a process data input): `UnimplementedDataStore`, failing on read/write;
- a plain `bpmn:serviceTask` without a spiffworkflow operator (spiff flavour): a service task whose
  operation is the BPMN operation's name (`operationRef`) or else the task id, so the host's
  service caller decides; an unknown operation becomes an incident;
- a multi-instance activity without cardinality or input collection (e.g. Zeebe's
  `zeebe:loopCharacteristics`): a cardinality expression that fails when evaluated;
- a sub-process without any content (a collapsed one drawn for documentation): an activity that
  fails when reached (`UnspecifiedActivity`);
- a non-default flow out of an exclusive or inclusive gateway without a condition: the BPMN 2.0
  meaning, an unguarded flow (condition `True`; Camunda and Activiti read it the same way).

Every stand-in is listed in `ParsedDefinition.placeholders`.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowDataException, WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator, full_tag
from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.data_spec import BpmnDataStoreSpecification
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.spiff.parser.process import VALIDATOR as SPIFF_VALIDATOR
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser, SpiffProcessParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser

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
    # parse_interchange only: what stands in for parts the model leaves to its platform
    placeholders: list[str] = field(default_factory=list)

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
    add(".//spiffworkflow:messagePayload", "message_payload", "eval")
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


# ---------------------------------------------------------------------------------------------
# Interchange mode (`parse_interchange`): placeholders and lenient parsers.

# Evaluated only when the loop starts (or decides to go on); the sandbox then fails with
# "name 'loop_cardinality_not_in_model' is not defined".
MISSING_CARDINALITY = "loop_cardinality_not_in_model"
MISSING_LOOP_CONDITION = "loop_condition_not_in_model"


class UnimplementedDataStore(BpmnDataStoreSpecification):  # type: ignore[misc]
    """Stands in for a data store the model names but ezd does not provide (interchange mode);
    reading or writing it fails with a task error, as any other incident."""

    def get(self, my_task: Any, **kwargs: Any) -> None:
        raise WorkflowDataException(
            f"Data store {self.bpmn_name or self.bpmn_id} has no implementation here.",
            my_task,
            data_input=self,
        )

    def set(self, my_task: Any, **kwargs: Any) -> None:
        raise WorkflowDataException(
            f"Data store {self.bpmn_name or self.bpmn_id} has no implementation here.",
            my_task,
            data_output=self,
        )


class UnspecifiedActivity(BpmnSpecMixin):  # type: ignore[misc]
    """An activity whose behaviour the model leaves to its platform (a sub-process drawn without
    content, a business rule task naming no decision); reaching it is a task error."""

    def __init__(self, wf_spec: Any, bpmn_id: str, reason: str = "", **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.reason = reason or "the model does not say what it does"

    def _run_hook(self, my_task: Any) -> bool:
        raise WorkflowTaskException(
            f"Activity {self.bpmn_name or self.bpmn_id} cannot run: {self.reason}.",
            task=my_task,
        )


def _note(parser: Any, text: str) -> None:
    notes: list[str] | None = getattr(parser, "placeholders", None)
    if notes is not None and text not in notes:
        notes.append(text)


def _label(node: etree._Element) -> str:
    tag = etree.QName(node).localname
    name = node.get("name")
    return f"{tag} {node.get('id', '?')}" + (f" ({name!r})" if name else "")


class _InterchangeGatewayParser(ConditionalGatewayParser):  # type: ignore[misc]
    """A non-default flow without a condition is unguarded (BPMN 2.0, 10.2.2)."""

    def connect_outgoing(
        self, outgoing_task: Any, sequence_flow_node: etree._Element, is_default: bool
    ) -> None:
        if not is_default and self.parse_condition(sequence_flow_node) is None:
            _note(
                self.process_parser.parser,
                f"{_label(self.node)}: flow {sequence_flow_node.get('id')} has no condition "
                "and is taken as unguarded (condition True)",
            )
            self.task.connect_outgoing_if("True", outgoing_task)
        else:
            super().connect_outgoing(outgoing_task, sequence_flow_node, is_default)


class _InterchangeServiceTaskParser(ServiceTaskParser):  # type: ignore[misc]
    """A plain BPMN service task: the host's service caller gets the BPMN operation's name
    (via operationRef) or, without one, the task id."""

    def create_task(self) -> Any:
        extensions = self.parse_extensions()
        if extensions.get("serviceTaskOperator") is not None:
            return super().create_task()
        operation = self.bpmn_id
        ref = self.node.get("operationRef")
        if ref:
            local = ref.split(":")[-1]
            names = (
                self.node.getroottree()
                .getroot()
                .xpath(".//bpmn:operation[@id=$ref]/@name", namespaces=NS, ref=local)
            )
            if names:
                operation = str(names[0])
        _note(
            self.process_parser.parser,
            f"{_label(self.node)} has no spiffworkflow operator: it calls the host's service "
            f"operation {operation!r}",
        )
        return self.spec_class(
            self.spec,
            self.bpmn_id,
            operation_name=operation,
            operation_params={},
            result_variable=None,
            prescript=extensions.get("preScript"),
            postscript=extensions.get("postScript"),
            **self.bpmn_attributes,
        )


def _has_flow_nodes(node: etree._Element) -> bool:
    return any(child.tag in FLOW_NODE_TAGS for child in node)


def _lenient_subprocess_parser(base: type[Any]) -> type[Any]:
    class _InterchangeSubprocessParser(base):  # type: ignore[misc]
        def create_task(self) -> Any:
            if _has_flow_nodes(self.node):
                return super().create_task()
            _note(
                self.process_parser.parser,
                f"{_label(self.node)} has no content: reaching it fails",
            )
            return UnspecifiedActivity(
                self.spec,
                self.bpmn_id,
                reason="the sub-process has no content in the model",
                **self.bpmn_attributes,
            )

    return _InterchangeSubprocessParser


def decision_ref(node: etree._Element) -> str | None:
    ref = str(node.get(f"{{{CAMUNDA_NS}}}decisionRef") or "")
    if ref:
        return ref
    called = node.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}calledDecisionId")
    text = (called.text or "").strip() if called is not None else ""
    return text or None


def _lenient_rule_task_parser(base: type[Any]) -> type[Any]:
    class _InterchangeRuleTaskParser(base):  # type: ignore[misc]
        def create_task(self) -> Any:
            if decision_ref(self.node) is not None:
                return super().create_task()
            _note(
                self.process_parser.parser,
                f"{_label(self.node)} names no decision: reaching it fails",
            )
            return UnspecifiedActivity(
                self.spec,
                self.bpmn_id,
                reason="the business rule task names no decision",
                **self.bpmn_attributes,
            )

    return _InterchangeRuleTaskParser


def _fill_loops(node: etree._Element, parser: Any) -> None:
    """Failing expressions where a loop's count or condition is left to the platform."""
    for mi in node.findall(f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics"):
        if (
            mi.find(f"{{{BPMN_NS}}}loopCardinality") is None
            and mi.find(f"{{{BPMN_NS}}}loopDataInputRef") is None
            and mi.get(f"{{{CAMUNDA_NS}}}collection") is None
        ):
            etree.SubElement(mi, f"{{{BPMN_NS}}}loopCardinality").text = MISSING_CARDINALITY
            _note(
                parser,
                f"{_label(node)}: multi-instance without cardinality or input collection; "
                "starting it fails",
            )
    for loop in node.findall(f"{{{BPMN_NS}}}standardLoopCharacteristics"):
        if loop.find(f"{{{BPMN_NS}}}loopCondition") is None and loop.get("loopMaximum") is None:
            etree.SubElement(loop, f"{{{BPMN_NS}}}loopCondition").text = MISSING_LOOP_CONDITION
            _note(
                parser,
                f"{_label(node)}: loop without condition or maximum; deciding whether to "
                "loop again fails",
            )


class _InterchangeProcessMixin:
    """Process parsers of interchange mode: a data association may name a data object itself;
    one that resolves to nothing gets a placeholder store; loops the model leaves open get
    failing expressions."""

    parser: Any
    data_stores: dict[str, Any]
    node: etree._Element

    def parse_node(self, node: etree._Element) -> Any:
        _fill_loops(node, self.parser)
        return super().parse_node(node)  # type: ignore[misc]

    def get_data_object_reference(self, reference_id: str) -> etree._Element | None:
        ref: etree._Element | None = super().get_data_object_reference(  # type: ignore[misc]
            reference_id
        )
        if ref is None:
            # BPMN lets an association name the data object itself, not only a reference to it.
            found = (
                self.node.getroottree()
                .getroot()
                .xpath(".//bpmn:dataObject[@id=$ref]", namespaces=NS, ref=reference_id)
            )
            if found:
                ref = etree.Element(f"{{{BPMN_NS}}}dataObjectReference", dataObjectRef=reference_id)
        return ref

    def get_data_store_reference(self, reference_id: str) -> etree._Element:
        ref: etree._Element | None = super().get_data_store_reference(  # type: ignore[misc]
            reference_id
        )
        if ref is None:
            found = (
                self.node.getroottree()
                .getroot()
                .xpath(".//bpmn:dataStoreReference[@id=$ref]", namespaces=NS, ref=reference_id)
            )
            ref = found[0] if found else None
        if ref is not None and ref.get("dataStoreRef") in self.data_stores:
            return ref
        key = f"ezd-unresolved:{reference_id}"
        if key not in self.data_stores:
            self.data_stores[key] = UnimplementedDataStore(key, reference_id)
            _note(
                self.parser,
                f"data association to {reference_id} resolves to no data object or data "
                "store: using it fails",
            )
        return etree.Element(f"{{{BPMN_NS}}}dataStoreReference", dataStoreRef=key)


class _InterchangeSpiffProcessParser(_InterchangeProcessMixin, SpiffProcessParser):  # type: ignore[misc]
    pass


class _InterchangeProcessParser(_InterchangeProcessMixin, ProcessParser):  # type: ignore[misc]
    pass


class _InterchangeParserMixin:
    namespaces: dict[str, str]
    data_stores: dict[str, Any]
    DATA_STORE_CLASSES: dict[str, type[Any]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.placeholders: list[str] = []

    def _add_data_stores(self, bpmn: etree._Element) -> None:
        for store in bpmn.xpath(".//bpmn:dataStore", namespaces=self.namespaces):
            store_id = store.get("id")
            if store_id is None:
                raise ValidationException("Data Store identifier is missing from bpmn xml")
            name = store.get("name") or store_id
            cls = self.DATA_STORE_CLASSES.get(name)
            if cls is None:
                cls = UnimplementedDataStore
                _note(
                    self, f"data store {name!r} ({store_id}) has no implementation: using it fails"
                )
            self.data_stores[store_id] = cls(
                store_id, name, store.get("capacity"), store.get("isUnlimited")
            )


def _interchange_overrides(base: type[Any]) -> dict[str, tuple[type[Any], type[Any]]]:
    classes: dict[str, tuple[type[Any], type[Any]]] = {
        **base.PARSER_CLASSES,
        **base.OVERRIDE_PARSER_CLASSES,
    }
    overrides = dict(base.OVERRIDE_PARSER_CLASSES)
    for tag in ("exclusiveGateway", "inclusiveGateway"):
        overrides[full_tag(tag)] = (_InterchangeGatewayParser, classes[full_tag(tag)][1])
    sub_parser, sub_spec = classes[full_tag("subProcess")]
    overrides[full_tag("subProcess")] = (_lenient_subprocess_parser(sub_parser), sub_spec)
    rule_parser, rule_spec = classes[full_tag("businessRuleTask")]
    overrides[full_tag("businessRuleTask")] = (_lenient_rule_task_parser(rule_parser), rule_spec)
    return overrides


class _InterchangeSpiffParser(_InterchangeParserMixin, SpiffBpmnParser):  # type: ignore[misc]
    PROCESS_PARSER_CLASS = _InterchangeSpiffProcessParser
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type[Any], type[Any]]]] = {
        **_interchange_overrides(SpiffBpmnParser),
        full_tag("serviceTask"): (
            _InterchangeServiceTaskParser,
            SpiffBpmnParser.OVERRIDE_PARSER_CLASSES[full_tag("serviceTask")][1],
        ),
    }


class _InterchangeCamundaParser(_InterchangeParserMixin, CamundaParser):  # type: ignore[misc]
    PROCESS_PARSER_CLASS = _InterchangeProcessParser
    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type[Any], type[Any]]]] = (
        _interchange_overrides(CamundaParser)
    )


def _validation_text(e: ValidationException, root: etree._Element) -> str:
    text = str(e.args[0]) if e.args else type(e).__name__
    element = getattr(e, "id", "") or ""
    if text.startswith("NotImplementedError(") and element:
        # SpiffWorkflow reports an event it cannot represent with the element's raw XML.
        found = root.xpath(".//*[@id=$ref]", ref=element)
        kinds = [
            etree.QName(c).localname
            for c in (found[0] if found else [])
            if isinstance(c.tag, str) and c.tag.endswith("EventDefinition")
        ]
        what = ", ".join(kinds) if kinds else "no event definition"
        text = f"{getattr(e, 'tag', '') or 'element'} {element} ({what}) is not supported"
    notes = [str(n) for n in getattr(e, "notes", [])]
    return "; ".join([text.rstrip(". "), *notes])


def _element_details(e: ValidationException, root: etree._Element) -> dict[str, Any]:
    element = getattr(e, "id", "") or None
    line = getattr(e, "line_number", "") or None
    if element and not line:
        found = root.xpath(".//*[@id=$ref]", ref=element)
        line = found[0].sourceline if found else None
    details = {"element": element, "tag": getattr(e, "tag", "") or None, "line": line}
    return {k: v for k, v in details.items() if v is not None}


# ---------------------------------------------------------------------------------------------
# Entry points.


def parse_definition(
    data: bytes,
    *,
    filename: str = "definition.bpmn",
    max_bytes: int = 5_000_000,
    max_flow_nodes: int = 400,
    check_script: ScriptChecker | None = None,
    others: Iterable[etree._Element] = (),
    require_executable: bool = True,
    decisions: Iterable[bytes] = (),
) -> ParsedDefinition:
    """Parse and validate one BPMN document (plus `others` for call activities it uses and the
    DMN documents in `decisions` for its business rule tasks).

    Raises `DefinitionRefused` (or `XmlRefused`) with a clear message; never returns a definition
    that the engine would fail to load.
    """
    dmn_roots = [
        parse_decision(d, max_bytes=max_bytes, check_script=check_script) for d in decisions
    ]
    return _parse(
        data,
        filename=filename,
        max_bytes=max_bytes,
        max_flow_nodes=max_flow_nodes,
        check_script=check_script,
        others=others,
        require_executable=require_executable,
        interchange=False,
        decisions=dmn_roots,
    )


def parse_decision(
    data: bytes, *, max_bytes: int, check_script: ScriptChecker | None
) -> etree._Element:
    """A DMN document, hardened like BPMN, with every cell pre-checked the way SpiffWorkflow's
    DMN engine will build its expression (input + entry, `?` for the input, or equality)."""
    root = parse_untrusted_xml(data, max_bytes=max_bytes, max_elements=100_000, what="DMN")
    ns = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "definitions" or "DMN" not in ns.upper():
        raise _refuse(
            "To nie jest plik DMN (brak elementu dmn:definitions).",
            "This is not a DMN file (no dmn:definitions root element).",
        )
    if check_script is None:
        return root
    dmn = {"dmn": ns}

    def check(source: str, where: str) -> None:
        try:
            check_script(source, "eval")
        except Exception as e:
            raise DefinitionRefused(
                f"Niedozwolone wyrażenie w tabeli decyzyjnej ({where}): {e}",
                f"Expression not allowed in the decision table ({where}): {e}",
                code="bpmn_script_refused",
                details={"element": where, "kind": "dmn"},
            ) from e

    for table in root.xpath(".//dmn:decisionTable", namespaces=dmn):
        inputs = [
            (i.findtext("dmn:inputExpression/dmn:text", namespaces=dmn) or "").strip()
            for i in table.xpath("dmn:input", namespaces=dmn)
        ]
        for expr in inputs:
            if expr:
                check(expr, "input")
        for rule in table.xpath("dmn:rule", namespaces=dmn):
            where = f"rule {rule.get('id', '?')}"
            for n, entry in enumerate(rule.xpath("dmn:inputEntry", namespaces=dmn)):
                text = (entry.findtext("dmn:text", namespaces=dmn) or "").strip()
                if not text or text == "-":
                    continue
                source = inputs[n] if n < len(inputs) else "v"
                if "?" in text:
                    check(text.replace("?", "dmninputexpr"), where)
                    continue
                try:
                    check_script(text, "eval")
                except Exception:
                    check(f"{source} {text}", where)
            for entry in rule.xpath("dmn:outputEntry", namespaces=dmn):
                text = (entry.findtext("dmn:text", namespaces=dmn) or "").strip()
                if text:
                    check(text, where)
    return root


def parse_interchange(
    data: bytes,
    *,
    filename: str = "definition.bpmn",
    max_bytes: int = 20_000_000,
    max_flow_nodes: int = 400,
    others: Iterable[etree._Element] = (),
    decisions: Iterable[etree._Element] = (),
) -> ParsedDefinition:
    """Lenient parse for checking models drawn for other platforms (see the module docstring);
    never for deployment. `others` are BPMN roots that called processes come from, `decisions`
    DMN roots for business rule tasks. A definition without executable processes is returned
    (with empty `specs`); `placeholders` lists every stand-in."""
    return _parse(
        data,
        filename=filename,
        max_bytes=max_bytes,
        max_flow_nodes=max_flow_nodes,
        check_script=None,
        others=others,
        require_executable=False,
        interchange=True,
        decisions=decisions,
    )


def _parse(
    data: bytes,
    *,
    filename: str,
    max_bytes: int,
    max_flow_nodes: int,
    check_script: ScriptChecker | None,
    others: Iterable[etree._Element],
    require_executable: bool,
    interchange: bool,
    decisions: Iterable[etree._Element],
) -> ParsedDefinition:
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

    parser: Any
    spiff_root = root
    if interchange:
        # The lenient parsers may add placeholder elements: they work on copies.
        spiff_root = copy.deepcopy(root)
        others = [copy.deepcopy(o) for o in others]
        parser = _InterchangeCamundaParser() if flavour == "camunda" else _InterchangeSpiffParser()
    else:
        parser = CamundaParser() if flavour == "camunda" else SpiffBpmnParser()
    try:
        for other in others:
            parser.add_bpmn_xml(other)
        for dmn in decisions:
            parser.add_dmn_xml(dmn)
        parser.add_bpmn_xml(spiff_root, filename)
        for pid in parsed.executable_ids:
            parsed.specs[pid] = parser.get_spec(pid)
            parsed.subprocess_specs[pid] = parser.get_subprocess_specs(pid)
    except ValidationException as e:
        text = _validation_text(e, root)
        raise DefinitionRefused(
            f"Definicja procesu jest niepoprawna: {text}",
            f"The process definition is invalid: {text}",
            code=DefinitionRefused.code,
            details=_element_details(e, root) or None,
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
    parsed.lanes = dict(parser.get_document_lanes(spiff_root))
    for task in root.xpath(".//bpmn:userTask", namespaces=NS):
        for prop in task.xpath(
            "bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property"
            "[@name='formJsonSchemaFilename']",
            namespaces=NS,
        ):
            parsed.forms[task.get("id", "")] = prop.get("value", "")
    # A message may come without a name (interchange models do that).
    parsed.messages = sorted({str(n) for n in (parser.messages or {}).values() if n})
    parsed.placeholders = list(getattr(parser, "placeholders", []))
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
    "UnimplementedDataStore",
    "UnspecifiedActivity",
    "XmlRefused",
    "collect_scripts",
    "decision_ref",
    "load_form",
    "parse_definition",
    "parse_interchange",
    "required_forms",
]
