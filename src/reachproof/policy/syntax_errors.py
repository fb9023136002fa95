"""Lark's syntax errors, told in plain words at the offending token.

LALR knows exactly which tokens could come next; this module names them the way a policy
author thinks of them ("a role or zone name", "a port such as tcp/443"), uses the token before
the error for context, and recognises the common slips (a missing `->` or `:`, a rule without
statements, a declaration after the first rule, an unterminated string) to say so directly.
"""

from __future__ import annotations

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from reachproof.errors import NOWHERE, Diagnostic, Pos
from reachproof.policy.ast import CHECKS

__all__ = ["syntax_diagnostic"]


def _pos(tok: Token) -> Pos:
    if tok.line is None or tok.column is None:
        return NOWHERE
    return Pos(tok.line, tok.column)


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
    "EXPECT_KIND": "'http', 'websocket' or 'tls'",
    "_HOSTNAME": "'hostname'",
    "_SESSION": "'session'",
    "_SESSIONS": "'sessions'",
    "_AGENT": "'agent'",
    "_AGENTS": "'agents'",
    "_NONE": "'none'",
    "_FROM": "'from'",
    "_VIA": "'via'",
    "_TO": "'to'",
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


def _terminal(name: str, parser: Lark) -> str:
    """The stable key of a terminal: lark numbers anonymous ones (`->`) in grammar order."""
    if name.startswith("__ANON"):
        pattern = parser.get_terminal(name).pattern.value
        return _ARROW if pattern == "->" else name
    return name


def _describe(expected: set[str], before: list[Token]) -> str:
    """The expected terminals (as `_terminal` keys) in words, grouped and in a stable order."""
    prev = str(before[-1]) if before else None
    after_rule_id = len(before) >= 2 and before[-2] == "rule"
    keys = set(expected) - _IGNORED
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


def _tokens_before(parser: Lark, text: str, offset: int) -> list[Token]:
    """The tokens that end at or before `offset`, lexed again to give errors their context."""
    tokens: list[Token] = []
    try:
        for tok in parser.lex(text):
            if tok.end_pos is None or tok.end_pos > offset:
                break
            tokens.append(tok)
    except UnexpectedInput:
        pass  # a lexing error at or after `offset`: the tokens before it are all we need
    return tokens


def _shown(value: str) -> str:
    """A token as quoted in a message, shortened so one long string cannot flood the line."""
    return repr(value if len(value) <= 30 else value[:27] + "...")


def syntax_diagnostic(exc: UnexpectedInput, text: str, path: str, parser: Lark) -> Diagnostic:
    """The diagnostic for a syntax error `parser` raised on `text`."""
    if isinstance(exc, UnexpectedToken):
        pos, message = _unexpected_token(exc, text, parser)
    elif isinstance(exc, UnexpectedCharacters):
        pos, message = _unexpected_character(exc, text, parser)
    else:
        pos, message = Pos(max(exc.line, 1), max(exc.column, 1)), "unexpected end of file"
    return Diagnostic.at(path, pos, message)


def _unexpected_token(exc: UnexpectedToken, text: str, parser: Lark) -> tuple[Pos, str]:
    tok: Token = exc.token
    at_end = tok.type == "$END"
    offset = len(text) if at_end or tok.start_pos is None else tok.start_pos
    before = _tokens_before(parser, text, offset)
    prev = str(before[-1]) if before else None
    expected = {_terminal(n, parser) for n in exc.expected}
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


def _unexpected_character(exc: UnexpectedCharacters, text: str, parser: Lark) -> tuple[Pos, str]:
    offset = len(text) if exc.pos_in_stream is None else exc.pos_in_stream
    char = text[offset : offset + 1]
    pos = Pos(exc.line, exc.column)
    before = _tokens_before(parser, text, offset)
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
    allowed = {_terminal(n, parser) for n in exc.allowed or ()}
    expected = _describe(allowed, before)
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
