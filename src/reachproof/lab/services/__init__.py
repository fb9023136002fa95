"""The lab's services: one asyncio supervisor listening inside every lab namespace.

spec.py        ServicePlan / Listener / ServiceKind: the contract with the lab builder
__main__.py    `python -m reachproof.lab.services --plan P --state-dir D` (see daemon.py)
control.py     the state directory's files; start_supervisor / stop_supervisor / read_ready
supervisor.py  Supervisor and `serve(plan, netns_enter=True, bind="::")` for in-process use
kinds.py       what each ServiceKind does with a connection
http.py        strict, bounded HTTP/1.x request reading and answers
websocket.py   RFC 6455 handshake, frames and the echo loop
proxy.py       upstream connections from a namespace, forwarding and byte relays
nsock.py       socket_in_netns and friends: sockets inside a namespace, caller never moves
"""
