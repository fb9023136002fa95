"""The drift between two JSON reports: rules whose verdict changed, and observations whose
state changed, per probe spec and port range.

Worse means a verdict moved up PASS < WARN < INCONCLUSIVE < FAIL, for a rule or for the evidence
of a port run (a port that opened under a deny, a vantage that stopped answering). Any worse
change makes `reachproof diff` exit 1. Rules present in one report only are listed; a new rule
that FAILs counts as worse, a removed one does not. Specs probed in one report only (another
inventory, a `--rule` filter) are counted, not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from reachproof.errors import EXIT_FAIL, EXIT_PASS, InputError
from reachproof.ports import PortSet
from reachproof.report.load import check_report
from reachproof.report.markdown import cell, code
from reachproof.report.terminal import MARKS
from reachproof.report.text import MARK, RANK, short_ports
from reachproof.verdict import Verdict

DIFF_SCHEMA = "reachproof.diff/1"
# Lines per section in the terminal and Markdown renderings; the JSON keeps every change.
TERMINAL_LINES = 40
MARKDOWN_LINES = 15


@dataclass(frozen=True)
class ReportRef:
    policy: str
    inventory: str
    started: str
    exit_code: int
    counts: tuple[tuple[str, int], ...]

    def summary(self) -> str:
        return ", ".join(f"{n} {v}" for v, n in self.counts if n) or "no rules"


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    title: str
    severity: str
    old: Verdict | None  # None: the rule is not in the old report
    new: Verdict | None  # None: the rule is not in the new report
    reason: str  # the new report's reason (the old one's for a removed rule)
    worse: bool


@dataclass(frozen=True)
class StateChange:
    rule_id: str
    spec: str
    source: str
    vantage: str | None
    target: str
    address: str | None
    family: int | None
    kind: str
    ports: str  # the ports whose state changed: the overlap of an old run and a new run
    old_state: str
    new_state: str
    old_verdict: Verdict
    new_verdict: Verdict
    worse: bool

    @property
    def newly_open(self) -> bool:
        return self.new_state == "open" and self.old_state != "open"

    def probe(self) -> str:
        address = self.address or ""
        if address and self.family == 6:
            address = f"[{address}]"
        target = f"{self.target} {address}".rstrip()
        ports = f"{self.kind}/{short_ports(self.ports)}" if self.ports else self.kind
        return f"{self.source} ({self.vantage or 'no vantage'}) → {target} {ports}"


@dataclass(frozen=True)
class ReportDiff:
    old: ReportRef
    new: ReportRef
    rules: tuple[RuleChange, ...]  # worse first
    states: tuple[StateChange, ...]  # newly open first, then worse
    unchanged_rules: int
    added_specs: int
    removed_specs: int

    @property
    def worse(self) -> bool:
        return any(r.worse for r in self.rules) or any(s.worse for s in self.states)

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.worse else EXIT_PASS

    def exit_meaning(self) -> str:
        return "something got worse" if self.worse else "nothing got worse"


@dataclass(frozen=True)
class _Run:
    rule_id: str
    item: Mapping[str, Any]
    verdict: Verdict

    @property
    def ports(self) -> PortSet | None:
        """None for checks and anything else without ports."""
        return _port_set(str(self.item["ports"]))


def diff_reports(old: Mapping[str, Any], new: Mapping[str, Any]) -> ReportDiff:
    check_report(old, "old report")
    check_report(new, "new report")
    old_rules = {r["id"]: r for r in old["rules"]}
    new_rules = {r["id"]: r for r in new["rules"]}
    order = {
        rid: i for i, rid in enumerate([*new_rules, *(k for k in old_rules if k not in new_rules)])
    }

    changes: list[RuleChange] = []
    unchanged = 0
    for rule_id in order:
        before, after = old_rules.get(rule_id), new_rules.get(rule_id)
        was = _verdict(before["verdict"]) if before else None
        now = _verdict(after["verdict"]) if after else None
        if was is now:
            unchanged += 1
            continue
        shown = after or before
        assert shown is not None
        worse = now is not None and (RANK[now] > RANK[was] if was else now is Verdict.FAIL)
        changes.append(
            RuleChange(rule_id, shown["title"], shown["severity"], was, now, shown["reason"], worse)
        )
    changes.sort(key=lambda c: (not c.worse, -RANK[c.new] if c.new else 1, order[c.rule_id]))

    old_runs, new_runs = _runs(old), _runs(new)
    states = [
        change
        for spec in new_runs
        if spec in old_runs
        for change in _spec_changes(spec, old_runs[spec], new_runs[spec])
    ]
    states.sort(
        key=lambda s: (not s.newly_open, not s.worse, order.get(s.rule_id, 0), s.spec, s.ports)
    )
    return ReportDiff(
        old=_ref(old),
        new=_ref(new),
        rules=tuple(changes),
        states=tuple(states),
        unchanged_rules=unchanged,
        added_specs=len(new_runs.keys() - old_runs.keys()),
        removed_specs=len(old_runs.keys() - new_runs.keys()),
    )


def _verdict(text: object) -> Verdict:
    try:
        return Verdict(str(text))
    except ValueError as exc:
        raise InputError(f"malformed report: unknown verdict {text!r}") from exc


def _ref(document: Mapping[str, Any]) -> ReportRef:
    summary = document.get("summary", {})
    return ReportRef(
        policy=str(document.get("policy", {}).get("path", "")),
        inventory=str(document.get("inventory", {}).get("path", "")),
        started=str(document.get("started", "")),
        exit_code=int(summary.get("exit_code", -1)),
        counts=tuple((str(v), int(summary.get(str(v), 0))) for v in Verdict),
    )


def _runs(document: Mapping[str, Any]) -> dict[str, list[_Run]]:
    runs: dict[str, list[_Run]] = {}
    for rule in document["rules"]:
        advisory = bool(rule.get("advisory", False))
        for hop in rule["hops"]:
            for item in hop["evidence"]:
                verdict = _verdict(item.get("verdict", "INCONCLUSIVE"))
                if advisory and verdict is Verdict.FAIL:
                    verdict = Verdict.WARN
                runs.setdefault(item["spec"], []).append(_Run(rule["id"], item, verdict))
    return runs


@lru_cache(maxsize=4096)
def _port_set(text: str) -> PortSet | None:
    if not text:
        return None
    try:
        return PortSet.parse(text)
    except ValueError as exc:
        raise InputError(f"malformed report: ports {text!r}: {exc}") from exc


# States that mean the same to a reader: a port blocked by a drop, a reject or a missing route
# is blocked, and which of them answered can vary run to run (ICMP errors are rate-limited).
_SAME_MEANING = {"filtered": "blocked", "prohibited": "blocked", "unreachable": "blocked"}


def _meaning(state: object) -> str:
    text = str(state)
    return _SAME_MEANING.get(text, text)


def _spec_changes(spec: str, before: list[_Run], after: list[_Run]) -> list[StateChange]:
    out: list[StateChange] = []
    for old in before:
        for new in after:
            if _meaning(old.item["state"]) == _meaning(new.item["state"]) and (
                old.verdict is new.verdict
            ):
                continue
            if old.ports is None or new.ports is None:
                ports = new.item["ports"] if old.ports is None and new.ports is None else ""
            else:
                overlap = old.ports.intersection(new.ports)
                if not overlap:
                    continue
                ports = str(overlap)
            item = new.item
            out.append(
                StateChange(
                    rule_id=new.rule_id,
                    spec=spec,
                    source=str(item["source"]),
                    vantage=item.get("vantage"),
                    target=str(item["target"]),
                    address=item.get("address"),
                    family=item.get("family"),
                    kind=str(item["kind"]),
                    ports=ports,
                    old_state=str(old.item["state"]),
                    new_state=str(item["state"]),
                    old_verdict=old.verdict,
                    new_verdict=new.verdict,
                    worse=RANK[new.verdict] > RANK[old.verdict],
                )
            )
    return out


# --- renderings -------------------------------------------------------------------------------


def _transition(old: Verdict | None, new: Verdict | None) -> str:
    return f"{old or '(absent)'} → {new or '(absent)'}"


def _state_mark(change: StateChange) -> str:
    if change.newly_open:
        return "+"
    return "✗" if change.worse else "·"


def render_diff_terminal(diff: ReportDiff, console: Console) -> None:
    console.print(Text("reachproof diff", style="bold"))
    for label, ref in (("old", diff.old), ("new", diff.new)):
        console.print(
            f"{label}  {escape(ref.started)}  exit {ref.exit_code}  ({escape(ref.summary())})",
            highlight=False,
        )
    console.print()
    console.print(
        Text(f"Rules whose verdict changed: {len(diff.rules)} ({diff.unchanged_rules} unchanged)")
    )
    for rule in diff.rules[:TERMINAL_LINES]:
        mark, style = MARKS[rule.new] if rule.new else ("-", "dim")
        console.print(
            Text.assemble(
                (f" {mark} ", style),
                (f"{rule.rule_id:<4} ", "bold"),
                (f"{_transition(rule.old, rule.new):<28} ", style if rule.worse else "green"),
                rule.title,
                (f"  [{rule.severity}]", "dim"),
            )
        )
    _more(console, len(diff.rules))
    opened = sum(1 for s in diff.states if s.newly_open)
    console.print()
    console.print(
        Text(f"Observations whose state changed: {len(diff.states)} ({opened} newly open)")
    )
    for state in diff.states[:TERMINAL_LINES]:
        style = "bold red" if state.worse else "green"
        console.print(
            Text.assemble(
                (f" {_state_mark(state)} ", style),
                f"{state.probe()}  ",
                (f"{state.old_state} → {state.new_state}", style),
                (f"  ({state.rule_id}: {state.old_verdict} → {state.new_verdict})", "dim"),
            )
        )
    _more(console, len(diff.states))
    if diff.added_specs or diff.removed_specs:
        console.print(
            Text(
                f"Not compared: {diff.added_specs} probe specs only in the new report, "
                f"{diff.removed_specs} only in the old one",
                style="dim",
            )
        )
    console.print()
    console.print(f"exit {diff.exit_code}: {diff.exit_meaning()}", highlight=False)


def _more(console: Console, total: int) -> None:
    if total > TERMINAL_LINES:
        console.print(Text(f"   … {total - TERMINAL_LINES} more (see the JSON diff)", style="dim"))


def render_diff_markdown(diff: ReportDiff) -> str:
    mark = MARK[Verdict.FAIL] if diff.worse else MARK[Verdict.PASS]
    opened = sum(1 for s in diff.states if s.newly_open)
    lines = [
        f"## {mark} reachproof diff: {diff.exit_meaning()} — exit {diff.exit_code}",
        "",
        f"- old: {code(diff.old.started)}, exit {diff.old.exit_code} ({cell(diff.old.summary())})",
        f"- new: {code(diff.new.started)}, exit {diff.new.exit_code} ({cell(diff.new.summary())})",
        f"- {len(diff.rules)} rule verdicts changed, {diff.unchanged_rules} unchanged; "
        f"{len(diff.states)} observations changed state, {opened} newly open",
    ]
    if diff.rules:
        lines += ["", "| | Rule | Verdict | Title | Severity |", "|---|---|---|---|---|"]
        lines.extend(
            f"| {MARK[r.new] if r.new else '-'} | {cell(r.rule_id)} | {_transition(r.old, r.new)}"
            f" | {cell(r.title)} | {cell(r.severity)} |"
            for r in diff.rules[:MARKDOWN_LINES]
        )
        if len(diff.rules) > MARKDOWN_LINES:
            lines.append(f"\n… {len(diff.rules) - MARKDOWN_LINES} more rules")
    if diff.states:
        lines += ["", "| | Probe | State | Rule |", "|---|---|---|---|"]
        lines.extend(
            f"| {_state_mark(s)} | {code(s.probe())} | {s.old_state} → {s.new_state}"
            f" | {cell(s.rule_id)} |"
            for s in diff.states[:MARKDOWN_LINES]
        )
        if len(diff.states) > MARKDOWN_LINES:
            lines.append(f"\n… {len(diff.states) - MARKDOWN_LINES} more in the JSON diff")
    return "\n".join(lines) + "\n"


def diff_to_dict(diff: ReportDiff) -> dict[str, Any]:
    return {
        "schema": DIFF_SCHEMA,
        "worse": diff.worse,
        "exit_code": diff.exit_code,
        "old": _ref_dict(diff.old),
        "new": _ref_dict(diff.new),
        "unchanged_rules": diff.unchanged_rules,
        "added_specs": diff.added_specs,
        "removed_specs": diff.removed_specs,
        "rules": [
            {**asdict(r), "old": r.old and str(r.old), "new": r.new and str(r.new)}
            for r in diff.rules
        ],
        "observations": [
            {
                **asdict(s),
                "old_verdict": str(s.old_verdict),
                "new_verdict": str(s.new_verdict),
                "newly_open": s.newly_open,
            }
            for s in diff.states
        ],
    }


def _ref_dict(ref: ReportRef) -> dict[str, Any]:
    return {
        "policy": ref.policy,
        "inventory": ref.inventory,
        "started": ref.started,
        "exit_code": ref.exit_code,
        "summary": dict(ref.counts),
    }


def render_diff_json(diff: ReportDiff) -> str:
    return json.dumps(diff_to_dict(diff), indent=2, ensure_ascii=False) + "\n"
