"""Small BPMN models written for the engine tests (the shipped library lives in bpmn/)."""

from __future__ import annotations

from typing import Any

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="defs" targetNamespace="http://ezd.test">\n'
)


def review_model(
    key: str = "test_review",
    *,
    condition: str = 'decision == "approve"',
    script: str | None = None,
    timer: str | None = None,
    operator: str = "close_case",
) -> str:
    """Dyrektor assigns → Referent handles (assigned person, due = deadline) → Dyrektor decides;
    "return" loops back. Optional script task after the decision and a boundary timer on the
    handling task that escalates to the head."""
    script_el = (
        f'<bpmn:scriptTask id="calc" name="Obliczenia"><bpmn:incoming>f5</bpmn:incoming>'
        f"<bpmn:outgoing>f5b</bpmn:outgoing><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>"
        if script is not None
        else ""
    )
    after_gw = "calc" if script is not None else "close"
    timer_el = (
        '<bpmn:boundaryEvent id="overdue" attachedToRef="handle" cancelActivity="false">'
        "<bpmn:outgoing>f7</bpmn:outgoing><bpmn:timerEventDefinition>"
        f"<bpmn:timeDate>{timer}</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        '<bpmn:userTask id="escalate" name="Przekroczony termin"><bpmn:incoming>f7</bpmn:incoming>'
        "<bpmn:outgoing>f8</bpmn:outgoing></bpmn:userTask>"
        '<bpmn:endEvent id="end2"><bpmn:incoming>f8</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f7" sourceRef="overdue" targetRef="escalate"/>'
        '<bpmn:sequenceFlow id="f8" sourceRef="escalate" targetRef="end2"/>'
        if timer is not None
        else ""
    )
    head_nodes = "start assign approve gw deadline" + (" overdue escalate end2" if timer else "")
    return (
        HEAD
        + f'<bpmn:collaboration id="collab"><bpmn:participant id="p" processRef="{key}"/></bpmn:collaboration>'
        f'<bpmn:process id="{key}" name="Test: rozpatrzenie" isExecutable="true">'
        '<bpmn:laneSet id="lanes">'
        '<bpmn:lane id="lane_head" name="Dyrektor">'
        + "".join(f"<bpmn:flowNodeRef>{n}</bpmn:flowNodeRef>" for n in head_nodes.split())
        + '</bpmn:lane><bpmn:lane id="lane_handler" name="Referent">'
        + "".join(
            f"<bpmn:flowNodeRef>{n}</bpmn:flowNodeRef>"
            for n in ["handle", "close", "end"] + (["calc"] if script is not None else [])
        )
        + "</bpmn:lane></bpmn:laneSet>"
        '<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:serviceTask id="deadline" name="Termin"><bpmn:extensionElements>'
        '<spiffworkflow:serviceTaskOperator id="compute_deadline" resultVariable="deadline">'
        '<spiffworkflow:parameters><spiffworkflow:parameter id="kind" type="str" value="&quot;kpa_35_1m&quot;"/>'
        "</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator></bpmn:extensionElements>"
        "<bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:serviceTask>"
        '<bpmn:userTask id="assign" name="Dekretacja"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="formJsonSchemaFilename" value="forms/assign.schema.json"/>'
        "</spiffworkflow:properties></bpmn:extensionElements>"
        "<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>"
        '<bpmn:userTask id="handle" name="Rozpatrzenie sprawy"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="formJsonSchemaFilename" value="forms/handle.schema.json"/>'
        '<spiffworkflow:property name="assigneeVariable" value="handler"/>'
        '<spiffworkflow:property name="dueVariable" value="deadline"/>'
        "</spiffworkflow:properties></bpmn:extensionElements>"
        "<bpmn:incoming>f2</bpmn:incoming><bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>"
        + timer_el
        + '<bpmn:userTask id="approve" name="Akceptacja"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="formJsonSchemaFilename" value="forms/approve.schema.json"/>'
        "</spiffworkflow:properties></bpmn:extensionElements>"
        "<bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f3b</bpmn:outgoing></bpmn:userTask>"
        '<bpmn:exclusiveGateway id="gw" default="f4"><bpmn:incoming>f3b</bpmn:incoming>'
        "<bpmn:outgoing>f4</bpmn:outgoing><bpmn:outgoing>f5</bpmn:outgoing></bpmn:exclusiveGateway>"
        + script_el
        + f'<bpmn:serviceTask id="close" name="Zakończenie"><bpmn:extensionElements>'
        f'<spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="closed">'
        '<spiffworkflow:parameters><spiffworkflow:parameter id="reason" type="str" value="&quot;załatwiona&quot;"/>'
        "</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator></bpmn:extensionElements>"
        f"<bpmn:incoming>{'f5b' if script is not None else 'f5'}</bpmn:incoming><bpmn:outgoing>f6</bpmn:outgoing></bpmn:serviceTask>"
        '<bpmn:endEvent id="end"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="deadline"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="deadline" targetRef="assign"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="assign" targetRef="handle"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="handle" targetRef="approve"/>'
        '<bpmn:sequenceFlow id="f3b" sourceRef="approve" targetRef="gw"/>'
        '<bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="handle"/>'
        f'<bpmn:sequenceFlow id="f5" sourceRef="gw" targetRef="{after_gw}">'
        f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>"
        + (
            '<bpmn:sequenceFlow id="f5b" sourceRef="calc" targetRef="close"/>'
            if script is not None
            else ""
        )
        + '<bpmn:sequenceFlow id="f6" sourceRef="close" targetRef="end"/>'
        "</bpmn:process></bpmn:definitions>"
    )


FORMS: dict[str, Any] = {
    "forms/assign.schema.json": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Dekretacja",
        "properties": {
            "handler": {"type": "string", "title": "Prowadzący", "maxLength": 80},
            "instruction": {"type": "string", "title": "Polecenie", "maxLength": 2000},
        },
        "required": ["handler"],
        "additionalProperties": False,
    },
    "forms/handle.schema.json": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Rozpatrzenie",
        "properties": {"reply_summary": {"type": "string", "maxLength": 5000}},
        "required": ["reply_summary"],
        "additionalProperties": False,
    },
    "forms/approve.schema.json": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Akceptacja",
        "properties": {
            "decision": {"type": "string", "enum": ["approve", "return"]},
            "comment": {"type": "string", "maxLength": 2000},
        },
        "required": ["decision"],
        "additionalProperties": False,
    },
}
