"""The documented flows drawn as inline SVG: each statement a row of boxes, each hop an arrow
coloured by its verdict (dashed for a deny), with the hop and what decided it as a tooltip."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from reachproof.report.html_kit import COLOUR, el
from reachproof.report.model import Report
from reachproof.report.text import MARK, effective, relevant
from reachproof.verdict import HopVerdict, RuleVerdict, Verdict


@dataclass(frozen=True)
class _Flow:
    """A statement as a row of the diagram: nodes left to right, one edge per hop between."""

    nodes: tuple[str, ...]
    # label, verdict, full text for the tooltip, what decided a hop that did not pass
    edges: tuple[tuple[str, Verdict, str, str], ...]
    lone: Verdict | None = None  # a check: one node, coloured by its own verdict


BOX_H = 30
ROW_H = 58
ARROW = 200
CHAR_W = 7.3  # 12px monospace
EDGE_CHARS = 25


def arrow_defs() -> ET.Element:
    """Arrow heads, one per verdict colour, shared by every diagram of the page."""
    defs = el("defs")
    for verdict, colour in COLOUR.items():
        defs.append(
            el(
                "marker",
                {
                    "id": f"arrow-{verdict.lower()}",
                    "viewBox": "0 0 10 10",
                    "refX": "9",
                    "refY": "5",
                    "markerUnits": "userSpaceOnUse",
                    "markerWidth": "11",
                    "markerHeight": "11",
                    "orient": "auto-start-reverse",
                },
                el("path", {"d": "M 0 0 L 10 5 L 0 10 z", "fill": colour}),
            )
        )
    return el(
        "svg",
        {"width": "0", "height": "0", "style": "position:absolute", "aria-hidden": "true"},
        defs,
    )


def _parse_hop(rule: RuleVerdict, hop: HopVerdict) -> _Flow:
    """`allow user → webserver:web` → nodes (user, webserver), edge `allow web`."""
    verdict = effective(rule, hop.verdict)
    action, _, rest = hop.label.partition(" ")
    if " → " not in rest:
        return _Flow((hop.label,), (), lone=verdict)
    segments = rest.split(" → ")
    nodes = [segments[0]]
    edges = []
    for segment in segments[1:]:
        node, _, ports = segment.partition(":")
        nodes.append(node)
        text = f"{MARK[verdict]} {action} {ports}".rstrip()
        edges.append((text, verdict, f"{hop.label}: {verdict} — {hop.reason}", _decided(hop)))
    return _Flow(tuple(nodes), tuple(edges))


def _decided(hop: HopVerdict) -> str:
    """`open: agent1 tcp/6001 +1`: the first evidence of a hop that did not pass."""
    if hop.verdict is Verdict.PASS:
        return ""
    shown = relevant(hop)
    if not shown:
        return hop.reason
    first = shown[0]
    probe = f" {first.kind}/{first.ports}" if first.ports and len(first.ports) <= 11 else ""
    more = f" +{len(shown) - 1}" if len(shown) > 1 else ""
    return f"{first.state}: {first.target}{probe}{more}"


def _statement_flows(rule: RuleVerdict) -> list[_Flow]:
    flows: list[_Flow] = []
    statement: int | None = None
    for hop in rule.hops:
        flow = _parse_hop(rule, hop)
        previous = flows[-1] if flows else None
        chained = (
            hop.statement == statement
            and previous is not None
            and previous.lone is None
            and flow.lone is None
            and previous.nodes[-1] == flow.nodes[0]
        )
        if chained and previous is not None:
            flows[-1] = _Flow(previous.nodes + flow.nodes[1:], previous.edges + flow.edges)
        else:
            flows.append(flow)
        statement = hop.statement
    return flows


def _box_width(text: str) -> float:
    return max(90.0, len(text) * CHAR_W + 22)


def _diagram(rule: RuleVerdict) -> ET.Element:
    flows = _statement_flows(rule)
    shapes: list[ET.Element] = []
    width = 0.0
    for row, flow in enumerate(flows):
        y = 10 + row * ROW_H + 18
        x = 6.0
        for index, node in enumerate(flow.nodes):
            w = _box_width(node)
            stroke = COLOUR[flow.lone] if flow.lone is not None else "#57606a"
            label = node if flow.lone is None else f"{MARK[flow.lone]} {node}"
            shapes.append(
                el(
                    "rect",
                    {
                        "x": f"{x:.0f}",
                        "y": f"{y:.0f}",
                        "width": f"{w:.0f}",
                        "height": str(BOX_H),
                        "rx": "6",
                        "fill": "#f6f8fa",
                        "stroke": stroke,
                        "stroke-width": "2" if flow.lone is not None else "1.2",
                    },
                )
            )
            shapes.append(
                el(
                    "text",
                    {
                        "x": f"{x + w / 2:.0f}",
                        "y": f"{y + 19:.0f}",
                        "text-anchor": "middle",
                        "fill": stroke if flow.lone is not None else "#1f2328",
                    },
                    label,
                )
            )
            x += w
            if index < len(flow.edges):
                shapes.append(_edge(x, y + BOX_H / 2, *flow.edges[index]))
                x += ARROW
        width = max(width, x + 6)
    height = 10 + len(flows) * ROW_H
    return el(
        "svg",
        {
            "width": f"{width:.0f}",
            "height": str(height),
            "viewBox": f"0 0 {width:.0f} {height}",
            "font-family": "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace",
            "font-size": "12",
            "role": "img",
            "aria-label": f"{rule.rule_id} flows",
        },
        *shapes,
    )


def _fit(text: str) -> str:
    return text if len(text) <= EDGE_CHARS else text[: EDGE_CHARS - 1] + "…"


def _edge(
    x: float, y: float, text: str, verdict: Verdict, tooltip: str, decided: str
) -> ET.Element:
    colour = COLOUR[verdict]
    dashed = {"stroke-dasharray": "6 4"} if " deny " in f" {text} " else {}
    group = el(
        "g",
        None,
        el("title", None, tooltip),
        el(
            "line",
            {
                "x1": f"{x + 4:.0f}",
                "y1": f"{y:.0f}",
                "x2": f"{x + ARROW - 6:.0f}",
                "y2": f"{y:.0f}",
                "stroke": colour,
                "stroke-width": "3",
                "marker-end": f"url(#arrow-{verdict.lower()})",
                **dashed,
            },
        ),
        el(
            "text",
            {
                "x": f"{x + ARROW / 2:.0f}",
                "y": f"{y - 8:.0f}",
                "text-anchor": "middle",
                "fill": colour,
            },
            _fit(text),
        ),
    )
    if decided:
        group.append(
            el(
                "text",
                {
                    "x": f"{x + ARROW / 2:.0f}",
                    "y": f"{y + 17:.0f}",
                    "text-anchor": "middle",
                    "fill": colour,
                    "font-size": "11",
                },
                _fit(decided),
            )
        )
    return group


def flows(report: Report) -> ET.Element:
    legend = el("p", {"class": "legend"})
    for verdict, meaning in (
        (Verdict.PASS, "as documented"),
        (Verdict.FAIL, "contradicts the documentation"),
        (Verdict.WAIVED, "failure accepted by a waiver"),
        (Verdict.WARN, "advisory rule failed"),
        (Verdict.INCONCLUSIVE, "not decided"),
    ):
        legend.append(
            el("span", {"style": f"color:{COLOUR[verdict]}"}, f"━ {MARK[verdict]} {meaning}")
        )
    legend.append(el("span", None, "dashed: a flow that must be blocked"))
    section = el("section", {"id": "flows"}, el("h2", None, "Documented flows, hop by hop"), legend)
    for rule in report.rules:
        section.append(
            el(
                "div",
                {"class": "flow"},
                el(
                    "h3",
                    None,
                    el(
                        "a",
                        {"href": f"#rule-{rule.rule_id}", "style": f"color:{COLOUR[rule.verdict]}"},
                        f"{MARK[rule.verdict]} {rule.rule_id}",
                    ),
                    f" {rule.title}",
                ),
                el("div", {"class": "scroll"}, _diagram(rule)),
            )
        )
    return section
