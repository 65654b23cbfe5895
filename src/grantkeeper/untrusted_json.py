"""JSON from outside (request bodies, token headers and claims), refused cleanly when hostile.

``json.loads`` recurses once per nesting level: a body of a few kilobytes nested thousands of
levels deep ends in ``RecursionError``, which nothing upstream expects (a 500 and a dropped
connection). It also accepts ``"\\ud800"``: a lone UTF-16 surrogate becomes a ``str`` that cannot
be encoded again, so the first database write or response that carries it fails. Callers here
get one :class:`UnsafeJson` (a ``ValueError``) that says which it was.
"""

from __future__ import annotations

import json
from typing import Any, Literal

#: Deeper than anything grantkeeper reads (flat request bodies, ID-token and SET claims).
MAX_DEPTH = 32

Problem = Literal["syntax", "depth", "surrogate"]


class UnsafeJson(ValueError):
    def __init__(self, problem: Problem, max_depth: int = MAX_DEPTH) -> None:
        self.problem = problem
        messages = {
            "syntax": "not valid JSON",
            "depth": f"nested more than {max_depth} levels deep",
            "surrogate": "holds an unpaired UTF-16 surrogate (such as \\ud800), not Unicode text",
        }
        super().__init__(messages[problem])


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text``; raise :class:`UnsafeJson` for bad syntax, deep nesting or lone
    surrogates."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnsafeJson("depth", max_depth) from None
    except ValueError:
        raise UnsafeJson("syntax", max_depth) from None
    check(value, max_depth=max_depth)
    return value


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`UnsafeJson` if an already parsed value nests deeper than ``max_depth`` or
    a string in it (keys included) is not encodable Unicode. Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not is_unicode(item):
                raise UnsafeJson("surrogate", max_depth)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise UnsafeJson("depth", max_depth)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (it cannot be encoded as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
