"""Filter syntax: wildcards, alternatives, escapes and the null label, as the service parses them."""

from __future__ import annotations

import pytest

from appconfig_sync.emulator.filters import FilterError, TagFilter, parse_name_filter, parse_tag_filters


@pytest.mark.parametrize(
    ("raw", "matching", "not_matching"),
    [
        ("*", ["", "a", "a*b"], []),
        ("app.*", ["app.", "app.x"], ["ap", "other"]),
        ("a,b*", ["a", "b", "bc"], ["ab", "c"]),
        (r"a\*", ["a*"], ["a", "ab"]),
        (r"a\,b", ["a,b"], ["a", "b"]),
        (r"a\\b", ["a\\b"], ["ab"]),
    ],
)
def test_key_filters(raw: str, matching: list[str], not_matching: list[str]) -> None:
    flt = parse_name_filter("key", raw, allow_null=False)
    assert all(flt.matches(v) for v in matching)
    assert not any(flt.matches(v) for v in not_matching)


def test_null_label() -> None:
    for raw in ("\0", "\\0"):
        flt = parse_name_filter("label", raw, allow_null=True)
        assert flt.matches(None) and not flt.matches("") and not flt.matches("x")
    both = parse_name_filter("label", "\\0,prod", allow_null=True)
    assert both.matches(None) and both.matches("prod")
    assert parse_name_filter("label", None, allow_null=True).matches(None)


@pytest.mark.parametrize("raw", ["*a", "a*b", "a\\", "a\\x", "1,2,3,4,5,6"])
def test_invalid_filters(raw: str) -> None:
    with pytest.raises(FilterError) as refused:
        parse_name_filter("key", raw, allow_null=False)
    assert refused.value.name == "key"


def test_tag_filters() -> None:
    assert parse_tag_filters(["env=prod", "owner=\\0", r"a\=b=c"]) == [
        TagFilter("env", "prod"),
        TagFilter("owner", None),
        TagFilter("a=b", "c"),
    ]
    with pytest.raises(FilterError):
        parse_tag_filters(["novalue"])
