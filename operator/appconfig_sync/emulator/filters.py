"""Key, label and tag filters with the service's syntax.

`*` at the end of an alternative is a prefix wildcard, `,` separates up to five alternatives,
`\\` escapes `*`, `,` and `\\`. `\\0` (sent as `%00`) names the null label.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ALTERNATIVES = 5
MAX_TAG_FILTERS = 5
NULL = "\0"


class FilterError(ValueError):
    """A filter the service would refuse with 400; `name` is the query parameter."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.name = name
        self.detail = detail


@dataclass(frozen=True)
class Alternative:
    text: str | None  # None is the null label
    prefix: bool

    def matches(self, value: str | None) -> bool:
        if self.text is None:
            return value is None
        if value is None:
            return False
        return value.startswith(self.text) if self.prefix else value == self.text


@dataclass(frozen=True)
class NameFilter:
    """A parsed key or label filter; `None` (no filter given) matches everything."""

    alternatives: tuple[Alternative, ...] | None

    def matches(self, value: str | None) -> bool:
        if self.alternatives is None:
            return True
        return any(alt.matches(value) for alt in self.alternatives)


MATCH_ALL = NameFilter(None)


def parse_name_filter(name: str, raw: str | None, *, allow_null: bool) -> NameFilter:
    """Parse a key or label filter the way the service does, raising FilterError on bad syntax."""
    if raw is None:
        return MATCH_ALL
    alternatives: list[Alternative] = []
    for i, part in enumerate(_split_alternatives(name, raw)):
        if part == "\\0" or part == NULL:
            if not allow_null:
                raise FilterError(name, f"{name}({i}): the null character is only valid in label filters")
            alternatives.append(Alternative(None, False))
            continue
        text, prefix = _unescape(name, part)
        if prefix and text == "":
            return MATCH_ALL
        alternatives.append(Alternative(text, prefix))
    if len(alternatives) > MAX_ALTERNATIVES:
        raise FilterError(name, f"{name}: at most {MAX_ALTERNATIVES} comma-separated alternatives are allowed")
    return NameFilter(tuple(alternatives))


def _split_alternatives(name: str, raw: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in raw:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        raise FilterError(name, f"{name}: a trailing '\\' escapes nothing; escape it as '\\\\'")
    parts.append("".join(current))
    return parts


def _unescape(name: str, part: str) -> tuple[str, bool]:
    """Return (literal text, is_prefix); an unescaped `*` is only allowed at the end."""
    out: list[str] = []
    prefix = False
    i = 0
    while i < len(part):
        ch = part[i]
        if ch == "\\":
            nxt = part[i + 1]
            if nxt not in "*,\\":
                raise FilterError(name, f"{name}: '\\{nxt}' is not a valid escape; only '\\*', '\\,' and '\\\\' are")
            out.append(nxt)
            i += 2
            continue
        if ch == "*":
            if i != len(part) - 1:
                raise FilterError(
                    name, f"{name}: '*' is only supported at the end of a filter; escape a literal '*' as '\\*'"
                )
            prefix = True
        else:
            out.append(ch)
        i += 1
    return "".join(out), prefix


@dataclass(frozen=True)
class TagFilter:
    name: str
    value: str | None  # None matches a tag whose value is null

    def matches(self, tags: dict[str, str | None]) -> bool:
        return self.name in tags and tags[self.name] == self.value


def parse_tag_filters(raw: list[str]) -> list[TagFilter]:
    """Each `tags=name=value` must hold; values are literal (no wildcards), `\\0` is null."""
    if len(raw) > MAX_TAG_FILTERS:
        raise FilterError("tags", f"tags: at most {MAX_TAG_FILTERS} tag filters are allowed")
    result: list[TagFilter] = []
    for item in raw:
        name, sep, value = _split_unescaped(item, "=")
        if not sep or not name:
            raise FilterError("tags", f"tags: '{item}' is not of the form 'name=value'")
        result.append(TagFilter(_unescape_literal(name), None if value in ("\\0", NULL) else _unescape_literal(value)))
    return result


def _split_unescaped(text: str, separator: str) -> tuple[str, str, str]:
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == separator:
            return text[:i], separator, text[i + 1 :]
    return text, "", ""


def _unescape_literal(text: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in text:
        if escaped or ch != "\\":
            out.append(ch)
            escaped = False
        else:
            escaped = True
    return "".join(out)
