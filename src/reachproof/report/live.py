"""Live progress while probes run: one bar per vantage point, on a terminal only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reachproof.engine.progress import ProbeProgress, ProgressSink
from reachproof.plan import Plan


@contextmanager
def vantage_progress(plan: Plan, console: Console) -> Iterator[ProgressSink | None]:
    """Yield a progress sink drawing a bar per vantage, or None when not on a terminal."""
    if not console.is_terminal:
        yield None
        return
    totals: dict[str, int] = {}
    for spec in plan.specs:
        if spec.vantage is not None:
            totals[spec.vantage] = totals.get(spec.vantage, 0) + max(len(spec.ports), 1)
    columns = (
        TextColumn("{task.description:>14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bars:
        tasks = {v: bars.add_task(v, total=t) for v, t in sorted(totals.items())}
        seen: dict[str, int] = {}

        def sink(event: ProbeProgress) -> None:
            task = tasks.get(event.vantage)
            if task is None:
                return
            previous = seen.get(event.spec_id, 0)
            seen[event.spec_id] = event.done
            bars.advance(task, max(event.done - previous, 0))

        yield sink
