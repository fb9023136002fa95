"""The worker's wire protocol: JSON objects, one per line, over the worker's stdin/stdout.

Start-up (the engine's side of the pipe):
    argv  = [*transport_prefix, python, "-u", "-c", BOOTSTRAP]
    stdin ← b"<N>\\n" + N bytes of worker source (UTF-8), then protocol lines
The bootstrap reads the length line and the source, then runs it; the source's `main()` speaks
the protocol below. Nothing is built as a local shell string; where a transport hands the
invocation to a remote shell (ssh), it is shlex-quoted once (engine/vantage.py, worker_argv).

Engine → worker (requests)
    {"op": "hello"}
    {"op": "probe", "id": str, "kind": KIND, "address": str | None, "family": 4 | 6 | None,
     "resolve": str | None,            # resolve this hostname at the vantage and probe that
     "ports": [[first, last], ...],    # ranges; [] for checks
     "timeout": float,                 # seconds to wait for an answer to one attempt
     "attempts": int,                  # at most this many attempts for a silent port (≥ 2)
     "pps": int,                       # packets per second this probe may send (0: no limit)
     "params": {str: str},             # http: path, host; check: check, expect.*
     "scope": [str, ...]}              # the only addresses this probe may send to (v2)
    {"op": "sense-stop", "id": str}    # ends a running udp-sense probe (it then sends its result)
    {"op": "bye"}

Worker → engine (replies; `id` echoes the probe)
    {"op": "hello", "version": 2, "pid": int, "uid": int, "python": str,
     "raw": bool,                      # raw sockets permitted (SYN, ICMP)
     "hostname": str}
    {"op": "progress", "id": str, "done": int, "total": int}     # ports done so far
    {"op": "result", "id": str,
     "results": [{"ports": [[first, last], ...], "state": STATE, "reason": str,
                  "attempts": int, "rtt_ms": float | None, "ttl": int | None}, ...],
     "detail": [[key, value], ...],    # http: status, identity, websocket; check: ran, problem
     "error": str | None,              # the probe could not run at all
     "degraded": str | None}           # e.g. "raw sockets not permitted: connect probes used"
    {"op": "log", "message": str}      # diagnostics, shown with --verbose
    {"op": "bye"}

Results group consecutive ports that ended alike; every requested port appears exactly once.

Scope: the worker sends nothing to an address outside the request's `scope`, whether the
request named it or the vantage's resolver returned it for `resolve`; such a probe's result
has `error` set and no packet left. A missing `scope` allows nothing, so only checks and
udp-sense (which send no probe packets) may omit it. Version 2 added the field; engine and
worker insist on the same version, so an older worker is refused at hello, never trusted.

A `resolve` name with `family` 4 or 6 is resolved in that family and probed at its first
address. With `family` null it is resolved as clients do (getaddrinfo AF_UNSPEC) and its
addresses are tried in the resolver's order, as ssh and curl do: every one is checked against
`scope` before the first packet; a port is `open` once any address opens it, otherwise it
keeps what the first address that answered saw.

More detail keys: `resolved` (each address a `resolve` name gave, in order), `tried` (per
address of a family-null name: how many of the ports still to open it opened) or
`resolve-error` (then every port is `unreachable` / `no-such-host`); tcp-syn: `sent`
(packets, seconds and rate of the send loops), `hop-attribution` (how resets were
attributed; a reset it cannot place is `error` / `attribution-undecided`); udp: `payload`
(the unique payload, for a sensor at the target); http: `location`, `redirect`, `http-error`.
"""

from __future__ import annotations

VERSION = 2

# Probe kinds a worker understands.
KIND_TCP_SYN = "tcp-syn"  # raw SYN, hop attribution by TTL; needs raw sockets
KIND_TCP_CONNECT = "tcp-connect"  # connect(); no privilege needed
KIND_UDP = "udp"
KIND_ICMP = "icmp"  # echo request; one "port" placeholder [[0, 0]]
KIND_HTTP = "http"
KIND_WEBSOCKET = "websocket"
KIND_TLS = "tls"  # a verified handshake per port; params server-name, tls-ca (worker/tls.py)
# In-container checks: params["check"] in cluster-env, training-env, hostnames, listeners,
# addresses.
KIND_CHECK = "check"
# The far end of a two-ended UDP probe: runs until {"op": "sense-stop", "id": …} or `timeout`
# seconds; its first progress line means "listening"; its result has one detail `seen` =
# "<token> <port>" per reachproof datagram delivered to this host (see worker/sensor.py).
KIND_UDP_SENSE = "udp-sense"

KINDS = (
    KIND_TCP_SYN,
    KIND_TCP_CONNECT,
    KIND_UDP,
    KIND_ICMP,
    KIND_HTTP,
    KIND_WEBSOCKET,
    KIND_TLS,
    KIND_CHECK,
    KIND_UDP_SENSE,
)

# Port states, as reachproof.observation.PortState values.
STATES = ("open", "closed", "filtered", "prohibited", "unreachable", "open|filtered", "error")

BOOTSTRAP = (
    "import sys;"
    "n=int(sys.stdin.buffer.readline());"
    "src=sys.stdin.buffer.read(n).decode('utf-8');"
    "ns={'__name__':'reachproof_worker'};"
    "exec(compile(src,'<reachproof-worker>','exec'),ns);"
    "ns['main']()"
)
