"""The terminal report for security reviews: one line per documented rule, chains hop by hop,
the evidence of every failure and of everything undecided, then a summary."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from reachproof.report.model import Report, WaiverReport
from reachproof.report.text import (
    evidence_facts,
    families_lines,
    narrowed,
    short_ports,
    waived_items,
    waiver_line,
    where,
    witness_line,
)
from reachproof.verdict import Evidence, HopVerdict, RuleVerdict, Verdict
from reachproof.waivers.model import WaiverStatus

MARKS = {
    Verdict.PASS: ("✓", "green"),
    Verdict.FAIL: ("✗", "bold red"),
    Verdict.WAIVED: ("~", "cyan"),
    Verdict.WARN: ("!", "yellow"),
    Verdict.INCONCLUSIVE: ("?", "magenta"),
}
# Evidence lines shown per hop before summarising the rest; the JSON report keeps them all.
EVIDENCE_LINES = 8


def render_terminal(report: Report, console: Console) -> None:
    console.print(
        Text.assemble(
            ("reachproof ", "bold"),
            report.tool_version,
            " — ",
            (report.policy_name, "bold"),
        )
    )
    console.print(f"policy    {escape(report.policy.path)}", highlight=False)
    console.print(f"inventory {escape(report.inventory.path)}", highlight=False)
    if report.waivers is not None:
        console.print(f"waivers   {escape(report.waivers.file.path)}", highlight=False)
    console.print()
    width = max((len(r.rule_id) for r in report.rules), default=2)
    for rule in report.rules:
        _rule(console, rule, width)
    console.print()
    if report.waivers is not None:
        _waivers(console, report.waivers)
    _summary(console, report)


def _waivers(console: Console, waivers: WaiverReport) -> None:
    outcomes = waivers.outcomes
    console.print(Text(f"waivers: {len(outcomes)} in {waivers.file.path}", style="bold"))
    styles = {
        WaiverStatus.APPLIED: "cyan",
        WaiverStatus.UNUSED: "yellow",
        WaiverStatus.EXPIRED: "bold yellow",
        WaiverStatus.NOT_CHECKED: "dim",
    }
    for outcome in outcomes:
        console.print(Text(f"   {waiver_line(outcome)}", style=styles[outcome.status]))
    console.print()


def _rule(console: Console, rule: RuleVerdict, width: int) -> None:
    mark, style = MARKS[rule.verdict]
    line = Text.assemble(
        (f" {mark} ", style),
        (f"{rule.verdict:<12} ", style),
        (f"{rule.rule_id:<{width}}  ", "bold"),
        rule.title,
        (f"  [{rule.severity}]", "dim"),
    )
    console.print(line)
    for hop in rule.hops:
        _hop(console, hop, show_evidence=rule.verdict is not Verdict.PASS)


def _hop(console: Console, hop: HopVerdict, show_evidence: bool) -> None:
    mark, style = MARKS[hop.verdict]
    console.print(
        Text.assemble(
            "      ",
            (f"{mark} ", style),
            hop.label,
            (f"  ({hop.probes} probe{'s' if hop.probes != 1 else ''})", "dim"),
        )
    )
    if narrowed(hop) or (show_evidence and hop.verdict is not Verdict.PASS):
        for line in families_lines(hop):
            console.print(Text(f"          {line}", style="dim"))
    if not show_evidence or hop.verdict is Verdict.PASS:
        return
    relevant = [e for e in hop.evidence if e.verdict is hop.verdict]
    if not relevant:  # the evidence passed: a target not shown alive made the hop undecided
        console.print(Text(f"          {hop.reason}", style=style))
    for item in relevant[:EVIDENCE_LINES]:
        console.print(_evidence_line(item))
    if len(relevant) > EVIDENCE_LINES:
        console.print(
            Text(
                f"          … {len(relevant) - EVIDENCE_LINES} more (see the JSON report)",
                style="dim",
            )
        )
    for item in waived_items(hop)[:EVIDENCE_LINES]:
        console.print(_evidence_line(item))
    if hop.verdict is Verdict.INCONCLUSIVE:
        for witness in [w for w in hop.witnesses if not w.alive][:EVIDENCE_LINES]:
            console.print(Text(f"          ? {witness_line(witness)}", style=style))


def _evidence_line(item: Evidence) -> Text:
    mark, style = MARKS[item.verdict]
    ports = f" {item.kind}/{short_ports(item.ports)}" if item.ports else f" {item.kind}"
    vantage = item.vantage or "no vantage"
    return Text.assemble(
        "          ",
        (f"{mark} ", style),
        f"{item.source} ({vantage}) → {where(item)}{ports}  ",
        (", ".join(evidence_facts(item)), style),
        (f" — {item.note}", "dim"),
        (f" [waived by {item.waiver}]" if item.waiver else "", MARKS[Verdict.WAIVED][1]),
    )


def _summary(console: Console, report: Report) -> None:
    counts = report.counts()
    parts = [Text(f"{counts[v]} {v}", style=MARKS[v][1] if counts[v] else "dim") for v in Verdict]
    line = Text(f"{len(report.rules)} rules, {report.probes} probes: ")
    line.append_text(Text(", ").join(parts))
    console.print(line)
    console.print(f"exit {report.exit_code}: {report.exit_meaning()}", highlight=False)
