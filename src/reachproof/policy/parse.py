"""Policy text → AST, with every problem reported at its line and column.

Parsing is two passes, as in lark's `create_ast` example: the LALR grammar
(`grammar.lark`) gives a parse tree with positions, `_Builder` turns it into the frozen AST of
`ast.py`, and `check.check_policy` checks meaning (references, ranges, scopes). A syntax error
stops at the first problem; meaning errors are all reported together, so a user fixes a file
in one round. Whatever the text, the only exception that leaves `parse_policy` is PolicyError.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from reachproof.errors import NOWHERE, Diagnostic, PolicyError, Pos, read_text
from reachproof.policy import check
from reachproof.policy.ast import (
    CHECKS,
    Action,
    CheckStmt,
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
        raise PolicyError([_syntax_diagnostic(exc, text, path)], source=text) from exc
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
            else:
                rules.append(self._rule(node))
        return Policy(
            name=_string(name_tok),
            sources=tuple(sources),
            roles=tuple(roles),
            zones=tuple(zones),
            services=tuple(services),
            rules=tuple(rules),
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
        scopes = _subtrees(tree)
        scope = _scope(scopes[0]) if scopes else None
        return CheckStmt(_name(_tokens(tree)[0]), scope, _tree_pos(tree))

    def _expect(self, tree: Tree[Token]) -> ExpectStmt:
        kind_tok, *app_toks = _tokens(tree)
        source, via, *options = _subtrees(tree)
        app: str | None = _string(app_toks[0]) if app_toks else None
        path = "/"
        status: int | None = None
        status_pos = NOWHERE
        seen: dict[str, Pos] = {}
        for node in options:
            pos = _tree_pos(node)
            if node.data == "any_app":
                app = None
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
            pos=_tree_pos(tree),
            status_pos=status_pos,
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
    return Scope(ScopeKind.WITHIN_AGENT, None, pos)


# --- syntax errors in plain words --------------------------------------------------------------

_STATEMENT_STARTS = frozenset({"ACTION", "_CHECK", "_EXPECT"})
_MODIFIERS = frozenset({"_EXCEPT", "CLOSED_OK", "WITHIN", "ACROSS", "BY"})
_DECLARATIONS = frozenset({"_ROLE", "_ZONE", "_SERVICE"})
_ARROW, _COLON, _LSQB = "__ARROW", "COLON", "LSQB"
_IGNORED = frozenset({"WS", "COMMENT"})

# How each terminal is named in a message, in the order a message lists them: what the user
# most likely meant to write comes first.
_WORDING: dict[str, str] = {
    _ARROW: "'->'",
    _COLON: "':'",
    "EQUAL": "'='",
    "COMMA": "','",
    _LSQB: "'['",
    "RSQB": "']'",
    "STRING": "a quoted string",
    "NAME": "a name",
    "PORT_ITEM": "a port such as tcp/443",
    "INT": "a number",
    "STAR": "'*'",
    "SEVERITY": "a severity (critical, high, medium, low or info)",
    "SESSION_MODE": "'single-node' or 'multi-node'",
    "EXPECT_KIND": "'http' or 'websocket'",
    "_HOSTNAME": "'hostname'",
    "_SESSION": "'session'",
    "_SESSIONS": "'sessions'",
    "_AGENT": "'agent'",
    "_FROM": "'from'",
    "_VIA": "'via'",
    "_APP": "'app'",
    "_PATH": "'path'",
    "STATUS": "'status'",
    "_SAMPLE": "'sample'",
    "_SEVERITY": "'severity'",
    "_ADVISORY": "'advisory'",
    "_POLICY": "'policy'",
    "_SOURCE": "'source'",
    "MODIFIER": "a modifier (except, closed-ok, within, across or by hostname)",
    "STATEMENT": "a statement (allow, reach, deny, check or expect)",
    "DECLARATION": "a declaration (role, zone or service)",
    "_RULE": "'rule'",
    "$END": "the end of the file",
}

# What a NAME or STRING is for, judged by the token before it.
_NAME_AFTER = {
    "->": "a role or zone name",
    "allow": "a role or zone name",
    "reach": "a role or zone name",
    "deny": "a role or zone name",
    "from": "a role or zone name",
    "via": "a role or zone name",
    "except": "a role or zone name",
    "role": "a role name",
    "zone": "a zone name",
    "service": "a service name",
    "rule": "a rule id such as R1",
    "[": "a selector (a host name, container hostname or cluster role)",
    "check": f"a check name ({', '.join(CHECKS)})",
}
_STRING_AFTER = {
    "policy": "the policy name as a quoted string",
    "source": "a citation as a quoted string",
    "path": "a URL path as a quoted string",
}


def _terminal(name: str) -> str:
    """The stable key of a terminal: lark numbers anonymous ones (`->`) in grammar order."""
    if name.startswith("__ANON"):
        pattern = _parser().get_terminal(name).pattern.value
        return _ARROW if pattern == "->" else name
    return name


def _describe(expected: set[str], before: list[Token]) -> str:
    prev = str(before[-1]) if before else None
    after_rule_id = len(before) >= 2 and before[-2] == "rule"
    keys = {_terminal(n) for n in expected} - _IGNORED
    if keys & _STATEMENT_STARTS:
        keys = (keys - _STATEMENT_STARTS) | {"STATEMENT"}
    if len(keys & _MODIFIERS) > 1:
        keys = (keys - _MODIFIERS) | {"MODIFIER"}
    if keys & _DECLARATIONS:
        keys = (keys - _DECLARATIONS) | {"DECLARATION"}
    words: list[str] = []
    if {"NAME", "PORT_ITEM"} <= keys:
        keys -= {"NAME", "PORT_ITEM"}
        words.append("a port such as tcp/443 or a service name")
    for key, wording in _WORDING.items():
        if key not in keys:
            continue
        if key == "NAME" and prev in _NAME_AFTER:
            wording = _NAME_AFTER[prev]
        elif key == "STRING" and after_rule_id:
            wording = "the rule title as a quoted string"
        elif key == "STRING" and prev in _STRING_AFTER:
            wording = _STRING_AFTER[prev]
        words.append(wording)
        keys.discard(key)
    words.extend(sorted(f"'{_keyword(k)}'" for k in keys))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _keyword(key: str) -> str:
    """A keyword terminal's text (`_EXCEPT` → `except`) for terminals without a wording."""
    return key.lstrip("_").lower().replace("_", "-")


def _tokens_before(text: str, offset: int) -> list[Token]:
    """The tokens that end at or before `offset`, lexed again to give errors their context."""
    tokens: list[Token] = []
    try:
        for tok in _parser().lex(text):
            if tok.end_pos is None or tok.end_pos > offset:
                break
            tokens.append(tok)
    except UnexpectedInput:
        pass  # a lexing error at or after `offset`: the tokens before it are all we need
    return tokens


def _shown(value: str) -> str:
    """A token as quoted in a message, shortened so one long string cannot flood the line."""
    return repr(value if len(value) <= 30 else value[:27] + "...")


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    if isinstance(exc, UnexpectedToken):
        pos, message = _unexpected_token(exc, text)
    elif isinstance(exc, UnexpectedCharacters):
        pos, message = _unexpected_character(exc, text)
    else:
        pos, message = Pos(max(exc.line, 1), max(exc.column, 1)), "unexpected end of file"
    return Diagnostic.at(path, pos, message)


def _unexpected_token(exc: UnexpectedToken, text: str) -> tuple[Pos, str]:
    tok: Token = exc.token
    at_end = tok.type == "$END"
    offset = len(text) if at_end or tok.start_pos is None else tok.start_pos
    before = _tokens_before(text, offset)
    prev = str(before[-1]) if before else None
    expected = {_terminal(n) for n in exc.expected}
    if at_end:
        pos = Pos(before[-1].end_line or 1, before[-1].end_column or 1) if before else Pos(1, 1)
    else:
        pos = _pos(tok)
    found = "the end of the file" if at_end else _shown(str(tok))
    after = f" after {_shown(prev)}" if prev is not None else ""

    # The fallback lexer may type a misplaced keyword as a NAME, so keywords go by their text.
    word = "" if at_end else str(tok)
    dangling = _dangling_separator(before)
    if dangling is not None:
        return dangling
    if "ACTION" in expected and "_SOURCE" in expected and (at_end or word == "rule"):
        rule_pos, rule_id = _current_rule(before)
        message = f"rule {rule_id} has no statements (expected allow, reach, deny, check or expect)"
        return rule_pos, ("unexpected end of file: " if at_end else "") + message
    if expected == {"_POLICY"}:
        return pos, f'a policy file starts with: policy "NAME" (found {found})'
    if _ARROW in expected and tok.type == "COLON":
        return pos, f"the source of a chain takes no ports: expected '->'{after}"
    if expected <= {_ARROW, _LSQB} and _ARROW in expected:
        message = f"expected '->'{after}"
    elif expected <= {_COLON, _LSQB} and _COLON in expected:
        message = f"expected ':' and ports{after} (for example {prev}:tcp/443 or {prev}:SERVICE)"
    elif word in ("role", "zone", "service") and "_RULE" in expected:
        message = (
            f"'{word}' comes too late: declare roles, zones and services before the first rule"
        )
    elif word == "source" and "ACTION" in expected:
        message = "a rule's 'source' lines come before its statements"
    else:
        message = f"expected {_describe(expected, before)}{after}"
        if not at_end:
            message += f", found {found}"
    return pos, ("unexpected end of file: " + message if at_end else message)


# A separator at the end of a line makes the keyword that starts the next line a name (keywords
# are names wherever a name is expected), so the error surfaces one token later than the
# mistake. These say what the separator wanted.
_SEPARATOR_WANTS = {
    "->": "a role or zone name",
    ":": "a port such as tcp/443 or a service name",
    ",": "another item",
    "=": "a port or role list",
}
_LINE_STARTERS = frozenset(
    {"policy", "source", "role", "zone", "service", "rule"}
    | {"allow", "reach", "deny", "check", "expect"}
)


def _dangling_separator(before: list[Token]) -> tuple[Pos, str] | None:
    if len(before) < 2:
        return None
    separator, word = before[-2], before[-1]
    if separator not in _SEPARATOR_WANTS or word not in _LINE_STARTERS:
        return None
    if separator.line == word.line:
        return None
    wants = _SEPARATOR_WANTS[str(separator)]
    return _pos(word), f"expected {wants} after '{separator}', found the keyword '{word}'"


def _current_rule(before: list[Token]) -> tuple[Pos, str]:
    """The id of the last `rule` header in `before` (the rule whose body is being parsed)."""
    for index in range(len(before) - 2, -1, -1):
        if before[index] == "rule":
            return _pos(before[index + 1]), str(before[index + 1])
    return NOWHERE, "?"


def _unexpected_character(exc: UnexpectedCharacters, text: str) -> tuple[Pos, str]:
    offset = len(text) if exc.pos_in_stream is None else exc.pos_in_stream
    char = text[offset : offset + 1]
    pos = Pos(exc.line, exc.column)
    before = _tokens_before(text, offset)
    prev = before[-1] if before else None
    if char == '"':
        return _bad_string(text, offset, pos)
    if char == "/" and prev is not None and prev.end_pos == offset:
        if prev in ("tcp", "udp"):
            return _pos(prev), (
                f"expected a port such as {prev}/443 or {prev}/1000-2000 after '{prev}/'"
            )
        return _pos(
            prev
        ), f"unknown protocol {_shown(str(prev))} (expected tcp or udp, as in tcp/443)"
    after = f" after {_shown(str(prev))}" if prev is not None else ""
    expected = _describe(set(exc.allowed or ()), before)
    return pos, f"unexpected character {char!r}: expected {expected}{after}"


def _bad_string(text: str, offset: int, pos: Pos) -> tuple[Pos, str]:
    """A `"` the STRING terminal rejected: either it is never closed or it has a bad escape."""
    index = offset + 1
    while index < len(text) and text[index] not in '\n\r"':
        if text[index] == "\\":
            if index + 1 < len(text) and text[index + 1] in '"\\':
                index += 2
                continue
            column = pos.column + (index - offset)
            return Pos(pos.line, column), (
                'invalid escape in string: only \\" and \\\\ are allowed'
            )
        index += 1
    return pos, "unterminated string: a string ends with '\"' on the same line"
