"""Two-ended UDP probes (DESIGN.md, "Two-ended probes").

UDP silence is `open|filtered` and decides nothing. Where the target host is itself a vantage,
a sensor runs there (worker probe kind `udp-sense`, see worker/sensor.py) while the UDP specs
aimed at it are probed, and reports which of the probes' unique payloads were delivered to the
host — after its input firewall, whether or not anything listens. A silent port whose payload
arrived is `open` (reason `delivered`): nothing on the path or at the host blocked it. A silent
port whose payload never arrived in any attempt is `filtered` (reason `not-delivered`). Ports
that answered (closed, prohibited, …) keep what they said. When a sensor cannot run, its specs
stay `open|filtered` and say why, so the verdict stays INCONCLUSIVE: never a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from reachproof.engine.options import EngineOptions
from reachproof.engine.progress import ProgressSink
from reachproof.engine.vantage import Worker
from reachproof.errors import VantageError
from reachproof.inventory.model import Inventory, Vantage
from reachproof.observation import Observation, PortResult, PortState
from reachproof.plan import ProbeKind, ProbeSpec
from reachproof.ports import PortSet
from reachproof.worker import protocol

Observe = Callable[
    [Sequence[ProbeSpec], Inventory, EngineOptions, ProgressSink | None],
    Awaitable[tuple[Observation, ...]],
]
# A sensor outlives the UDP phase it watches by at most this (the worker's own bound).
MAX_SENSE_SECONDS = 600.0
SETTLE_SECONDS = 0.3  # late datagrams still in flight when the last probe returns


def sensor_vantage(spec: ProbeSpec, inventory: Inventory) -> Vantage | None:
    """The vantage that can watch this UDP spec's target, if any."""
    if spec.kind is not ProbeKind.UDP or spec.vantage is None:
        return None
    host = inventory.host(spec.target)
    if host is None or host.vantage is None or host.vantage == spec.vantage:
        return None
    return inventory.vantage(host.vantage)


class _Sensor:
    def __init__(self, vantage: Vantage) -> None:
        self.vantage = vantage
        self.id = f"sense:{vantage.name}"
        self.worker: Worker | None = None
        self.task: asyncio.Task[dict[str, object]] | None = None
        self.failure: str | None = None

    async def start(self, source: str, options: EngineOptions) -> None:
        ready = asyncio.Event()
        try:
            self.worker = await Worker.start(self.vantage, source, options.start_timeout)
        except VantageError as exc:
            self.failure = str(exc)
            return
        request: dict[str, object] = {
            "id": self.id,
            "kind": protocol.KIND_UDP_SENSE,
            "address": None,
            "family": None,
            "resolve": None,
            "ports": [],
            "timeout": MAX_SENSE_SECONDS,
            "attempts": 1,
            "pps": 0,
            "params": {},
        }
        self.task = asyncio.create_task(
            self.worker.probe(request, MAX_SENSE_SECONDS + 30, lambda _d, _t: ready.set())
        )
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait(
            {waiter, self.task}, timeout=options.start_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if not ready.is_set():
            self.failure = await self._outcome_text("did not start listening")

    async def stop(self) -> set[tuple[str, int]] | None:
        """The (token, port) pairs seen, or None when the sensor failed (see `failure`)."""
        if self.worker is None or self.task is None or self.failure is not None:
            await self.close()
            return None
        try:
            await self.worker.tell({"op": "sense-stop", "id": self.id})
            message = await asyncio.wait_for(self.task, 30)
        except (VantageError, TimeoutError) as exc:
            self.failure = str(exc)
            await self.close()
            return None
        await self.close()
        if message.get("error"):
            self.failure = str(message["error"])
            return None
        seen: set[tuple[str, int]] = set()
        for pair in message.get("detail") or []:  # type: ignore[attr-defined]
            if isinstance(pair, list) and len(pair) == 2 and pair[0] == "seen":
                token, _, port = str(pair[1]).partition(" ")
                if port.isdigit():
                    seen.add((token, int(port)))
        return seen

    async def _outcome_text(self, fallback: str) -> str:
        if self.task is not None and self.task.done():
            exc = self.task.exception()
            if exc is not None:
                return str(exc)
            message = self.task.result()
            return str(message.get("error") or fallback)
        return fallback

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        if self.worker is not None:
            await self.worker.close()


async def observe_confirmed(
    specs: Sequence[ProbeSpec],
    inventory: Inventory,
    options: EngineOptions,
    progress: ProgressSink | None,
    observe: Observe,
    source: str,
) -> tuple[Observation, ...]:
    """Observe `specs`; UDP specs whose target is a vantage are confirmed by a sensor there."""
    watch = {s.id: v for s in specs if (v := sensor_vantage(s, inventory)) is not None}
    if not watch:
        return await observe(specs, inventory, options, progress)
    rest = [s for s in specs if s.id not in watch]
    udp = [s for s in specs if s.id in watch]
    observed = {o.spec_id: o for o in await observe(rest, inventory, options, progress)}
    sensors = {v.name: _Sensor(v) for v in watch.values()}
    try:
        await asyncio.gather(*(s.start(source, options) for s in sensors.values()))
        probed = await observe(udp, inventory, options, progress)
        await asyncio.sleep(SETTLE_SECONDS)
        stopped = await asyncio.gather(*(s.stop() for s in sensors.values()))
    except BaseException:  # cancelled (Ctrl-C): a sensor would listen on for minutes
        await asyncio.gather(*(s.close() for s in sensors.values()), return_exceptions=True)
        raise
    seen = dict(zip(sensors, stopped, strict=True))
    for obs in probed:
        sensor = sensors[watch[obs.spec_id].name]
        observed[obs.spec_id] = confirm(
            obs, seen[sensor.vantage.name], sensor.vantage.name, sensor.failure
        )
    return tuple(observed[s.id] for s in specs if s.id in observed)


def confirm(
    observation: Observation,
    seen: set[tuple[str, int]] | None,
    sensor: str,
    failure: str | None,
) -> Observation:
    """Decide the silent ports of one UDP observation from what the sensor saw (pure)."""
    if observation.error is not None:
        return observation
    if seen is None:
        note = f"UDP delivery unconfirmed: the sensor at {sensor} failed ({failure or 'unknown'})"
        return replace(observation, degraded=observation.degraded or note)
    payloads = observation.details("payload")
    token = payloads[0].split()[-1] if payloads else None
    delivered = PortSet.of(p for t, p in seen if t == token) if token else PortSet()
    results: list[PortResult] = []
    for result in observation.results:
        if result.state is not PortState.OPEN_FILTERED:
            results.append(result)
            continue
        hit = result.ports.intersection(delivered)
        miss = result.ports.difference(delivered)
        if hit:
            results.append(replace(result, ports=hit, state=PortState.OPEN, reason="delivered"))
        if miss:
            results.append(
                replace(result, ports=miss, state=PortState.FILTERED, reason="not-delivered")
            )
    detail = (*observation.detail, ("sensor", sensor))
    return replace(observation, results=tuple(results), detail=detail)
