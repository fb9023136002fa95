"""One self-contained HTML file for a security review.

Summary, the documented flows drawn as inline SVG (html_flows.py: each hop green, red, blue,
amber or grey by its verdict), the zone reachability matrix, then every rule with its
citations, hops and evidence in collapsible sections, and the waivers with their status.
No external asset, no script: it opens from a CI artifact or a mail. Built as an element
tree and serialised by xml.etree, which escapes every text and attribute.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from reachproof.report.html_flows import arrow_defs, flows
from reachproof.report.html_kit import COLOUR, el
from reachproof.report.matrix import ZoneMatrix, cell_lines, report_zones, zone_matrix
from reachproof.report.model import Report
from reachproof.report.text import (
    MARK,
    effective,
    hop_title,
    rule_location,
    short_ports,
    waiver_terms,
    where,
    witness_line,
)
from reachproof.verdict import Evidence, HopVerdict, RuleVerdict, Verdict

# Evidence rows per hop; the JSON report keeps every one.
EVIDENCE_ROWS = 200

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:14px 0 6px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:4px 18px 16px;
margin-bottom:18px}
.exit{font-size:16px;font-weight:600;padding:8px 12px;border-radius:6px;display:inline-block;
margin:8px 0;color:#fff}
.counts span{display:inline-block;margin:4px 8px 4px 0;padding:3px 10px;border-radius:12px;
color:#fff;font-weight:600}
.zero{opacity:.35}
table{border-collapse:collapse}
.facts td,.facts th{text-align:left;padding:2px 12px 2px 0;vertical-align:top}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.hash{color:#57606a;word-break:break-all}
.flow{margin:10px 0 14px}.flow h3{margin-bottom:2px}
.scroll{overflow-x:auto}
.flow svg{max-width:100%;height:auto}
.matrix th,.matrix td{border:1px solid #d0d7de;padding:6px 10px;vertical-align:top;
white-space:nowrap}
.matrix td div{font-size:12.5px}
details.rule{border:1px solid #d0d7de;border-left-width:6px;border-radius:6px;margin:8px 0;
padding:6px 12px;background:#fff}
details.rule>summary{cursor:pointer;font-weight:600}
.tag{font-weight:400;color:#57606a}
.hop{margin:10px 0 4px 8px}
.ev th,.ev td{border-bottom:1px solid #eaeef2;padding:2px 8px;text-align:left;
vertical-align:top;font-size:12.5px;white-space:nowrap}
.ev td.note{color:#57606a;white-space:normal;min-width:200px}
.legend span{margin-right:14px}
footer{color:#57606a;font-size:12px;text-align:center;padding:12px}
"""


def render_html(report: Report, matrix: ZoneMatrix | None = None) -> str:
    if matrix is None and (zones := report_zones(report)) is not None:
        matrix = zone_matrix(report, zones)
    counts = report.counts()
    title = f"reachproof — {report.policy_name} — exit {report.exit_code}"
    head = el(
        "head",
        None,
        el("meta", {"charset": "utf-8"}),
        el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
        el("title", None, title),
        el("style", None, CSS),
    )
    exit_colour = COLOUR[
        Verdict.FAIL
        if counts[Verdict.FAIL]
        else Verdict.INCONCLUSIVE
        if report.exit_code
        else Verdict.PASS
    ]
    body = el(
        "body",
        None,
        arrow_defs(),
        el(
            "main",
            None,
            el("h1", None, f"reachproof: {report.policy_name}"),
            el(
                "div",
                {"class": "exit", "style": f"background:{exit_colour}"},
                f"exit {report.exit_code}: {report.exit_meaning()}",
            ),
            _summary(report),
            flows(report),
            _matrix(matrix),
            _rules(report),
            *_waivers(report),
        ),
        el("footer", None, f"reachproof {report.tool_version} · {report.finished.isoformat()}"),
    )
    root = el("html", {"lang": "en"}, head, body)
    return "<!DOCTYPE html>\n" + ET.tostring(root, encoding="unicode", method="html") + "\n"


def _summary(report: Report) -> ET.Element:
    counts = report.counts()
    badges = el("div", {"class": "counts"})
    for verdict, n in counts.items():
        badges.append(
            el(
                "span",
                {"style": f"background:{COLOUR[verdict]}", "class": "" if n else "zero"},
                f"{MARK[verdict]} {n} {verdict}",
            )
        )
    seconds = (report.finished - report.started).total_seconds()
    facts = el("table", {"class": "facts"})
    for label, value, digest in (
        ("policy", report.policy.path, report.policy.sha256),
        ("inventory", report.inventory.path, report.inventory.sha256),
        *(
            [("waivers", report.waivers.file.path, report.waivers.file.sha256)]
            if report.waivers is not None
            else []
        ),
    ):
        facts.append(
            el(
                "tr",
                None,
                el("th", None, label),
                el(
                    "td",
                    None,
                    el("code", None, value),
                    el("br"),
                    el("span", {"class": "hash mono"}, f"sha256 {digest or '(unreadable)'}"),
                ),
            )
        )
    for label, text in (
        ("started", report.started.isoformat()),
        ("finished", f"{report.finished.isoformat()} ({seconds:.1f} s)"),
        ("rules", f"{len(report.rules)} rules, {report.probes:,} probes"),
        ("tool", f"reachproof {report.tool_version}"),
    ):
        facts.append(el("tr", None, el("th", None, label), el("td", None, text)))
    legend = el(
        "p",
        None,
        "Exit codes: 0 every rule holds · 1 at least one rule FAILED · 2 invalid input · "
        "3 no rule failed but something could not be decided (treat as not proven).",
    )
    return el("section", {"id": "summary"}, el("h2", None, "Summary"), badges, facts, legend)


# --- matrix and rules -------------------------------------------------------------------------


def _matrix(matrix: ZoneMatrix | None) -> ET.Element:
    section = el("section", {"id": "matrix"}, el("h2", None, "Zone reachability"))
    if matrix is None or not matrix.zones:
        section.append(el("p", None, "No zone matrix: the report was rendered without zones."))
        return section
    section.append(
        el(
            "p",
            None,
            "Rows: from, columns: to. Ports counted per probe result; a cell is red when a rule "
            "failed on that pair, grey when something there could not be decided.",
        )
    )
    table = el("table", {"class": "matrix"})
    table.append(
        el("tr", None, el("th", None, "from \\ to"), *(el("th", None, z) for z in matrix.zones))
    )
    for source in matrix.zones:
        row = el("tr", None, el("th", None, source))
        for target in matrix.zones:
            cell = matrix.cell(source, target)
            if cell is None:
                row.append(el("td", {"style": "color:#8c959f"}, "—"))
                continue
            colour = COLOUR[cell.verdict]
            lines = [f"{MARK[cell.verdict]} {cell.verdict}", *cell_lines(cell)]
            row.append(
                el(
                    "td",
                    {
                        "style": f"border-left:5px solid {colour}",
                        "title": "rules: " + ", ".join(cell.rules),
                    },
                    *(
                        el("div", {"style": f"color:{colour}"} if i == 0 else None, line)
                        for i, line in enumerate(lines)
                    ),
                )
            )
        table.append(row)
    section.append(el("div", {"class": "scroll"}, table))
    return section


def _rules(report: Report) -> ET.Element:
    section = el("section", {"id": "rules"}, el("h2", None, "Rules and evidence"))
    for rule in report.rules:
        section.append(_rule(report, rule))
    return section


def _waivers(report: Report) -> list[ET.Element]:
    """Every waiver with its status: an expired or unused one stays in sight."""
    if report.waivers is None:
        return []
    table = el("table", {"class": "facts"})
    for outcome in report.waivers.outcomes:
        waiver = outcome.waiver
        table.append(
            el(
                "tr",
                None,
                el("th", None, str(outcome.status)),
                el("td", None, el("code", None, waiver.ref), f"  {waiver.scope()}"),
                el("td", None, waiver_terms(waiver)),
                el("td", None, f"{outcome.matched} failing item(s) in scope"),
            )
        )
    heading = el("h2", None, f"Waivers ({report.waivers.file.path})")
    return [el("section", {"id": "waivers"}, heading, table)]


def _rule(report: Report, rule: RuleVerdict) -> ET.Element:
    colour = COLOUR[rule.verdict]
    attrs = {"class": "rule", "id": f"rule-{rule.rule_id}", "style": f"border-left-color:{colour}"}
    if rule.verdict is not Verdict.PASS:
        attrs["open"] = "open"
    details = el(
        "details",
        attrs,
        el(
            "summary",
            None,
            el("span", {"style": f"color:{colour}"}, f"{MARK[rule.verdict]} {rule.verdict}"),
            f"  {rule.rule_id}  {rule.title} ",
            el(
                "span",
                {"class": "tag"},
                f"[{rule.severity}{', advisory' if rule.advisory else ''}]",
            ),
        ),
        el(
            "p",
            None,
            "at ",
            el("code", None, rule_location(report, rule)),
            f" — {rule.reason}",
        ),
    )
    if rule.sources:
        details.append(el("ul", None, *(el("li", None, s) for s in rule.sources)))
    for number, hop in enumerate(rule.hops, start=1):
        details.append(_hop(rule, number, hop))
    return details


def _hop(rule: RuleVerdict, number: int, hop: HopVerdict) -> ET.Element:
    verdict = effective(rule, hop.verdict)
    block = el(
        "div",
        {"class": "hop"},
        el(
            "h3",
            None,
            el("span", {"style": f"color:{COLOUR[verdict]}"}, f"{MARK[verdict]} {verdict}"),
            f" {hop_title(number, hop)} ",
            el("span", {"class": "tag"}, f"({hop.probes:,} probes) — {hop.reason}"),
        ),
    )
    if hop.families:
        block.append(el("p", {"class": "tag"}, "address families judged:"))
        block.append(el("ul", None, *(el("li", None, f.text()) for f in hop.families)))
    if hop.witnesses:
        # Deny hops: what showed each target address alive, the failures to show it first.
        shown = sorted(hop.witnesses, key=lambda w: w.alive)
        items = [el("li", {"class": "mono"}, witness_line(w)) for w in shown[:EVIDENCE_ROWS]]
        if len(shown) > EVIDENCE_ROWS:
            items.append(el("li", None, f"… {len(shown) - EVIDENCE_ROWS} more in report.json"))
        block.append(el("p", {"class": "tag"}, "liveness witnesses:"))
        block.append(el("ul", None, *items))
    if not hop.evidence:
        return block
    # What decided the hop first, then the rest.
    ordered = sorted(hop.evidence, key=lambda e: e.verdict is not hop.verdict)
    table = el(
        "table",
        {"class": "ev"},
        el(
            "tr",
            None,
            *(
                el("th", None, h)
                for h in ("", "from (vantage)", "to", "probe", "seen", "attempts", "note")
            ),
        ),
    )
    for item in ordered[:EVIDENCE_ROWS]:
        table.append(_evidence_row(rule, item))
    block.append(el("div", {"class": "scroll"}, table))
    if len(ordered) > EVIDENCE_ROWS:
        block.append(el("p", None, f"… {len(ordered) - EVIDENCE_ROWS} more rows in report.json"))
    return block


def _evidence_row(rule: RuleVerdict, item: Evidence) -> ET.Element:
    verdict = effective(rule, item.verdict)
    probe = f"{item.kind}/{short_ports(item.ports)}" if item.ports else item.kind
    seen = ", ".join(
        _present(
            item.state,
            item.reason,
            f"{item.rtt_ms:.1f} ms" if item.rtt_ms is not None else "",
            f"ttl {item.ttl}" if item.ttl is not None else "",
        )
    )
    return el(
        "tr",
        None,
        el("td", {"style": f"color:{COLOUR[verdict]}"}, MARK[verdict]),
        el("td", None, f"{item.source} ({item.vantage or 'no vantage'})"),
        el("td", {"class": "mono"}, where(item)),
        el("td", {"class": "mono"}, probe),
        el("td", None, seen),
        el("td", None, str(item.attempts)),
        el(
            "td",
            {"class": "note"},
            item.note + (f" [waived by {item.waiver}]" if item.waiver else ""),
        ),
    )


def _present(*parts: str) -> Iterable[str]:
    return (p for p in parts if p)
