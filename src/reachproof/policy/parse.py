"""Policy text → AST, with every problem reported at its line and column.

Parsing is two passes, as in lark's `create_ast` example: the LALR grammar (`grammar.lark`)
gives a parse tree with positions, `_Builder` turns it into the frozen AST of `ast.py`, and
`check.check_policy` checks meaning (references, ranges, scopes); `syntax_errors` puts lark's
errors into words. A syntax error stops at the first problem; meaning errors are all reported
together, so a user fixes a file in one round. Whatever the text, the only exception that
leaves `parse_policy` is PolicyError.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from reachproof.errors import NOWHERE, Diagnostic, PolicyError, Pos, read_text
from reachproof.policy import check
from reachproof.policy.ast import (
    Action,
    CheckStmt,
    EgressDef,
    Endpoint,
    ExpectKind,
    ExpectStmt,
    FlowStmt,
    Name,
    Policy,
    PortItem,
    PortSpec,
    Rule,
    Scope,
    ScopeKind,
    ServiceDef,
    ServiceRef,
    SessionMode,
    Severity,
    Statement,
    ZoneDef,
)
from reachproof.policy.syntax_errors import syntax_diagnostic
from reachproof.ports import Protocol

__all__ = ["load_policy", "parse_policy"]

_GRAMMAR = Path(__file__).with_name("grammar.lark")


@cache
def _parser() -> Lark:
    """The LALR parser, built once per process (building it costs more than parsing a policy)."""
    return Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
    )


def parse_policy(text: str, path: str = "<policy>") -> Policy:
    """Parse and check a policy; raise PolicyError with every problem found."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        diagnostic = syntax_diagnostic(exc, text, path, _parser())
        raise PolicyError([diagnostic], source=text) from exc
    builder = _Builder(path)
    policy = builder.policy(tree, text)
    problems = builder.diagnostics + check.check_policy(policy)
    if problems:
        raise PolicyError(problems, source=text)
    return policy


def load_policy(path: Path) -> Policy:
    return parse_policy(read_text(path, "policy"), str(path))


# --- parse tree → AST -------------------------------------------------------------------------

# Numbers beyond this many digits are out of every valid range; capping them keeps `int()`
# below Python's limit on converting huge decimal strings while still failing range checks.
_MAX_DIGITS = 4000
_ESCAPE = re.compile(r"\\([\"\\])")


def _pos(tok: Token) -> Pos:
    if tok.line is None or tok.column is None:
        return NOWHERE
    return Pos(tok.line, tok.column)


def _tree_pos(tree: Tree[Token]) -> Pos:
    if tree.meta.empty:
        return NOWHERE
    return Pos(tree.meta.line, tree.meta.column)


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def _string(tok: Token) -> str:
    return _ESCAPE.sub(r"\1", str(tok)[1:-1])


def _name(tok: Token) -> Name:
    return Name(str(tok), _pos(tok))


def _tokens(tree: Tree[Token]) -> list[Token]:
    return [c for c in tree.children if isinstance(c, Token)]


def _subtrees(tree: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in tree.children if isinstance(c, Tree)]


class _Builder:
    """Builds the AST; collects what the grammar lets through but the AST cannot hold.

    Modifiers may come in any order, so the grammar accepts any sequence and a repeated one
    is reported here, at the repetition, instead of as an unexpected token.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def _error(self, pos: Pos, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(self.path, pos, message))

    def _once(self, seen: dict[str, Pos], key: str, pos: Pos, what: str) -> bool:
        """True the first time `key` is seen; reports a repetition otherwise."""
        if key in seen:
            first = seen[key]
            self._error(pos, f"{what} is given twice (first at {first.line}:{first.column})")
            return False
        seen[key] = pos
        return True

    def policy(self, tree: Tree[Token], text: str) -> Policy:
        head, *rest = _subtrees(tree)
        name_tok = _tokens(head)[0]
        sources: list[str] = []
        roles: list[Name] = []
        zones: list[ZoneDef] = []
        services: list[ServiceDef] = []
        rules: list[Rule] = []
        strict: dict[str, Pos] = {}
        egress: list[EgressDef] = []
        for node in rest:
            if node.data == "source_decl":
                sources.append(_string(_tokens(node)[0]))
            elif node.data == "role_decl":
                roles.extend(_name(t) for t in _tokens(node))
            elif node.data == "zone_decl":
                zone_name, *members = _tokens(node)
                zones.append(
                    ZoneDef(_name(zone_name), tuple(_name(t) for t in members), _tree_pos(node))
                )
            elif node.data == "service_decl":
                services.append(self._service(node))
            elif node.data == "egress_decl":
                zone_name, *to = _tokens(node)
                egress.append(
                    EgressDef(_name(zone_name), tuple(_name(t) for t in to), _tree_pos(node))
                )
            elif node.data == "strict_decl":
                self._once(strict, "strict", _tree_pos(node), "'strict advisory'")
            else:
                rules.append(self._rule(node))
        return Policy(
            name=_string(name_tok),
            sources=tuple(sources),
            roles=tuple(roles),
            zones=tuple(zones),
            services=tuple(services),
            rules=tuple(rules),
            strict_advisory=bool(strict),
            egress=tuple(egress),
            path=self.path,
            text=text,
            pos=_pos(name_tok),
        )

    def _service(self, tree: Tree[Token]) -> ServiceDef:
        name = _name(_tokens(tree)[0])
        items: list[PortItem] = []
        sample: int | None = None
        sample_pos = NOWHERE
        for node in _subtrees(tree):
            if node.data == "port_item":
                items.append(_port_item(_tokens(node)[0]))
            else:
                count = _tokens(node)[0]
                sample, sample_pos = _number(str(count)), _pos(count)
        return ServiceDef(name, tuple(items), sample, _tree_pos(tree), sample_pos)

    def _rule(self, tree: Tree[Token]) -> Rule:
        rule_id, title = _tokens(tree)
        severity = Severity.MEDIUM
        advisory = False
        sources: list[str] = []
        body: list[Statement] = []
        seen: dict[str, Pos] = {}
        for node in _subtrees(tree):
            pos = _tree_pos(node)
            if node.data == "severity":
                if self._once(seen, "severity", pos, "'severity'"):
                    severity = Severity(str(_tokens(node)[0]))
            elif node.data == "advisory":
                advisory = self._once(seen, "advisory", pos, "'advisory'") or advisory
            elif node.data == "source_decl":
                sources.append(_string(_tokens(node)[0]))
            elif node.data == "flow":
                body.append(self._flow(node))
            elif node.data == "check":
                body.append(self._check(node))
            else:
                body.append(self._expect(node))
        return Rule(
            id=_name(rule_id),
            title=_string(title),
            body=tuple(body),
            severity=severity,
            advisory=advisory,
            sources=tuple(sources),
            pos=_tree_pos(tree),
        )

    def _flow(self, tree: Tree[Token]) -> FlowStmt:
        action = _tokens(tree)[0]
        chain: list[Endpoint] = []
        excepts: list[Endpoint] = []
        scope: Scope | None = None
        closed_ok_pos = by_hostname_pos = NOWHERE
        seen: dict[str, Pos] = {}
        for node in _subtrees(tree):
            pos = _tree_pos(node)
            if node.data in ("source_endpoint", "target_endpoint"):
                chain.append(_endpoint(node))
            elif node.data == "except_":
                excepts.append(_endpoint(_subtrees(node)[0]))
            elif node.data == "closed_ok":
                if self._once(seen, "closed-ok", pos, "'closed-ok'"):
                    closed_ok_pos = pos
            elif node.data == "by_hostname":
                if self._once(seen, "by hostname", pos, "'by hostname'"):
                    by_hostname_pos = pos
            elif self._once(seen, "scope", pos, "a scope (within …/across …)"):
                scope = _scope(node)
        return FlowStmt(
            action=Action(str(action)),
            chain=tuple(chain),
            excepts=tuple(excepts),
            closed_ok=closed_ok_pos != NOWHERE,
            scope=scope,
            by_hostname=by_hostname_pos != NOWHERE,
            pos=_pos(action),
            closed_ok_pos=closed_ok_pos,
            by_hostname_pos=by_hostname_pos,
        )

    def _check(self, tree: Tree[Token]) -> CheckStmt:
        target: Endpoint | None = None
        scope: Scope | None = None
        for node in _subtrees(tree):
            if node.data == "target_endpoint":
                target = _endpoint(node)
            else:
                scope = _scope(node)
        return CheckStmt(_name(_tokens(tree)[0]), scope, target, _tree_pos(tree))

    def _expect(self, tree: Tree[Token]) -> ExpectStmt:
        kind_tok, *app_toks = _tokens(tree)
        source, second, *options = _subtrees(tree)
        if second.data == "target_endpoint":
            return ExpectStmt(
                kind=ExpectKind(str(kind_tok)),
                source=_endpoint(source),
                via=None,
                target=_endpoint(second),
                pos=_tree_pos(tree),
            )
        via = second
        app: str | None = _string(app_toks[0]) if app_toks else None
        path = "/"
        status: int | None = None
        status_pos = NOWHERE
        speaking: Name | None = None
        at_least: int | None = None
        at_least_pos = NOWHERE
        seen: dict[str, Pos] = {}
        for node in options:
            pos = _tree_pos(node)
            if node.data == "any_app":
                app = None
            elif node.data == "speaking_app":
                app, speaking = None, _name(_tokens(node)[-1])
            elif node.data == "at_least":
                if self._once(seen, "at least", pos, "'at least'"):
                    count = _tokens(node)[-1]
                    at_least, at_least_pos = _number(str(count)), _pos(count)
            elif node.data == "path":
                if self._once(seen, "path", pos, "'path'"):
                    path = _string(_tokens(node)[0])
            elif self._once(seen, "status", pos, "'status'"):
                code = _tokens(node)[-1]
                status, status_pos = _number(str(code)), _pos(code)
        return ExpectStmt(
            kind=ExpectKind(str(kind_tok)),
            source=_endpoint(source),
            via=_endpoint(via),
            app=app,
            path=path,
            status=status,
            speaking=speaking,
            at_least=at_least,
            pos=_tree_pos(tree),
            status_pos=status_pos,
            at_least_pos=at_least_pos,
        )


def _port_item(tok: Token) -> PortItem:
    proto, _, span = str(tok).partition("/")
    first, _, last = span.partition("-")
    low = _number(first)
    return PortItem(Protocol(proto), low, _number(last) if last else low, _pos(tok))


def _endpoint(tree: Tree[Token]) -> Endpoint:
    selector: Name | None = None
    ports: list[PortSpec] = []
    for node in _subtrees(tree):
        if node.data == "selector":
            selector = _name(_tokens(node)[0])
        elif node.data == "port_item":
            ports.append(_port_item(_tokens(node)[0]))
        else:
            ref = _tokens(node)[0]
            ports.append(ServiceRef(str(ref), _pos(ref)))
    return Endpoint(_name(_tokens(tree)[0]), selector, tuple(ports))


def _scope(tree: Tree[Token]) -> Scope:
    toks = _tokens(tree)
    pos = _pos(toks[0])
    if tree.data == "within_session":
        mode = SessionMode(str(toks[1])) if len(toks) > 1 else None
        return Scope(ScopeKind.WITHIN_SESSION, mode, pos)
    if tree.data == "across_sessions":
        return Scope(ScopeKind.ACROSS_SESSIONS, None, pos)
    if tree.data == "across_agents":
        return Scope(ScopeKind.ACROSS_AGENTS, None, pos)
    return Scope(ScopeKind.WITHIN_AGENT, None, pos)
