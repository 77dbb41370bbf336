"""A small BPMN writer with a grid layout in lanes, used by gen.py to draw the library."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

LANE_IDS = {
    "Sekretariat": "lane_secretariat",
    "Referent": "lane_handler",
    "Dyrektor": "lane_headteacher",
    "Wydział Oświaty": "lane_city_officer",
    "Archiwum": "lane_archivist",
}

POOL_X, POOL_Y = 160, 80
POOL_HEAD = 30
LANE_HEAD = 30
COL0 = POOL_X + POOL_HEAD + LANE_HEAD + 70  # centre of column 0
COL_W = 170
ROW_H = 120
LANE_BASE_H = 150

SIZES = {
    "task": (100, 80),
    "event": (36, 36),
    "gateway": (50, 50),
}


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def esc_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Lane:
    name: str
    rows: int = 1
    extra: int = 0  # extra px at the bottom (for routing bands)
    top: float = 0
    height: float = 0


@dataclass
class Node:
    id: str
    kind: str  # start, end, user, service, xgw, receive, throw, boundary
    name: str
    lane: str
    col: float = 0
    row: int = 0
    props: dict = field(default_factory=dict)
    # geometry
    cx: float = 0
    cy: float = 0
    w: float = 0
    h: float = 0
    incoming: list = field(default_factory=list)
    outgoing: list = field(default_factory=list)

    @property
    def shape(self):
        if self.kind in ("user", "service", "receive", "send", "rule"):
            return "task"
        if self.kind == "xgw":
            return "gateway"
        return "event"

    @property
    def left(self):
        return self.cx - self.w / 2

    @property
    def right(self):
        return self.cx + self.w / 2

    @property
    def top(self):
        return self.cy - self.h / 2

    @property
    def bottom(self):
        return self.cy + self.h / 2


@dataclass
class Flow:
    id: str
    src: str
    tgt: str
    name: str | None = None
    cond: str | None = None
    default: bool = False
    route: dict = field(default_factory=dict)
    points: list = field(default_factory=list)
    label_at: tuple | None = None


class Proc:
    def __init__(self, pid, name, participant, lanes, doc=""):
        self.id = pid
        self.name = name
        self.participant = participant
        self.lanes = [Lane(*l) if isinstance(l, tuple) else Lane(l) for l in lanes]
        self.doc = doc
        self.nodes: dict[str, Node] = {}
        self.flows: list[Flow] = []
        self.messages: dict[str, str] = {}  # name -> id

    # ------------------------------------------------------------------ building
    def node(self, id, kind, name, lane, col=0, row=0, **props):
        assert id not in self.nodes, id
        assert lane in LANE_IDS, lane
        n = Node(id, kind, name, lane, col, row, props)
        self.nodes[id] = n
        return n

    def start(self, id, name, lane, col, row=0, message=None, var=None):
        if message:
            self.message(message)
        return self.node(id, "start", name, lane, col, row, message=message, var=var)

    def end(self, id, name, lane, col, row=0, terminate=False):
        return self.node(id, "end", name, lane, col, row, terminate=terminate)

    def user(self, id, name, lane, col, row=0, form=None, assignee=None, due=None):
        assert form
        return self.node(id, "user", name, lane, col, row, form=form, assignee=assignee, due=due)

    def service(self, id, name, lane, col, op, result, params, row=0):
        return self.node(id, "service", name, lane, col, row, op=op, result=result, params=params)

    def rule(self, id, name, lane, col, decision, row=0):
        return self.node(id, "rule", name, lane, col, row, decision=decision)

    def gw(self, id, name, lane, col, row=0):
        return self.node(id, "xgw", name, lane, col, row)

    def receive(self, id, name, lane, col, message, var, row=0):
        self.message(message)
        return self.node(id, "receive", name, lane, col, row, message=message, var=var)

    def throw(self, id, name, lane, col, message, payload, row=0):
        self.message(message)
        return self.node(id, "throw", name, lane, col, row, message=message, payload=payload)

    def boundary_timer(self, id, name, host, interrupting, date=None, duration=None, dx=70):
        h = self.nodes[host]
        return self.node(
            id,
            "boundary",
            name,
            h.lane,
            h.col,
            h.row,
            host=host,
            interrupting=interrupting,
            date=date,
            duration=duration,
            dx=dx,
        )

    def message(self, name):
        if name not in self.messages:
            self.messages[name] = f"message_{name}"
        return self.messages[name]

    def flow(self, id, src, tgt, name=None, cond=None, default=False, **route):
        f = Flow(id, src, tgt, name, cond, default, route)
        self.flows.append(f)
        self.nodes[src].outgoing.append(id)
        self.nodes[tgt].incoming.append(id)
        return f

    # ------------------------------------------------------------------ layout
    def lane(self, name) -> Lane:
        for l in self.lanes:
            if l.name == name:
                return l
        raise KeyError(name)

    def lane_y(self, name, where, off):
        l = self.lane(name)
        return l.top + off if where == "top" else l.top + l.height + off

    def layout(self):
        y = POOL_Y
        for l in self.lanes:
            l.top = y
            l.height = LANE_BASE_H + (l.rows - 1) * ROW_H + l.extra
            y += l.height
        self.pool_h = y - POOL_Y
        maxcol = max(n.col for n in self.nodes.values())
        self.pool_w = (COL0 - POOL_X) + maxcol * COL_W + 110
        for n in self.nodes.values():
            n.w, n.h = SIZES[n.shape]
            if n.kind == "boundary":
                h = self.nodes[n.props["host"]]
                n.cx = h.left + n.props["dx"]
                n.cy = h.bottom
                continue
            l = self.lane(n.lane)
            n.cx = COL0 + n.col * COL_W
            n.cy = l.top + 75 + n.row * ROW_H
        for f in self.flows:
            f.points = self.route(f)

    def yspec(self, v):
        if isinstance(v, tuple):
            return self.lane_y(*v)
        return v

    def route(self, f: Flow):
        s, t = self.nodes[f.src], self.nodes[f.tgt]
        r = dict(f.route)
        kind = r.get("kind")
        if kind is None:
            if s.kind == "boundary":
                kind = "vh"
            elif abs(s.cy - t.cy) < 0.5:
                kind = "h" if t.cx > s.cx else "hl"
            elif abs(s.cx - t.cx) < 0.5:
                kind = "v"
            else:
                kind = "z"
        if kind == "h":
            return [(s.right, s.cy), (t.left, t.cy)]
        if kind == "hl":
            return [(s.left, s.cy), (t.right, t.cy)]
        if kind == "v":
            if t.cy > s.cy:
                return [(s.cx, s.bottom), (t.cx, t.top)]
            return [(s.cx, s.top), (t.cx, t.bottom)]
        if kind == "z":
            mx = r.get("mx", (s.right + t.left) / 2)
            return [(s.right, s.cy), (mx, s.cy), (mx, t.cy), (t.left, t.cy)]
        if kind == "vh":
            down = t.cy > s.cy
            sy = s.bottom if down else s.top
            return [(s.cx, sy), (s.cx, t.cy), (t.left, t.cy)]
        if kind == "hv":
            dx = r.get("dx", 0)
            ty = t.top if t.cy > s.cy else t.bottom
            return [(s.right, s.cy), (t.cx + dx, s.cy), (t.cx + dx, ty)]
        if kind == "loop":
            y = self.yspec(r["y"])
            so = r.get("out", "top")
            si = r.get("into", "top")
            dxo = r.get("dxo", 0)
            dx = r.get("dx", 0)
            sy = s.top if so == "top" else s.bottom
            ty = t.top if si == "top" else t.bottom
            return [(s.cx + dxo, sy), (s.cx + dxo, y), (t.cx + dx, y), (t.cx + dx, ty)]
        if kind == "loopv":
            # boundary/any node: out bottom, go down to y, right/left to x of target, up/down in
            y = self.yspec(r["y"])
            dx = r.get("dx", 0)
            ty = t.top if y < t.cy else t.bottom
            return [(s.cx, s.bottom), (s.cx, y), (t.cx + dx, y), (t.cx + dx, ty)]
        raise ValueError(kind)

    # ------------------------------------------------------------------ checks
    def check_geometry(self):
        problems = []
        rects = {}
        for n in self.nodes.values():
            rects[n.id] = (n.left, n.top, n.right, n.bottom)
            if n.kind != "boundary":
                l = self.lane(n.lane)
                if not (l.top < n.top and n.bottom < l.top + l.height):
                    problems.append(f"{n.id} outside lane {n.lane}")
                if n.left < POOL_X + POOL_HEAD + LANE_HEAD or n.right > POOL_X + self.pool_w:
                    problems.append(f"{n.id} outside pool horizontally")
        ids = list(rects)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                na, nb = self.nodes[a], self.nodes[b]
                if na.props.get("host") == b or nb.props.get("host") == a:
                    continue
                ra, rb = rects[a], rects[b]
                if (
                    ra[0] < rb[2] + 10
                    and rb[0] < ra[2] + 10
                    and ra[1] < rb[3] + 10
                    and rb[1] < ra[3] + 10
                ):
                    problems.append(f"shapes {a} and {b} overlap/too close")
        for f in self.flows:
            pts = f.points
            for p, q in zip(pts, pts[1:]):
                if not (abs(p[0] - q[0]) < 0.01 or abs(p[1] - q[1]) < 0.01):
                    problems.append(f"{f.id}: diagonal segment {p}->{q}")
                for nid, (x1, y1, x2, y2) in rects.items():
                    if nid in (f.src, f.tgt):
                        continue
                    # boundary attached to src/tgt host: segments touching host border are ok only if not crossing
                    if seg_hits_rect(p, q, (x1 + 2, y1 + 2, x2 - 2, y2 - 2)):
                        problems.append(f"{f.id} crosses {nid}")
            # interior segments must not run through source/target (except endpoints)
            for p, q in list(zip(pts, pts[1:]))[1:-1]:
                for nid in (f.src, f.tgt):
                    x1, y1, x2, y2 = rects[nid]
                    if seg_hits_rect(p, q, (x1 + 2, y1 + 2, x2 - 2, y2 - 2)):
                        problems.append(f"{f.id} middle segment crosses its own end {nid}")
        # crossings between flows
        crossings = []
        segs = [(f.id, p, q) for f in self.flows for p, q in zip(f.points, f.points[1:])]
        for i, (fa, p1, q1) in enumerate(segs):
            for fb, p2, q2 in segs[i + 1 :]:
                if fa == fb:
                    continue
                c = seg_cross(p1, q1, p2, q2)
                if c:
                    crossings.append((fa, fb, c))
        return problems, crossings

    # ------------------------------------------------------------------ XML
    def to_xml(self) -> str:
        self.layout()
        o = []
        w = o.append
        w('<?xml version="1.0" encoding="UTF-8"?>')
        w(
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
            ' xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"'
            ' xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"'
            ' xmlns:di="http://www.omg.org/spec/DD/20100524/DI"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
            ' xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
            f' id="definitions_{self.id}" targetNamespace="https://ezd.example/bpmn"'
            ' exporter="ezd process library" exporterVersion="1.0">'
        )
        for name, mid in self.messages.items():
            w(f'  <bpmn:message id="{mid}" name="{esc(name)}" />')
        w(f'  <bpmn:collaboration id="collaboration_{self.id}">')
        w(
            f'    <bpmn:participant id="participant_{self.id}" name="{esc(self.participant)}" processRef="{self.id}" />'
        )
        w("  </bpmn:collaboration>")
        w(f'  <bpmn:process id="{self.id}" name="{esc(self.name)}" isExecutable="true">')
        if self.doc:
            w(f"    <bpmn:documentation>{esc_text(self.doc)}</bpmn:documentation>")
        w(f'    <bpmn:laneSet id="lane_set_{self.id}">')
        for l in self.lanes:
            w(f'      <bpmn:lane id="{LANE_IDS[l.name]}" name="{esc(l.name)}">')
            for n in self.nodes.values():
                if n.lane == l.name:
                    w(f"        <bpmn:flowNodeRef>{n.id}</bpmn:flowNodeRef>")
            w("      </bpmn:lane>")
        w("    </bpmn:laneSet>")
        flows = {f.id: f for f in self.flows}
        for n in self.nodes.values():
            o.extend(self.node_xml(n, flows))
        for f in self.flows:
            attrs = f'id="{f.id}"'
            if f.name:
                attrs += f' name="{esc(f.name)}"'
            attrs += f' sourceRef="{f.src}" targetRef="{f.tgt}"'
            if f.cond:
                w(f"    <bpmn:sequenceFlow {attrs}>")
                w(
                    f'      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{esc_text(f.cond)}</bpmn:conditionExpression>'
                )
                w("    </bpmn:sequenceFlow>")
            else:
                w(f"    <bpmn:sequenceFlow {attrs} />")
        w("  </bpmn:process>")
        o.extend(self.diagram_xml())
        w("</bpmn:definitions>")
        return "\n".join(o) + "\n"

    def node_xml(self, n: Node, flows):
        o = []
        w = o.append
        p = n.props
        io = [f"      <bpmn:incoming>{i}</bpmn:incoming>" for i in n.incoming] + [
            f"      <bpmn:outgoing>{i}</bpmn:outgoing>" for i in n.outgoing
        ]
        name = f' name="{esc(n.name)}"' if n.name else ""
        if n.kind == "start":
            w(f'    <bpmn:startEvent id="{n.id}"{name}>')
            o.extend(io)
            if p.get("message"):
                mid = self.message(p["message"])
                w(f'      <bpmn:messageEventDefinition id="{n.id}_message" messageRef="{mid}">')
                w("        <bpmn:extensionElements>")
                w(
                    f"          <spiffworkflow:messageVariable>{esc_text(p['var'])}</spiffworkflow:messageVariable>"
                )
                w("        </bpmn:extensionElements>")
                w("      </bpmn:messageEventDefinition>")
            w("    </bpmn:startEvent>")
        elif n.kind == "end":
            w(f'    <bpmn:endEvent id="{n.id}"{name}>')
            o.extend(io)
            if p.get("terminate"):
                w(f'      <bpmn:terminateEventDefinition id="{n.id}_terminate" />')
            w("    </bpmn:endEvent>")
        elif n.kind == "user":
            w(f'    <bpmn:userTask id="{n.id}"{name}>')
            w("      <bpmn:extensionElements>")
            w("        <spiffworkflow:properties>")
            w(
                f'          <spiffworkflow:property name="formJsonSchemaFilename" value="forms/{p["form"]}.schema.json" />'
            )
            if p.get("assignee"):
                w(
                    f'          <spiffworkflow:property name="assigneeVariable" value="{p["assignee"]}" />'
                )
            if p.get("due"):
                w(f'          <spiffworkflow:property name="dueVariable" value="{p["due"]}" />')
            w("        </spiffworkflow:properties>")
            w("      </bpmn:extensionElements>")
            o.extend(io)
            w("    </bpmn:userTask>")
        elif n.kind == "service":
            w(f'    <bpmn:serviceTask id="{n.id}"{name}>')
            w("      <bpmn:extensionElements>")
            w(
                f'        <spiffworkflow:serviceTaskOperator id="{p["op"]}" resultVariable="{p["result"]}">'
            )
            w("          <spiffworkflow:parameters>")
            for pname, ptype, expr in p["params"]:
                w(
                    f'            <spiffworkflow:parameter id="{pname}" type="{ptype}" value="{esc(expr)}" />'
                )
            w("          </spiffworkflow:parameters>")
            w("        </spiffworkflow:serviceTaskOperator>")
            w("      </bpmn:extensionElements>")
            o.extend(io)
            w("    </bpmn:serviceTask>")
        elif n.kind == "rule":
            w(f'    <bpmn:businessRuleTask id="{n.id}"{name}>')
            w("      <bpmn:extensionElements>")
            w(
                f"        <spiffworkflow:calledDecisionId>{p['decision']}</spiffworkflow:calledDecisionId>"
            )
            w("      </bpmn:extensionElements>")
            o.extend(io)
            w("    </bpmn:businessRuleTask>")
        elif n.kind == "xgw":
            default = [f for f in n.outgoing if flows[f].default]
            assert len(default) == 1, (n.id, default)
            w(f'    <bpmn:exclusiveGateway id="{n.id}"{name} default="{default[0]}">')
            o.extend(io)
            w("    </bpmn:exclusiveGateway>")
        elif n.kind == "receive":
            mid = self.message(p["message"])
            w(f'    <bpmn:receiveTask id="{n.id}"{name} messageRef="{mid}">')
            w("      <bpmn:extensionElements>")
            w(
                f"        <spiffworkflow:messageVariable>{esc_text(p['var'])}</spiffworkflow:messageVariable>"
            )
            w("      </bpmn:extensionElements>")
            o.extend(io)
            w("    </bpmn:receiveTask>")
        elif n.kind == "throw":
            mid = self.message(p["message"])
            w(f'    <bpmn:intermediateThrowEvent id="{n.id}"{name}>')
            o.extend(io)
            w(f'      <bpmn:messageEventDefinition id="{n.id}_message" messageRef="{mid}">')
            w("        <bpmn:extensionElements>")
            w(
                f"          <spiffworkflow:messagePayload>{esc_text(p['payload'])}</spiffworkflow:messagePayload>"
            )
            w("        </bpmn:extensionElements>")
            w("      </bpmn:messageEventDefinition>")
            w("    </bpmn:intermediateThrowEvent>")
        elif n.kind == "boundary":
            ca = "true" if p["interrupting"] else "false"
            w(
                f'    <bpmn:boundaryEvent id="{n.id}"{name} cancelActivity="{ca}" attachedToRef="{p["host"]}">'
            )
            o.extend(io)
            w(f'      <bpmn:timerEventDefinition id="{n.id}_timer">')
            if p.get("date"):
                w(
                    f'        <bpmn:timeDate xsi:type="bpmn:tFormalExpression">{esc_text(p["date"])}</bpmn:timeDate>'
                )
            else:
                w(
                    f'        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{esc_text(p["duration"])}</bpmn:timeDuration>'
                )
            w("      </bpmn:timerEventDefinition>")
            w("    </bpmn:boundaryEvent>")
        else:
            raise ValueError(n.kind)
        return o

    def diagram_xml(self):
        o = []
        w = o.append
        w(f'  <bpmndi:BPMNDiagram id="diagram_{self.id}">')
        w(f'    <bpmndi:BPMNPlane id="plane_{self.id}" bpmnElement="collaboration_{self.id}">')
        w(
            f'      <bpmndi:BPMNShape id="participant_{self.id}_di" bpmnElement="participant_{self.id}" isHorizontal="true">'
        )
        w(
            f'        <dc:Bounds x="{POOL_X}" y="{POOL_Y}" width="{fmt(self.pool_w)}" height="{fmt(self.pool_h)}" />'
        )
        w("        <bpmndi:BPMNLabel />")
        w("      </bpmndi:BPMNShape>")
        for l in self.lanes:
            lid = LANE_IDS[l.name]
            w(f'      <bpmndi:BPMNShape id="{lid}_di" bpmnElement="{lid}" isHorizontal="true">')
            w(
                f'        <dc:Bounds x="{POOL_X + POOL_HEAD}" y="{fmt(l.top)}" width="{fmt(self.pool_w - POOL_HEAD)}" height="{fmt(l.height)}" />'
            )
            w("        <bpmndi:BPMNLabel />")
            w("      </bpmndi:BPMNShape>")
        for n in self.nodes.values():
            extra = ' isMarkerVisible="true"' if n.kind == "xgw" else ""
            w(f'      <bpmndi:BPMNShape id="{n.id}_di" bpmnElement="{n.id}"{extra}>')
            w(
                f'        <dc:Bounds x="{fmt(n.left)}" y="{fmt(n.top)}" width="{fmt(n.w)}" height="{fmt(n.h)}" />'
            )
            if n.shape != "task" and n.name:
                lw = min(150, max(50, 6.2 * len(n.name)))
                lines = math.ceil(6.2 * len(n.name) / lw)
                lh = 14 * lines
                lx = n.cx - lw / 2
                ly = n.bottom + 6
                if n.kind == "boundary":
                    lx = n.cx + 20 if n.props["dx"] >= 50 else n.cx - 20 - lw
                    ly = n.bottom + 2
                if n.kind == "xgw":
                    used = set()
                    for f in self.flows:
                        for pt in ((f.points[0],) if f.src == n.id else ()) + (
                            (f.points[-1],) if f.tgt == n.id else ()
                        ):
                            if abs(pt[1] - n.bottom) < 0.5:
                                used.add("bottom")
                            if abs(pt[1] - n.top) < 0.5:
                                used.add("top")
                            if abs(pt[0] - n.right) < 0.5:
                                used.add("right")
                    if "bottom" in used and "top" not in used:
                        ly = n.top - 6 - lh
                    elif "bottom" in used and "right" not in used:
                        lx = n.right + 6
                        ly = n.cy - lh / 2
                    elif "bottom" in used:
                        lx = n.left - lw - 4
                        ly = n.top - lh
                w("        <bpmndi:BPMNLabel>")
                w(
                    f'          <dc:Bounds x="{fmt(lx)}" y="{fmt(ly)}" width="{fmt(lw)}" height="{fmt(lh)}" />'
                )
                w("        </bpmndi:BPMNLabel>")
            w("      </bpmndi:BPMNShape>")
        for f in self.flows:
            w(f'      <bpmndi:BPMNEdge id="{f.id}_di" bpmnElement="{f.id}">')
            for x, y in f.points:
                w(f'        <di:waypoint x="{fmt(x)}" y="{fmt(y)}" />')
            if f.name:
                (x1, y1), (x2, y2) = f.points[0], f.points[1]
                lw = min(120, max(30, 6.2 * len(f.name)))
                lines = math.ceil(6.2 * len(f.name) / lw)
                lh = 14 * lines
                if abs(y1 - y2) < 0.01:  # horizontal first segment: label above it
                    lx = min(x1, x2) + 6
                    ly = y1 - lh - 4
                    turns_up = len(f.points) > 2 and f.points[2][1] < y2
                    if turns_up and abs(x2 - x1) < lw + 12:
                        ly = y1 + 4  # the flow turns up right away: label below the segment
                else:  # vertical first segment: label right of it
                    lx = x1 + 6
                    ly = (
                        (y1 + y2) / 2 - lh / 2
                        if abs(y2 - y1) < 80
                        else (y1 + (8 if y2 > y1 else -8 - lh))
                    )
                if f.label_at:
                    lx, ly = f.label_at
                w("        <bpmndi:BPMNLabel>")
                w(
                    f'          <dc:Bounds x="{fmt(lx)}" y="{fmt(ly)}" width="{fmt(lw)}" height="{fmt(lh)}" />'
                )
                w("        </bpmndi:BPMNLabel>")
            w("      </bpmndi:BPMNEdge>")
        w("    </bpmndi:BPMNPlane>")
        w("  </bpmndi:BPMNDiagram>")
        return o


def fmt(v):
    v = round(v, 1)
    return str(int(v)) if v == int(v) else str(v)


def seg_hits_rect(p, q, r):
    x1, y1, x2, y2 = r
    if x1 >= x2 or y1 >= y2:
        return False
    sx1, sx2 = sorted((p[0], q[0]))
    sy1, sy2 = sorted((p[1], q[1]))
    return sx1 < x2 and sx2 > x1 and sy1 < y2 and sy2 > y1


def seg_cross(p1, q1, p2, q2):
    h1 = abs(p1[1] - q1[1]) < 0.01
    h2 = abs(p2[1] - q2[1]) < 0.01
    if h1 == h2:
        # collinear overlap?
        if h1 and abs(p1[1] - p2[1]) < 0.01:
            a1, a2 = sorted((p1[0], q1[0]))
            b1, b2 = sorted((p2[0], q2[0]))
            if min(a2, b2) - max(a1, b1) > 1:
                return ("overlap", p1[1])
        if not h1 and abs(p1[0] - p2[0]) < 0.01:
            a1, a2 = sorted((p1[1], q1[1]))
            b1, b2 = sorted((p2[1], q2[1]))
            if min(a2, b2) - max(a1, b1) > 1:
                return ("overlap", p1[0])
        return None
    if not h1:
        p1, q1, p2, q2 = p2, q2, p1, q1
    # seg1 horizontal at y, seg2 vertical at x
    y = p1[1]
    x = p2[0]
    xa, xb = sorted((p1[0], q1[0]))
    ya, yb = sorted((p2[1], q2[1]))
    if xa + 0.5 < x < xb - 0.5 and ya + 0.5 < y < yb - 0.5:
        return ("cross", (x, y))
    return None


def schema(title, props, required, description=None, extra=None):
    s = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
    }
    if description:
        s["description"] = description
    s["type"] = "object"
    s["properties"] = props
    s["required"] = required
    s["additionalProperties"] = False
    if extra:
        s.update(extra)
    return s


def dump_json(obj):
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
