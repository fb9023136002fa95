"""A short Markdown summary for a CI job summary or a pull-request comment.

A headline with the verdict counts and what the exit code means, a table of rules, then the
failures with their top evidence, one line per undecided rule, then the waived rules with
their justification and every waiver's status (an expired or unused one is never left out).
Everything else is in the JSON and HTML reports.
"""

from __future__ import annotations

from reachproof.report.model import Report
from reachproof.report.text import (
    MARK,
    effective,
    evidence_line,
    families_lines,
    hop_title,
    hop_waivers,
    relevant,
    waiver_line,
    waiver_terms,
)
from reachproof.verdict import RuleVerdict, Verdict

# Evidence lines per failing hop, and failing hops per rule, before "… more".
EVIDENCE_LINES = 3
HOPS = 3


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def code(text: str) -> str:
    """Inline code that no backtick in the text can close early."""
    return "`" + text.replace("`", "'") + "`"


def headline(report: Report) -> str:
    counts = report.counts()
    mark = MARK[
        Verdict.FAIL
        if counts[Verdict.FAIL]
        else Verdict.INCONCLUSIVE
        if report.exit_code
        else Verdict.PASS
    ]
    parts = " · ".join(f"{n} {v}" for v, n in counts.items() if n) or "no rules"
    return f"{mark} reachproof: {parts} — exit {report.exit_code}: {report.exit_meaning()}"


def render_markdown(report: Report) -> str:
    seconds = (report.finished - report.started).total_seconds()
    lines = [
        f"## {headline(report)}",
        "",
        f"**{cell(report.policy_name)}** · policy {code(report.policy.path)} · "
        f"inventory {code(report.inventory.path)} · {report.probes:,} probes in {seconds:.1f} s",
        "",
        "| | Rule | Title | Severity |",
        "|---|---|---|---|",
    ]
    lines.extend(
        f"| {MARK[r.verdict]} | {cell(r.rule_id)} | {cell(r.title)} | {r.severity} |"
        for r in report.rules
    )
    failed = [r for r in report.rules if r.verdict in (Verdict.FAIL, Verdict.WARN)]
    if failed:
        lines += ["", "### Failures"]
        for rule in failed:
            lines += ["", *_failure(report, rule)]
    undecided = [r for r in report.rules if r.verdict is Verdict.INCONCLUSIVE]
    if undecided:
        lines += ["", "### Inconclusive (not known to hold)", ""]
        lines.extend(
            f"- **{cell(r.rule_id)}** {cell(r.title)}: {cell(r.reason)}" for r in undecided
        )
    lines += _waivers(report)
    lines += ["", "Full evidence: `report.json` and `report.html` beside this summary."]
    return "\n".join(lines) + "\n"


def _failure(report: Report, rule: RuleVerdict) -> list[str]:
    lines = [
        f"**{MARK[rule.verdict]} {cell(rule.rule_id)}** {cell(rule.title)} "
        f"[{rule.severity}] at {code(f'{report.policy.path}:{rule.line}')}"
    ]
    broken = [
        (n, h)
        for n, h in enumerate(rule.hops, start=1)
        if effective(rule, h.verdict) in (Verdict.FAIL, Verdict.WARN)
    ]
    for number, hop in broken[:HOPS]:
        lines.append(f"- {cell(hop_title(number, hop))}: {cell(hop.reason)}")
        lines.extend(f"  - {cell(line)}" for line in families_lines(hop))
        shown = relevant(hop)
        lines.extend(f"  - {code(evidence_line(e))}" for e in shown[:EVIDENCE_LINES])
        if len(shown) > EVIDENCE_LINES:
            lines.append(f"  - … {len(shown) - EVIDENCE_LINES} more")
    if len(broken) > HOPS:
        lines.append(f"- … {len(broken) - HOPS} more failing hops")
    return lines


def _waivers(report: Report) -> list[str]:
    if report.waivers is None:
        return []
    lines: list[str] = []
    waived = [r for r in report.rules if r.verdict is Verdict.WAIVED]
    if waived:
        lines += ["", "### Waived (accepted failures)", ""]
        for rule in waived:
            used = {w.ref: w for hop in rule.hops for w in hop_waivers(report, hop)}
            terms = "; ".join(f"{code(ref)}: {waiver_terms(w)}" for ref, w in used.items())
            lines.append(f"- **{cell(rule.rule_id)}** {cell(rule.title)}: {cell(terms)}")
    lines += ["", f"### Waivers ({code(report.waivers.file.path)})", ""]
    lines.extend(f"- {code(waiver_line(o))}" for o in report.waivers.outcomes)
    if not report.waivers.outcomes:
        lines.append("- the file holds no waivers")
    return lines
