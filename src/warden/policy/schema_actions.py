"""The action hierarchy declared in a Cedar schema (``action "http:GET" in [read];``).

Cedar needs action entities with their parents to evaluate ``action in Action::"read"``.
Passing the schema on every call would provide them but triples the cost of a decision, so
the hierarchy is read from the schema's action declarations once per bundle. Anything this
reader does not understand (namespaces, unbalanced braces) refuses the bundle rather than
guess: a missed membership could let a ``forbid`` on an action group silently not apply.
"""

from __future__ import annotations

import re

from warden.policy.errors import PolicyPackInvalid

_TOKEN = re.compile(r'\s+|//[^\n]*|"(?:\\.|[^"\\])*"|[A-Za-z_][A-Za-z0-9_]*|::|[{}\[\](),;:<>=?@]')


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise PolicyPackInvalid("schema", f"unexpected character at offset {position}")
        word = match.group(0)
        position = match.end()
        if word.isspace() or word.startswith("//"):
            continue
        tokens.append(word)
    return tokens


def _name(tokens: list[str], index: int) -> tuple[str, int]:
    """An action name (``read``, ``"http:GET"`` or ``Action::"x"``) and the next index."""
    word = tokens[index]
    if index + 2 < len(tokens) and tokens[index + 1] == "::":
        if word != "Action":
            raise PolicyPackInvalid("schema", f"unsupported action reference {word}::")
        index += 2
        word = tokens[index]
    if word.startswith('"'):
        return word[1:-1].encode().decode("unicode_escape"), index + 1
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", word):
        return word, index + 1
    raise PolicyPackInvalid("schema", f"unexpected {word!r} in an action declaration")


def action_parents(schema_text: str) -> dict[str, tuple[str, ...]]:
    """Each declared action's direct parents (action groups)."""
    tokens = _tokens(schema_text)
    parents: dict[str, tuple[str, ...]] = {}
    depth = 0
    index = 0
    while index < len(tokens):
        word = tokens[index]
        if word in "{[(":
            depth += 1
        elif word in "}])":
            depth -= 1
            if depth < 0:
                raise PolicyPackInvalid("schema", "unbalanced brackets")
        elif depth == 0 and word == "namespace":
            raise PolicyPackInvalid("schema", "namespaces are not supported in Warden bundles")
        elif depth == 0 and word == "action":
            index = _action(tokens, index + 1, parents)
            continue
        index += 1
    if depth != 0:
        raise PolicyPackInvalid("schema", "unbalanced brackets")
    return parents


def _action(tokens: list[str], index: int, parents: dict[str, tuple[str, ...]]) -> int:
    names: list[str] = []
    while True:
        name, index = _name(tokens, index)
        names.append(name)
        if tokens[index] != ",":
            break
        index += 1
    groups: list[str] = []
    if tokens[index] == "in":
        index += 1
        if tokens[index] == "[":
            index += 1
            while tokens[index] != "]":
                group, index = _name(tokens, index)
                groups.append(group)
                if tokens[index] == ",":
                    index += 1
            index += 1
        else:
            group, index = _name(tokens, index)
            groups.append(group)
    depth = 0
    while not (depth == 0 and tokens[index] == ";"):  # skip appliesTo { ... }
        if tokens[index] in "{[(":
            depth += 1
        elif tokens[index] in "}])":
            depth -= 1
        index += 1
    for name in names:
        if name in parents:
            raise PolicyPackInvalid("schema", f"action {name!r} declared twice")
        parents[name] = tuple(groups)
    return index + 1


def action_entities(parents: dict[str, tuple[str, ...]]) -> list[dict[str, object]]:
    """Cedar entity JSON for every action, with its parents."""
    return [
        {
            "uid": {"type": "Action", "id": name},
            "attrs": {},
            "parents": [{"type": "Action", "id": group} for group in groups],
        }
        for name, groups in parents.items()
    ]
