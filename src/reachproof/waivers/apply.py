"""Waivers meet verdicts: which FAIL evidence items a run's waivers waive, and what became of
each waiver. Pure: `today` is passed in (the day the run finished).

A waiver covers a FAIL only (waivers/model.py says what its scope holds); verdict.py combines
the items as usual, so a hop with a waived failure and an undecided item stays INCONCLUSIVE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from reachproof.verdict import Evidence, RuleVerdict, Verdict
from reachproof.waivers.model import Waiver, WaiverOutcome, WaiverStatus


@dataclass(frozen=True)
class Waiving:
    """The waivers of a run and the day that decides which have expired."""

    waivers: tuple[Waiver, ...]
    today: date

    def waive(self, rule_id: str, number: int, label: str, item: Evidence) -> Evidence:
        """The item as WAIVED by the first unexpired waiver covering it; only a FAIL is waived,
        and a FAIL only an expired waiver covers says so in its note."""
        if item.verdict is not Verdict.FAIL:
            return item
        covering = [
            w
            for w in self.waivers
            if w.covers(rule_id, number, label, item.target, item.address, item.kind, item.ports)
        ]
        valid = [w for w in covering if not w.expired(self.today)]
        if valid:
            return replace(item, verdict=Verdict.WAIVED, waiver=valid[0].ref)
        if covering:
            expired = covering[0]
            note = f"{item.note}; waiver {expired.ref} expired on {expired.expires}"
            return replace(item, note=note)
        return item


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
