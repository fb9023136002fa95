"""The probe engine: run a Plan's specs at their vantage points and return Observations.

    run_plan(plan, inventory, options=None, progress=None) -> tuple[Observation, ...]

Layout: options.py (EngineOptions), scope.py (the scope guard), vantage.py (worker
transports), translate.py (specs ↔ wire protocol ↔ observations), ratelimit.py (pps budgets),
engine.py (the scheduler), nmap.py (the nmap cross-check), scan.py (`reachproof scan`).
"""

from reachproof.engine.engine import run_plan, run_specs
from reachproof.engine.options import EngineOptions, TcpEngine
from reachproof.engine.progress import ProbeProgress, ProgressSink
from reachproof.engine.scope import OutOfScopeError, check_scope

__all__ = [
    "EngineOptions",
    "OutOfScopeError",
    "ProbeProgress",
    "ProgressSink",
    "TcpEngine",
    "check_scope",
    "run_plan",
    "run_specs",
]
