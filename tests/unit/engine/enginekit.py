"""Fakes for the engine's unit tests: a scripted worker shipped exactly like the real one,
and a small inventory whose only addresses are loopback."""

from __future__ import annotations

from ipaddress import IPv4Address

from reachproof.inventory.model import Host, Inventory, Transport, Vantage
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet
from reachproof.worker.protocol import VERSION

# A stdlib-only worker that speaks the wire protocol. MODE picks the misbehaviour:
#   ok       answers every probe: OPEN ports open, the rest closed, grouped in runs
#   filtered as ok, but the ports not in OPEN are filtered (2 attempts)
#   silent   never says hello
#   die      says hello, exits with a message on stderr when the first probe arrives
#   hang     says hello, never answers a probe
#   omit     leaves the last requested port out of every result
#   twice    reports the first port twice, with two different states
#   garbage  answers a probe with a line that is not JSON
#   env      answers a check probe with its own environment, one `env` detail per variable
#   slow     sends a progress line every 0.2 s for 3 s before answering
FAKE_WORKER = r"""
import json, os, sys, time

MODE = {mode!r}
OPEN = set({open_ports!r})
RAW = {raw!r}
SHUT = "filtered" if MODE == "filtered" else "closed"

def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()

def runs(ports):
    out = []
    for first, last in ports:
        for port in range(first, last + 1):
            state = "open" if port in OPEN else SHUT
            reason = {{"open": "syn-ack", "closed": "rst", "filtered": "timeout"}}[state]
            if out and out[-1]["state"] == state and out[-1]["ports"][-1][1] == port - 1:
                out[-1]["ports"][-1][1] = port
            else:
                out.append({{"ports": [[port, port]], "state": state, "reason": reason,
                            "attempts": 1 if state != "filtered" else 2, "rtt_ms": 0.1,
                            "ttl": 64}})
    return out

def main():
    if MODE == "silent":
        time.sleep(60)
        return
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "hello":
            send({{"op": "hello", "version": {version}, "pid": os.getpid(), "uid": os.getuid(),
                  "python": sys.version, "raw": RAW, "hostname": "fake"}})
        elif request["op"] == "bye":
            send({{"op": "bye"}})
            return
        elif request["op"] == "probe":
            pid = request["id"]
            if MODE == "die":
                sys.stderr.write("worker exploded\n")
                sys.stderr.flush()
                os._exit(3)
            if MODE == "hang":
                continue
            if MODE == "slow":
                for _step in range(15):
                    send({{"op": "progress", "id": pid, "done": 0, "total": 1}})
                    time.sleep(0.2)
            if MODE == "garbage":
                sys.stdout.write("this is not json\n")
                sys.stdout.flush()
                continue
            if request["kind"] == "check":
                detail = [["ran", request["params"].get("check", "")]]
                if MODE == "env":
                    detail += [["env", k + "=" + v] for k, v in sorted(os.environ.items())]
                send({{"op": "result", "id": pid, "results": [], "detail": detail,
                      "error": None, "degraded": None}})
                continue
            ports = [list(r) for r in request["ports"]]
            if MODE == "omit":
                ports[-1][1] -= 1
                if ports[-1][1] < ports[-1][0]:
                    ports.pop()
            results = runs(ports)
            if MODE == "twice":
                first = request["ports"][0][0]
                results.append({{"ports": [[first, first]], "state": "filtered",
                                "reason": "timeout", "attempts": 2}})
            total = sum(b - a + 1 for a, b in request["ports"])
            send({{"op": "progress", "id": pid, "done": total // 2, "total": total}})
            send({{"op": "result", "id": pid, "results": results, "detail": [],
                  "error": None, "degraded": None, "kind": request["kind"],
                  "pps": request["pps"]}})
"""


def fake_worker(mode: str = "ok", open_ports: tuple[int, ...] = (), raw: bool = False) -> str:
    return FAKE_WORKER.format(mode=mode, open_ports=list(open_ports), raw=raw, version=VERSION)


LOOPBACK = IPv4Address("127.0.0.1")


def local_inventory(*vantages: Vantage) -> Inventory:
    chosen = vantages or (Vantage("here", Transport.LOCAL),)
    return Inventory(
        path="test-inventory.yaml",
        sha256="",
        vantages=chosen,
        hosts=(Host("self", "user", ipv4=(LOOPBACK,), vantage=chosen[0].name),),
    )


def tcp_spec(
    ports: str,
    vantage: str | None = "here",
    address: str = "127.0.0.1",
    spec_id: str | None = None,
    kind: ProbeKind = ProbeKind.TCP,
) -> ProbeSpec:
    return ProbeSpec(
        id=spec_id or f"R1/0/0/{vantage}>{address}:{ports}",
        rule_id="R1",
        statement=0,
        hop=0,
        vantage=vantage,
        source="self",
        target="self",
        address=address,
        family=4,
        kind=kind,
        ports=PortSet.parse(ports),
        expect=Expectation(Action.DENY),
    )


def check_spec(vantage: str = "here", name: str = "cluster-env") -> ProbeSpec:
    return ProbeSpec(
        id=f"R7/0/check/{name}/{vantage}",
        rule_id="R7",
        statement=0,
        hop=0,
        vantage=vantage,
        source="self",
        target="self",
        address=None,
        family=None,
        kind=ProbeKind.CHECK,
        ports=PortSet(),
        expect=Expectation(Action.ALLOW),
        params=(("check", name),),
    )
