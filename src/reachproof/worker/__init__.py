"""The probe worker: stdlib-only code that runs at a vantage point.

It is shipped over a pipe (stdin) to wherever the vantage is — this process's namespace, a lab
namespace, or the far end of `ssh` / `docker exec -i` / `kubectl exec -i` — and runs there with
nothing installed. Every module of this package and of `reachproof.checks` imports only the
standard library and each other, so the bootstrap can ship them as one script.
"""
