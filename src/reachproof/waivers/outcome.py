"""What became of each waiver in a run: applied, unused or expired. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from reachproof.verdict import RuleVerdict, Verdict
from reachproof.waivers.model import Waiver, WaiverOutcome, WaiverStatus

_WAIVABLE = (Verdict.FAIL, Verdict.WAIVED)


def outcomes(
    waivers: Sequence[Waiver], rules: Sequence[RuleVerdict], today: date
) -> tuple[WaiverOutcome, ...]:
    """One outcome per waiver, in file order; `matched` counts the failing (or waived) evidence
    items in its scope, so an expired waiver still shows what it would have covered. A waiver
    whose rule this run did not check is not called unused: nothing could have matched it."""
    judged = {rule.rule_id for rule in rules}
    out: list[WaiverOutcome] = []
    for waiver in waivers:
        matched = sum(
            1
            for rule in rules
            for number, hop in enumerate(rule.hops, start=1)
            for e in hop.evidence
            if e.verdict in _WAIVABLE
            and waiver.covers(rule.rule_id, number, hop.label, e.target, e.address, e.kind, e.ports)
        )
        if waiver.expired(today):
            status = WaiverStatus.EXPIRED
        elif waiver.rule not in judged:
            status = WaiverStatus.NOT_CHECKED
        else:
            status = WaiverStatus.APPLIED if matched else WaiverStatus.UNUSED
        out.append(WaiverOutcome(waiver, status, matched))
    return tuple(out)
