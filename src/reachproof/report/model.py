"""The report: rule verdicts with evidence, and the one place the exit code is decided."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reachproof import __version__
from reachproof.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from reachproof.evidence import Capture
from reachproof.observation import Observation
from reachproof.verdict import RuleVerdict, Verdict
from reachproof.waivers.model import WaiverOutcome, WaiverStatus

SCHEMA = "reachproof.report/2"
# Reports `diff` still reads: /2 only added WAIVED and the waivers section to /1.
READABLE_SCHEMAS = ("reachproof.report/1", SCHEMA)


@dataclass(frozen=True)
class InputFile:
    path: str
    sha256: str

    @classmethod
    def of(cls, path: str) -> InputFile:
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            digest = ""
        return cls(path, digest)


@dataclass(frozen=True)
class WaiverReport:
    """The waiver file of a run (`check --waivers`) and what became of each waiver."""

    file: InputFile
    outcomes: tuple[WaiverOutcome, ...]

    def with_status(self, status: WaiverStatus) -> list[WaiverOutcome]:
        return [o for o in self.outcomes if o.status is status]


@dataclass(frozen=True)
class DiscoveryRecord:
    """`check --discover`: where the inventory came from, and the inventory itself."""

    source: str  # "backend-ai"
    endpoint: str
    manager_version: str
    api_version: str
    at: datetime
    sha256: str  # of `inventory`, the text judged on (= the report's inventory sha256)
    inventory: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    policy_name: str
    policy: InputFile
    inventory: InputFile
    started: datetime
    finished: datetime
    rules: tuple[RuleVerdict, ...]
    observations: tuple[Observation, ...] = ()
    tool_version: str = __version__
    evidence: tuple[Capture, ...] = ()  # packet captures of `check --evidence`
    # host name → zone, in the policy's zone order: what the zone reachability matrix needs
    zone_order: tuple[str, ...] = ()
    host_zones: tuple[tuple[str, str], ...] = ()
    waivers: WaiverReport | None = None
    discovery: DiscoveryRecord | None = None

    def counts(self) -> dict[Verdict, int]:
        counter = Counter(r.verdict for r in self.rules)
        return {v: counter.get(v, 0) for v in Verdict}

    @property
    def probes(self) -> int:
        return sum(h.probes for r in self.rules for h in r.hops)

    @property
    def exit_code(self) -> int:
        """0 all rules pass (WARN and WAIVED included), 1 any FAIL, 3 no FAIL but something
        INCONCLUSIVE. An expired or unused waiver changes no exit code: the report lists it.

        An empty report decides nothing and is INCONCLUSIVE, never a pass.
        """
        counts = self.counts()
        if counts[Verdict.FAIL]:
            return EXIT_FAIL
        if counts[Verdict.INCONCLUSIVE] or not self.rules:
            return EXIT_INCONCLUSIVE
        return EXIT_PASS

    def exit_meaning(self) -> str:
        return {
            EXIT_PASS: "every rule holds"
            + (" or is waived" if self.counts()[Verdict.WAIVED] else ""),
            EXIT_FAIL: "at least one rule FAILED",
            EXIT_INCONCLUSIVE: "no rule failed, but something could not be decided",
        }[self.exit_code]
