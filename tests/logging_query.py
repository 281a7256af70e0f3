"""An evaluator of the subset of the Cloud Logging query language the README queries and the signal filters use.

https://cloud.google.com/logging/docs/view/logging-query-language: comparisons joined by AND, OR and NOT
(lines, or comparisons side by side, joined by AND), OR binding tighter than AND, parentheses, string
comparisons without regard to case, ``field:*`` for a field that is present, ``field=("a" OR "b")`` for a
list of values, and ``=~`` / ``!~`` for a regular expression (case-sensitive, as RE2 is). `.` steps into a
field, as in AIP-160 (https://google.aip.dev/160); a list yields each of its items.

``Query(text).test(entry)`` evaluates the query over an entry in its JSON form; ``Query(text).paths`` are
the field paths it names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=~|!~|=|>|<|:)|(?P<paren>[()])'
                   r'|(?P<word>[^\s"()=<>!:]+))')
SEVERITY = {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500, "CRITICAL": 600,
            "ALERT": 700, "EMERGENCY": 800}
Entry = dict[str, Any]
Test = Callable[[Entry], bool]


def tokens(text: str) -> list[tuple[str, str]]:
    """The query's tokens as (kind, text): kind is string, op, paren or word."""
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match and match.end() > position, f"cannot read the query at {text[position:]!r}"
        kind = match.lastgroup or ""
        found.append((kind, match[kind]))
        position = match.end()
    return found


class Query:
    """A parsed query: ``test(entry)`` and the field paths it names."""

    def __init__(self, text: str) -> None:
        self.items = tokens(text)
        self.at = 0
        self.paths: list[str] = []
        self.test = self.conjunction()
        assert self.at == len(self.items), f"unread: {self.items[self.at:]}"

    def peek(self) -> tuple[str, str]:
        return self.items[self.at] if self.at < len(self.items) else ("end", "")

    def take(self) -> tuple[str, str]:
        item = self.peek()
        self.at += 1
        return item

    def conjunction(self) -> Test:
        parts = [self.disjunction()]
        while self.peek() not in (("end", ""), ("paren", ")")):
            if self.peek() == ("word", "AND"):
                self.take()
            parts.append(self.disjunction())
        return lambda entry: all(part(entry) for part in parts)

    def disjunction(self) -> Test:
        parts = [self.negation()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.negation())
        return lambda entry: any(part(entry) for part in parts)

    def negation(self) -> Test:
        if self.peek() in (("word", "NOT"), ("word", "-")):
            self.take()
            inner = self.primary()
            return lambda entry: not inner(entry)
        return self.primary()

    def primary(self) -> Test:
        if self.peek() == ("paren", "("):
            self.take()
            inner = self.conjunction()
            assert self.take() == ("paren", ")")
            return inner
        kind, path = self.take()
        assert kind == "word" and not path.endswith("."), f"a field path, plain (no quoted segment): {path!r}"
        self.paths.append(path)
        op_kind, op = self.take()
        assert op_kind == "op", f"an operator after {path}"
        if op == ":" and self.peek() == ("word", "*"):
            self.take()
            return lambda entry: bool(list(resolve(entry, path)))
        wanted = self.values()
        return lambda entry: any(compare(path, found, op, value) for found in resolve(entry, path)
                                 for value in wanted)

    def values(self) -> list[str]:
        if self.peek() == ("paren", "("):
            self.take()
            found = [self.value()]
            while self.peek() == ("word", "OR"):
                self.take()
                found.append(self.value())
            assert self.take() == ("paren", ")")
            return found
        return [self.value()]

    def value(self) -> str:
        kind, text = self.take()
        assert kind in ("string", "word"), f"a value, not {text!r}"
        return re.sub(r'\\(["\\])', r"\1", text[1:-1]) if kind == "string" else text


def resolve(entry: Any, path: str) -> Iterator[Any]:
    """The values at ``path`` (each `.` a step into a field; a list yields each of its items)."""
    found = [entry]
    for step in path.split("."):
        found = [item for value in found for item in (value if isinstance(value, list) else [value])]
        found = [value[step] for value in found if isinstance(value, dict) and step in value]
    for value in found:
        yield from value if isinstance(value, list) else [value]


def compare(path: str, found: Any, op: str, value: str) -> bool:
    """``found op value``: severities by level, timestamps as times, numbers as numbers, strings without case."""
    if op in ("=~", "!~"):
        return (re.search(value, str(found)) is not None) == (op == "=~")
    left: Any
    right: Any
    if path == "severity":
        left, right = SEVERITY[found], SEVERITY[value.upper()]
    elif path == "timestamp":
        left, right = (datetime.fromisoformat(text.replace("Z", "+00:00")) for text in (found, value))
    elif isinstance(found, bool | int | float):
        left, right = float(found), float(value)
    else:
        left, right = str(found).lower(), value.lower()
    if op == ":":
        return str(right) in str(left)
    checks = {"=": left == right, "!=": left != right, ">": left > right, ">=": left >= right, "<": left < right,
              "<=": left <= right}
    return checks[op]
