"""Vantage templates: `--agent-vantage 'ssh -T audit@{agent_addr}'` → an argument list per
discovered object (pure).

The template is the operator's own text: it is split once, here, into words (POSIX shell
rules, `shlex`), and only then are `{field}`s substituted inside each word. A value from the
API therefore never becomes more or fewer arguments, and every value is checked first against
a strict pattern (no spaces, quotes, `$`, `;`, no leading `-`), so it means the same to a
remote shell (ssh hands its arguments to one) as it does here. A value that fails its pattern
is a DiscoveryError naming the object, never an argument.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping
from dataclasses import dataclass

from reachproof.errors import DiscoveryError, UsageError

_SAFE = {
    "agent_id": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"),
    "agent_addr": re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+"),
    "session_id": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "kernel_id": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "container_id": re.compile(r"[0-9a-f]{12,64}"),
    "cluster_hostname": re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"),
}
AGENT_FIELDS = ("agent_id", "agent_addr")
CONTAINER_FIELDS = (*AGENT_FIELDS, "session_id", "kernel_id", "container_id", "cluster_hostname")


@dataclass(frozen=True)
class Template:
    option: str
    words: tuple[str, ...]
    fields: tuple[str, ...]  # the fields the template uses

    def render(self, values: Mapping[str, str | None], what: str) -> tuple[str, ...]:
        """The argument list for one object (`what` names it in errors)."""
        for name in self.fields:
            value = values.get(name)
            if value is None or value == "":
                raise DiscoveryError(f"{what}: {self.option} needs {{{name}}}, the API gave none")
            if not _SAFE[name].fullmatch(value):
                raise DiscoveryError(
                    f"{what}: {name} {value!r} is not a safe value for {self.option} "
                    "(refused rather than passed to a command)"
                )
        return tuple(word.format_map(dict(values)) for word in self.words)


def parse_template(option: str, text: str, allowed: tuple[str, ...]) -> Template:
    """Split `text` into words and check that every `{field}` is one of `allowed`."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from exc
    if not words:
        raise UsageError(f"{option}: empty template")
    used: list[str] = []
    for word in words:
        try:
            parsed = list(string.Formatter().parse(word))
        except ValueError as exc:
            raise UsageError(f"{option} {text!r}: {exc} (write {{{{ for a literal brace)") from exc
        for _literal, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in allowed or spec or conversion:
                raise UsageError(
                    f"{option} {text!r}: unknown field {{{name}}} (fields: "
                    + ", ".join(f"{{{f}}}" for f in allowed)
                    + ")"
                )
            if name not in used:
                used.append(name)
    return Template(option, words, tuple(used))
